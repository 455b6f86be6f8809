//! The anonymous-id cookie: reading `Cookie`, writing `Set-Cookie`, minting
//! and validating ids.
//!
//! Visitors without a `targetingKey` get a random **anonymous id** (128 bits,
//! 32 lowercase hex characters) kept in a first-party cookie, so they stay in
//! the same rollout buckets across requests (see
//! [`crate::context::ensure_targeting_key`]).
//!
//! Design decisions:
//!
//! * **No `HttpOnly`.** The id is a pseudonymous random value that grants no
//!   access to anything (it is not a session credential), and browser code
//!   legitimately needs it: an app reporting a metric event for an anonymous
//!   visitor must send the same `targetingKey` the flags were bucketed with,
//!   and a client-side SDK may want to put it in its own context. Reading it
//!   from `document.cookie` is the simplest way.
//! * **`SameSite=Lax`** by default: sent on same-site requests (e.g. the app on
//!   `www.example.com`, flags on `flags.example.com`) and top-level
//!   navigations, not on third-party subrequests. A Worker on another *site*
//!   than the app needs [`SameSite::None`] (which implies `Secure`) through
//!   [`set_cookie_with`] (`ANON_COOKIE_SAMESITE=None` in the Worker).
//! * **`Secure`** exactly when the request came over HTTPS
//!   ([`request_is_https`]): a `Secure` cookie set over plain http (local
//!   development) is never sent back, and the visitor would be re-bucketed
//!   on every request.
//! * `Path=/`, `Max-Age` in seconds; no `Domain` (host-only cookie).
//! * A cookie value is only trusted as an anonymous id if it looks like one of
//!   ours ([`is_anonymous_id`]): anything else is ignored and replaced, so a
//!   crafted cookie cannot inject an arbitrary targeting key of unbounded size.
//!
//! ```
//! use bunting_edge_worker::cookie::{anonymous_id_from_header, new_anonymous_id, set_cookie};
//! let id = new_anonymous_id();
//! let header = format!("theme=dark; bunting_anon={id}");
//! assert_eq!(anonymous_id_from_header(&header, "bunting_anon"), Some(id.as_str()));
//! assert_eq!(set_cookie("bunting_anon", &id, 3600, true),
//!            format!("bunting_anon={id}; Max-Age=3600; Path=/; SameSite=Lax; Secure"));
//! ```

/// Length of an anonymous id: 32 hex characters (128 bits).
pub const ANONYMOUS_ID_LEN: usize = 32;

/// A sensible anonymous-id lifetime: 400 days, the most Chrome accepts.
pub const ANONYMOUS_ID_MAX_AGE_SECS: u64 = 400 * 24 * 60 * 60;

/// The value of the cookie called `name` in a `Cookie` request header.
///
/// Tolerant of real-world headers (RFC 6265 §5.4 with the usual leniency):
/// pairs are separated by `;` with optional whitespace, names and values are
/// trimmed, pairs without `=` are skipped, a value wrapped in double quotes is
/// unquoted, and the first pair with that exact (case-sensitive) name wins.
/// Values are returned as sent (no percent-decoding).
///
/// ```
/// use bunting_edge_worker::cookie::parse_cookie;
/// let h = "a=1;b = 2 ; junk; c=\"3\"; a=4";
/// assert_eq!(parse_cookie(h, "a"), Some("1"));
/// assert_eq!(parse_cookie(h, "b"), Some("2"));
/// assert_eq!(parse_cookie(h, "c"), Some("3"));
/// assert_eq!(parse_cookie(h, "junk"), None);
/// assert_eq!(parse_cookie(h, "A"), None);
/// ```
pub fn parse_cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    if name.is_empty() {
        return None;
    }
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if k.trim_matches(is_ows) != name {
            return None;
        }
        let v = v.trim_matches(is_ows);
        Some(
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v),
        )
    })
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations (the default).
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent on cross-site requests too; browsers require `Secure` with it, so
    /// [`set_cookie_with`] always adds `Secure`.
    None,
}

impl SameSite {
    /// `Lax`, `Strict` or `None`, in any case; `None` for anything else.
    ///
    /// ```
    /// use bunting_edge_worker::cookie::SameSite;
    /// assert_eq!(SameSite::parse("none"), Some(SameSite::None));
    /// assert_eq!(SameSite::parse("sometimes"), None);
    /// ```
    pub fn parse(s: &str) -> Option<SameSite> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lax" => Some(SameSite::Lax),
            "strict" => Some(SameSite::Strict),
            "none" => Some(SameSite::None),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// A `Set-Cookie` header value: `name=value; Max-Age=…; Path=/; SameSite=Lax`,
/// plus `; Secure` when `secure`. Not `HttpOnly` (see the module docs).
///
/// `name` must be an RFC 6265 token and `value` cookie-octets (an anonymous id
/// is); they are written verbatim. `max_age_secs = 0` deletes the cookie.
///
/// ```
/// use bunting_edge_worker::cookie::set_cookie;
/// assert_eq!(set_cookie("id", "abc", 60, false), "id=abc; Max-Age=60; Path=/; SameSite=Lax");
/// ```
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    set_cookie_with(name, value, max_age_secs, secure, SameSite::Lax)
}

