//! Sending exposures and metric events to the origin (`INGEST_URL`):
//! batching policy, payloads (the [`IngestBatch`] of `bunting-wire`, which
//! the origin parses) and counters. Pure; the Workers glue sends the
//! payloads with `ctx.waitUntil`, so ingest never slows or fails an
//! evaluation: failures are counted (and shown by `/healthz`), never raised.

use bunting_wire::{EventRecord, ExposureRecord, IngestBatch};
use serde::Serialize;
use serde_json::Value;

use crate::exposure::ExposureBuffer;

/// Exposures kept in isolate memory at most; more are dropped and counted.
pub const BUFFER_CAPACITY: usize = 10_000;
/// Most exposures in one POST.
pub const MAX_BATCH: usize = 500;
/// A batch is sent as soon as this many exposures wait.
pub const FLUSH_AT: usize = 100;
/// Default seconds after which waiting exposures are sent anyway.
pub const DEFAULT_FLUSH_SECONDS: f64 = 2.0;

/// Counters shown by `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestStats {
    /// Exposures delivered (2xx).
    pub exposures_sent: u64,
    /// Exposures dropped because the buffer was full.
    pub exposures_dropped: u64,
    /// Metric events delivered.
    pub events_sent: u64,
    /// Metric events that could not be delivered.
    pub events_failed: u64,
    /// Exposures and events sent to the queue (durable from then on).
    pub queued: u64,
    /// Exposures and events the queue refused (then sent directly).
    pub queue_failed: u64,
    /// Queue messages the consumer delivered to the origin (2xx, acknowledged).
    pub messages_delivered: u64,
    /// Queue messages the consumer left for a retry (the origin failed).
    pub messages_retried: u64,
    /// Failed POSTs (network errors and non-2xx answers).
    pub failed_requests: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// Exposures waiting to be forwarded to the origin, and the delivery
/// counters.
#[derive(Debug)]
pub struct Forwarder {
    /// The waiting exposures.
    pub buffer: ExposureBuffer,
    /// Counters.
    pub stats: IngestStats,
    last_flush_ms: i64,
}

impl Default for Forwarder {
    fn default() -> Self {
        Forwarder {
            buffer: ExposureBuffer::new(BUFFER_CAPACITY),
            stats: IngestStats::default(),
            last_flush_ms: 0,
        }
    }
}

impl Forwarder {
    /// Buffers exposures (dropping and counting past the capacity).
    pub fn record(&mut self, exposures: impl IntoIterator<Item = ExposureRecord>) {
        for e in exposures {
            self.buffer.push(e);
        }
    }

    /// The next batch to send, if one is due: `FLUSH_AT` exposures wait, or
    /// some have waited `flush_ms`.
    pub fn due_batch(&mut self, now_ms: i64, flush_ms: i64) -> Option<Vec<ExposureRecord>> {
        if self.buffer.is_empty() {
            self.last_flush_ms = now_ms;
            return None;
        }
        if self.buffer.len() < FLUSH_AT && now_ms - self.last_flush_ms < flush_ms {
            return None;
        }
        self.last_flush_ms = now_ms;
        Some(self.buffer.take_batch(MAX_BATCH))
    }

    /// Records the outcome of sending an exposure batch; a failed batch is
    /// put back (as far as the buffer has room) for the next flush.
    pub fn exposures_done(&mut self, batch: Vec<ExposureRecord>, result: Result<(), String>) {
        match result {
            Ok(()) => self.stats.exposures_sent += batch.len() as u64,
            Err(e) => {
                self.stats.failed_requests += 1;
                self.stats.last_error = Some(e);
                self.buffer.requeue(batch);
            }
        }
        self.stats.exposures_dropped = self.buffer.dropped();
    }

    /// Records the outcome of sending `count` records to the queue.
    pub fn queued(&mut self, count: usize, result: &Result<(), String>) {
        match result {
            Ok(()) => self.stats.queued += count as u64,
            Err(e) => {
                self.stats.queue_failed += count as u64;
                self.stats.last_error = Some(e.clone());
            }
        }
    }

