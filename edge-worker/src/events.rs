//! Validation of metric events posted by apps (`POST /events`).
//!
//! Apps report what happened after a flag was served (a purchase, a sign-up)
//! so the origin can compute experiment metrics. The Worker validates the
//! batch, replaces every `targetingKey` by its keyed hash (the same
//! [`KeyHasher`] as exposures, so the two join at the origin without raw ids
//! leaving the edge) and forwards the resulting [`EventRecord`]s, the form
//! the origin parses.
//!
//! Accepted bodies: `{"events": [event, …]}` or a single event object, where
//! an event is
//!
//! | field | rule |
//! |---|---|
//! | `name` | required string, 1–128 characters from `[A-Za-z0-9_.:-]` ([`bunting_wire::event_name`]) |
//! | `targetingKey` | required non-empty string (≤ 1024 bytes) or number, as in evaluation contexts |
//! | `id` | required idempotency id, string of 1–128 characters, unique within the request |
//! | `value` | optional finite number |
//! | `timestamp` | optional RFC 3339 time (defaults to the time the edge received it) |
//!
//! At most [`MAX_EVENTS`] events per request. Unknown fields are rejected, so a
//! typo (`"valeu"`) is reported instead of silently losing data. Validation is
//! all-or-nothing: one invalid event fails the request, and the error lists
//! every invalid event with its index and reason.
//!
//! ```
//! use bunting_edge_worker::events::{parse_events, EventsError};
//! use bunting_edge_worker::exposure::KeyHasher;
//! let hasher = KeyHasher::new("secret");
//! let body = br#"{"events": [{"name": "purchase", "targetingKey": "u1", "value": 12.5, "id": "o-1"}]}"#;
//! let events = parse_events(body, &hasher, 1_764_000_000_000).unwrap();
//! assert_eq!(events[0].targeting_key_hash, hasher.hash("u1"));
//! assert_eq!(events[0].timestamp, 1_764_000_000_000);
//!
//! let bad = br#"[{"name": "purchase"}]"#;
//! assert!(matches!(parse_events(bad, &hasher, 0), Err(EventsError::Shape)));
//! ```

use bunting_wire::{EventNameError, EventRecord, check_event_name};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::exposure::KeyHasher;

/// Most events accepted in one request.
pub const MAX_EVENTS: usize = 500;
/// Longest event name, in characters.
pub const MAX_NAME_LEN: usize = bunting_wire::MAX_EVENT_NAME_LEN;
/// Longest idempotency id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// Longest targeting key, in bytes.
pub const MAX_TARGETING_KEY_LEN: usize = 1024;

/// Why a `POST /events` body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventsError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// The body is JSON but neither `{"events": [...]}` nor an event object.
    #[error(r#"the body must be {{"events": [...]}} or a single event object"#)]
    Shape,
    /// More than [`MAX_EVENTS`] events.
    #[error("too many events: {count}, at most {max} per request")]
    TooMany {
        /// Events sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Some events are invalid: every one of them, in order.
    #[error("{}", invalid_message(.0))]
    Invalid(Vec<InvalidEvent>),
}

fn invalid_message(list: &[InvalidEvent]) -> String {
    match list.first() {
        Some(first) => format!(
            "{} invalid event(s); first: event {}: {}",
            list.len(),
            first.index,
            first.reason
        ),
        None => "invalid events".to_string(),
    }
}

impl EventsError {
    /// A JSON body for a `400` response:
    /// `{"error": "<message>", "invalid": [{"index": 0, "reason": "…"}, …]}`
    /// (`invalid` only for [`EventsError::Invalid`]).
    ///
    /// ```
    /// use bunting_edge_worker::events::parse_events;
    /// use bunting_edge_worker::exposure::KeyHasher;
    /// let err = parse_events(br#"{"name": "x y", "targetingKey": "u", "id": "1"}"#,
    ///                        &KeyHasher::new("s"), 0).unwrap_err();
    /// assert_eq!(err.to_json()["invalid"][0]["index"], 0);
    /// ```
    pub fn to_json(&self) -> Value {
        // What `json!` and `to_value(list)` gave (a reason as its
        // message), from ready-made `Value`s (see `health::object`).
        let mut fields = vec![("error", Value::from(self.to_string()))];
        if let EventsError::Invalid(list) = self {
            let items = list.iter().map(|item| {
                crate::health::object(vec![
                    ("index", Value::from(item.index)),
                    ("reason", Value::from(item.reason.to_string())),
                ])
            });
            fields.push(("invalid", Value::Array(items.collect())));
        }
        crate::health::object(fields)
    }
}

