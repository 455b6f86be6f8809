//! Event ingestion: the pipeline behind `POST /api/v1/events`
//! ([`crate::api::events`]).
//!
//! A request body is one batch, exactly as the edge worker sends it
//! ([`bunting_wire::IngestBatch`], the types both sides share):
//! `{"kind": "exposures", "exposures": […]}` or
//! `{"kind": "events", "environment": "…", "events": […]}`. [`parse`]
//! validates it all-or-nothing (every problem listed with the index of its
//! event) and derives ids for events that carry none; [`Parsed::resolve`]
//! binds each event to the environment its name (`org/project/environment`)
//! names now, by id, and refuses events of environments that do not exist,
//! giving an
//! [`EventBatch`]. [`Ingest::submit`] puts the batch on a bounded queue
//! (counted in events) and waits until a writer task has **committed** it:
//! writers take every batch waiting (up to [`IngestOptions::group_events`])
//! and store them in one transaction, so many small requests share one
//! commit. When the queue is full, `submit` refuses the batch at once
//! ([`IngestError::Overloaded`], HTTP 429 with `Retry-After`): nothing is
//! acknowledged before it is durable, and nothing acknowledged is dropped.
//! The format is documented in `docs/origin.md` ("Event ingestion").
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bunting_origin::ingest::{Ingest, IngestOptions};
//! use bunting_origin::metrics::Metrics;
//! use bunting_origin::store::Store;
//! use bunting_origin::store::Actor;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! let ingest = Ingest::new(store.clone(), Arc::new(Metrics::new()), IngestOptions::default());
//! let now = 1_764_000_000_000;
//! let body = format!(r#"{{"kind": "exposures", "exposures": [{{"flag": "checkout", "variant": "b",
//!     "bucketingKeyHash": "5c0f", "environment": "acme/web/production",
//!     "snapshotVersion": 7, "time": {now}}}]}}"#);
//! let counts = ingest.ingest(body.as_bytes(), now).await.unwrap();
//! assert_eq!((counts.accepted, counts.duplicates), (1, 0));
//! let again = ingest.ingest(body.as_bytes(), now).await.unwrap();
//! assert_eq!((again.accepted, again.duplicates), (0, 1));
//! assert_eq!(store.count_exposures(prod.id).await.unwrap(), 1);
//! # });
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bunting_wire::batch::{EVENTS, EXPOSURES};
use bunting_wire::{EventRecord, ExposureRecord, IngestBatch, check_event_name};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{
    Backend, EventBatch, Exposure, InsertCounts, MetricEvent, Problem, Store, StoreError,
};

mod fast;

/// Longest environment, flag key, variant, rule id, reason, country or
/// device type, in bytes.
pub const MAX_TEXT: usize = 200;
/// Longest user key (`bucketingKeyHash`, `targetingKeyHash`), in bytes.
pub const MAX_USER_KEY: usize = 256;
/// Longest event id, in bytes.
pub const MAX_ID: usize = 128;
/// Longest metric event name, in bytes.
pub const MAX_NAME: usize = bunting_wire::MAX_EVENT_NAME_LEN;
/// Largest `properties` object, in bytes of compact JSON.
pub const MAX_PROPERTIES: usize = 4096;

/// Tuning and limits of the pipeline.
///
/// ```
/// use bunting_origin::ingest::IngestOptions;
/// let tiny = IngestOptions { queue_events: 10, ..IngestOptions::default() };
/// assert_eq!(tiny.max_batch_events, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Events waiting to be written, at most; a batch that does not fit is
    /// refused with [`IngestError::Overloaded`].
    pub queue_events: usize,
    /// Most events in one request ([`IngestError::TooLarge`] past it, or
    /// past `queue_events` when that is smaller).
    pub max_batch_events: usize,
    /// Most events a writer stores in one transaction (it takes whole
    /// batches, so one batch larger than this is still written alone).
    pub group_events: usize,
    /// Writer tasks; 0 picks by backend (1 for SQLite, which has a single
    /// writer anyway; 4 for PostgreSQL, where a writer waiting for its
    /// commit's fsync or a round trip leaves the server's CPU to the
    /// others: 4 took 20-25 % more events/s than 2 in the ingest bench).
    pub writers: usize,
    /// How far in the future an event's time may be (ms).
    pub max_future_ms: i64,
    /// How old an event may be (ms).
    pub max_age_ms: i64,
    /// `Retry-After` of a refused batch, in seconds.
    pub retry_after_seconds: u64,
}