    /// Records the outcome of one consumer POST of `messages` queue messages.
    pub fn consumed(&mut self, messages: usize, result: &Result<(), String>) {
        match result {
            Ok(()) => self.stats.messages_delivered += messages as u64,
            Err(e) => {
                self.stats.failed_requests += 1;
                self.stats.messages_retried += messages as u64;
                self.stats.last_error = Some(e.clone());
            }
        }
    }

    /// Records the outcome of forwarding `count` metric events.
    pub fn events_done(&mut self, count: usize, result: Result<(), String>) {
        match result {
            Ok(()) => self.stats.events_sent += count as u64,
            Err(e) => {
                self.stats.failed_requests += 1;
                self.stats.events_failed += count as u64;
                self.stats.last_error = Some(e);
            }
        }
    }

    /// `/healthz` details.
    pub fn health(&self) -> Value {
        // What `serde_json::to_value(&self.stats)` gave, the buffer's
        // counts added, without serde's serializer into a `Value`.
        let s = &self.stats;
        crate::health::object(vec![
            ("exposuresSent", Value::from(s.exposures_sent)),
            // The buffer's count, not `s.exposures_dropped`.
            ("exposuresDropped", Value::from(self.buffer.dropped())),
            ("eventsSent", Value::from(s.events_sent)),
            ("eventsFailed", Value::from(s.events_failed)),
            ("queued", Value::from(s.queued)),
            ("queueFailed", Value::from(s.queue_failed)),
            ("messagesDelivered", Value::from(s.messages_delivered)),
            ("messagesRetried", Value::from(s.messages_retried)),
            ("failedRequests", Value::from(s.failed_requests)),
            ("lastError", Value::from(s.last_error.clone())),
            ("exposuresBuffered", Value::from(self.buffer.len())),
        ])
    }
}

/// The body of an exposure batch POST.
pub fn exposures_payload(batch: &[ExposureRecord]) -> String {
    to_json(&IngestBatch::exposures(batch))
}

/// The body of a metric event POST.
pub fn events_payload(environment: &str, events: &[EventRecord]) -> String {
    to_json(&IngestBatch::events(environment, events))
}

