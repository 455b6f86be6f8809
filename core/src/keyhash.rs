//! Keyed hashes of targeting keys, so exposures and metric events can be
//! joined at the origin without raw user ids leaving the host that saw them.
//!
//! Every producer of exposures and events — the edge worker and every
//! embedding host (Rust, Node, Python) — hashes with this one function, so
//! the same user under the same secret gives the same hash everywhere.

use serde_json::Value;
use siphasher::sip128::SipHasher13;

/// Hashes targeting keys with a secret, so that they can be joined at the
/// origin but not reversed by whoever reads the exposure stream.
///
/// The hash is SipHash-1-3 with a 128-bit output, keyed from the secret:
///
/// 1. `key` = SipHash-1-3-128 of the secret's UTF-8 bytes under the all-zero
///    key (its 16 output bytes, in the standard little-endian order);
/// 2. `hash` = SipHash-1-3-128 of the targeting key's UTF-8 bytes under `key`;
/// 3. the 16 output bytes of `hash` as 32 lowercase hex characters.
///
/// Any other implementation of SipHash-1-3-128 reproduces it from these three
/// steps. SipHash is a keyed PRF: use a random secret of at least 128 bits
/// (e.g. 32 hex characters), kept out of the client and the snapshot. Deriving
/// the key with SipHash itself is only a compression of the secret, not a
/// password KDF, so a low-entropy secret would be guessable.
///
/// ```
/// use bunting_core::keyhash::KeyHasher;
/// let h = KeyHasher::new("s3cret");
/// let a = h.hash("user-1");
/// assert_eq!(a.len(), 32);
/// assert_eq!(a, KeyHasher::new("s3cret").hash("user-1")); // deterministic
/// assert_ne!(a, KeyHasher::new("other").hash("user-1"));  // keyed
/// ```
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 16],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher { .. }") // never print the derived key
    }
}

impl KeyHasher {
    /// Derives the SipHash key from `secret`.
    pub fn new(secret: &str) -> KeyHasher {
        let key = SipHasher13::new_with_keys(0, 0)
            .hash(secret.as_bytes())
            .as_bytes();
        KeyHasher { key }
    }

    /// The keyed hash of `key` as 32 lowercase hex characters.
    pub fn hash(&self, key: &str) -> String {
        hex::encode(
            SipHasher13::new_with_key(&self.key)
                .hash(key.as_bytes())
                .as_bytes(),
        )
    }

    /// The keyed hash of a context's `targetingKey` value: a string as it
    /// is, a number as JSON writes it (`42`, `1.5`); anything else has no
    /// hash. Hosts in other languages pass the JSON value across the WASM
    /// boundary, so a number is spelled the same way everywhere.
    ///
    /// ```
    /// use bunting_core::keyhash::KeyHasher;
    /// use serde_json::json;
    /// let h = KeyHasher::new("s");
    /// assert_eq!(h.hash_value(&json!("42")), Some(h.hash("42")));
    /// assert_eq!(h.hash_value(&json!(42)), Some(h.hash("42")));
    /// assert_eq!(h.hash_value(&json!(null)), None);
    /// ```
    pub fn hash_value(&self, key: &Value) -> Option<String> {
        match key {
            Value::String(s) => Some(self.hash(s)),
            Value::Number(n) => Some(self.hash(&n.to_string())),
            _ => None,
        }
    }
}

/// The keyed hash of `key` under `secret`: `KeyHasher::new(secret).hash(key)`.
/// Build a [`KeyHasher`] once when hashing many keys with the same secret.
///
/// ```
/// use bunting_core::keyhash::hash_key;
/// assert_eq!(hash_key("user-1", "s3cret"), hash_key("user-1", "s3cret"));
/// assert_ne!(hash_key("user-1", "s3cret"), hash_key("user-2", "s3cret"));
/// ```
pub fn hash_key(key: &str, secret: &str) -> String {
    KeyHasher::new(secret).hash(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_siphash13_128_keyed_from_the_secret() {
        // Recomputed step by step from the documented algorithm.
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut k = SipHasher13::new_with_keys(0, 0);
        k.write(b"secret");
        let k = k.finish128();
        let mut h = SipHasher13::new_with_keys(k.h1, k.h2);
        h.write(b"user-1");
        let h = h.finish128();
        let want: String = h.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash_key("user-1", "secret"), want);
        assert!(
            want.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn hash_separates_keys_and_secrets() {
        let h = KeyHasher::new("secret");
        assert_ne!(h.hash("a"), h.hash("b"));
        assert_ne!(h.hash(""), KeyHasher::new("").hash(""));
        assert_eq!(h.hash("a"), hash_key("a", "secret"));
        assert_eq!(format!("{h:?}"), "KeyHasher { .. }");
    }
}