impl Default for IngestOptions {
    fn default() -> IngestOptions {
        IngestOptions {
            queue_events: 200_000,
            max_batch_events: 10_000,
            group_events: 50_000,
            writers: 0,
            max_future_ms: 24 * 3600 * 1000,
            max_age_ms: 30 * 24 * 3600 * 1000,
            retry_after_seconds: 1,
        }
    }
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not JSON (HTTP 400).
    #[error("the body is not JSON: {0}")]
    Syntax(String),
    /// The body or some events are invalid (HTTP 422): every problem, with
    /// its path (`exposures[3].time`); nothing of the batch was stored.
    #[error("{} problem(s) in the batch", .0.len())]
    Invalid(Vec<Problem>),
    /// The caller may only send events of one environment (a server SDK
    /// key's) and the batch names others (HTTP 403): every such place, with
    /// its path (`exposures[3].environment`); nothing of the batch was
    /// stored.
    #[error("the batch names environments the caller may not send events for")]
    OtherEnvironment(Vec<Problem>),
    /// More events than one request may carry (HTTP 413).
    #[error("too many events: {count}, at most {max} per request")]
    TooLarge {
        /// Events sent.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The queue is full (HTTP 429): retry after `retry_after` seconds.
    #[error("the event queue is full; retry later")]
    Overloaded {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The database failed; nothing of the batch was stored (HTTP 503).
    #[error("storing the events failed: {0}")]
    Store(#[from] StoreError),
    /// The writers are gone (shutting down; HTTP 503).
    #[error("event ingestion is shutting down")]
    Stopped,
}

/// Validates one request body received at `now_ms` (Unix ms) into a batch.
///
/// Valid batches of the edge's shape take one borrowing pass (module
/// `fast`: no string per field but the row's own, no intermediate list);
/// any other body, and so every invalid one, the complete parse that names
/// every problem.
///
/// ```
/// use bunting_origin::ingest::{parse, IngestError, IngestOptions};
/// use bunting_origin::store::EventBatch;
/// let now = 1_764_000_000_000;
/// let body = format!(r#"{{"kind": "events", "environment": "prod", "events": [
///     {{"name": "purchase", "targetingKeyHash": "9f0c", "value": 12.5, "timestamp": {now},
///       "receivedAt": {now}, "id": "o-1"}},
///     {{"name": "bad name", "targetingKeyHash": "9f0c", "timestamp": 0}}]}}"#);
/// let Err(IngestError::Invalid(problems)) = parse(body.as_bytes(), now, &IngestOptions::default()) else {
///     panic!()
/// };
/// assert_eq!(problems[0].path, "events[1].name");
/// assert_eq!(problems[1].path, "events[1].timestamp");
/// ```
pub fn parse(body: &[u8], now_ms: i64, options: &IngestOptions) -> Result<Parsed, IngestError> {
    // Valid batches of the edge's shape in one borrowing pass; anything
    // else (every invalid body) through the complete parse below.
    match fast::parse(body, now_ms, options) {
        Some(parsed) => Ok(parsed),
        None => parse_slow(body, now_ms, options),
    }
}

/// [`parse`] without its fast path: every problem of the body, with its
/// path; for a valid body, the same batch as the fast path.
fn parse_slow(body: &[u8], now_ms: i64, options: &IngestOptions) -> Result<Parsed, IngestError> {
    let parsed: IngestBatch = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) if e.is_data() => return Err(locate(body, e)),
        Err(e) => return Err(IngestError::Syntax(e.to_string())),
    };
    let mut p = Problems::default();
    let max = options.max_batch_events.min(options.queue_events);
    let window = (now_ms - options.max_age_ms, now_ms + options.max_future_ms);
    match parsed.kind.as_ref() {
        EXPOSURES => {
            let Some(list) = parsed.exposures.map(Cow::into_owned) else {
                return Err(invalid("exposures", "required for kind \"exposures\""));
            };
            if list.len() > max {
                return Err(IngestError::TooLarge {
                    count: list.len(),
                    max,
                });
            }
            let mut names = Vec::new();
            let mut out = Vec::with_capacity(list.len());
            for (i, e) in list.into_iter().enumerate() {
                p.index = i;
                p.array = "exposures";
                if let Some(x) = exposure(&mut p, e, now_ms, window, &mut names) {
                    out.push(x);
                }
            }
            p.finish()?;
            Ok(Parsed {
                names,
                batch: EventBatch::Exposures(out),
            })
        }
        EVENTS => {
            let (Some(environment), Some(list)) = (
                parsed.environment.map(Cow::into_owned),
                parsed.events.map(Cow::into_owned),
            ) else {
                return Err(invalid(
                    "environment",
                    "`environment` and `events` are required for kind \"events\"",
                ));
            };
            if list.len() > max {
                return Err(IngestError::TooLarge {
                    count: list.len(),
                    max,
                });
            }
            p.array = "";
            p.text("environment", &environment, MAX_TEXT);
            p.finish()?;
            let mut out = Vec::with_capacity(list.len());
            for (i, e) in list.into_iter().enumerate() {
                p.index = i;
                p.array = "events";
                if let Some(x) = metric(&mut p, &environment, e, now_ms, window) {
                    out.push(x);
                }
            }
            p.finish()?;
            Ok(Parsed {
                names: vec![environment],
                batch: EventBatch::Metrics(out),
            })
        }
        other => Err(invalid(
            "kind",
            format!("{other:?} is not \"exposures\" or \"events\""),
        )),
    }
}

/// A validated request body whose events still name their environment the
/// way the edge does (`org/project/environment`); [`Parsed::resolve`] binds
/// them to the environments that exist, by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The distinct environment names, in order of first appearance.
    names: Vec<String>,
    /// The events; each `env_id` is the index of its name in `names`.
    batch: EventBatch,
}

