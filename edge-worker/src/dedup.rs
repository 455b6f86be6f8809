//! Deduplication of exposures within a window, per isolate.
//!
//! A browser that polls, or reports the same flag on every render, would
//! otherwise send one exposure per poll or render: an exposure counts once
//! per user (targeting-key hash), environment, flag and variant within
//! [`ExposureDedup::window_ms`]. The memory is bounded: past
//! [`ExposureDedup::capacity`] entries the oldest is forgotten (a repeat of
//! it may then be recorded again, which the origin's per-user rollup absorbs:
//! it keeps each user's first exposure).
//!
//! Isolate-local on purpose: no storage round trip on the hot path. Two
//! isolates (or two colos) may each record the same exposure once per
//! window; the analysis counts users, not exposures, so that is harmless.
//!
//! ```
//! use bunting_edge_worker::dedup::ExposureDedup;
//! let mut d = ExposureDedup::new(60_000, 1000);
//! assert!(d.admit("prod", "checkout", "b", "5c0f", 0));
//! assert!(!d.admit("prod", "checkout", "b", "5c0f", 59_999)); // a repeat
//! assert!(d.admit("prod", "checkout", "a", "5c0f", 1));       // another variant
//! assert!(d.admit("prod", "checkout", "b", "5c0f", 60_000));  // the window passed
//! ```

use std::collections::{HashMap, VecDeque};

/// Entries remembered at most (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 20_000;
/// Default window, in seconds (`EXPOSURE_DEDUP_SECONDS`).
pub const DEFAULT_WINDOW_SECONDS: f64 = 600.0;

/// The deduplicator's map of keys to times, which `/events`' ids and the
/// float flags use too (one copy of the map's code for the three): with
/// foldhash, core's hasher, rather than std's SipHash, whose code then
/// leaves the worker's module. Nothing iterates it, so the hasher decides
/// no order; std's keys are fixed on wasm32-unknown-unknown (no
/// randomness), so neither hasher is keyed by a secret there.
pub(crate) type TimeMap = HashMap<String, i64, foldhash::fast::RandomState>;

/// Recently admitted (environment, flag, variant, user) tuples with the time
/// they were admitted.
#[derive(Debug, Clone)]
pub struct ExposureDedup {
    window_ms: i64,
    capacity: usize,
    /// Key → admission time of its live entry.
    seen: TimeMap,
    /// Keys in admission order, with their admission time (an entry whose
    /// time no longer matches `seen` was re-admitted later and is stale).
    order: VecDeque<(String, i64)>,
    suppressed: u64,
}

impl Default for ExposureDedup {
    fn default() -> Self {
        ExposureDedup::new((DEFAULT_WINDOW_SECONDS * 1000.0) as i64, DEFAULT_CAPACITY)
    }
}

impl ExposureDedup {
    /// An empty deduplicator; `window_ms` ≤ 0 admits everything.
    pub fn new(window_ms: i64, capacity: usize) -> ExposureDedup {
        ExposureDedup {
            window_ms,
            capacity,
            seen: TimeMap::default(),
            order: VecDeque::new(),
            suppressed: 0,
        }
    }

    /// The window, in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.window_ms
    }

    /// The most entries remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the window (settings are read per request); entries keep their
    /// admission time.
    pub fn set_window_ms(&mut self, window_ms: i64) {
        self.window_ms = window_ms;
    }

    /// Whether an exposure of `variant` of `flag` to `user` (a key hash) in
    /// `environment` at `now_ms` is new: `true` records it as seen, `false`
    /// means it repeats one admitted less than the window ago.
    ///
    /// `now_ms` is the isolate's clock; a clock that goes backwards never
    /// extends an entry's life past `window_ms` from its admission.
    pub fn admit(
        &mut self,
        environment: &str,
        flag: &str,
        variant: &str,
        user: &str,
        now_ms: i64,
    ) -> bool {
        if self.window_ms <= 0 || self.capacity == 0 {
            return true;
        }
        self.expire(now_ms);
        let key = format!("{environment}\0{flag}\0{variant}\0{user}");
        if let Some(&at) = self.seen.get(&key)
            && now_ms >= at
            && now_ms - at < self.window_ms
        {
            self.suppressed = self.suppressed.saturating_add(1);
            return false;
        }
        // Stale `order` entries (re-admissions) count too, so both stay bounded.
        while self.seen.len() >= self.capacity || self.order.len() >= 2 * self.capacity {
            self.evict_oldest();
        }
        self.seen.insert(key.clone(), now_ms);
        self.order.push_back((key, now_ms));
        true
    }

    /// Exposures suppressed as repeats since creation.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Entries remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets entries admitted a window or more before `now_ms`.
    fn expire(&mut self, now_ms: i64) {
        while let Some((_, at)) = self.order.front() {
            if now_ms - *at < self.window_ms {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Removes the oldest entry of `order`, and from `seen` when it is the
    /// live one.
    fn evict_oldest(&mut self) {
        let Some((key, at)) = self.order.pop_front() else {
            return;
        };
        if self.seen.get(&key) == Some(&at) {
            self.seen.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_window_are_suppressed_and_counted() {
        let mut d = ExposureDedup::new(1000, 10);
        assert!(d.admit("e", "f", "a", "u1", 0));
        assert!(!d.admit("e", "f", "a", "u1", 500));
        assert!(!d.admit("e", "f", "a", "u1", 999));
        assert!(d.admit("e", "f", "a", "u2", 999));
        assert!(d.admit("e", "g", "a", "u1", 999));
        assert!(d.admit("other", "f", "a", "u1", 999));
        assert_eq!(d.suppressed(), 2);
        // After the window the same tuple counts again, then repeats again.
        assert!(d.admit("e", "f", "a", "u1", 1000));
        assert!(!d.admit("e", "f", "a", "u1", 1999));
    }

    #[test]
    fn fields_do_not_run_together() {
        let mut d = ExposureDedup::new(1000, 10);
        assert!(d.admit("e", "ab", "c", "u", 0));
        assert!(d.admit("e", "a", "bc", "u", 0));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = ExposureDedup::new(1_000_000, 3);
        for u in 0..10 {
            assert!(d.admit("e", "f", "a", &u.to_string(), u));
            assert!(d.len() <= 3);
        }
        assert!(d.order.len() <= 3);
        // The oldest were forgotten, the newest are remembered.
        assert!(d.admit("e", "f", "a", "0", 10));
        assert!(!d.admit("e", "f", "a", "9", 10));
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut d = ExposureDedup::new(100, 1000);
        for u in 0..50 {
            d.admit("e", "f", "a", &u.to_string(), 0);
        }
        assert_eq!(d.len(), 50);
        d.admit("e", "f", "a", "x", 100);
        assert_eq!(d.len(), 1);
        assert_eq!(d.order.len(), 1);
    }

    #[test]
    fn a_clock_going_backwards_does_not_suppress_forever() {
        let mut d = ExposureDedup::new(100, 10);
        assert!(d.admit("e", "f", "a", "u", 1000));
        // Earlier than the admission: not inside [at, at + window).
        assert!(d.admit("e", "f", "a", "u", 10));
        assert!(!d.admit("e", "f", "a", "u", 50));
    }

    #[test]
    fn a_zero_window_or_capacity_admits_everything() {
        for mut d in [ExposureDedup::new(0, 10), ExposureDedup::new(100, 0)] {
            assert!(d.admit("e", "f", "a", "u", 0));
            assert!(d.admit("e", "f", "a", "u", 0));
            assert!(d.is_empty());
        }
    }
}
