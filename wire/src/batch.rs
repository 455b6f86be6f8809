//! The batches the edge worker POSTs to the origin's `POST /api/v1/events`
//! (one per request), as one set of serde types: the edge serializes them,
//! the origin parses them.
//!
//! ```json
//! {"kind": "exposures", "exposures": [
//!   {"flag": "checkout", "variant": "b", "ruleId": "eu-ramp", "bucketingKeyHash": "5c0f…",
//!    "environment": "acme/web/production", "snapshotVersion": 7, "time": 1764000000000,
//!    "country": "DE", "deviceType": "mobile"}]}
//!
//! {"kind": "events", "environment": "acme/web/production", "events": [
//!   {"name": "purchase", "targetingKeyHash": "5c0f…", "value": 12.5,
//!    "timestamp": 1764000000000, "receivedAt": 1764000000123, "id": "o-1"}]}
//! ```
//!
//! Fields are camelCase; optional fields are left out when absent. The types
//! describe what the origin accepts: the edge sets every field it knows and
//! leaves out the ones only other producers send (an exposure's `id` and
//! `reason`, an event's `properties`). The limits on each field (lengths,
//! time window) are the origin's and are checked there; event names follow
//! [`crate::event_name`]. `wire/tests/data/` holds a golden batch of each
//! kind, as the edge sends it.
//!
//! ```
//! use bunting_wire::{ExposureRecord, IngestBatch};
//! let exposure = ExposureRecord {
//!     flag: "checkout".into(), variant: "b".into(), rule_id: None,
//!     bucketing_key_hash: "5c0f".into(), environment: "prod".into(),
//!     snapshot_version: Some(7), time: 1_764_000_000_000,
//!     country: None, device_type: None, reason: None, id: None,
//! };
//! let sent = serde_json::to_string(&IngestBatch::exposures(vec![exposure.clone()])).unwrap();
//! let received: IngestBatch = serde_json::from_str(&sent).unwrap();
//! assert_eq!(received.exposures.as_deref(), Some(&[exposure][..]));
//! ```

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `kind` of an exposure batch.
pub const EXPOSURES: &str = "exposures";
/// `kind` of a metric-event batch.
pub const EVENTS: &str = "events";

/// One visitor's assignment to a variant of a split: the edge records one
/// for every evaluation whose reason is `SPLIT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposureRecord {
    /// Flag key.
    pub flag: String,
    /// Served variant.
    pub variant: String,
    /// The targeting rule whose rollout assigned the variant; absent for the
    /// fallthrough rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The user: the edge's keyed hash of the context's `targetingKey`, the
    /// same hash as [`EventRecord::targeting_key_hash`], so the two join.
    pub bucketing_key_hash: String,
    /// The edge's environment name (`<org>/<project>/<env>` when published
    /// by the origin service).
    pub environment: String,
    /// Version of the snapshot that served it (the edge always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_version: Option<u64>,
    /// When the variant was served, in Unix milliseconds.
    pub time: i64,
    /// `geo.country` of the context, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `device.type` of the context, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// The evaluation reason (the edge sends none: its exposures are all
    /// `SPLIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// An idempotency id (the edge sends none; the origin derives one from
    /// the fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A metric event an app reported (a purchase, a sign-up), with its
/// targeting key replaced by the edge's keyed hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Event name ([`crate::check_event_name`]), e.g. `purchase`.
    pub name: String,
    /// The user: the keyed hash of the event's `targetingKey`, as
    /// [`ExposureRecord::bucketing_key_hash`].
    pub targeting_key_hash: String,
    /// The event's value (revenue, duration, …), if any; finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// When it happened, in Unix milliseconds.
    pub timestamp: i64,
    /// When the edge received it, in Unix milliseconds (the edge always
    /// sends it; the origin uses its own receive time otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<i64>,
    /// The client's idempotency id (the edge always sends it; the origin
    /// drops repeats, and derives an id when there is none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free-form properties (the edge sends none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Map<String, Value>>,
}

/// The body of one `POST /api/v1/events`: `{"kind": "exposures",
/// "exposures": […]}` or `{"kind": "events", "environment": "…", "events":
/// […]}`.
///
/// A plain struct rather than a tagged enum, so that the origin parses it in
/// one pass and reports a wrong `kind` or a missing list itself. Lists
/// borrow when sending ([`IngestBatch::exposures`] of a slice) and are owned
/// when parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestBatch<'a> {
    /// [`EXPOSURES`] or [`EVENTS`].
    pub kind: Cow<'a, str>,
    /// The exposures of an exposure batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposures: Option<Cow<'a, [ExposureRecord]>>,
    /// The environment of every event of an event batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Cow<'a, str>>,
    /// The events of an event batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Cow<'a, [EventRecord]>>,
}