impl Parsed {
    /// The distinct environment names of the batch.
    pub fn environments(&self) -> &[String] {
        &self.names
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Every place of the batch naming an environment other than `only`,
    /// with its path (`exposures[3].environment`, or `environment` for a
    /// batch of metric events): what a caller limited to environment
    /// `only` (a server SDK key) may not send.
    ///
    /// ```
    /// use bunting_origin::ingest::{parse, IngestOptions};
    /// let now = 1_764_000_000_000;
    /// let e = |env: &str| format!(r#"{{"flag": "f", "variant": "a", "bucketingKeyHash": "u",
    ///     "environment": "{env}", "snapshotVersion": 1, "time": {now}}}"#);
    /// let body = format!(r#"{{"kind": "exposures", "exposures": [{}, {}, {}]}}"#,
    ///     e("acme/web/prod"), e("globex/web/prod"), e("acme/web/prod"));
    /// let parsed = parse(body.as_bytes(), now, &IngestOptions::default()).unwrap();
    /// let outside = parsed.outside("acme/web/prod");
    /// assert_eq!(outside.len(), 1);
    /// assert_eq!(outside[0].path, "exposures[1].environment");
    /// assert!(parsed.outside("globex/web/prod").len() == 2);
    /// ```
    pub fn outside(&self, only: &str) -> Vec<Problem> {
        let foreign = |path: String, name: usize| Problem {
            entity: None,
            path,
            message: format!(
                "{:?} is not {only:?}, the only environment this SDK key may send events for",
                self.names[name]
            ),
            location: None,
        };
        match &self.batch {
            EventBatch::Exposures(rows) => rows
                .iter()
                .enumerate()
                .filter(|(_, e)| self.names[e.env_id as usize] != only)
                .map(|(i, e)| foreign(format!("exposures[{i}].environment"), e.env_id as usize))
                .collect(),
            EventBatch::Metrics(_) if self.names.first().is_some_and(|n| n != only) => {
                vec![foreign("environment".into(), 0)]
            }
            EventBatch::Metrics(_) => Vec::new(),
        }
    }

    /// Binds every event to the id its environment's name has in `found`
    /// (as [`Store::environment_ids`] answers): events of environments that
    /// do not exist are refused with their path, and then nothing of the
    /// batch is.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use bunting_origin::ingest::{parse, IngestError, IngestOptions};
    /// use bunting_origin::store::EventBatch;
    /// let now = 1_764_000_000_000;
    /// let body = format!(r#"{{"kind": "events", "environment": "acme/web/prod", "events": [
    ///     {{"name": "purchase", "targetingKeyHash": "9f0c", "timestamp": {now}}}]}}"#);
    /// let parsed = parse(body.as_bytes(), now, &IngestOptions::default()).unwrap();
    /// let Err(IngestError::Invalid(p)) = parsed.clone().resolve(&BTreeMap::new()) else { panic!() };
    /// assert_eq!(p[0].path, "environment");
    /// let found = BTreeMap::from([("acme/web/prod".to_string(), 7)]);
    /// let Ok(EventBatch::Metrics(events)) = parsed.resolve(&found) else { panic!() };
    /// assert_eq!(events[0].env_id, 7);
    /// ```
    pub fn resolve(self, found: &BTreeMap<String, i64>) -> Result<EventBatch, IngestError> {
        let ids: Vec<Option<i64>> = self.names.iter().map(|n| found.get(n).copied()).collect();
        let missing = |path: String, name: usize| Problem {
            entity: None,
            path,
            message: format!(
                "no environment {:?} (`org/project/environment`) exists",
                self.names[name]
            ),
            location: None,
        };
        let mut problems = Vec::new();
        let batch = match self.batch {
            EventBatch::Exposures(mut rows) => {
                for (i, e) in rows.iter_mut().enumerate() {
                    let name = e.env_id as usize;
                    match ids[name] {
                        Some(id) => e.env_id = id,
                        None => problems.push(missing(format!("exposures[{i}].environment"), name)),
                    }
                }
                EventBatch::Exposures(rows)
            }
            // One environment for the whole batch.
            EventBatch::Metrics(mut rows) => {
                match ids[0] {
                    Some(id) => rows.iter_mut().for_each(|e| e.env_id = id),
                    None => problems.push(missing("environment".into(), 0)),
                }
                EventBatch::Metrics(rows)
            }
        };
        if problems.is_empty() {
            Ok(batch)
        } else {
            Err(IngestError::Invalid(problems))
        }
    }
}

/// The index of `name` among the batch's environment names, added at the
/// end on its first appearance (until [`Parsed::resolve`] maps names to ids).
fn name_index<S: PartialEq>(names: &mut Vec<S>, name: S) -> usize {
    match names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

fn invalid(path: &str, message: impl Into<String>) -> IngestError {
    IngestError::Invalid(vec![Problem::new(path, message)])
}

/// The typed parse failed on a value's type or a missing field: find the
/// events at fault (slow path, only for invalid bodies).
fn locate(body: &[u8], first: serde_json::Error) -> IngestError {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return invalid("", format!("the body must be a JSON object: {first}"));
    };
    let mut problems = Vec::new();
    for (array, check) in [
        (
            "exposures",
            check::<ExposureRecord> as fn(&Value) -> Option<String>,
        ),
        ("events", check::<EventRecord>),
    ] {
        match obj.get(array) {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(m) = check(item) {
                        problems.push(Problem::new(format!("{array}[{i}]"), m));
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => problems.push(Problem::new(array, "must be an array")),
        }
    }
    for (field, ok) in [
        ("kind", obj.get("kind").is_some_and(Value::is_string)),
        (
            "environment",
            obj.get("environment")
                .is_none_or(|v| v.is_string() || v.is_null()),
        ),
    ] {
        if !ok {
            problems.push(Problem::new(field, "must be a string"));
        }
    }
    if problems.is_empty() {
        problems.push(Problem::new("", first.to_string()));
    }
    IngestError::Invalid(problems)
}

fn check<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
    T::deserialize(v).err().map(|e| e.to_string())
}

/// Problems collected while validating, with the current event's path.
#[derive(Default)]
struct Problems {
    list: Vec<Problem>,
    array: &'static str,
    index: usize,
}

impl Problems {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = if self.array.is_empty() {
            field.to_string()
        } else {
            format!("{}[{}].{field}", self.array, self.index)
        };
        self.list.push(Problem::new(path, message));
    }