/// [`set_cookie`] with an explicit `SameSite`; `SameSite::None` forces `Secure`.
///
/// ```
/// use bunting_edge_worker::cookie::{set_cookie_with, SameSite};
/// assert_eq!(set_cookie_with("id", "abc", 60, false, SameSite::None),
///            "id=abc; Max-Age=60; Path=/; SameSite=None; Secure");
/// ```
pub fn set_cookie_with(
    name: &str,
    value: &str,
    max_age_secs: u64,
    secure: bool,
    same_site: SameSite,
) -> String {
    debug_assert!(is_token(name), "invalid cookie name {name:?}");
    debug_assert!(
        value.bytes().all(is_cookie_octet),
        "invalid cookie value {value:?}"
    );
    let mut s = format!(
        "{name}={value}; Max-Age={max_age_secs}; Path=/; SameSite={}",
        same_site.as_str()
    );
    if secure || same_site == SameSite::None {
        s.push_str("; Secure");
    }
    s
}

/// Whether the client reached the Worker over HTTPS, so that a `Secure`
/// cookie will come back: the request URL's scheme (what the Worker sees on
/// Cloudflare), else what a TLS-terminating proxy in front of it reports in
/// `X-Forwarded-Proto` (its first value) or Cloudflare's `CF-Visitor`
/// (`{"scheme":"https"}`). A client that lies only loses its own cookie.
///
/// ```
/// use bunting_edge_worker::cookie::request_is_https;
/// assert!(request_is_https("https", None, None));
/// assert!(!request_is_https("http", None, None));
/// assert!(request_is_https("http", Some("https, http"), None));
/// assert!(request_is_https("http", None, Some(r#"{"scheme":"https"}"#)));
/// assert!(!request_is_https("http", Some("http"), Some("garbage")));
/// ```
pub fn request_is_https(
    url_scheme: &str,
    forwarded_proto: Option<&str>,
    cf_visitor: Option<&str>,
) -> bool {
    let https = |s: &str| s.trim().eq_ignore_ascii_case("https");
    https(url_scheme)
        || forwarded_proto
            .and_then(|v| v.split(',').next())
            .is_some_and(https)
        || cf_visitor
            // From bytes, as every `Value` the worker parses: one parser
            // in the bundle, not one per input type.
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v.as_bytes()).ok())
            .and_then(|v| v.get("scheme")?.as_str().map(https))
            .unwrap_or(false)
}

/// RFC 6265 `token` (RFC 2616 token: visible ASCII except separators).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

/// RFC 6265 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

pub use crate::random::RandomError;

/// A fresh anonymous id: 128 bits from the platform CSPRNG
/// ([`crate::random::fill`]: `crypto.getRandomValues` in a Worker) as 32
/// lowercase hex characters.
///
/// ```
/// use bunting_edge_worker::cookie::{is_anonymous_id, try_new_anonymous_id};
/// let id = try_new_anonymous_id().unwrap();
/// assert!(is_anonymous_id(&id));
/// ```
pub fn try_new_anonymous_id() -> Result<String, RandomError> {
    let mut bytes = [0u8; ANONYMOUS_ID_LEN / 2];
    crate::random::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// [`try_new_anonymous_id`], for platforms where randomness cannot fail
/// (Workers, Linux, macOS, Windows).
///
/// # Panics
///
/// If the platform has no random source at all (then nothing in this
/// crate can work safely anyway).
///
/// ```
/// use bunting_edge_worker::cookie::new_anonymous_id;
/// let (a, b) = (new_anonymous_id(), new_anonymous_id());
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, b);
/// ```
pub fn new_anonymous_id() -> String {
    try_new_anonymous_id().expect("the platform random number generator failed")
}

