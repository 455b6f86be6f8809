//! The fast path of [`super::parse`] for the bodies the edge sends: valid
//! batches whose strings have no escapes.
//!
//! One pass of serde over the body with borrowed strings (no `String` per
//! field, no intermediate list of records): each event is checked and
//! turned into its store row as soon as it is read, and derived ids hash
//! their fields without formatting them into strings first. The only
//! allocations per event are the row's own strings.
//!
//! It answers `None` whenever the body is anything but a valid batch of the
//! usual shape — a problem in any event, a string with an escape (serde
//! cannot borrow it), a duplicate key, a list of the other kind as well,
//! `events` before `environment`, too many events — and then the complete
//! parse ([`super::parse_slow`]) answers instead, with every problem. So
//! the fast path only has to agree with the slow one on valid bodies (the
//! checks are the same functions: [`super::text_ok`], [`super::in_window`]).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    IdHash, IngestOptions, MAX_ID, MAX_PROPERTIES, MAX_TEXT, MAX_USER_KEY, Parsed, in_window,
    text_ok,
};
use crate::store::{EventBatch, Exposure, MetricEvent};
use bunting_wire::batch::{EVENTS, EXPOSURES};
use bunting_wire::check_event_name;

/// An exposure as sent ([`bunting_wire::ExposureRecord`]), borrowing its
/// strings from the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExposureIn<'a> {
    flag: &'a str,
    variant: &'a str,
    #[serde(default, borrow)]
    rule_id: Option<&'a str>,
    bucketing_key_hash: &'a str,
    environment: &'a str,
    #[serde(default)]
    snapshot_version: Option<u64>,
    time: i64,
    #[serde(default, borrow)]
    country: Option<&'a str>,
    #[serde(default, borrow)]
    device_type: Option<&'a str>,
    #[serde(default, borrow)]
    reason: Option<&'a str>,
    #[serde(default, borrow)]
    id: Option<&'a str>,
}

/// A metric event as sent ([`bunting_wire::EventRecord`]), borrowing its
/// strings from the body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIn<'a> {
    name: &'a str,
    targeting_key_hash: &'a str,
    #[serde(default)]
    value: Option<f64>,
    timestamp: i64,
    #[serde(default)]
    received_at: Option<i64>,
    #[serde(default, borrow)]
    id: Option<&'a str>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

/// What every event is checked against.
struct Cx {
    now_ms: i64,
    window: (i64, i64),
    /// Most events of the batch.
    max: usize,
    /// Room to reserve for the rows (a guess from the body's size).
    capacity: usize,
}

/// The message of every refusal: the slow path finds the real problems.
const NOT_FAST: &str = "not for the fast path";

fn not_fast<E: de::Error>() -> E {
    E::custom(NOT_FAST)
}

/// `body` as a [`Parsed`] batch, or `None` when the slow path must answer.
pub(super) fn parse(body: &[u8], now_ms: i64, options: &IngestOptions) -> Option<Parsed> {
    let max = options.max_batch_events.min(options.queue_events);
    let cx = Cx {
        now_ms,
        window: (now_ms - options.max_age_ms, now_ms + options.max_future_ms),
        max,
        // The smallest events take ~60 bytes; the edge's, 150-250.
        capacity: (body.len() / 128).min(max),
    };
    // UTF-8 checked once for the whole body (ASCII a word at a time) rather
    // than string by string: serde's `str` input then skips its own check.
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Top(&cx).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(parsed)
}

/// The body's object.
struct Top<'c>(&'c Cx);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = Parsed;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let cx = self.0;
        let mut kind: Option<&'de str> = None;
        let mut environment: Option<Option<&'de str>> = None;
        let mut names: Vec<&'de str> = Vec::new();
        let mut batch: Option<EventBatch> = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "kind" if kind.is_none() => kind = Some(map.next_value()?),
                "environment" if environment.is_none() => {
                    environment = Some(map.next_value()?);
                }
                "exposures" if batch.is_none() => {
                    let rows = map.next_value_seed(Exposures {
                        cx,
                        names: &mut names,
                    })?;
                    batch = Some(EventBatch::Exposures(rows));
                }
                "events" if batch.is_none() => {
                    // The environment first: it is part of derived ids.
                    let Some(Some(env)) = environment else {
                        return Err(not_fast());
                    };
                    if !text_ok(env, MAX_TEXT) {
                        return Err(not_fast());
                    }
                    let rows = map.next_value_seed(Events { cx, env })?;
                    names.push(env);
                    batch = Some(EventBatch::Metrics(rows));
                }
                "kind" | "environment" | "exposures" | "events" => return Err(not_fast()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let batch = batch.ok_or_else(not_fast)?;
        match (kind, &batch) {
            (Some(EXPOSURES), EventBatch::Exposures(_))
            | (Some(EVENTS), EventBatch::Metrics(_)) => Ok(Parsed {
                names: names.into_iter().map(str::to_string).collect(),
                batch,
            }),
            _ => Err(not_fast()),
        }
    }
}

/// An exposure list: rows, and the distinct environment names in `names`.
struct Exposures<'c, 'n, 'de> {
    cx: &'c Cx,
    names: &'n mut Vec<&'de str>,
}