    /// A required text field: 1..=max bytes, no control characters
    /// ([`text_ok`]).
    fn text(&mut self, field: &str, s: &str, max: usize) {
        if s.is_empty() || s.len() > max {
            self.push(field, format!("must have 1 to {max} bytes"));
        } else if has_control(s) {
            self.push(field, "must not contain control characters");
        }
    }

    fn opt_text(&mut self, field: &str, s: &Option<String>, max: usize) {
        if let Some(s) = s {
            self.text(field, s, max);
        }
    }

    /// A time within `(from, to)`, both included ([`in_window`]).
    fn time(&mut self, field: &str, t: i64, (from, to): (i64, i64)) {
        if t < from {
            self.push(
                field,
                format!("{t} is more than the accepted age before now ({from} or later)"),
            );
        } else if t > to {
            self.push(
                field,
                format!("{t} is too far in the future ({to} at most)"),
            );
        }
    }

    fn finish(&mut self) -> Result<(), IngestError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(IngestError::Invalid(std::mem::take(&mut self.list)))
        }
    }
}

/// Whether a required text field is valid: what [`Problems::text`]
/// accepts.
fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !has_control(s)
}

/// Whether `s` has a control character (`char::is_control`: U+0000 to
/// U+001F, U+007F to U+009F). Bytes first: only those below 0x20, 0x7F and
/// 0xC2 (the lead byte of U+0080 to U+00BF) can be part of one.
fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) && s.chars().any(char::is_control)
}

/// Whether time `t` is within `(from, to)`, both included: what
/// [`Problems::time`] accepts.
fn in_window(t: i64, (from, to): (i64, i64)) -> bool {
    from <= t && t <= to
}

fn exposure(
    p: &mut Problems,
    e: ExposureRecord,
    now_ms: i64,
    window: (i64, i64),
    names: &mut Vec<String>,
) -> Option<Exposure> {
    let before = p.list.len();
    p.text("environment", &e.environment, MAX_TEXT);
    p.text("flag", &e.flag, MAX_TEXT);
    p.text("variant", &e.variant, MAX_TEXT);
    p.text("bucketingKeyHash", &e.bucketing_key_hash, MAX_USER_KEY);
    p.opt_text("ruleId", &e.rule_id, MAX_TEXT);
    p.opt_text("reason", &e.reason, MAX_TEXT);
    p.opt_text("country", &e.country, MAX_TEXT);
    p.opt_text("deviceType", &e.device_type, MAX_TEXT);
    p.opt_text("id", &e.id, MAX_ID);
    p.time("time", e.time, window);
    let snapshot_version = match e.snapshot_version.map(i64::try_from) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            p.push("snapshotVersion", "must be at most 2^63 - 1");
            None
        }
    };
    if p.list.len() > before {
        return None;
    }
    let id = e.id.unwrap_or_else(|| {
        derive_id(
            e.time,
            &[
                "exposure",
                &e.environment,
                &e.flag,
                &e.variant,
                &e.bucketing_key_hash,
                &e.time.to_string(),
                &snapshot_version.map(|v| v.to_string()).unwrap_or_default(),
                e.rule_id.as_deref().unwrap_or_default(),
            ],
        )
    });
    // Until [`Parsed::resolve`]: the index of the environment's name.
    let env_id = name_index(names, e.environment);
    Some(Exposure {
        env_id: env_id as i64,
        id,
        flag_key: e.flag,
        variant: e.variant,
        user_key: e.bucketing_key_hash,
        time_ms: e.time,
        snapshot_version,
        rule_id: e.rule_id,
        reason: e.reason,
        country: e.country,
        device_type: e.device_type,
        received_ms: now_ms,
    })
}

fn metric(
    p: &mut Problems,
    environment: &str,
    e: EventRecord,
    now_ms: i64,
    window: (i64, i64),
) -> Option<MetricEvent> {
    let before = p.list.len();
    if let Err(problem) = check_event_name(&e.name) {
        p.push("name", problem.to_string());
    }
    p.text("targetingKeyHash", &e.targeting_key_hash, MAX_USER_KEY);
    p.opt_text("id", &e.id, MAX_ID);
    p.time("timestamp", e.timestamp, window);
    if let Some(r) = e.received_at {
        p.time("receivedAt", r, window);
    }
    if e.value.is_some_and(|v| !v.is_finite()) {
        p.push("value", "must be finite");
    }
    let properties = e.properties.map(|m| Value::Object(m).to_string());
    if let Some(s) = &properties {
        if s.len() > MAX_PROPERTIES {
            p.push(
                "properties",
                format!("must be at most {MAX_PROPERTIES} bytes of JSON"),
            );
        } else if s.contains("\\u0000") {
            p.push("properties", "must not contain NUL characters");
        }
    }
    if p.list.len() > before {
        return None;
    }
    let id = e.id.unwrap_or_else(|| {
        derive_id(
            e.timestamp,
            &[
                "event",
                environment,
                &e.name,
                &e.targeting_key_hash,
                &e.timestamp.to_string(),
                &e.value.map(|v| v.to_string()).unwrap_or_default(),
                properties.as_deref().unwrap_or_default(),
            ],
        )
    });
    Some(MetricEvent {
        // Until [`Parsed::resolve`]: the index of the environment's name.
        env_id: 0,
        id,
        name: e.name,
        user_key: e.targeting_key_hash,
        value: e.value,
        time_ms: e.timestamp,
        received_ms: e.received_at.unwrap_or(now_ms),
        properties,
    })
}

