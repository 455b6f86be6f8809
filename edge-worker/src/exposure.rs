//! Experiment exposures: which visitor was served which variant of a
//! pseudorandom split, recorded at the edge and sent to the origin in batches.
//!
//! An exposure ([`ExposureRecord`], the form the origin parses) is produced
//! only for evaluations whose reason is `SPLIT`
//! (a weighted rollout or a ramp): that is when the served variant is an
//! experimental assignment worth analysing. Raw targeting keys never leave the
//! edge: exposures carry a keyed hash of the key ([`KeyHasher`]), and metric
//! events ([`crate::events`]) are hashed the same way, so the origin can join
//! the two without learning user ids.
//!
//! Exposures wait in a bounded [`ExposureBuffer`] that never blocks and never
//! grows: past its capacity new exposures are dropped and counted.
//!
//! ```
//! use bunting_core::Engine;
//! use bunting_edge_worker::exposure::{exposure_for, ExposureBuffer, ExposureMeta, KeyHasher};
//! use serde_json::json;
//! let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "prod", "version": 7, "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "checkout", "type": "string", "variants": {"a": "old", "b": "new"}, "offVariant": "a",
//!     "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}]}"#).unwrap();
//! let ctx = json!({"targetingKey": "user-1", "geo": {"country": "DE"}, "device": {"type": "mobile"}});
//! let eval = engine.evaluate("checkout", &ctx, 0);
//!
//! let hasher = KeyHasher::new("exposure-secret");
//! let meta = ExposureMeta { hasher: &hasher, environment: engine.environment(),
//!                           snapshot_version: engine.version(), time_ms: 1_764_000_000_000 };
//! let exposure = exposure_for(&eval, &ctx, &meta).unwrap();
//! assert_eq!(exposure.flag, "checkout");
//! assert_eq!(exposure.bucketing_key_hash, hasher.hash("user-1"));
//! assert_eq!(exposure.country.as_deref(), Some("DE"));
//!
//! let mut buffer = ExposureBuffer::new(1000);
//! buffer.push(exposure);
//! assert_eq!(buffer.take_batch(100).len(), 1);
//! ```

use std::collections::VecDeque;

use bunting_core::{Evaluation, Reason};
use bunting_wire::ExposureRecord;
use serde_json::Value;

pub use bunting_core::keyhash::{KeyHasher, hash_key};

/// What [`exposure_for`] needs besides the evaluation and its context.
#[derive(Debug, Clone, Copy)]
pub struct ExposureMeta<'a> {
    /// Hashes the targeting key.
    pub hasher: &'a KeyHasher,
    /// The snapshot's environment ([`bunting_core::Engine::environment`]).
    pub environment: &'a str,
    /// The snapshot's version ([`bunting_core::Engine::version`]).
    pub snapshot_version: u64,
    /// The evaluation time, in Unix milliseconds.
    pub time_ms: i64,
}

/// The exposure to record for `eval`, evaluated against `context`, or `None`.
///
/// `Some` only when the reason is `SPLIT`, a variant was served, and the
/// context has a `targetingKey` (a string, or a number written as in the
/// engine). A split bucketed by another attribute without a `targetingKey`
/// gives `None`: its exposures could not be joined with metric events, which
/// are keyed by `targetingKey`. `country` and `deviceType` are read from the
/// context's `geo.country` and `device.type` (set by
/// [`crate::context::with_edge_attributes`]).
///
/// ```
/// use bunting_core::{ErrorCode, Evaluation};
/// use bunting_edge_worker::exposure::{exposure_for, ExposureMeta, KeyHasher};
/// use serde_json::json;
/// let hasher = KeyHasher::new("k");
/// let meta = ExposureMeta { hasher: &hasher, environment: "prod", snapshot_version: 1, time_ms: 0 };
/// let err = Evaluation::error("f", ErrorCode::FlagNotFound, "no such flag");
/// assert!(exposure_for(&err, &json!({"targetingKey": "u"}), &meta).is_none());
/// ```
pub fn exposure_for(
    eval: &Evaluation<'_>,
    context: &Value,
    meta: &ExposureMeta<'_>,
) -> Option<ExposureRecord> {
    if eval.reason != Reason::Split {
        return None;
    }
    let variant = eval.variant.as_deref()?;
    let key = meta.hasher.hash_value(context.get("targetingKey")?)?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    Some(ExposureRecord {
        flag: eval.key.to_string(),
        variant: variant.to_string(),
        rule_id: eval.rule_id.as_deref().map(str::to_string),
        bucketing_key_hash: key,
        environment: meta.environment.to_string(),
        snapshot_version: Some(meta.snapshot_version),
        time: meta.time_ms,
        country: text(context.get("geo").and_then(|g| g.get("country"))),
        device_type: text(context.get("device").and_then(|d| d.get("type"))),
        reason: None,
        id: None,
    })
}