/// One invalid event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidEvent {
    /// Its position in `events` (0 for a single-event body).
    pub index: usize,
    /// The first problem found in it (serialized as its message).
    #[serde(serialize_with = "as_display")]
    pub reason: EventProblem,
}

fn as_display<S: Serializer>(p: &EventProblem, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(p)
}

/// What is wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EventProblem {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object")]
    NotAnObject,
    /// A field this API does not know.
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// `name` is missing or not a string.
    #[error("`name` is required and must be a string")]
    MissingName,
    /// `name` is empty or longer than [`MAX_NAME_LEN`].
    #[error("`name` must have 1 to {MAX_NAME_LEN} characters")]
    NameLength,
    /// `name` has a character outside `[A-Za-z0-9_.:-]`.
    #[error("`name` may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-', not {0:?}")]
    NameCharacter(char),
    /// `targetingKey` is missing, or not a string or number.
    #[error("`targetingKey` is required and must be a string or a number")]
    MissingTargetingKey,
    /// `targetingKey` is empty or longer than [`MAX_TARGETING_KEY_LEN`] bytes.
    #[error("`targetingKey` must have 1 to {MAX_TARGETING_KEY_LEN} bytes")]
    TargetingKeyLength,
    /// `id` is missing or not a string.
    #[error("`id` (an idempotency id) is required and must be a string")]
    MissingId,
    /// `id` is empty or longer than [`MAX_ID_LEN`].
    #[error("`id` must have 1 to {MAX_ID_LEN} characters")]
    IdLength,
    /// Another event of the request has the same `id`.
    #[error("`id` repeats the id of event {0}")]
    DuplicateId(usize),
    /// `value` is not a number.
    #[error("`value` must be a number")]
    ValueNotANumber,
    /// `value` is a number but not finite.
    #[error("`value` must be finite")]
    ValueNotFinite,
    /// `timestamp` is not an RFC 3339 string.
    #[error("`timestamp` must be an RFC 3339 time, e.g. \"2026-11-25T12:00:00Z\"")]
    Timestamp,
}

/// Parses and validates a `POST /events` body (see the module docs), hashing
/// targeting keys with `hasher`. `now_ms` is the receive time, in Unix
/// milliseconds. An empty `events` array gives an empty list.
pub fn parse_events(
    body: &[u8],
    hasher: &KeyHasher,
    now_ms: i64,
) -> Result<Vec<EventRecord>, EventsError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EventsError::Json(e.to_string()))?;
    validate_events(&value, hasher, now_ms)
}

/// [`parse_events`] for an already-parsed body.
///
/// ```
/// use bunting_edge_worker::events::{validate_events, EventProblem, EventsError};
/// use bunting_edge_worker::exposure::KeyHasher;
/// use serde_json::json;
/// let body = json!({"events": [
///     {"name": "signup", "targetingKey": "u1", "id": "a"},
///     {"name": "purchase", "targetingKey": "u1", "id": "b", "value": "12"},
/// ]});
/// let Err(EventsError::Invalid(list)) = validate_events(&body, &KeyHasher::new("s"), 0) else {
///     panic!()
/// };
/// assert_eq!((list[0].index, &list[0].reason), (1, &EventProblem::ValueNotANumber));
/// ```
pub fn validate_events(
    body: &Value,
    hasher: &KeyHasher,
    now_ms: i64,
) -> Result<Vec<EventRecord>, EventsError> {
    let Value::Object(obj) = body else {
        return Err(EventsError::Shape);
    };
    let items: &[Value] = match obj.get("events") {
        Some(Value::Array(items)) if obj.len() == 1 => items,
        Some(_) => return Err(EventsError::Shape),
        None => std::slice::from_ref(body),
    };
    if items.len() > MAX_EVENTS {
        return Err(EventsError::TooMany {
            count: items.len(),
            max: MAX_EVENTS,
        });
    }
    let mut events = Vec::with_capacity(items.len());
    let mut invalid = Vec::new();
    // The ids of the accepted events and their indexes, in the map type
    // of the exposure deduplicator (`TimeMap`, looked up by `&String`):
    // one instantiation of the map's lookup, insertion and growth in the
    // bundle for both.
    let mut ids = crate::dedup::TimeMap::default();
    for (index, item) in items.iter().enumerate() {
        let id = event_id(item).to_string();
        let checked = validate_one(item, hasher, now_ms).and_then(|e| match ids.get(&id) {
            Some(&first) => Err(EventProblem::DuplicateId(first as usize)),
            None => Ok(e),
        });
        match checked {
            Ok(e) => {
                ids.insert(id, index as i64);
                events.push(e);
            }
            Err(reason) => invalid.push(InvalidEvent { index, reason }),
        }
    }
    if invalid.is_empty() {
        Ok(events)
    } else {
        Err(EventsError::Invalid(invalid))
    }
}

