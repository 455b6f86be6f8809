//! SDK keys: `Authorization: Bearer <key>` (or `X-API-Key: <key>`), looked
//! up in KV as `sdk-key:<lowercase hex SHA-256 of the key>` →
//! `{"environment": "<env>", "kind": "client"|"server"}` (the layout is
//! [`bunting_wire::kv`], shared with the origin that writes it). Only
//! hashes are stored anywhere; lookups are cached in isolate memory for a
//! short time. OFREP takes any kind of key (and records without a kind);
//! the snapshot endpoint only server keys ([`crate::snapshot`]).

use std::collections::HashMap;

use bunting_wire::kv::SdkKeyRecord;

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

/// Recent lookups by key hash: `Some(record)` or `None` (unknown key).
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: HashMap<String, (Option<SdkKeyRecord>, i64)>,
}

impl KeyCache {
    /// The cached answer for `hash`, if still fresh: `Some(Some(record))`
    /// or `Some(None)` (known to be unknown).
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<Option<SdkKeyRecord>> {
        let (env, at) = self.entries.get(hash)?;
        let ttl = if env.is_some() {
            KEY_TTL_MS
        } else {
            UNKNOWN_KEY_TTL_MS
        };
        (now_ms - at < ttl && now_ms >= *at).then(|| env.clone())
    }

    /// Remembers a lookup.
    pub fn put(&mut self, hash: String, env: Option<SdkKeyRecord>, now_ms: i64) {
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
        let prod = SdkKeyRecord {
            environment: "prod".into(),
            kind: None,
        };
        c.put("h".into(), Some(prod.clone()), 1000);
        c.put("u".into(), None, 1000);
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS - 1), Some(Some(prod)));
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS), None);
        assert_eq!(c.get("u", 1001), Some(None));
        assert_eq!(c.get("u", 1000 + UNKNOWN_KEY_TTL_MS), None);
        assert_eq!(c.get("x", 0), None);
    }
}
