//! Rate limiting of OFREP evaluations and `POST /events`, per SDK key and
//! client address, with Cloudflare's rate-limiting binding
//! ([`BINDING`], `[[ratelimits]]` in `wrangler.toml`). Without the binding
//! nothing is limited.
//!
//! The binding counts per key in each Cloudflare location over a period of
//! 10 or 60 seconds (its `simple.period`); the worker asks it before
//! looking the SDK key up in KV, so a flood of unknown keys is limited as
//! well. The counting key is [`limit_key`]: the SDK key's hash (never the
//! key itself) and the client's address from `CF-Connecting-IP`. A request
//! over the limit gets [`Limited`]: `429 Too Many Requests` with
//! `Retry-After` and an OFREP error body.
//!
//! ```
//! use bunting_edge_worker::ratelimit::{applies, limit_key, Limited};
//! assert!(applies("/ofrep/v1/evaluate/flags") && applies("/ofrep/v1/evaluate/flags/x"));
//! assert!(applies("/events") && !applies("/healthz") && !applies("/sdk/v1/snapshot"));
//! let k = limit_key(Some("sdk-key"), Some("203.0.113.7"));
//! assert!(k.ends_with(":203.0.113.7") && !k.contains("sdk-key"));
//! let limited = Limited { retry_after_secs: 60 };
//! assert_eq!(limited.body()["errorCode"], "GENERAL");
//! ```

use bunting_wire::kv::sdk_key_hash;
use serde_json::Value;

use crate::ofrep;

/// Name of the rate-limiting binding in `wrangler.toml`.
pub const BINDING: &str = "RATE_LIMITER";

/// Default `RATE_LIMIT_PERIOD_SECONDS`: the binding's longer period.
pub const DEFAULT_PERIOD_SECONDS: u32 = 60;

/// Whether requests to `path` are rate limited: the OFREP evaluations and
/// `/events` (not `/healthz`, not the snapshot endpoint of server SDKs).
pub fn applies(path: &str) -> bool {
    path == ofrep::BULK_PATH || path == "/events" || path.starts_with(ofrep::SINGLE_PREFIX)
}

/// The key the binding counts under: `<SHA-256 of the SDK key>:<client
/// address>`, `-` for either when the request has none.
///
/// ```
/// use bunting_edge_worker::ratelimit::limit_key;
/// assert_eq!(limit_key(None, None), "-:-");
/// assert_ne!(limit_key(Some("a"), Some("1.1.1.1")), limit_key(Some("a"), Some("1.0.0.1")));
/// assert_ne!(limit_key(Some("a"), Some("1.1.1.1")), limit_key(Some("b"), Some("1.1.1.1")));
/// ```
pub fn limit_key(sdk_key: Option<&str>, client_ip: Option<&str>) -> String {
    let key = sdk_key.map_or_else(|| "-".to_string(), sdk_key_hash);
    let ip = client_ip.map(str::trim).filter(|ip| !ip.is_empty());
    format!("{key}:{}", ip.unwrap_or("-"))
}

/// The period the binding counts over, for `Retry-After`: `10` or `60`
/// (the two Cloudflare supports); anything else is the default.
///
/// ```
/// use bunting_edge_worker::ratelimit::period_seconds;
/// assert_eq!(period_seconds(Some("10")), 10);
/// assert_eq!(period_seconds(Some("15")), 60);
/// assert_eq!(period_seconds(None), 60);
/// ```
pub fn period_seconds(value: Option<&str>) -> u32 {
    match value.map(str::trim) {
        Some("10") => 10,
        _ => DEFAULT_PERIOD_SECONDS,
    }
}

/// A request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds to wait (`Retry-After`): the binding's period.
    pub retry_after_secs: u32,
}

impl Limited {
    /// The status: 429 Too Many Requests.
    pub const STATUS: u16 = 429;

    /// The OFREP error body.
    pub fn body(&self) -> Value {
        crate::health::object(vec![
            ("errorCode", Value::from("GENERAL")),
            (
                "errorDetails",
                Value::from(format!(
                    "rate limited: too many requests for this SDK key from this address; retry after {} seconds",
                    self.retry_after_secs
                )),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_sdk_keys_and_addresses() {
        let a = limit_key(Some("key-a"), Some("198.51.100.1"));
        assert_eq!(a, format!("{}:198.51.100.1", sdk_key_hash("key-a")));
        assert_eq!(
            limit_key(Some("key-a"), Some(" ")),
            format!("{}:-", sdk_key_hash("key-a"))
        );
        assert_eq!(limit_key(None, Some("::1")), "-:::1");
    }

    #[test]
    fn the_body_says_rate_limited() {
        let body = Limited {
            retry_after_secs: 10,
        }
        .body();
        assert_eq!(body["errorCode"], "GENERAL");
        assert!(
            body["errorDetails"]
                .as_str()
                .unwrap()
                .starts_with("rate limited")
        );
    }
}