fn to_json(batch: &IngestBatch<'_>) -> String {
    serde_json::to_string(batch).expect("the batch types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exposure(i: usize) -> ExposureRecord {
        ExposureRecord {
            flag: "f".into(),
            variant: "a".into(),
            rule_id: None,
            bucketing_key_hash: format!("{i:032x}"),
            environment: "p".into(),
            snapshot_version: Some(1),
            time: 0,
            country: None,
            device_type: None,
            reason: None,
            id: None,
        }
    }

    #[test]
    fn flushes_by_size_or_age() {
        let mut i = Forwarder::default();
        assert!(i.due_batch(0, 2000).is_none());
        i.record((0..3).map(exposure));
        assert!(i.due_batch(1000, 2000).is_none());
        assert_eq!(i.due_batch(2000, 2000).unwrap().len(), 3);
        i.record((0..FLUSH_AT).map(exposure));
        assert_eq!(i.due_batch(2001, 2000).unwrap().len(), FLUSH_AT);
        i.record((0..1).map(exposure));
        assert_eq!(i.due_batch(2001, 0).unwrap().len(), 1);
    }

    #[test]
    fn failures_are_counted_and_requeued() {
        let mut i = Forwarder::default();
        i.record((0..2).map(exposure));
        let batch = i.due_batch(0, 0).unwrap();
        i.exposures_done(batch, Err("502".into()));
        assert_eq!(i.buffer.len(), 2);
        assert_eq!(i.stats.failed_requests, 1);
        let batch = i.due_batch(1, 0).unwrap();
        i.exposures_done(batch, Ok(()));
        assert_eq!(i.stats.exposures_sent, 2);
        i.events_done(3, Err("timeout".into()));
        i.queued(4, &Ok(()));
        i.queued(2, &Err("queue full".into()));
        i.consumed(5, &Ok(()));
        i.consumed(1, &Err("HTTP 503".into()));
        assert_eq!(
            (
                i.stats.queued,
                i.stats.queue_failed,
                i.stats.messages_delivered,
                i.stats.messages_retried
            ),
            (4, 2, 5, 1)
        );
        assert_eq!(i.stats.last_error.as_deref(), Some("HTTP 503"));
        assert_eq!(i.stats.events_failed, 3);
        assert_eq!(i.health()["exposuresBuffered"], 0);
        // What the derived serializer gave, with the buffer's counts.
        i.record((0..3).map(exposure));
        let mut derived = serde_json::to_value(&i.stats).unwrap();
        derived["exposuresBuffered"] = json!(i.buffer.len());
        derived["exposuresDropped"] = json!(i.buffer.dropped());
        assert_eq!(
            serde_json::to_string(&i.health()).unwrap(),
            serde_json::to_string(&derived).unwrap()
        );
        i.stats.last_error = None;
        let mut derived = serde_json::to_value(&i.stats).unwrap();
        derived["exposuresBuffered"] = json!(i.buffer.len());
        derived["exposuresDropped"] = json!(i.buffer.dropped());
        assert_eq!(i.health(), derived);
    }

    /// The golden batches of `wire/tests/data/` (see its README), which the
    /// origin's tests ingest: what the edge sends must stay exactly that.
    const GOLDEN_SECRET: &str = "golden-secret";

    fn golden(name: &str) -> Value {
        let path = format!("{}/../wire/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn golden_exposure_batch() {
        use crate::exposure::{ExposureMeta, KeyHasher, exposure_for};
        let engine = bunting_core::Engine::from_json(
            r#"{"schemaVersion": 1, "environment": "acme/web/production", "version": 7,
                "generatedAt": "2025-11-24T00:00:00Z", "flags": [
                {"key": "checkout", "type": "string", "variants": {"a": "old", "b": "new"},
                 "offVariant": "a",
                 "rules": [{"id": "eu-ramp", "condition": "geo.country == \"DE\"",
                            "serve": {"rollout": [{"variant": "a", "weight": 50},
                                                  {"variant": "b", "weight": 50}]}}],
                 "fallthrough": {"rollout": [{"variant": "a", "weight": 50},
                                             {"variant": "b", "weight": 50}]}}]}"#,
        )
        .unwrap();
        let hasher = KeyHasher::new(GOLDEN_SECRET);
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: engine.environment(),
            snapshot_version: engine.version(),
            time_ms: 1_764_000_000_000,
        };
        let batch: Vec<ExposureRecord> = [
            json!({"targetingKey": "user-1", "geo": {"country": "DE"}, "device": {"type": "mobile"}}),
            json!({"targetingKey": "user-2"}),
        ]
        .iter()
        .map(|ctx| exposure_for(&engine.evaluate("checkout", ctx, 0), ctx, &meta).unwrap())
        .collect();
        let sent: Value = serde_json::from_str(&exposures_payload(&batch)).unwrap();
        assert_eq!(sent, golden("exposures.json"));
    }

    #[test]
    fn golden_event_batch() {
        let body = br#"{"events": [
            {"name": "purchase", "targetingKey": "user-1", "value": 12.5,
             "timestamp": "2025-11-24T15:59:00Z", "id": "order-1"},
            {"name": "page.view", "targetingKey": "user-2", "id": "pv-1"}]}"#;
        let hasher = crate::exposure::KeyHasher::new(GOLDEN_SECRET);
        let events = crate::events::parse_events(body, &hasher, 1_764_000_000_123).unwrap();
        let sent: Value =
            serde_json::from_str(&events_payload("acme/web/production", &events)).unwrap();
        assert_eq!(sent, golden("events.json"));
    }
}
