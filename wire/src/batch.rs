//! The batches the edge worker POSTs to the origin's `POST /api/v1/events`
//! (one per request), as one set of serde types: the edge serializes them,
//! the origin parses them (the edge reads back the ones it queued with
//! [`IngestBatch::read_json`], which keeps serde's typed reader out of its
//! bundle).
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

impl IngestBatch<'static> {
    /// Reads a batch's JSON text as its derived `Deserialize` does (the
    /// object form, or serde's array form of each struct; unknown fields
    /// ignored; `null` reads as absent), or `None` where that refuses it.
    /// One difference: a repeated field is read as its last value instead
    /// of refused.
    ///
    /// For the edge worker, which reads back the queue messages it wrote
    /// (`edge-worker/src/queue.rs`): it parses a `Value` and takes the
    /// fields from it by hand, because a typed read carries serde's
    /// "invalid type: floating point …" error, and with it the float
    /// formatter, into the worker's bundle. The origin uses `Deserialize`.
    ///
    /// ```
    /// use bunting_wire::IngestBatch;
    /// let text = br#"{"kind": "events", "environment": "prod", "events": [
    ///     {"name": "purchase", "targetingKeyHash": "5c0f", "value": 12.5, "timestamp": 1}]}"#;
    /// let batch = IngestBatch::read_json(text).unwrap();
    /// assert_eq!(batch.events.unwrap()[0].value, Some(12.5));
    /// assert!(IngestBatch::read_json(br#"{"exposures": []}"#).is_none());
    /// ```
    // Inline: compiled in the caller's crate, it shares that crate's copy of
    // serde_json's parser (the edge worker's: ≈ 1 KB of its gzipped bundle).
    #[inline]
    pub fn read_json(text: &[u8]) -> Option<IngestBatch<'static>> {
        let mut f = Fields::of(serde_json::from_slice(text).ok()?, 4)?;
        let batch = IngestBatch {
            kind: Cow::Owned(string(f.take(0, "kind")?)?),
            exposures: optional(f.take(1, EXPOSURES), |v| {
                list(v, ExposureRecord::read).map(Cow::Owned)
            })?,
            environment: optional(f.take(2, "environment"), |v| string(v).map(Cow::Owned))?,
            events: optional(f.take(3, EVENTS), |v| {
                list(v, EventRecord::read).map(Cow::Owned)
            })?,
        };
        Some(batch)
    }
}

impl ExposureRecord {
    /// [`IngestBatch::read_json`] of one exposure.
    fn read(v: Value) -> Option<ExposureRecord> {
        let mut f = Fields::of(v, 11)?;
        Some(ExposureRecord {
            flag: string(f.take(0, "flag")?)?,
            variant: string(f.take(1, "variant")?)?,
            rule_id: optional(f.take(2, "ruleId"), string)?,
            bucketing_key_hash: string(f.take(3, "bucketingKeyHash")?)?,
            environment: string(f.take(4, "environment")?)?,
            snapshot_version: optional(f.take(5, "snapshotVersion"), |v| v.as_u64())?,
            time: f.take(6, "time")?.as_i64()?,
            country: optional(f.take(7, "country"), string)?,
            device_type: optional(f.take(8, "deviceType"), string)?,
            reason: optional(f.take(9, "reason"), string)?,
            id: optional(f.take(10, "id"), string)?,
        })
    }
}

impl EventRecord {
    /// [`IngestBatch::read_json`] of one event.
    fn read(v: Value) -> Option<EventRecord> {
        let mut f = Fields::of(v, 7)?;
        Some(EventRecord {
            name: string(f.take(0, "name")?)?,
            targeting_key_hash: string(f.take(1, "targetingKeyHash")?)?,
            value: optional(f.take(2, "value"), |v| v.as_f64())?,
            timestamp: f.take(3, "timestamp")?.as_i64()?,
            received_at: optional(f.take(4, "receivedAt"), |v| v.as_i64())?,
            id: optional(f.take(5, "id"), string)?,
            properties: optional(f.take(6, "properties"), |v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })?,
        })
    }
}

/// A struct's fields as serde's derived readers take them: an object's by
/// name, or an array's by position (shorter arrays leave the last fields
/// out; longer ones are refused).
enum Fields {
    Object(Map<String, Value>),
    Array(Vec<Value>),
}

impl Fields {
    /// The fields of `v`, a struct of `count` fields.
    fn of(v: Value, count: usize) -> Option<Fields> {
        match v {
            Value::Object(map) => Some(Fields::Object(map)),
            Value::Array(items) if items.len() <= count => Some(Fields::Array(items)),
            _ => None,
        }
    }

    /// The field at `index` (array) or `name` (object), if present; a
    /// `null` is left in its place (each field is read once, and
    /// `BTreeMap::remove` would link the tree's rebalancing code into the
    /// edge worker).
    fn take(&mut self, index: usize, name: &str) -> Option<Value> {
        match self {
            Fields::Object(map) => map.get_mut(name).map(Value::take),
            Fields::Array(items) => items.get_mut(index).map(Value::take),
        }
    }
}

/// A JSON string.
fn string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// An optional field: `Some(None)` when absent or `null`, `None` when
/// present but unreadable by `read`.
fn optional<T>(v: Option<Value>, read: impl FnOnce(Value) -> Option<T>) -> Option<Option<T>> {
    match v {
        None | Some(Value::Null) => Some(None),
        Some(v) => read(v).map(Some),
    }
}