/// A bounded FIFO of exposures waiting to be sent.
///
/// Never blocks and never grows past its capacity: when full, [`push`] drops
/// the *new* exposure (the older ones are already part of a consistent
/// sample) and counts it in [`dropped`].
///
/// [`push`]: ExposureBuffer::push
/// [`dropped`]: ExposureBuffer::dropped
///
/// ```
/// use bunting_edge_worker::exposure::ExposureBuffer;
/// use bunting_wire::ExposureRecord;
/// let e = ExposureRecord { flag: "f".into(), variant: "a".into(), rule_id: None,
///     bucketing_key_hash: "00".into(), environment: "prod".into(), snapshot_version: Some(1),
///     time: 0, country: None, device_type: None, reason: None, id: None };
/// let mut b = ExposureBuffer::new(2);
/// assert!(b.push(e.clone()));
/// assert!(b.push(e.clone()));
/// assert!(!b.push(e.clone())); // full: dropped
/// assert_eq!((b.len(), b.dropped()), (2, 1));
/// assert_eq!(b.take_batch(10).len(), 2);
/// assert!(b.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct ExposureBuffer {
    items: VecDeque<ExposureRecord>,
    capacity: usize,
    dropped: u64,
}

impl ExposureBuffer {
    /// An empty buffer holding at most `capacity` exposures.
    pub fn new(capacity: usize) -> ExposureBuffer {
        ExposureBuffer {
            items: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends `exposure`; returns `false` (and counts a drop) when full.
    pub fn push(&mut self, exposure: ExposureRecord) -> bool {
        if self.items.len() >= self.capacity {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.items.push_back(exposure);
        true
    }

    /// Removes and returns up to `max` of the oldest exposures, oldest first.
    pub fn take_batch(&mut self, max: usize) -> Vec<ExposureRecord> {
        let n = max.min(self.items.len());
        self.items.drain(..n).collect()
    }

    /// Puts a batch that could not be sent back at the front, oldest first,
    /// as far as capacity allows; the rest count as dropped. Returns how many
    /// were kept.
    pub fn requeue(&mut self, batch: Vec<ExposureRecord>) -> usize {
        let room = self.capacity.saturating_sub(self.items.len());
        let keep = room.min(batch.len());
        self.dropped = self.dropped.saturating_add((batch.len() - keep) as u64);
        for e in batch.into_iter().take(keep).rev() {
            self.items.push_front(e);
        }
        keep
    }

    /// Exposures dropped because the buffer was full, since creation or the
    /// last [`take_dropped`](ExposureBuffer::take_dropped).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Returns the drop count and resets it (to report it once).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Number of exposures waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no exposure is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most exposures the buffer holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_core::Engine;
    use serde_json::json;
    use std::borrow::Cow;

    fn sample(i: u64) -> ExposureRecord {
        ExposureRecord {
            flag: format!("f{i}"),
            variant: "a".into(),
            rule_id: None,
            bucketing_key_hash: "00".into(),
            environment: "prod".into(),
            snapshot_version: Some(i),
            time: 0,
            country: None,
            device_type: None,
            reason: None,
            id: None,
        }
    }

    fn split_eval() -> Evaluation<'static> {
        Evaluation {
            key: Cow::Borrowed("checkout"),
            value: Some(Cow::Owned(json!("new"))),
            variant: Some(Cow::Borrowed("b")),
            reason: Reason::Split,
            error_code: None,
            error_message: None,
            rule_id: Some(Cow::Borrowed("eu-ramp")),
            prerequisite_failed: None,
            metadata: None,
        }
    }

    #[test]
    fn exposure_from_a_split() {
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: "prod",
            snapshot_version: 7,
            time_ms: 1_764_000_000_000,
        };
        let ctx = json!({"targetingKey": "user-1", "geo": {"country": "DE"},
                         "device": {"type": "mobile"}});
        let e = exposure_for(&split_eval(), &ctx, &meta).unwrap();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "flag": "checkout", "variant": "b", "ruleId": "eu-ramp",
                "bucketingKeyHash": hasher.hash("user-1"), "environment": "prod",
                "snapshotVersion": 7, "time": 1_764_000_000_000_i64,
                "country": "DE", "deviceType": "mobile"
            })
        );
        let back: ExposureRecord =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        // The raw key never appears.
        assert!(!serde_json::to_string(&e).unwrap().contains("user-1"));
    }

    #[test]
    fn optional_fields_are_omitted() {
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: "prod",
            snapshot_version: 1,
            time_ms: 5,
        };
        let mut eval = split_eval();
        eval.rule_id = None;
        let ctx = json!({"targetingKey": 42, "geo": {"country": 1}, "device": "x"});
        let e = exposure_for(&eval, &ctx, &meta).unwrap();
        assert_eq!(e.bucketing_key_hash, hasher.hash("42"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"flag": "checkout", "variant": "b", "bucketingKeyHash": hasher.hash("42"),
                   "environment": "prod", "snapshotVersion": 1, "time": 5})
        );
    }

    #[test]
    fn only_splits_with_a_variant_and_a_key_give_exposures() {
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: "prod",
            snapshot_version: 1,
            time_ms: 0,
        };
        let ctx = json!({"targetingKey": "u"});
        for reason in [
            Reason::Static,
            Reason::TargetingMatch,
            Reason::Disabled,
            Reason::Default,
            Reason::Error,
        ] {
            let mut e = split_eval();
            e.reason = reason;
            assert!(exposure_for(&e, &ctx, &meta).is_none(), "{reason:?}");
        }
        let mut e = split_eval();
        e.variant = None;
        assert!(exposure_for(&e, &ctx, &meta).is_none());
        let e = split_eval();
        for ctx in [
            json!({}),
            json!({"targetingKey": null}),
            json!({"targetingKey": [1]}),
            json!("u"),
        ] {
            assert!(exposure_for(&e, &ctx, &meta).is_none(), "{ctx}");
        }
    }

    #[test]
    fn exposures_from_the_real_engine() {
        let engine = Engine::from_json(
            r#"{"schemaVersion": 1, "environment": "prod", "version": 3,
                "generatedAt": "2026-11-25T00:00:00Z", "flags": [
                {"key": "exp", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"rollout": [{"variant": "on", "weight": 50},
                                             {"variant": "off", "weight": 50}]}},
                {"key": "plain", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"variant": "on"}}]}"#,
        )
        .unwrap();
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: engine.environment(),
            snapshot_version: engine.version(),
            time_ms: 0,
        };
        let mut variants = std::collections::HashSet::new();
        for i in 0..50 {
            let ctx = json!({"targetingKey": format!("user-{i}")});
            let e = exposure_for(&engine.evaluate("exp", &ctx, 0), &ctx, &meta).unwrap();
            assert_eq!(
                (e.environment.as_str(), e.snapshot_version),
                ("prod", Some(3))
            );
            variants.insert(e.variant);
            assert!(exposure_for(&engine.evaluate("plain", &ctx, 0), &ctx, &meta).is_none());
        }
        assert_eq!(variants.len(), 2);
    }

    #[test]
    fn buffer_is_bounded_and_fifo() {
        let mut b = ExposureBuffer::new(3);
        assert_eq!(b.capacity(), 3);
        for i in 0..5 {
            b.push(sample(i));
        }
        assert_eq!((b.len(), b.dropped()), (3, 2));
        let first = b.take_batch(2);
        assert_eq!(
            first
                .iter()
                .map(|e| e.snapshot_version.unwrap())
                .collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(b.len(), 1);
        assert!(b.push(sample(9)));
        let rest = b.take_batch(100);
        assert_eq!(
            rest.iter()
                .map(|e| e.snapshot_version.unwrap())
                .collect::<Vec<_>>(),
            [2, 9]
        );
        assert!(b.take_batch(10).is_empty());
        assert_eq!(b.take_dropped(), 2);
        assert_eq!(b.dropped(), 0);
    }

    #[test]
    fn zero_capacity_drops_everything() {
        let mut b = ExposureBuffer::new(0);
        assert!(!b.push(sample(0)));
        assert_eq!((b.len(), b.dropped()), (0, 1));
        assert!(b.take_batch(0).is_empty());
    }

    #[test]
    fn requeue_puts_a_failed_batch_back_in_front() {
        let mut b = ExposureBuffer::new(4);
        for i in 0..4 {
            b.push(sample(i));
        }
        let batch = b.take_batch(3); // 0, 1, 2 out; 3 left
        b.push(sample(4)); // 3, 4
        assert_eq!(b.requeue(batch), 2); // room for two: 0, 1
        assert_eq!(b.dropped(), 1);
        let all = b.take_batch(10);
        assert_eq!(
            all.iter()
                .map(|e| e.snapshot_version.unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 3, 4]
        );
    }
}
