//! `GET /sdk/v1/snapshot`: an environment's whole snapshot, for server SDKs
//! that evaluate locally (the hosts of `docs/hosts.md`).
//!
//! Only a **server** SDK key may read it (`Authorization: Bearer <key>` or
//! `X-API-Key`, as for OFREP): a client key ships in browsers, and the
//! snapshot holds every rule and segment of the environment. A key record
//! without a kind (published before keys had one) is not a server key
//! here ([`bunting_wire::kv::SdkKeyRecord::is_server`]); it keeps working
//! for OFREP.
//!
//! The body is the snapshot text the isolate serves OFREP from, byte for
//! byte as published to KV (or, for a packed KV value, the JSON text it
//! carries, [`crate::cache::load_packed`]), refreshed from KV as OFREP's
//! is: a host never gets a snapshot older than what the edge evaluates
//! with. Its strong
//! `ETag` is the snapshot's `checksum` (`"sha256:…"`), so it names the
//! content and is the same in every isolate; `If-None-Match` answers 304.
//! This module decides; `worker_main.rs` does the I/O.
//!
//! ```
//! use bunting_edge_worker::snapshot::{access, etag, not_modified};
//! use bunting_wire::kv::{parse_sdk_key_record, sdk_key_value, KeyKind};
//! let server = parse_sdk_key_record(&sdk_key_value("acme/web/prod", KeyKind::Server));
//! assert_eq!(access(Some("k"), server.as_ref()), Ok("acme/web/prod"));
//! let client = parse_sdk_key_record(&sdk_key_value("acme/web/prod", KeyKind::Client));
//! assert_eq!(access(Some("k"), client.as_ref()).unwrap_err().status, 403);
//! assert_eq!(access(None, None).unwrap_err().status, 401);
//!
//! let tag = etag(Some("sha256:ab12"), "{}");
//! assert_eq!(tag, "\"sha256:ab12\"");
//! assert!(not_modified(&tag, Some("\"sha256:ab12\"")));
//! ```

use bunting_wire::kv::SdkKeyRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ofrep;

/// The route.
pub const PATH: &str = "/sdk/v1/snapshot";

/// `Cache-Control` of every answer with a snapshot (or a 304): any cache
/// must revalidate, and shared caches must not keep it (the key is secret).
pub const CACHE_CONTROL: &str = "private, no-cache";

/// Seconds a 503 asks the host to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Why a request gets no snapshot: its status and JSON body
/// (`{"errorCode", "errorDetails"}`, as OFREP's errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401, 403 or 503.
    pub status: u16,
    /// `UNAUTHORIZED`, `FORBIDDEN` or `UNAVAILABLE`.
    pub code: &'static str,
    /// What to do about it.
    pub details: String,
}

impl Refusal {
    /// The response body.
    pub fn body(&self) -> Value {
        crate::health::object(vec![
            ("errorCode", Value::from(self.code)),
            ("errorDetails", Value::from(self.details.as_str())),
        ])
    }
}

/// The environment a request may read, given its SDK key (`None`: no
/// key in the request) and the key's KV record (`None`: unknown key).
///
/// ```
/// use bunting_edge_worker::snapshot::access;
/// use bunting_wire::kv::parse_sdk_key_record;
/// let legacy = parse_sdk_key_record(r#"{"environment":"prod"}"#);
/// let refused = access(Some("k"), legacy.as_ref()).unwrap_err();
/// assert_eq!((refused.status, refused.code), (403, "FORBIDDEN"));
/// assert_eq!(access(Some("k"), None).unwrap_err().status, 401);
/// ```
pub fn access<'a>(key: Option<&str>, record: Option<&'a SdkKeyRecord>) -> Result<&'a str, Refusal> {
    let refuse = |status, code, details: &str| Refusal {
        status,
        code,
        details: details.to_string(),
    };
    match (key, record) {
        (None, _) => Err(refuse(
            401,
            "UNAUTHORIZED",
            "missing SDK key: send `Authorization: Bearer <server SDK key>`",
        )),
        (Some(_), None) => Err(refuse(401, "UNAUTHORIZED", "unknown SDK key")),
        (Some(_), Some(r)) if r.is_server() => Ok(&r.environment),
        (Some(_), Some(_)) => Err(refuse(
            403,
            "FORBIDDEN",
            "only a server SDK key may read the whole snapshot; this key is a client key \
             (or was published before keys had a kind): evaluate through OFREP, or use a \
             server SDK key of the environment",
        )),
    }
}