/// A deterministic id for an event at `time_ms` (Unix ms, ≥ 0) from its
/// fields: 12 lowercase hex digits of the time, then the first 10 bytes of
/// the SHA-256 of the fields joined by NUL, in hex (32 characters). The
/// time prefix makes ids of new events sort after older ones, so the
/// primary-key index grows at its end instead of at random pages.
///
/// ```
/// use bunting_origin::ingest::derive_id;
/// let id = derive_id(1_764_000_000_000, &["a", "b"]);
/// assert_eq!(id, derive_id(1_764_000_000_000, &["a", "b"]));
/// assert_ne!(id, derive_id(1_764_000_000_000, &["ab", ""]));
/// assert!(id.starts_with("019ab697e800")); // 1_764_000_000_000 in hex
/// assert_eq!(id.len(), 32);
/// ```
pub fn derive_id(time_ms: i64, fields: &[&str]) -> String {
    let mut h = IdHash(Sha256::new());
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            h.0.update([0u8]);
        }
        h.0.update(f.as_bytes());
    }
    h.finish(time_ms)
}

/// [`derive_id`] fed one field at a time, numbers hashed as they are
/// formatted (`Display`, as `to_string` gives them) without a string of
/// their own.
struct IdHash(Sha256);

impl IdHash {
    /// The hash of the first field.
    fn new(first: &str) -> IdHash {
        let mut h = Sha256::new();
        h.update(first.as_bytes());
        IdHash(h)
    }

    /// The next field.
    fn field(&mut self, s: &str) {
        self.0.update([0u8]);
        self.0.update(s.as_bytes());
    }

    /// The next field: `v` as `v.to_string()` writes it.
    fn display(&mut self, v: impl std::fmt::Display) {
        self.0.update([0u8]);
        let _ = write!(self, "{v}");
    }

    /// The id: `{time_ms.max(0):012x}` then 10 bytes of the hash in hex.
    fn finish(self, time_ms: i64) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hash = self.0.finalize();
        let t = time_ms.max(0) as u64;
        let mut id = String::with_capacity(32);
        if t >> 48 == 0 {
            for i in (0..12).rev() {
                id.push(HEX[(t >> (4 * i)) as usize & 15] as char);
            }
        } else {
            let _ = write!(id, "{t:x}"); // more than 12 digits: no padding
        }
        for b in &hash[..10] {
            id.push(HEX[(b >> 4) as usize] as char);
            id.push(HEX[(b & 15) as usize] as char);
        }
        id
    }
}

impl std::fmt::Write for IdHash {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// A batch waiting for a writer.
struct Job {
    batch: Parsed,
    done: oneshot::Sender<Result<InsertCounts, IngestError>>,
    /// Its room in the queue, given back once it is written.
    permit: OwnedSemaphorePermit,
}

struct Inner {
    store: Store,
    metrics: Arc<Metrics>,
    options: IngestOptions,
    room: Arc<Semaphore>,
    queue: mpsc::UnboundedSender<Job>,
    /// The receiving end until the writers start (on the first batch, so
    /// that creating an `Ingest` needs no runtime).
    pending: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

/// The ingestion pipeline: a bounded queue and its writer tasks. Cheap to
/// clone (one pipeline). See the [module example](self).
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("options", &self.inner.options)
            .field("queued", &self.queued())
            .finish()
    }
}

