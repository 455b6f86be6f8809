//! Deterministic bucketing with SipHash-1-3.
//!
//! A [`Bucketer`] is keyed by a salt (a flag's, or a layer's). It maps a
//! bucketing key (usually the `targetingKey`) to one of [`BUCKETS`] buckets:
//!
//! 1. `(k0, k1)` = the two halves of SipHash-1-3-128 of the salt's UTF-8 bytes
//!    under the all-zero key (little-endian `u64`s, as `siphasher` returns them);
//! 2. `h` = SipHash-1-3-64 of the bucketing key's UTF-8 bytes under `(k0, k1)`;
//! 3. `bucket = (h * BUCKETS) >> 64` (multiply-shift: no modulo bias).
//!
//! A percentage `p` covers buckets `[0, p × 1000)`, so ramping `p` up only ever
//! adds users; a weighted rollout gives its variants consecutive ranges in the
//! order listed.

use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};
use std::hash::Hasher;

/// Number of buckets: 100,000, i.e. 0.001% granularity.
pub const BUCKETS: u32 = 100_000;

/// Buckets per percent.
pub const BUCKETS_PER_PERCENT: u32 = BUCKETS / 100;

/// Maps bucketing keys to buckets for one salt.
///
/// ```
/// use bunting_core::bucket::{Bucketer, BUCKETS};
/// let b = Bucketer::new("new-checkout");
/// let x = b.bucket("user-42");
/// assert!(x < BUCKETS);
/// assert_eq!(x, Bucketer::new("new-checkout").bucket("user-42")); // deterministic
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketer {
    k0: u64,
    k1: u64,
}

impl Bucketer {
    /// Derives the SipHash key from `salt`.
    pub fn new(salt: &str) -> Self {
        let mut h = SipHasher13x128::new_with_keys(0, 0);
        h.write(salt.as_bytes());
        let k = h.finish128();
        Bucketer { k0: k.h1, k1: k.h2 }
    }

    /// The bucket, in `0..BUCKETS`, of `key`.
    pub fn bucket(&self, key: &str) -> u32 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(key.as_bytes());
        scale(h.finish())
    }
}

/// `(h * BUCKETS) >> 64`, the bucket of hash `h`.
#[cfg(not(target_arch = "wasm32"))]
#[inline]
fn scale(h: u64) -> u32 {
    ((u128::from(h) * u128::from(BUCKETS)) >> 64) as u32
}

/// `(h * BUCKETS) >> 64` in 64-bit arithmetic: WASM has no 128-bit
/// multiply (it is a call to `__multi3`). With `h = hi * 2^32 + lo`,
/// `(h * B) >> 64 = (hi * B + ((lo * B) >> 32)) >> 32` exactly (`B` < 2^32,
/// so nothing overflows and the dropped fraction cannot carry).
#[cfg(target_arch = "wasm32")]
#[inline]
fn scale(h: u64) -> u32 {
    let b = u64::from(BUCKETS);
    (((h >> 32) * b + (((h & 0xffff_ffff) * b) >> 32)) >> 32) as u32
}

/// Converts a percentage with at most three decimals to a bucket count.
///
/// The rule for every weight and percentage of a snapshot: a finite number
/// in `0..=100` that is a whole number of buckets (a multiple of 0.001%),
/// up to the rounding of decimal fractions to binary (1e-9 of a bucket,
/// ten thousand times the error of any decimal with three places). So a
/// weight is either exactly 0 or at least 0.001. Anything else, including
/// a tiny non-zero number such as `1e-320` that would round to 0 buckets,
/// returns `None`.
///
/// ```
/// use bunting_core::bucket::percent_to_buckets;
/// assert_eq!(percent_to_buckets(12.345), Some(12_345));
/// assert_eq!(percent_to_buckets(100.0), Some(100_000));
/// assert_eq!(percent_to_buckets(0.0), Some(0));
/// assert_eq!(percent_to_buckets(0.001), Some(1));
/// assert_eq!(percent_to_buckets(0.0001), None);
/// assert_eq!(percent_to_buckets(1e-320), None);
/// assert_eq!(percent_to_buckets(50.0000001), None);
/// assert_eq!(percent_to_buckets(101.0), None);
/// assert_eq!(percent_to_buckets(f64::NAN), None);
/// ```
pub fn percent_to_buckets(percent: f64) -> Option<u32> {
    if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
        return None;
    }
    let scaled = percent * f64::from(BUCKETS_PER_PERCENT);
    let rounded = scaled.round();
    if (scaled - rounded).abs() > 1e-9 || (rounded == 0.0 && percent != 0.0) {
        return None;
    }
    Some(rounded as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 64-bit form of `scale` that WASM builds use.
    fn scale_64(h: u64) -> u32 {
        let b = u64::from(BUCKETS);
        (((h >> 32) * b + (((h & 0xffff_ffff) * b) >> 32)) >> 32) as u32
    }

    #[test]
    fn scaling_in_64_bits_is_scaling_in_128() {
        let wide = |h: u64| ((u128::from(h) * u128::from(BUCKETS)) >> 64) as u32;
        let mut h = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..1_000_000u64 {
            h = h.rotate_left(17).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ i;
            assert_eq!(scale_64(h), wide(h), "{h:#x}");
        }
        for h in [
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            1 << 32,
            (1 << 32) - 1,
            u64::MAX << 32,
        ] {
            assert_eq!(scale_64(h), wide(h), "{h:#x}");
            assert_eq!(scale(h), wide(h), "{h:#x}");
        }
    }

    #[test]
    fn different_salts_give_independent_buckets() {
        let a = Bucketer::new("a");
        let b = Bucketer::new("b");
        let same = (0..10_000)
            .filter(|i| {
                let k = format!("user-{i}");
                a.bucket(&k) / 1000 == b.bucket(&k) / 1000
            })
            .count();
        // Independent percentiles agree about 1% of the time.
        assert!(same < 200, "{same} of 10000 agree");
    }
}