/// The `id` of an event already validated.
fn event_id(item: &Value) -> &str {
    item.get("id").and_then(Value::as_str).unwrap_or_default()
}

const FIELDS: &[&str] = &["name", "targetingKey", "id", "value", "timestamp"];

fn validate_one(
    item: &Value,
    hasher: &KeyHasher,
    now_ms: i64,
) -> Result<EventRecord, EventProblem> {
    let Value::Object(map) = item else {
        return Err(EventProblem::NotAnObject);
    };
    if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(EventProblem::UnknownField(k.clone()));
    }
    let name = name(map)?;
    let key = targeting_key(map)?;
    let id = id(map)?;
    let value = match map.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let f = n.as_f64().ok_or(EventProblem::ValueNotANumber)?;
            if !f.is_finite() {
                return Err(EventProblem::ValueNotFinite);
            }
            Some(f)
        }
        Some(_) => return Err(EventProblem::ValueNotANumber),
    };
    let timestamp = match map.get("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(Value::String(s)) => {
            bunting_core::time::parse_rfc3339_ms(s.trim()).ok_or(EventProblem::Timestamp)?
        }
        Some(_) => return Err(EventProblem::Timestamp),
    };
    Ok(EventRecord {
        name: name.to_string(),
        targeting_key_hash: hasher.hash(&key),
        value,
        timestamp,
        received_at: Some(now_ms),
        id: Some(id.to_string()),
        properties: None,
    })
}

fn name(map: &Map<String, Value>) -> Result<&str, EventProblem> {
    let name = map
        .get("name")
        .and_then(Value::as_str)
        .ok_or(EventProblem::MissingName)?;
    match check_event_name(name) {
        Ok(()) => Ok(name),
        Err(EventNameError::Character(c)) => Err(EventProblem::NameCharacter(c)),
        Err(EventNameError::Length) => Err(EventProblem::NameLength),
    }
}

fn targeting_key(map: &Map<String, Value>) -> Result<String, EventProblem> {
    let key = match map.get("targetingKey") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(EventProblem::MissingTargetingKey),
    };
    if key.is_empty() || key.len() > MAX_TARGETING_KEY_LEN {
        return Err(EventProblem::TargetingKeyLength);
    }
    Ok(key)
}