/// Whether `value` looks like an id minted by [`new_anonymous_id`]: exactly
/// 32 lowercase hex characters. Check this before trusting a cookie value.
///
/// ```
/// use bunting_edge_worker::cookie::is_anonymous_id;
/// assert!(is_anonymous_id("0123456789abcdef0123456789abcdef"));
/// assert!(!is_anonymous_id("0123456789ABCDEF0123456789ABCDEF")); // not ours
/// assert!(!is_anonymous_id("user-42"));
/// ```
pub fn is_anonymous_id(value: &str) -> bool {
    value.len() == ANONYMOUS_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The anonymous id in cookie `name` of a `Cookie` header, if present and
/// valid ([`is_anonymous_id`]).
///
/// ```
/// use bunting_edge_worker::cookie::anonymous_id_from_header;
/// assert_eq!(anonymous_id_from_header("bunting_anon=evil; x=1", "bunting_anon"), None);
/// ```
pub fn anonymous_id_from_header<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    parse_cookie(header, name).filter(|v| is_anonymous_id(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parses_real_world_headers() {
        let h = "_ga=GA1.1.1234.5678; bunting_anon=0123456789abcdef0123456789abcdef; _gid=x";
        assert_eq!(
            parse_cookie(h, "bunting_anon"),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(parse_cookie(h, "_ga"), Some("GA1.1.1234.5678"));
        assert_eq!(parse_cookie(h, "_gid"), Some("x"));
        assert_eq!(parse_cookie(h, "missing"), None);
    }

    #[test]
    fn parsing_is_tolerant() {
        assert_eq!(parse_cookie("a=1", "a"), Some("1"));
        assert_eq!(parse_cookie("a=", "a"), Some(""));
        assert_eq!(parse_cookie("a=\"\"", "a"), Some(""));
        assert_eq!(parse_cookie("a=\"x", "a"), Some("\"x")); // unbalanced quote kept
        assert_eq!(parse_cookie(" \ta=1 \t;b=2", "a"), Some("1"));
        assert_eq!(parse_cookie(";;;a=1;;", "a"), Some("1"));
        assert_eq!(parse_cookie("a=b=c", "a"), Some("b=c"));
        assert_eq!(parse_cookie("noequals; a=1", "noequals"), None);
        assert_eq!(parse_cookie("xa=1; a=2", "a"), Some("2"));
        assert_eq!(parse_cookie("", "a"), None);
        assert_eq!(parse_cookie("=1", ""), None);
        assert_eq!(parse_cookie("é=ü; a=1", "a"), Some("1"));
        assert_eq!(parse_cookie("é=ü; a=1", "é"), Some("ü"));
    }

    #[test]
    fn first_duplicate_wins() {
        assert_eq!(parse_cookie("a=1; a=2", "a"), Some("1"));
    }

    #[test]
    fn set_cookie_attributes() {
        assert_eq!(
            set_cookie("bunting_anon", "00ff", ANONYMOUS_ID_MAX_AGE_SECS, true),
            "bunting_anon=00ff; Max-Age=34560000; Path=/; SameSite=Lax; Secure"
        );
        assert_eq!(
            set_cookie("bunting_anon", "", 0, false),
            "bunting_anon=; Max-Age=0; Path=/; SameSite=Lax"
        );
        assert_eq!(
            set_cookie_with("a", "b", 1, true, SameSite::Strict),
            "a=b; Max-Age=1; Path=/; SameSite=Strict; Secure"
        );
        assert!(!set_cookie("a", "b", 1, true).contains("HttpOnly"));
    }

    #[test]
    fn anonymous_ids_are_random_hex() {
        let ids: HashSet<String> = (0..1000).map(|_| new_anonymous_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(is_anonymous_id(id), "{id}");
        }
        // Every hex digit shows up: the bytes are not, e.g., all zero.
        let digits: HashSet<char> = ids.iter().flat_map(|s| s.chars()).collect();
        assert_eq!(digits.len(), 16);
    }

    #[test]
    fn validation_rejects_lookalikes() {
        let ok = "0123456789abcdef0123456789abcdef";
        assert!(is_anonymous_id(ok));
        assert!(!is_anonymous_id(""));
        assert!(!is_anonymous_id(&ok[1..]));
        assert!(!is_anonymous_id(&format!("{ok}0")));
        assert!(!is_anonymous_id("0123456789abcdeg0123456789abcdef"));
        assert!(!is_anonymous_id("0123456789abcdef-123456789abcdef"));
        assert!(!is_anonymous_id(" 123456789abcdef0123456789abcdef"));
        // 32 bytes but multi-byte characters.
        assert!(!is_anonymous_id("éééééééééééééééé"));
    }

    #[test]
    fn anonymous_id_from_header_validates() {
        let ok = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            anonymous_id_from_header(&format!("bunting_anon=\"{ok}\""), "bunting_anon"),
            Some(ok)
        );
        assert_eq!(
            anonymous_id_from_header("bunting_anon=user-42", "bunting_anon"),
            None
        );
        assert_eq!(anonymous_id_from_header("other=x", "bunting_anon"), None);
    }

    #[test]
    fn token_and_octet_rules() {
        assert!(is_token("bunting_anon"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a=b"));
        assert!("0123456789abcdef".bytes().all(is_cookie_octet));
        for b in [b' ', b'"', b',', b';', b'\\', 0x7f] {
            assert!(!is_cookie_octet(b), "{b}");
        }
    }
}