impl<'a> IngestBatch<'a> {
    /// An exposure batch.
    pub fn exposures(list: impl Into<Cow<'a, [ExposureRecord]>>) -> IngestBatch<'a> {
        IngestBatch {
            kind: Cow::Borrowed(EXPOSURES),
            exposures: Some(list.into()),
            environment: None,
            events: None,
        }
    }

    /// A batch of metric events of `environment`.
    ///
    /// ```
    /// use bunting_wire::IngestBatch;
    /// let body = serde_json::to_string(&IngestBatch::events("prod", &[][..])).unwrap();
    /// assert_eq!(body, r#"{"kind":"events","environment":"prod","events":[]}"#);
    /// ```
    pub fn events(
        environment: impl Into<Cow<'a, str>>,
        list: impl Into<Cow<'a, [EventRecord]>>,
    ) -> IngestBatch<'a> {
        IngestBatch {
            kind: Cow::Borrowed(EVENTS),
            exposures: None,
            environment: Some(environment.into()),
            events: Some(list.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_exposure() -> ExposureRecord {
        ExposureRecord {
            flag: "checkout".into(),
            variant: "b".into(),
            rule_id: Some("eu-ramp".into()),
            bucketing_key_hash: "5c0f".into(),
            environment: "acme/web/production".into(),
            snapshot_version: Some(7),
            time: 1_764_000_000_000,
            country: Some("DE".into()),
            device_type: Some("mobile".into()),
            reason: Some("SPLIT".into()),
            id: Some("x-1".into()),
        }
    }

    fn full_event() -> EventRecord {
        EventRecord {
            name: "purchase".into(),
            targeting_key_hash: "5c0f".into(),
            value: Some(12.5),
            timestamp: 1_764_000_000_000,
            received_at: Some(1_764_000_000_123),
            id: Some("o-1".into()),
            properties: Some(Map::from_iter([("plan".to_string(), json!("pro"))])),
        }
    }

    #[test]
    fn every_field_round_trips() {
        let exposures = [full_exposure()];
        let sent = serde_json::to_vec(&IngestBatch::exposures(&exposures[..])).unwrap();
        let got: IngestBatch = serde_json::from_slice(&sent).unwrap();
        assert_eq!(got, IngestBatch::exposures(exposures.to_vec()));
        assert_eq!(
            serde_json::from_slice::<Value>(&sent).unwrap(),
            json!({"kind": "exposures", "exposures": [{
                "flag": "checkout", "variant": "b", "ruleId": "eu-ramp", "bucketingKeyHash": "5c0f",
                "environment": "acme/web/production", "snapshotVersion": 7,
                "time": 1_764_000_000_000_i64, "country": "DE", "deviceType": "mobile",
                "reason": "SPLIT", "id": "x-1"}]})
        );

        let events = vec![full_event()];
        let sent = serde_json::to_vec(&IngestBatch::events("prod", &events)).unwrap();
        let got: IngestBatch = serde_json::from_slice(&sent).unwrap();
        assert_eq!(got.kind, EVENTS);
        assert_eq!(got.environment.as_deref(), Some("prod"));
        assert_eq!(got.events.as_deref(), Some(&events[..]));
        assert_eq!(
            serde_json::from_slice::<Value>(&sent).unwrap(),
            json!({"kind": "events", "environment": "prod", "events": [{
                "name": "purchase", "targetingKeyHash": "5c0f", "value": 12.5,
                "timestamp": 1_764_000_000_000_i64, "receivedAt": 1_764_000_000_123_i64,
                "id": "o-1", "properties": {"plan": "pro"}}]})
        );
    }

    #[test]
    fn absent_fields_are_left_out_and_read_as_none() {
        let bare = ExposureRecord {
            rule_id: None,
            snapshot_version: None,
            country: None,
            device_type: None,
            reason: None,
            id: None,
            ..full_exposure()
        };
        let text = json!({"flag": "checkout", "variant": "b", "bucketingKeyHash": "5c0f",
                          "environment": "acme/web/production", "time": 1_764_000_000_000_i64});
        assert_eq!(serde_json::to_value(&bare).unwrap(), text);
        assert_eq!(
            serde_json::from_value::<ExposureRecord>(text).unwrap(),
            bare
        );
        // `null` reads as absent.
        let with_nulls = json!({"name": "e", "targetingKeyHash": "u", "timestamp": 0,
                                "value": null, "receivedAt": null, "id": null, "properties": null});
        let e: EventRecord = serde_json::from_value(with_nulls).unwrap();
        assert_eq!(
            (e.value, e.received_at, e.id, e.properties),
            (None, None, None, None)
        );
    }

    #[test]
    fn required_fields_are_required() {
        let err = serde_json::from_value::<ExposureRecord>(
            json!({"flag": "f", "bucketingKeyHash": "u", "environment": "e", "time": 0}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("variant"), "{err}");
        let err = serde_json::from_value::<EventRecord>(json!({"name": "e", "timestamp": 0}))
            .unwrap_err();
        assert!(err.to_string().contains("targetingKeyHash"), "{err}");
        let err = serde_json::from_value::<IngestBatch>(json!({"exposures": []})).unwrap_err();
        assert!(err.to_string().contains("kind"), "{err}");
    }
}