impl<'de> DeserializeSeed<'de> for Exposures<'_, '_, 'de> {
    type Value = Vec<Exposure>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Exposure>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Exposures<'_, '_, 'de> {
    type Value = Vec<Exposure>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of exposures")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Vec<Exposure>, S::Error> {
        let cx = self.cx;
        let mut rows = Vec::with_capacity(cx.capacity);
        while let Some(e) = seq.next_element::<ExposureIn<'de>>()? {
            if rows.len() == cx.max {
                return Err(not_fast());
            }
            rows.push(exposure(cx, e, self.names).ok_or_else(not_fast)?);
        }
        Ok(rows)
    }
}

/// One exposure's row, if it is valid (the checks of `super::exposure`).
fn exposure<'de>(cx: &Cx, e: ExposureIn<'de>, names: &mut Vec<&'de str>) -> Option<Exposure> {
    let opt = |s: Option<&str>, max| s.is_none_or(|s| text_ok(s, max));
    let valid = text_ok(e.environment, MAX_TEXT)
        && text_ok(e.flag, MAX_TEXT)
        && text_ok(e.variant, MAX_TEXT)
        && text_ok(e.bucketing_key_hash, MAX_USER_KEY)
        && opt(e.rule_id, MAX_TEXT)
        && opt(e.reason, MAX_TEXT)
        && opt(e.country, MAX_TEXT)
        && opt(e.device_type, MAX_TEXT)
        && opt(e.id, MAX_ID)
        && in_window(e.time, cx.window);
    if !valid {
        return None;
    }
    let snapshot_version = match e.snapshot_version {
        None => None,
        Some(v) => Some(i64::try_from(v).ok()?),
    };
    let id = match e.id {
        Some(id) => id.to_string(),
        None => {
            let mut h = IdHash::new("exposure");
            h.field(e.environment);
            h.field(e.flag);
            h.field(e.variant);
            h.field(e.bucketing_key_hash);
            h.display(e.time);
            match snapshot_version {
                Some(v) => h.display(v),
                None => h.field(""),
            }
            h.field(e.rule_id.unwrap_or_default());
            h.finish(e.time)
        }
    };
    // Until `Parsed::resolve`: the index of the environment's name.
    let env_id = super::name_index(names, e.environment);
    Some(Exposure {
        env_id: env_id as i64,
        id,
        flag_key: e.flag.to_string(),
        variant: e.variant.to_string(),
        user_key: e.bucketing_key_hash.to_string(),
        time_ms: e.time,
        snapshot_version,
        rule_id: e.rule_id.map(str::to_string),
        reason: e.reason.map(str::to_string),
        country: e.country.map(str::to_string),
        device_type: e.device_type.map(str::to_string),
        received_ms: cx.now_ms,
    })
}

/// A metric event list of environment `env`.
struct Events<'c, 'de> {
    cx: &'c Cx,
    env: &'de str,
}

impl<'de> DeserializeSeed<'de> for Events<'_, 'de> {
    type Value = Vec<MetricEvent>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<MetricEvent>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Events<'_, 'de> {
    type Value = Vec<MetricEvent>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of metric events")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Vec<MetricEvent>, S::Error> {
        let cx = self.cx;
        let mut rows = Vec::with_capacity(cx.capacity);
        while let Some(e) = seq.next_element::<EventIn<'de>>()? {
            if rows.len() == cx.max {
                return Err(not_fast());
            }
            rows.push(metric(cx, self.env, e).ok_or_else(not_fast)?);
        }
        Ok(rows)
    }
}

/// One metric event's row, if it is valid (the checks of `super::metric`).
fn metric(cx: &Cx, env: &str, e: EventIn<'_>) -> Option<MetricEvent> {
    let valid = check_event_name(e.name).is_ok()
        && text_ok(e.targeting_key_hash, MAX_USER_KEY)
        && e.id.is_none_or(|id| text_ok(id, MAX_ID))
        && in_window(e.timestamp, cx.window)
        && e.received_at.is_none_or(|r| in_window(r, cx.window))
        && e.value.is_none_or(f64::is_finite);
    if !valid {
        return None;
    }
    let properties = e.properties.map(|m| Value::Object(m).to_string());
    if let Some(s) = &properties
        && (s.len() > MAX_PROPERTIES || s.contains("\\u0000"))
    {
        return None;
    }
    let id = match e.id {
        Some(id) => id.to_string(),
        None => {
            let mut h = IdHash::new("event");
            h.field(env);
            h.field(e.name);
            h.field(e.targeting_key_hash);
            h.display(e.timestamp);
            match e.value {
                Some(v) => h.display(v),
                None => h.field(""),
            }
            h.field(properties.as_deref().unwrap_or_default());
            h.finish(e.timestamp)
        }
    };
    Some(MetricEvent {
        // Until `Parsed::resolve`: the index of the environment's name.
        env_id: 0,
        id,
        name: e.name.to_string(),
        user_key: e.targeting_key_hash.to_string(),
        value: e.value,
        time_ms: e.timestamp,
        received_ms: e.received_at.unwrap_or(cx.now_ms),
        properties,
    })
}
