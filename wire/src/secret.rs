//! Comparing secrets (API tokens, the ingest secret) without leaking, through
//! timing, where they differ or how long they are.
//!
//! ```
//! assert!(bunting_wire::same_secret("s3cret", "s3cret"));
//! assert!(!bunting_wire::same_secret("s3cret", "s3cre"));
//! ```

use sha2::{Digest, Sha256};

/// Whether `a` and `b` are the same secret, in time independent of where
/// they differ: both are hashed with SHA-256 (so their lengths do not leak
/// either) and the digests compared in full.
///
/// ```
/// use bunting_wire::same_secret;
/// assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
/// ```
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(same_secret("", ""));
        assert!(!same_secret("", "x"));
        assert!(!same_secret("token", "Token"));
        assert!(same_secret("é", "é"));
    }
}