fn id(map: &Map<String, Value>) -> Result<&str, EventProblem> {
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .ok_or(EventProblem::MissingId)?;
    if id.is_empty() || id.chars().count() > MAX_ID_LEN {
        return Err(EventProblem::IdLength);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `to_json` gives the bytes `json!` and the derived `Serialize` of
    /// the invalid events gave.
    #[test]
    fn error_bodies_as_the_derive_wrote_them() {
        for body in [
            &br#"{"events": [{"name": "ok", "targetingKey": "u", "id": "1"}, 3, {"nom": 1}]}"#[..],
            br#"{"events": 3}"#,
            br#"{"#,
        ] {
            let Err(e) = parse_events(body, &hasher(), NOW) else {
                panic!("accepted {}", String::from_utf8_lossy(body));
            };
            let mut old = json!({"error": e.to_string()});
            if let EventsError::Invalid(list) = &e {
                old["invalid"] = serde_json::to_value(list).unwrap();
            }
            assert_eq!(e.to_json().to_string(), old.to_string());
        }
    }

    const NOW: i64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z

    fn hasher() -> KeyHasher {
        KeyHasher::new("events-secret")
    }

    fn ok(body: Value) -> Vec<EventRecord> {
        validate_events(&body, &hasher(), NOW).unwrap()
    }

    fn invalid(body: Value) -> Vec<(usize, EventProblem)> {
        match validate_events(&body, &hasher(), NOW) {
            Err(EventsError::Invalid(list)) => {
                list.into_iter().map(|e| (e.index, e.reason)).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn ev(name: &str) -> Value {
        json!({"name": name, "targetingKey": "u1", "id": format!("id-{name}")})
    }

    #[test]
    fn a_full_batch() {
        let events = ok(json!({"events": [
            {"name": "purchase", "targetingKey": "u1", "value": 12.5,
             "timestamp": "2026-11-25T11:59:00Z", "id": "order-1"},
            {"name": "page.view", "targetingKey": 42, "id": "pv-1"},
            {"name": "a:b-c_d", "targetingKey": "u2", "id": "x", "value": null, "timestamp": null},
        ]}));
        let h = hasher();
        assert_eq!(
            events[0],
            EventRecord {
                name: "purchase".into(),
                targeting_key_hash: h.hash("u1"),
                value: Some(12.5),
                timestamp: NOW - 60_000,
                received_at: Some(NOW),
                id: Some("order-1".into()),
                properties: None,
            }
        );
        assert_eq!(events[1].targeting_key_hash, h.hash("42"));
        assert_eq!((events[1].value, events[1].timestamp), (None, NOW));
        assert_eq!(events[2].value, None);
        // The forwarded form: hashed key, no raw key.
        let wire = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(
            wire,
            json!({"name": "purchase", "targetingKeyHash": h.hash("u1"), "value": 12.5,
                   "timestamp": NOW - 60_000, "receivedAt": NOW, "id": "order-1"})
        );
        assert!(!serde_json::to_string(&events).unwrap().contains("\"u1\""));
    }

    #[test]
    fn the_hash_matches_exposures() {
        let events = ok(ev("purchase"));
        assert_eq!(
            events[0].targeting_key_hash,
            crate::exposure::hash_key("u1", "events-secret")
        );
    }

    #[test]
    fn a_single_event_object_is_accepted() {
        let events = ok(ev("signup"));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "signup");
        assert_eq!(invalid(json!({"name": "signup"}))[0].0, 0);
    }

    #[test]
    fn an_empty_batch_is_fine() {
        assert!(ok(json!({"events": []})).is_empty());
    }

    #[test]
    fn body_shapes() {
        let h = hasher();
        for body in [
            json!([ev("a")]),
            json!("events"),
            json!(null),
            json!({"events": {"name": "a"}}),
            json!({"events": [ev("a")], "extra": 1}),
        ] {
            assert_eq!(
                validate_events(&body, &h, NOW),
                Err(EventsError::Shape),
                "{body}"
            );
        }
        assert!(matches!(
            parse_events(b"{not json", &h, NOW),
            Err(EventsError::Json(_))
        ));
        assert!(matches!(
            parse_events(b"", &h, NOW),
            Err(EventsError::Json(_))
        ));
        assert_eq!(parse_events(br#"{"events": []}"#, &h, NOW), Ok(vec![]));
    }

    #[test]
    fn at_most_500_events() {
        let batch = |n: usize| {
            json!({"events": (0..n).map(|i| json!({"name": "e", "targetingKey": "u",
                                                   "id": i.to_string()})).collect::<Vec<_>>()})
        };
        assert_eq!(ok(batch(MAX_EVENTS)).len(), MAX_EVENTS);
        assert_eq!(
            validate_events(&batch(MAX_EVENTS + 1), &hasher(), NOW),
            Err(EventsError::TooMany {
                count: 501,
                max: 500
            })
        );
    }

    #[test]
    fn every_invalid_event_is_listed() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let got = invalid(json!({"events": [
            ev("fine"),
            "not an object",
            {"targetingKey": "u", "id": "1"},
            {"name": 5, "targetingKey": "u", "id": "2"},
            {"name": "", "targetingKey": "u", "id": "3"},
            {"name": long, "targetingKey": "u", "id": "4"},
            {"name": "has space", "targetingKey": "u", "id": "5"},
            {"name": "é", "targetingKey": "u", "id": "6"},
            {"name": "e", "id": "7"},
            {"name": "e", "targetingKey": true, "id": "8"},
            {"name": "e", "targetingKey": "", "id": "9"},
            {"name": "e", "targetingKey": "u"},
            {"name": "e", "targetingKey": "u", "id": ""},
            {"name": "e", "targetingKey": "u", "id": 12},
            {"name": "e", "targetingKey": "u", "id": "13", "value": "1"},
            {"name": "e", "targetingKey": "u", "id": "14", "timestamp": "yesterday"},
            {"name": "e", "targetingKey": "u", "id": "15", "timestamp": 1764072000000_i64},
            {"name": "e", "targetingKey": "u", "id": "16", "valeu": 1},
            {"name": "e", "targetingKey": "u", "id": "id-fine"},
            {"name": "e", "targetingKey": "u", "id": "i".repeat(MAX_ID_LEN + 1)},
            {"name": "e", "targetingKey": "k".repeat(MAX_TARGETING_KEY_LEN + 1), "id": "20"},
        ]}));
        use EventProblem::*;
        assert_eq!(
            got,
            vec![
                (1, NotAnObject),
                (2, MissingName),
                (3, MissingName),
                (4, NameLength),
                (5, NameLength),
                (6, NameCharacter(' ')),
                (7, NameCharacter('é')),
                (8, MissingTargetingKey),
                (9, MissingTargetingKey),
                (10, TargetingKeyLength),
                (11, MissingId),
                (12, IdLength),
                (13, MissingId),
                (14, ValueNotANumber),
                (15, Timestamp),
                (16, Timestamp),
                (17, UnknownField("valeu".into())),
                (18, DuplicateId(0)),
                (19, IdLength),
                (20, TargetingKeyLength),
            ]
        );
    }

    #[test]
    fn limits_are_inclusive() {
        let name = "n".repeat(MAX_NAME_LEN);
        let id = "é".repeat(MAX_ID_LEN); // characters, not bytes
        let key = "k".repeat(MAX_TARGETING_KEY_LEN);
        let events = ok(json!({"name": name, "targetingKey": key, "id": id}));
        assert_eq!(events[0].name.len(), MAX_NAME_LEN);
    }

    #[test]
    fn duplicate_ids_point_at_the_first() {
        let got = invalid(json!({"events": [ev("a"), ev("b"), ev("a"), ev("a")]}));
        assert_eq!(
            got,
            vec![
                (2, EventProblem::DuplicateId(0)),
                (3, EventProblem::DuplicateId(0))
            ]
        );
    }

    #[test]
    fn error_messages_and_json() {
        let err = validate_events(
            &json!({"events": [ev("ok"), {"name": "bad name", "targetingKey": "u", "id": "z"}]}),
            &hasher(),
            NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 invalid event(s); first: event 1: `name` may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-', not ' '"
        );
        assert_eq!(
            err.to_json(),
            json!({"error": err.to_string(), "invalid": [{"index": 1,
                   "reason": "`name` may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-', not ' '"}]})
        );
        let err = EventsError::TooMany {
            count: 501,
            max: 500,
        };
        assert_eq!(
            err.to_json(),
            json!({"error": "too many events: 501, at most 500 per request"})
        );
        assert_eq!(
            EventsError::Shape.to_string(),
            r#"the body must be {"events": [...]} or a single event object"#
        );
    }

    #[test]
    fn timestamps_with_offsets_are_normalised() {
        let events = ok(json!({"name": "e", "targetingKey": "u", "id": "1",
                               "timestamp": "2026-11-25T13:00:00+01:00"}));
        assert_eq!(events[0].timestamp, NOW);
    }
}
