//! A request's URL, read once from the string the runtime serialized.
//!
//! `request.url` in workerd (as on Cloudflare) is an already-serialized
//! WHATWG URL, so its parts are found by position, without parsing it again
//! with the `url` crate (whose IDNA and Unicode normalization tables were a
//! large part of the worker's bundle) and without one crossing into JS per
//! part. Query values decode as `application/x-www-form-urlencoded` (`+` is a
//! space, `%XX` a byte, invalid UTF-8 replaced), exactly as
//! `url::Url::query_pairs` does.

use std::borrow::Cow;

/// The parts of a serialized absolute URL the worker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    /// The scheme, lowercase as serialized (`https`).
    pub scheme: &'a str,
    /// The path, percent-encoded as serialized (`/ofrep/v1/evaluate/flags`).
    pub path: &'a str,
    /// The query without its `?` (empty when there is none).
    pub query: &'a str,
}

impl<'a> RequestUrl<'a> {
    /// Splits a serialized URL into scheme, path and query; a string without
    /// `://` is taken as a path.
    ///
    /// ```
    /// use bunting_edge_worker::request_url::RequestUrl;
    /// let u = RequestUrl::parse("https://edge.example:8443/ofrep/v1/evaluate/flags/a?type=boolean#x");
    /// assert_eq!(u.scheme, "https");
    /// assert_eq!(u.path, "/ofrep/v1/evaluate/flags/a");
    /// assert_eq!(u.query, "type=boolean");
    /// assert_eq!(RequestUrl::parse("http://h").path, "/");
    /// ```
    pub fn parse(url: &'a str) -> RequestUrl<'a> {
        let (scheme, after) = match url.find("://") {
            Some(i) => (&url[..i], &url[i + 3..]),
            None => ("", url),
        };
        // The authority ends at the first `/`, `?` or `#`.
        let rest = if scheme.is_empty() {
            after
        } else {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            &after[end..]
        };
        let rest = &rest[..rest.find('#').unwrap_or(rest.len())];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, q),
            None => (rest, ""),
        };
        RequestUrl {
            scheme,
            path: if path.is_empty() { "/" } else { path },
            query,
        }
    }

    /// The decoded value of the first query parameter called `name`.
    ///
    /// ```
    /// use bunting_edge_worker::request_url::RequestUrl;
    /// let u = RequestUrl::parse("https://h/p?a=1&type=bool%65an&b+c=x+y&type=2&&e");
    /// assert_eq!(u.param("type").as_deref(), Some("boolean"));
    /// assert_eq!(u.param("b c").as_deref(), Some("x y"));
    /// assert_eq!(u.param("e").as_deref(), Some(""));
    /// assert_eq!(u.param("f"), None);
    /// ```
    pub fn param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k) == name).then(|| form_decode(v).into_owned())
            })
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The value of one hexadecimal digit.
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        for (url, scheme, path, query) in [
            ("https://example.com/", "https", "/", ""),
            ("https://example.com/foo/bar", "https", "/foo/bar", ""),
            (
                "https://example.com/foo?a=1&b=/x",
                "https",
                "/foo",
                "a=1&b=/x",
            ),
            ("https://example.com/foo#/frag?x", "https", "/foo", ""),
            ("http://example.com:8080/foo", "http", "/foo", ""),
            (
                "https://example.com/a%3F%23%2Fb?c",
                "https",
                "/a%3F%23%2Fb",
                "c",
            ),
            ("https://example.com?query", "https", "/", "query"),
            ("https://example.com#frag", "https", "/", ""),
            ("http://127.0.0.1:8787/healthz?", "http", "/healthz", ""),
        ] {
            let u = RequestUrl::parse(url);
            assert_eq!((u.scheme, u.path, u.query), (scheme, path, query), "{url}");
        }
    }

    #[test]
    fn decoding_matches_form_urlencoded() {
        for (raw, decoded) in [
            ("abc", "abc"),
            ("a+b", "a b"),
            ("a%20b", "a b"),
            ("%e2%82%ac", "€"),
            ("%E2%82%AC", "€"),
            ("%", "%"),
            ("%2", "%2"),
            ("%zz", "%zz"),
            ("%2g", "%2g"),
            ("100%25", "100%"),
            ("%ff", "\u{fffd}"),
            ("a%2Bb", "a+b"),
        ] {
            assert_eq!(form_decode(raw), decoded, "{raw}");
        }
    }

    #[test]
    fn first_parameter_wins() {
        let u = RequestUrl::parse("https://h/p?flagConfigEtag=7&flagConfigEtag=8");
        assert_eq!(u.param("flagConfigEtag").as_deref(), Some("7"));
        assert_eq!(RequestUrl::parse("https://h/p").param("x"), None);
        assert_eq!(
            RequestUrl::parse("https://h/p?x=a=b").param("x").as_deref(),
            Some("a=b")
        );
    }
}