/// A JSON array, each item read by `read`.
fn list<T>(v: Value, read: impl Fn(Value) -> Option<T>) -> Option<Vec<T>> {
    match v {
        Value::Array(items) => items.into_iter().map(read).collect(),
        _ => None,
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

    /// [`IngestBatch::read_json`] accepts and reads exactly what the
    /// derived `Deserialize` does: every field of each struct replaced in
    /// turn by values of every JSON type (or left out), and odd texts.
    #[test]
    fn the_reader_agrees_with_serde() {
        let derived = |text: &str| serde_json::from_str::<IngestBatch<'static>>(text).ok();
        let check = |text: &str| {
            assert_eq!(
                IngestBatch::read_json(text.as_bytes()),
                derived(text),
                "{text}"
            );
        };
        let replacements = [
            None,
            Some("null"),
            Some(r#""s""#),
            Some(r#""""#),
            Some("0"),
            Some("-0"),
            Some("7"),
            Some("-7"),
            Some("1.0"),
            Some("12.5"),
            Some("1e3"),
            Some("18446744073709551615"),
            Some("9223372036854775807"),
            Some("9223372036854775808"),
            Some("-9223372036854775808"),
            Some("-9223372036854775809"),
            Some("123456789012345678901234567890"),
            Some("true"),
            Some("[]"),
            Some("{}"),
            Some(r#"{"plan": "pro", "n": 1.5}"#),
        ];
        // A struct's JSON object with `field` replaced (or left out).
        let object = |fields: &[(&str, &str)], field: &str, with: Option<&str>| {
            let items: Vec<String> = fields
                .iter()
                .filter_map(|&(k, v)| {
                    let v = if k == field { with? } else { v };
                    Some(format!("{k:?}: {v}"))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        };
        let exposure = [
            ("flag", r#""checkout""#),
            ("variant", r#""b""#),
            ("ruleId", r#""eu-ramp""#),
            ("bucketingKeyHash", r#""5c0f""#),
            ("environment", r#""prod""#),
            ("snapshotVersion", "7"),
            ("time", "1764000000000"),
            ("country", r#""DE""#),
            ("deviceType", r#""mobile""#),
            ("reason", r#""SPLIT""#),
            ("id", r#""x-1""#),
        ];
        let event = [
            ("name", r#""purchase""#),
            ("targetingKeyHash", r#""5c0f""#),
            ("value", "12.5"),
            ("timestamp", "1764000000000"),
            ("receivedAt", "1764000000123"),
            ("id", r#""o-1""#),
            ("properties", r#"{"plan": "pro"}"#),
        ];
        let mut texts = Vec::new();
        for with in replacements {
            for (field, _) in exposure {
                let record = object(&exposure, field, with);
                texts.push(format!(
                    r#"{{"kind": "exposures", "exposures": [{record}]}}"#
                ));
            }
            for (field, _) in event {
                let record = object(&event, field, with);
                texts.push(format!(
                    r#"{{"kind": "events", "environment": "p", "events": [{record}]}}"#
                ));
            }
            let batch = [
                ("kind", r#""events""#),
                ("exposures", "[]"),
                ("environment", r#""p""#),
                ("events", "[]"),
            ];
            for (field, _) in batch {
                texts.push(object(&batch, field, with));
            }
        }
        let exposure_text = object(&exposure, "", None);
        let event_text = object(&event, "", None);
        texts.extend([
            // serde's array forms of the structs.
            format!(r#"["exposures", [{exposure_text}]]"#),
            format!(r#"["events", null, "p", [{event_text}]]"#),
            format!(r#"["events", null, "p", [{event_text}], 1]"#),
            r#"["events"]"#.to_string(),
            "[]".to_string(),
            r#"{"kind": "exposures", "exposures": [["f", "v", null, "h", "e", 7, 1]]}"#.to_string(),
            r#"{"kind": "exposures", "exposures": [["f", "v", null, "h", "e", 7]]}"#.to_string(),
            r#"{"kind": "events", "events": [["n", "h", 1.5, 1, 2, "i", {}]]}"#.to_string(),
            r#"{"kind": "events", "events": [["n", "h", 1.5, 1, 2, "i", {}, 3]]}"#.to_string(),
            // Odd texts.
            format!(r#"{{"kind": "exposures", "exposures": [{exposure_text}], "other": [1.5]}}"#),
            format!(r#"{{"kind": "exposures", "exposures": [{exposure_text}]}} x"#),
            format!(r#"{{"kind": "exposures", "exposures": [{exposure_text}]"#),
            r#"{"kind": "exposures", "exposures": [1]}"#.to_string(),
            r#"{"kind": "exposures", "exposures": {}}"#.to_string(),
            " {\"kind\": \"x\\u00e9\"} ".to_string(),
            "not json".to_string(),
            String::new(),
            "null".to_string(),
            "1.5".to_string(),
        ]);
        for text in &texts {
            check(text);
        }
        // The corpus holds both outcomes, and the sent batches read back.
        assert!(texts.iter().any(|t| derived(t).is_some()));
        assert!(texts.iter().any(|t| derived(t).is_none()));
        let exposures = [full_exposure()];
        let sent = serde_json::to_string(&IngestBatch::exposures(&exposures[..])).unwrap();
        check(&sent);
        let events = [full_event()];
        check(&serde_json::to_string(&IngestBatch::events("prod", &events[..])).unwrap());
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