/// The strong ETag of a snapshot text: its `checksum` quoted, or, for a
/// snapshot without one (or with one an ETag cannot carry), `"sha256:"`
/// and the hex SHA-256 of the text.
///
/// ```
/// use bunting_edge_worker::snapshot::etag;
/// assert_eq!(etag(None, "abc"),
///     "\"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
/// assert_eq!(etag(Some("bad \"tag\""), "abc"), etag(None, "abc"));
/// ```
pub fn etag(checksum: Option<&str>, text: &str) -> String {
    // RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text.
    let usable =
        |c: &str| !c.is_empty() && c.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
    match checksum.filter(|c| usable(c)) {
        Some(c) => format!("\"{c}\""),
        None => format!(
            "\"sha256:{}\"",
            hex::encode(Sha256::digest(text.as_bytes()))
        ),
    }
}

/// The refusal when the environment has no good snapshot at the edge
/// (never published, or KV failed before any good read): 503, with
/// `Retry-After` [`RETRY_AFTER_SECONDS`].
pub fn unavailable(environment: &str) -> Refusal {
    Refusal {
        status: 503,
        code: "UNAVAILABLE",
        details: format!(
            "no snapshot of environment {environment:?} is available at the edge yet \
             (not published, or KV failed); retry later"
        ),
    }
}

/// Whether a request with `If-None-Match: if_none_match` already holds the
/// snapshot tagged `etag` (then 304, no body).
///
/// ```
/// use bunting_edge_worker::snapshot::not_modified;
/// assert!(not_modified("\"a\"", Some("\"b\", \"a\"")));
/// assert!(!not_modified("\"a\"", Some("\"b\"")));
/// assert!(!not_modified("\"a\"", None));
/// ```
pub fn not_modified(etag: &str, if_none_match: Option<&str>) -> bool {
    if_none_match.is_some_and(|h| ofrep::if_none_match(h, etag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_wire::kv::{KeyKind, parse_sdk_key_record, sdk_key_value};

    #[test]
    fn only_explicit_server_keys_read_snapshots() {
        let record = |kind| parse_sdk_key_record(&sdk_key_value("e", kind)).unwrap();
        let server = record(KeyKind::Server);
        let client = record(KeyKind::Client);
        let legacy = parse_sdk_key_record(r#"{"environment":"e"}"#).unwrap();
        assert_eq!(access(Some("k"), Some(&server)), Ok("e"));
        for r in [&client, &legacy] {
            let refused = access(Some("k"), Some(r)).unwrap_err();
            assert_eq!((refused.status, refused.code), (403, "FORBIDDEN"));
            assert_eq!(refused.body()["errorCode"], "FORBIDDEN");
        }
        // No key: 401 whatever a lookup would say.
        assert_eq!(access(None, Some(&server)).unwrap_err().status, 401);
        assert_eq!(access(Some("k"), None).unwrap_err().code, "UNAUTHORIZED");
    }

    #[test]
    fn etags_name_the_content() {
        let sealed = r#"{"checksum":"sha256:00ff"}"#;
        assert_eq!(etag(Some("sha256:00ff"), sealed), "\"sha256:00ff\"");
        // Without a checksum, the bytes decide.
        assert_ne!(etag(None, "{}"), etag(None, "{ }"));
        assert_eq!(etag(None, "{}"), etag(Some(""), "{}"));
        assert_eq!(etag(None, "{}"), etag(Some("a\u{7f}"), "{}"));
    }

    #[test]
    fn conditional_requests() {
        let tag = "\"sha256:00ff\"";
        for (header, unchanged) in [
            (None, false),
            (Some("\"sha256:00ff\""), true),
            (Some("W/\"sha256:00ff\""), true),
            (Some("*"), true),
            (Some("\"x\", \"sha256:00ff\""), true),
            (Some("\"sha256:00fe\""), false),
            (Some(""), false),
        ] {
            assert_eq!(not_modified(tag, header), unchanged, "{header:?}");
        }
        let none = unavailable("acme/web/prod");
        assert_eq!((none.status, none.code), (503, "UNAVAILABLE"));
        assert!(none.details.contains("acme/web/prod"));
    }
}