impl Ingest {
    /// A pipeline writing into `store` and counting into `metrics`. The
    /// writers start with the first batch.
    pub fn new(store: Store, metrics: Arc<Metrics>, options: IngestOptions) -> Ingest {
        let (queue, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(
            options.queue_events.min(Semaphore::MAX_PERMITS),
        ));
        Ingest {
            inner: Arc::new(Inner {
                store,
                metrics,
                options,
                room,
                queue,
                pending: Mutex::new(Some(rx)),
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &IngestOptions {
        &self.inner.options
    }

    /// Events accepted into the queue and not yet written.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::ingest::{Ingest, IngestOptions};
    /// let store = bunting_origin::store::Store::open("sqlite::memory:").await.unwrap();
    /// let ingest = Ingest::new(store, Default::default(), IngestOptions::default());
    /// assert_eq!(ingest.queued(), 0);
    /// # });
    /// ```
    pub fn queued(&self) -> usize {
        self.inner.options.queue_events - self.inner.room.available_permits()
    }

    /// Validates `body` (received at `now_ms`), queues it and waits until it
    /// is committed; counts accepted, duplicate, invalid and throttled
    /// events in the metrics.
    pub async fn ingest(&self, body: &[u8], now_ms: i64) -> Result<InsertCounts, IngestError> {
        self.ingest_for(body, now_ms, None).await
    }

    /// [`Ingest::ingest`] for a caller that may only send events of
    /// environment `only` (when `Some`: a server SDK key's edge name): a
    /// valid batch naming any other is refused whole with
    /// [`IngestError::OtherEnvironment`], before anything is queued.
    pub async fn ingest_for(
        &self,
        body: &[u8],
        now_ms: i64,
        only: Option<&str>,
    ) -> Result<InsertCounts, IngestError> {
        let m = &self.inner.metrics;
        let counted = |e: IngestError| {
            if let IngestError::Invalid(problems) = &e {
                let mut at: Vec<&str> = problems
                    .iter()
                    .map(|p| p.path.split('.').next().unwrap_or_default())
                    .collect();
                at.dedup();
                m.events_invalid.inc_by(at.len() as u64);
            }
            e
        };
        let batch = parse(body, now_ms, &self.inner.options).map_err(counted)?;
        if let Some(only) = only {
            let outside = batch.outside(only);
            if !outside.is_empty() {
                return Err(IngestError::OtherEnvironment(outside));
            }
        }
        let n = batch.len() as u64;
        match self.submit(batch).await {
            Ok(c) => {
                m.events_accepted.inc_by(c.accepted);
                m.events_duplicate.inc_by(c.duplicates);
                Ok(c)
            }
            Err(e) => {
                if matches!(e, IngestError::Overloaded { .. }) {
                    m.events_throttled.inc_by(n);
                }
                Err(counted(e))
            }
        }
    }

    /// Queues a validated batch and waits until it is committed. Refuses it
    /// at once with [`IngestError::Overloaded`] when the queue has no room;
    /// the writer refuses it ([`IngestError::Invalid`]) when it names an
    /// environment that does not exist.
    pub async fn submit(&self, batch: Parsed) -> Result<InsertCounts, IngestError> {
        let inner = &self.inner;
        if batch.is_empty() {
            return Ok(InsertCounts::default());
        }
        let n = batch.len();
        if n > inner.options.queue_events || n > u32::MAX as usize {
            return Err(IngestError::TooLarge {
                count: n,
                max: inner.options.queue_events,
            });
        }
        let permit = inner
            .room
            .clone()
            .try_acquire_many_owned(n as u32)
            .map_err(|_| IngestError::Overloaded {
                retry_after: inner.options.retry_after_seconds,
            })?;
        self.start();
        let (done, wait) = oneshot::channel();
        inner
            .queue
            .send(Job {
                batch,
                done,
                permit,
            })
            .map_err(|_| IngestError::Stopped)?;
        wait.await.map_err(|_| IngestError::Stopped)?
    }

    /// Starts the writers, once.
    fn start(&self) {
        let Some(rx) = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let writers = match (self.inner.options.writers, self.inner.store.backend()) {
            (0, Backend::Sqlite) => 1,
            (0, Backend::Postgres) => 4,
            (n, _) => n,
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(writer(
                self.inner.store.clone(),
                rx.clone(),
                self.inner.options.group_events,
            ));
        }
    }
}

/// Takes every waiting batch (up to `group` events), stores them in one
/// transaction and answers each. Ends when every [`Ingest`] is dropped.
async fn writer(
    store: Store,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>,
    group: usize,
) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut n = first.batch.len();
            jobs.push(first);
            while n < group {
                match rx.try_recv() {
                    Ok(j) => {
                        n += j.batch.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
        }
        write_group(&store, jobs).await;
    }
}

/// Resolves the jobs' environments (the distinct names of the whole group,
/// one lookup each; a job naming one that does not exist is refused alone),
/// stores the others in one transaction and answers each.
async fn write_group(store: &Store, jobs: Vec<Job>) {
    let mut names: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.batch.environments().iter().cloned())
        .collect();
    names.sort_unstable();
    names.dedup();
    let found = store.environment_ids(&names).await;
    let mut batches = Vec::with_capacity(jobs.len());
    let mut waiting = Vec::with_capacity(jobs.len());
    for j in jobs {
        let resolved = match &found {
            Ok(found) => j.batch.resolve(found),
            // The lookup failed (the database is unreachable): each job's
            // own lookup gives it an error of its own.
            Err(_) => match store.environment_ids(j.batch.environments()).await {
                Ok(found) => j.batch.resolve(&found),
                Err(e) => Err(e.into()),
            },
        };
        match resolved {
            Ok(b) => {
                batches.push(b);
                waiting.push((j.done, j.permit));
            }
            Err(e) => {
                let _ = j.done.send(Err(e));
            }
        }
    }
    if batches.is_empty() {
        return;
    }
    match store.insert_event_batches(&batches).await {
        Ok(counts) => {
            for ((done, _permit), c) in waiting.into_iter().zip(counts) {
                let _ = done.send(Ok(c));
            }
        }
        Err(e) if batches.len() == 1 => {
            tracing::warn!(error = %e, "storing an event batch failed");
            if let Some((done, _)) = waiting.pop() {
                let _ = done.send(Err(e.into()));
            }
        }
        Err(e) => {
            // One batch must not fail the others: write each alone.
            tracing::warn!(error = %e, batches = batches.len(), "storing an event group failed; retrying batch by batch");
            for ((done, _permit), b) in waiting.into_iter().zip(&batches) {
                let r = store
                    .insert_event_batches(std::slice::from_ref(b))
                    .await
                    .map(|c| c[0])
                    .map_err(IngestError::from);
                let _ = done.send(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    fn opts() -> IngestOptions {
        IngestOptions::default()
    }

    #[test]
    fn syntax_errors_are_not_validation_errors() {
        assert!(matches!(
            parse(b"{", NOW, &opts()),
            Err(IngestError::Syntax(_))
        ));
        let Err(IngestError::Invalid(p)) = parse(br#"{"kind": "nope"}"#, NOW, &opts()) else {
            panic!()
        };
        assert_eq!(p[0].path, "kind");
    }

    #[test]
    fn type_errors_name_the_event() {
        let body = format!(
            r#"{{"kind": "exposures", "exposures": [
              {{"flag": "f", "variant": "a", "bucketingKeyHash": "u", "environment": "e", "time": {NOW}}},
              {{"flag": "f", "variant": "a", "bucketingKeyHash": "u", "environment": "e", "time": "soon"}},
              {{"flag": "f", "bucketingKeyHash": "u", "environment": "e", "time": {NOW}}}]}}"#
        );
        let Err(IngestError::Invalid(p)) = parse(body.as_bytes(), NOW, &opts()) else {
            panic!()
        };
        let paths: Vec<_> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["exposures[1]", "exposures[2]"]);
        assert!(p[1].message.contains("variant"), "{}", p[1].message);
    }

    #[test]
    fn derived_ids_are_deterministic_and_field_sensitive() {
        let one = |t: i64| {
            let body = format!(
                r#"{{"kind": "exposures", "exposures": [{{"flag": "f", "variant": "a",
                   "bucketingKeyHash": "u", "environment": "e", "time": {t}}}]}}"#
            );
            match parse(body.as_bytes(), NOW, &opts()).unwrap().batch {
                EventBatch::Exposures(v) => v[0].id.clone(),
                EventBatch::Metrics(_) => unreachable!(),
            }
        };
        assert_eq!(one(NOW), one(NOW));
        assert_ne!(one(NOW), one(NOW - 1));
    }

    #[test]
    fn times_outside_the_window_are_refused() {
        let o = opts();
        for (t, ok) in [
            (NOW, true),
            (NOW + o.max_future_ms, true),
            (NOW + o.max_future_ms + 1, false),
            (NOW - o.max_age_ms, true),
            (NOW - o.max_age_ms - 1, false),
        ] {
            let body = format!(
                r#"{{"kind": "events", "environment": "e", "events": [
                   {{"name": "n", "targetingKeyHash": "u", "timestamp": {t}}}]}}"#
            );
            assert_eq!(parse(body.as_bytes(), NOW, &o).is_ok(), ok, "{t}");
        }
    }

    #[test]
    fn too_many_events_is_too_large() {
        let o = IngestOptions {
            max_batch_events: 1,
            ..opts()
        };
        let e = r#"{"name": "n", "targetingKeyHash": "u", "timestamp": 1764000000000}"#;
        let body = format!(r#"{{"kind": "events", "environment": "e", "events": [{e}, {e}]}}"#);
        assert!(matches!(
            parse(body.as_bytes(), NOW, &o),
            Err(IngestError::TooLarge { count: 2, max: 1 })
        ));
    }

    /// The fast path answers exactly what the complete parse answers for
    /// valid bodies, and leaves every other body to it.
    #[test]
    fn fast_path_agrees_with_the_complete_parse() {
        let o = opts();
        let x = |extra: &str| {
            format!(
                r#"{{"flag": "f", "variant": "a", "bucketingKeyHash": "u",
                   "environment": "acme/web/prod", "time": {NOW}{extra}}}"#
            )
        };
        let m = |extra: &str| {
            format!(r#"{{"name": "purchase", "targetingKeyHash": "u", "timestamp": {NOW}{extra}}}"#)
        };
        let valid = [
            r#"{"kind": "exposures", "exposures": []}"#.to_string(),
            format!(
                r#"{{"kind": "exposures", "exposures": [{}, {}, {}, {}]}}"#,
                x(""),
                x(r#", "snapshotVersion": 9223372036854775807, "ruleId": "r", "country": "DE""#),
                x(r#", "deviceType": "mobile", "reason": "SPLIT", "id": "x-1", "ruleId": null"#),
                x(r#", "environment2": {"a": [1, "b"]}"#)
                    .replacen(r#""flag": "f""#, r#""flag": "é€😀""#, 1)
                    .replacen(
                        r#""environment": "acme/web/prod""#,
                        r#""environment": "globex/web/prod""#,
                        1
                    ),
            ),
            // Keys in any order (`serde_json::Value` sorts them), unknown ones.
            format!(
                r#"{{"exposures": [{}], "extra": [1, {{"k": null}}], "kind": "exposures", "environment": null}}"#,
                x(r#", "snapshotVersion": 0"#)
            ),
            format!(
                r#"{{"environment": "acme/web/prod", "events": [{}, {}, {}, {}, {}], "kind": "events"}}"#,
                m(""),
                m(r#", "value": 12.5, "receivedAt": 1764000000001"#),
                m(r#", "value": 0.1, "properties": {"plan": "pro", "n": [1, 2.50, null]}"#),
                m(r#", "value": -0.0, "id": "o-1", "receivedAt": null"#),
                m(r#", "value": 1e300, "properties": {}"#),
            ),
        ];
        for body in &valid {
            let fast = fast::parse(body.as_bytes(), NOW, &o);
            let slow = parse_slow(body.as_bytes(), NOW, &o).unwrap();
            assert_eq!(fast.as_ref(), Some(&slow), "{body}");
        }
        let (golden_x, _) = golden("exposures.json");
        let (golden_m, _) = golden("events.json");
        for body in [golden_x, golden_m] {
            let fast = fast::parse(&body, GOLDEN_NOW, &o);
            assert!(fast.is_some());
            assert_eq!(fast.unwrap(), parse_slow(&body, GOLDEN_NOW, &o).unwrap());
        }
        // Left to the complete parse: valid bodies it parses alone...
        let slow_only = [
            format!(
                r#"{{"kind": "exposures", "exposures": [{}]}}"#,
                x(r#", "country": "D\u0045""#)
            ),
            format!(
                r#"{{"kind": "events", "events": [{}], "environment": "e"}}"#,
                m("")
            ),
            format!(
                r#"{{"kind": "events", "environment": "e", "events": [{}], "exposures": []}}"#,
                m("")
            ),
        ];
        for body in &slow_only {
            assert!(fast::parse(body.as_bytes(), NOW, &o).is_none(), "{body}");
            assert!(parse(body.as_bytes(), NOW, &o).is_ok(), "{body}");
        }
        // ...and every invalid one.
        let invalid = [
            format!(
                r#"{{"kind": "exposures", "exposures": [{}]}}"#,
                x(r#", "country": """#)
            ),
            format!(
                r#"{{"kind": "exposures", "exposures": [{}]}}"#,
                x(r#", "snapshotVersion": 9223372036854775808"#)
            ),
            format!(
                r#"{{"kind": "exposures", "exposures": [{}]}}"#,
                x(", \"deviceType\": \"\u{85}\"")
            ),
            format!(
                r#"{{"kind": "events", "environment": "e", "events": [{}]}}"#,
                m(r#", "receivedAt": 0"#)
            ),
            format!(
                r#"{{"kind": "events", "environment": "", "events": [{}]}}"#,
                m("")
            ),
            format!(
                r#"{{"kind": "events", "environment": "e", "exposures": [{}]}}"#,
                x("")
            ),
            r#"{"kind": "exposures", "kind": "exposures", "exposures": []}"#.to_string(),
            r#"{"kind": "exposures", "exposures": []} x"#.to_string(),
        ];
        for body in &invalid {
            assert!(fast::parse(body.as_bytes(), NOW, &o).is_none(), "{body}");
            assert!(parse(body.as_bytes(), NOW, &o).is_err(), "{body}");
        }
        let not_utf8 = b"{\"kind\": \"events\", \"environment\": \"e\xff\", \"events\": []}";
        assert!(fast::parse(not_utf8, NOW, &o).is_none());
        assert!(matches!(
            parse(not_utf8, NOW, &o),
            Err(IngestError::Syntax(_))
        ));
        let one = IngestOptions {
            max_batch_events: 1,
            ..opts()
        };
        let two = format!(
            r#"{{"kind": "exposures", "exposures": [{}, {}]}}"#,
            x(""),
            x("")
        );
        assert!(fast::parse(two.as_bytes(), NOW, &one).is_none());
        assert!(matches!(
            parse(two.as_bytes(), NOW, &one),
            Err(IngestError::TooLarge { count: 2, max: 1 })
        ));
    }

    #[test]
    fn id_hash_is_derive_id() {
        for t in [0, -5, 1, NOW, (1 << 48) - 1, 1 << 48, i64::MAX] {
            for v in [0.0, -0.0, 0.1, 12.5, 1e21, 1e-7, f64::MAX] {
                let mut h = IdHash::new("event");
                h.field("env");
                h.display(t);
                h.display(v);
                h.field("");
                let want = derive_id(t, &["event", "env", &t.to_string(), &v.to_string(), ""]);
                assert_eq!(h.finish(t), want);
            }
        }
        assert!(has_control("a\u{85}") && has_control("\u{7f}") && has_control("\n"));
        assert!(!has_control("é¢ÿ€😀 ~") && !has_control("\u{a0}"));
    }

    /// The golden batches the edge sends (`wire/tests/data/`, checked
    /// against the edge in `edge-worker/src/ingest.rs`): every field is
    /// accepted and lands in its column.
    fn golden(name: &str) -> (Vec<u8>, IngestBatch<'static>) {
        let path = format!("{}/../wire/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read(&path).unwrap();
        let sent = serde_json::from_slice(&text).unwrap();
        (text, sent)
    }

    /// When the golden batches were received (their events' `receivedAt`).
    const GOLDEN_NOW: i64 = 1_764_000_000_123;

    #[test]
    fn golden_exposure_batch() {
        let (text, sent) = golden("exposures.json");
        let parsed = parse(&text, GOLDEN_NOW, &opts()).unwrap();
        assert_eq!(parsed.environments(), ["acme/web/production"]);
        let EventBatch::Exposures(rows) = parsed.batch else {
            panic!("not exposures")
        };
        let sent = sent.exposures.unwrap();
        assert_eq!(rows.len(), sent.len());
        for (row, e) in rows.iter().zip(sent.iter()) {
            assert_eq!(row.env_id, 0);
            assert_eq!(row.flag_key, e.flag);
            assert_eq!(row.variant, e.variant);
            assert_eq!(row.user_key, e.bucketing_key_hash);
            assert_eq!(row.time_ms, e.time);
            assert_eq!(row.snapshot_version, e.snapshot_version.map(|v| v as i64));
            assert!(row.snapshot_version.is_some());
            assert_eq!(row.rule_id, e.rule_id);
            assert_eq!(row.country, e.country);
            assert_eq!(row.device_type, e.device_type);
            assert_eq!(row.reason, None);
            assert_eq!(row.id.len(), 32); // derived
            assert_eq!(row.received_ms, GOLDEN_NOW);
        }
        assert!(rows[0].rule_id.is_some() && rows[0].country.is_some());
    }

    #[test]
    fn golden_event_batch() {
        let (text, sent) = golden("events.json");
        let parsed = parse(&text, GOLDEN_NOW, &opts()).unwrap();
        assert_eq!(parsed.environments(), ["acme/web/production"]);
        let EventBatch::Metrics(rows) = parsed.batch else {
            panic!("not metric events")
        };
        let sent = sent.events.unwrap();
        assert_eq!(rows.len(), sent.len());
        for (row, e) in rows.iter().zip(sent.iter()) {
            assert_eq!(row.name, e.name);
            assert_eq!(row.user_key, e.targeting_key_hash);
            assert_eq!(row.value, e.value);
            assert_eq!(row.time_ms, e.timestamp);
            assert_eq!(Some(row.received_ms), e.received_at);
            assert_eq!(Some(&row.id), e.id.as_ref());
            assert_eq!(row.properties, None);
        }
        assert_eq!(rows[0].value, Some(12.5));
    }
}
