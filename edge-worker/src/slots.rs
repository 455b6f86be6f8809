//! Values parked under small numeric handles until a JavaScript promise
//! settles: the evaluations of [`crate`]'s fast lane (`entry.rs`) waiting
//! for their bodies or the rate limiter.
//!
//! A promise tied to a request may never settle: when the client goes
//! away, the runtime cancels the request's work and its continuations
//! never run. So parked values expire: once more than [`SWEEP_ABOVE`] are
//! parked, each new one sweeps out those parked longer than the given
//! age. A handle carries its slot's generation, so a continuation that
//! does run after its value was swept finds nothing, never the value a
//! later request parked in the same slot.
//!
//! ```
//! use bunting_edge_worker::slots::Slots;
//! let mut s = Slots::new();
//! let a = s.put("a", 0, 60_000);
//! assert_eq!(s.take(a), Some("a"));
//! assert_eq!(s.take(a), None, "taken once");
//! let b = s.put("b", 0, 60_000);
//! assert_ne!(a, b, "the slot is reused under a new handle");
//! assert_eq!(s.take(a), None);
//! assert_eq!(s.take(b), Some("b"));
//! ```

/// Parked values beyond which [`Slots::put`] sweeps out expired ones: an
/// isolate serves a handful of requests at once, so more are parked only
/// under heavy load or when promises were abandoned.
pub const SWEEP_ABOVE: usize = 64;

/// Slots per generation in a handle (a handle is `generation × SPAN + index`).
const SPAN: u64 = 1 << 24;

/// Values by handle; a slot is reused once its value is taken or swept.
#[derive(Debug)]
pub struct Slots<T> {
    /// Per slot: its generation and, while parked, the value and when it was parked.
    slots: Vec<(u32, Option<(i64, T)>)>,
    free: Vec<usize>,
    live: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slots<T> {
    /// No values.
    pub const fn new() -> Self {
        Slots {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// How many values are parked.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Parks `value` at `now_ms`; its handle. With more than
    /// [`SWEEP_ABOVE`] parked, those parked more than `max_age_ms` ago are
    /// dropped first.
    pub fn put(&mut self, value: T, now_ms: i64, max_age_ms: i64) -> f64 {
        if self.live > SWEEP_ABOVE {
            self.sweep(now_ms, max_age_ms);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None if (self.slots.len() as u64) < SPAN => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
            // 16 million parked values: the oldest slot's holder loses it.
            None => {
                self.sweep(i64::MAX, 0);
                self.free.pop().unwrap_or(0)
            }
        };
        let slot = &mut self.slots[index];
        slot.0 = slot.0.wrapping_add(1);
        if slot.1.replace((now_ms, value)).is_none() {
            self.live += 1;
        }
        (u64::from(slot.0) % (1 << 29) * SPAN + index as u64) as f64
    }

    /// Takes out the value of `handle`, if it is still parked.
    pub fn take(&mut self, handle: f64) -> Option<T> {
        if !(handle.is_finite() && handle >= 0.0) {
            return None;
        }
        let h = handle as u64;
        let (generation, index) = (h / SPAN, (h % SPAN) as usize);
        let slot = self.slots.get_mut(index)?;
        if u64::from(slot.0) % (1 << 29) != generation {
            return None;
        }
        let (_, value) = slot.1.take()?;
        self.free.push(index);
        self.live -= 1;
        Some(value)
    }

    /// Drops the values parked more than `max_age_ms` before `now_ms`.
    fn sweep(&mut self, now_ms: i64, max_age_ms: i64) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot
                .1
                .as_ref()
                .is_some_and(|(at, _)| now_ms.saturating_sub(*at) > max_age_ms)
            {
                slot.1 = None;
                self.free.push(index);
                self.live -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_once_under_their_own_handle() {
        let mut s = Slots::new();
        let handles: Vec<f64> = (0..10).map(|i| s.put(i, 0, 1_000)).collect();
        assert_eq!(s.len(), 10);
        for (i, h) in handles.iter().enumerate().rev() {
            assert_eq!(s.take(*h), Some(i));
        }
        assert!(s.is_empty());
        assert!(handles.iter().all(|h| s.take(*h).is_none()));
        assert_eq!(s.take(-1.0), None);
        assert_eq!(s.take(f64::NAN), None);
        assert_eq!(s.take(1e18), None);
    }

    #[test]
    fn abandoned_values_expire_once_many_are_parked() {
        let mut s = Slots::new();
        // Abandoned at t = 0: never taken.
        let old: Vec<f64> = (0..=SWEEP_ABOVE).map(|i| s.put(i, 0, 60_000)).collect();
        assert_eq!(s.len(), SWEEP_ABOVE + 1);
        // Within the age nothing is swept.
        let young = s.put(1_000, 59_000, 60_000);
        assert_eq!(s.len(), SWEEP_ABOVE + 2);
        // Past it, the next put sweeps the old ones (not the young one).
        let new = s.put(2_000, 60_001, 60_000);
        assert_eq!(s.len(), 2);
        assert!(old.iter().all(|h| s.take(*h).is_none()), "swept");
        assert_eq!(s.take(young), Some(1_000));
        assert_eq!(s.take(new), Some(2_000));
    }

    #[test]
    fn a_late_continuation_never_gets_a_later_value() {
        let mut s = Slots::new();
        let stale: Vec<f64> = (0..=SWEEP_ABOVE).map(|i| s.put(i, 0, 10)).collect();
        // Sweeps every stale value; the new ones reuse their slots.
        let fresh: Vec<f64> = (0..5).map(|i| s.put(100 + i, 1_000, 10)).collect();
        for h in &stale {
            assert_eq!(s.take(*h), None);
        }
        for (i, h) in fresh.iter().enumerate() {
            assert_eq!(s.take(*h), Some(100 + i));
        }
    }
}
