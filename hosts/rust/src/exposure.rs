//! Which evaluations are exposures, the exposure record, and the
//! deduplication window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bunting_core::keyhash::KeyHasher;
use bunting_core::{Evaluation, Reason};
use bunting_wire::ExposureRecord;

use crate::context::SdkContext;

/// What an exposure records of its context: the hashed targeting key and
/// the country and device type, if the context has them.
#[derive(Debug)]
pub(crate) struct Subject {
    key_hash: String,
    country: Option<String>,
    device_type: Option<String>,
}

impl Subject {
    /// The subject of `context`; `None` without a string or number
    /// `targetingKey` (no exposure then).
    pub(crate) fn of<C: SdkContext + ?Sized>(context: &C, hasher: &KeyHasher) -> Option<Subject> {
        let key_hash = hasher.hash(&context.targeting_key()?);
        let json = context.as_json();
        let text = |a: &str, b: &str| json.get(a)?.get(b)?.as_str().map(String::from);
        Some(Subject {
            key_hash,
            country: text("geo", "country"),
            device_type: text("device", "type"),
        })
    }
}

/// Whether an evaluation is an exposure: reason `SPLIT` and a variant
/// served (and, for [`exposure_of`], a [`Subject`]).
pub(crate) fn is_exposure(eval: &Evaluation<'_>) -> bool {
    eval.reason == Reason::Split && eval.variant.is_some()
}

/// The exposure an evaluation yields for `subject`: `None` unless
/// [`is_exposure`].
pub(crate) fn exposure_of(
    eval: &Evaluation<'_>,
    subject: &Subject,
    environment: &str,
    snapshot_version: u64,
    now_ms: i64,
) -> Option<ExposureRecord> {
    if !is_exposure(eval) {
        return None;
    }
    let variant = eval.variant.as_deref()?;
    Some(ExposureRecord {
        flag: eval.key.to_string(),
        variant: variant.to_owned(),
        rule_id: eval.rule_id.as_deref().map(String::from),
        bucketing_key_hash: subject.key_hash.clone(),
        environment: environment.to_owned(),
        snapshot_version: Some(snapshot_version),
        time: now_ms,
        country: subject.country.clone(),
        device_type: subject.device_type.clone(),
        reason: None,
        id: None,
    })
}

/// Remembers `(user, flag, variant)` for a window, in a bounded map: when
/// full, entries past the window are swept, and if none are, the map is
/// cleared (a burst of new users may then repeat an exposure, which the
/// origin's analysis tolerates; it never grows without bound).
#[derive(Debug)]
pub(crate) struct Dedup {
    window: Duration,
    capacity: usize,
    seen: HashMap<(String, String, String), Instant>,
}

impl Dedup {
    pub(crate) fn new(window: Duration, capacity: usize) -> Dedup {
        Dedup {
            window,
            capacity: capacity.max(1),
            seen: HashMap::new(),
        }
    }

    /// True if this exposure is new within the window (and records it).
    pub(crate) fn first(&mut self, e: &ExposureRecord, now: Instant) -> bool {
        if self.window.is_zero() {
            return true;
        }
        let key = (
            e.bucketing_key_hash.clone(),
            e.flag.clone(),
            e.variant.clone(),
        );
        if let Some(at) = self.seen.get(&key)
            && now.duration_since(*at) < self.window
        {
            return false;
        }
        if self.seen.len() >= self.capacity && !self.seen.contains_key(&key) {
            let window = self.window;
            self.seen.retain(|_, at| now.duration_since(*at) < window);
            if self.seen.len() >= self.capacity {
                self.seen.clear();
            }
        }
        self.seen.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str) -> ExposureRecord {
        ExposureRecord {
            flag: "f".into(),
            variant: "a".into(),
            rule_id: None,
            bucketing_key_hash: user.into(),
            environment: "e".into(),
            snapshot_version: Some(1),
            time: 0,
            country: None,
            device_type: None,
            reason: None,
            id: None,
        }
    }

    #[test]
    fn one_exposure_per_user_flag_and_variant_within_the_window() {
        let mut d = Dedup::new(Duration::from_secs(10), 2);
        let t = Instant::now();
        assert!(d.first(&record("u1"), t));
        assert!(!d.first(&record("u1"), t + Duration::from_secs(9)));
        assert!(d.first(&record("u1"), t + Duration::from_secs(10)));
        assert!(d.first(&record("u2"), t));
        // full: u3 clears the map, so u1 counts again
        assert!(d.first(&record("u3"), t + Duration::from_secs(11)));
        assert!(d.first(&record("u1"), t + Duration::from_secs(11)) || d.seen.len() <= 2);
        assert!(d.seen.len() <= 2);
    }
}
