//! SDK keys: `Authorization: Bearer <key>` (or `X-API-Key: <key>`), looked
//! up in KV as `sdk-key:<lowercase hex SHA-256 of the key>` →
//! `{"environment": "<env>", "kind": "client"|"server"}` (the layout is
//! [`bunting_wire::kv`], shared with the origin that writes it). Only
//! hashes are stored anywhere; lookups are cached in isolate memory for a
//! short time, keyed by a secret per-isolate hash ([`KeyCache`]). OFREP takes any kind of key (and records without a kind);
//! the snapshot endpoint only server keys ([`crate::snapshot`]).

use std::collections::HashMap;
use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

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

/// Recent lookups by SDK key: `Some(record)` or `None` (unknown key).
///
/// Entries are keyed by a 128-bit SipHash-1-3 of the raw key under a random
/// per-isolate secret, so a cached request costs no SHA-256 (computed only
/// on a miss, for the KV key) and no raw key is kept in memory. Lookups
/// compare fixed-size integers, never the secret-derived strings byte by
/// byte.
#[derive(Debug)]
pub struct KeyCache {
    secret: (u64, u64),
    /// With foldhash, as every map of the worker: no std SipHash code.
    entries: HashMap<u128, (Option<SdkKeyRecord>, i64), foldhash::fast::RandomState>,
}

impl Default for KeyCache {
    fn default() -> Self {
        let mut bytes = [0u8; 16];
        // Without randomness the fingerprint is still a good hash; the
        // secret only keeps it from being computed outside the isolate.
        let _ = crate::random::fill(&mut bytes);
        let (a, b) = bytes.split_at(8);
        KeyCache {
            secret: (
                u64::from_le_bytes(a.try_into().unwrap_or_default()),
                u64::from_le_bytes(b.try_into().unwrap_or_default()),
            ),
            entries: HashMap::default(),
        }
    }
}

impl KeyCache {
    /// The cache's fingerprint of a raw SDK key.
    fn fingerprint(&self, key: &str) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.secret.0, self.secret.1);
        h.write(key.as_bytes());
        h.finish128().as_u128()
    }

    /// The cached answer for the raw SDK `key`, if still fresh:
    /// `Some(Some(record))` or `Some(None)` (known to be unknown).
    pub fn get(&self, key: &str, now_ms: i64) -> Option<Option<SdkKeyRecord>> {
        let (env, at) = self.entries.get(&self.fingerprint(key))?;
        let ttl = if env.is_some() {
            KEY_TTL_MS
        } else {
            UNKNOWN_KEY_TTL_MS
        };
        (now_ms - at < ttl && now_ms >= *at).then(|| env.clone())
    }

    /// Remembers a lookup of the raw SDK `key`.
    pub fn put(&mut self, key: &str, env: Option<SdkKeyRecord>, now_ms: i64) {
        if self.entries.len() >= MAX_CACHED_KEYS {
            self.entries.clear();
        }
        let fingerprint = self.fingerprint(key);
        self.entries.insert(fingerprint, (env, now_ms));
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
        c.put("h", Some(prod.clone()), 1000);
        c.put("u", None, 1000);
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS - 1), Some(Some(prod)));
        assert_eq!(c.get("h", 1000 + KEY_TTL_MS), None);
        assert_eq!(c.get("u", 1001), Some(None));
        assert_eq!(c.get("u", 1000 + UNKNOWN_KEY_TTL_MS), None);
        assert_eq!(c.get("x", 0), None);
    }
}
