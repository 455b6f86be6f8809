//! SDK keys: `Authorization: Bearer <key>` (or `X-API-Key: <key>`), looked
//! up in KV as `sdk-key:<lowercase hex SHA-256 of the key>` →
//! `{"environment": "<env>"}`. Only hashes are stored anywhere; lookups are
//! cached in isolate memory for a short time.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long a found key is trusted without asking KV again.
pub const KEY_TTL_MS: i64 = 30_000;
/// How long an unknown key stays unknown (short: a new key works soon).
pub const UNKNOWN_KEY_TTL_MS: i64 = 5_000;
/// Most keys remembered; the cache is cleared when it grows past this.
const MAX_CACHED_KEYS: usize = 1024;

/// The SDK key of a request, from `Authorization: Bearer` or `X-API-Key`.
///
/// ```
/// use bunting_edge_worker::auth::sdk_key;
/// assert_eq!(sdk_key(Some("Bearer abc"), None), Some("abc"));
/// assert_eq!(sdk_key(Some("bearer  abc "), None), Some("abc"));
/// assert_eq!(sdk_key(None, Some("k")), Some("k"));
/// assert_eq!(sdk_key(Some("Basic x"), None), None);
/// ```
pub fn sdk_key<'a>(authorization: Option<&'a str>, x_api_key: Option<&'a str>) -> Option<&'a str> {
    let bearer = authorization.and_then(|a| {
        let a = a.trim();
        let (scheme, rest) = a.split_once(char::is_whitespace)?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    bearer
        .or_else(|| x_api_key.map(str::trim))
        .filter(|k| !k.is_empty())
}

/// Lowercase hex SHA-256 of a key.
///
/// ```
/// assert_eq!(bunting_edge_worker::auth::key_hash("abc"),
///            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
/// ```
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The KV key holding a key's record.
pub fn kv_key(hash: &str) -> String {
    format!("sdk-key:{hash}")
}

/// A key's KV record.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyRecord {
    /// The environment the key may read.
    pub environment: String,
}

/// The environment in a KV record's text, if it is a valid record.
pub fn parse_record(text: &str) -> Option<String> {
    serde_json::from_str::<KeyRecord>(text)
        .ok()
        .map(|r| r.environment)
        .filter(|e| !e.is_empty())
}

/// Recent lookups by key hash: `Some(env)` or `None` (unknown key).
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: HashMap<String, (Option<String>, i64)>,
}

impl KeyCache {
    /// The cached answer for `hash`, if still fresh: `Some(Some(env))` or
    /// `Some(None)` (known to be unknown).
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<Option<String>> {
        let (env, at) = self.entries.get(hash)?;
        let ttl = if env.is_some() {
            KEY_TTL_MS
        } else {
            UNKNOWN_KEY_TTL_MS
        };
        (now_ms - at < ttl && now_ms >= *at).then(|| env.clone())
    }

    /// Remembers a lookup.
    pub fn put(&mut self, hash: String, env: Option<String>, now_ms: i64) {
        if self.entries.len() >= MAX_CACHED_KEYS {
            self.entries.clear();
        }
        self.entries.insert(hash, (env, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_expires() {
        let mut c = KeyCache::default();
        c.put("h".into(), Some("prod".into()), 1000);
        c.put("u".into(), None, 1000);
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS - 1), Some(Some("prod".into())));
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS), None);
        assert_eq!(c.get("u", 1001), Some(None));
        assert_eq!(c.get("u", 1000 + UNKNOWN_KEY_TTL_MS), None);
        assert_eq!(c.get("x", 0), None);
    }

    #[test]
    fn records() {
        assert_eq!(
            parse_record(r#"{"environment":"prod"}"#).as_deref(),
            Some("prod")
        );
        assert_eq!(parse_record(r#"{"environment":""}"#), None);
        assert_eq!(parse_record("nope"), None);
        assert_eq!(kv_key("ab"), "sdk-key:ab");
    }
}
