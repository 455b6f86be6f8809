//! The strongly consistent pointer of each environment: a Durable Object
//! (`SnapshotPointer`, one per environment, `idFromName(environment)`)
//! holding the latest published snapshot, updated by the origin after each
//! publish (`POST /edge/v1/snapshot`, authenticated with the
//! `POINTER_SECRET` secret).
//!
//! KV stays the store the isolates load from at the TTL; the pointer is
//! what makes a change visible before KV has propagated it: an isolate
//! asks its environment's object at most every `POINTER_CHECK_SECONDS`
//! (coalesced: one question in flight per environment and isolate), telling
//! it the version it serves; the object answers `204` when it has nothing
//! newer, else the newer snapshot. An isolate never serves a version older
//! than one it served ([`crate::cache`]) and, when the object cannot be
//! reached, keeps serving and refreshing from KV.
//!
//! A published snapshot is a value of the form a KV value has: its packed
//! form ([`bunting_core::packed`], told by [`packed::MAGIC`]), or with the
//! `json-snapshots` feature its JSON text too. The object keeps the bytes
//! as published and answers with them; an isolate loads an answer as it
//! loads a KV value ([`crate::cache::load_value`]). Without the feature, a
//! JSON publish is refused (400, [`PublishError::NotPacked`]), and a JSON
//! text an object still holds from an older worker is not sent to isolates
//! ([`HOLDS_JSON_STATUS`]). Every answer of the publish route carries
//! [`FORMS_HEADER`], so the origin knows the worker reads packed values
//! and does not fall back to JSON on a 400.
//!
//! This module is the pure part: the object's state transition
//! ([`Pointer`]), the isolates' gate ([`Gate`]) and the wire format.

use bunting_core::{ParsedSnapshot, packed};
use serde::Deserialize;
use thiserror::Error;

/// The worker route the origin publishes snapshots to.
pub const PUBLISH_PATH: &str = "/edge/v1/snapshot";

/// The header carrying a snapshot's version between the worker and the
/// object (and in the publish answer).
pub const VERSION_HEADER: &str = "X-Bunting-Version";

/// The query parameter with which an isolate asks its environment's
/// object for a packed value without its JSON text (`tables=1`): the
/// tables are all it loads its engine from ([`crate::cache::SnapshotCache::apply_pointer`]).
pub const TABLES_PARAM: &str = "tables";

/// Default seconds between two questions of one isolate to one
/// environment's object.
pub const DEFAULT_CHECK_SECONDS: f64 = 0.5;

/// A question in flight for longer than this (ms) is taken as lost (its
/// task was cancelled) and may be asked again.
pub const STALE_QUESTION_MS: i64 = 3_000;

/// The largest snapshot the publish route accepts (KV's value limit).
pub const MAX_SNAPSHOT_BYTES: usize = 25 * 1024 * 1024;

/// The header of the publish route's answers naming the snapshot forms the
/// worker reads ([`FORMS`]): a worker that predates it takes JSON texts
/// only, and the origin sends one after its 400 to a packed value.
pub const FORMS_HEADER: &str = "X-Bunting-Snapshot-Forms";

/// The value of [`FORMS_HEADER`]: `packed-2` for packed values of format
/// version 2 ([`packed::FORMAT_VERSION`], conditions precompiled), which
/// every build reads; `packed` (version 1) and `json` only with the
/// `json-snapshots` feature, which brings the rule parser. A worker from
/// before version 2 says `packed` alone, and the origin sends it version 1.
pub const FORMS: &str = if cfg!(feature = "json-snapshots") {
    "packed-2, packed, json"
} else {
    "packed-2"
};

/// The status an object answers an isolate with instead of a JSON text it
/// holds (published through an older worker), which a worker without the
/// `json-snapshots` feature does not read: the text is not sent again and
/// again; the isolate reports [`holds_json`].
pub const HOLDS_JSON_STATUS: u16 = 409;

/// What an isolate reports when its environment's object holds a JSON
/// text ([`HOLDS_JSON_STATUS`]).
pub fn holds_json() -> String {
    format!(
        "the pointer holds a JSON snapshot text, which this worker does not read; {}",
        crate::cache::REPUBLISH_PACKED
    )
}

/// Why a published snapshot is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PublishError {
    /// Not a JSON object with a string `environment` and an integer
    /// `version` ≥ 0, nor a packed snapshot that reads
    /// ([`ParsedSnapshot::from_packed`]) with a non-empty environment.
    #[error("not a snapshot: {0}")]
    NotASnapshot(String),
    /// Neither packed nor UTF-8: no JSON text.
    #[error("the snapshot is not UTF-8")]
    NotUtf8,
    /// Not packed, and the worker reads packed values only (built without
    /// the `json-snapshots` feature): [`crate::cache::not_packed`] says why.
    #[error("{0}")]
    NotPacked(String),
    /// The snapshot does not load ([`crate::cache::load`],
    /// [`crate::cache::load_packed`]).
    #[error("{0}")]
    Rejected(String),
    /// Larger than [`MAX_SNAPSHOT_BYTES`].
    #[error("the snapshot is {0} bytes, more than the {MAX_SNAPSHOT_BYTES} accepted")]
    TooLarge(usize),
}

/// A published snapshot's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Its environment (the object's name).
    pub environment: String,
    /// Its version.
    pub version: u64,
}

/// Whether a snapshot value is the packed form (it starts with
/// [`packed::MAGIC`], which no JSON text does).
///
/// ```
/// use bunting_edge_worker::pointer::is_packed;
/// assert!(is_packed(b"BSNP\x00\x01"));
/// assert!(!is_packed(b"{}"));
/// ```
pub fn is_packed(value: &[u8]) -> bool {
    value.starts_with(&packed::MAGIC)
}

/// Checks a snapshot value published by the origin: a packed one
/// ([`is_packed`]) as [`validate_packed`] does; anything else is refused
/// ([`PublishError::NotPacked`]), or with the `json-snapshots` feature
/// checked as a JSON text ([`validate`], [`PublishError::NotUtf8`] if it
/// is not UTF-8).
///
/// ```
/// use bunting_edge_worker::pointer::{PublishError, validate_value};
/// let text = br#"{"schemaVersion": 1, "environment": "acme/web/prod", "version": 7,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#;
/// # #[cfg(not(feature = "json-snapshots"))]
/// assert!(matches!(validate_value(text), Err(PublishError::NotPacked(m)) if m.contains("is JSON")));
/// # #[cfg(feature = "json-snapshots")]
/// assert_eq!(validate_value(text).unwrap().version, 7);
/// ```
pub fn validate_value(value: &[u8]) -> Result<Published, PublishError> {
    if value.len() > MAX_SNAPSHOT_BYTES {
        return Err(PublishError::TooLarge(value.len()));
    }
    if is_packed(value) {
        validate_packed(value)
    } else {
        validate_text(value)
    }
}

/// [`validate_value`] of a value that is not packed: a JSON text.
#[cfg(feature = "json-snapshots")]
fn validate_text(value: &[u8]) -> Result<Published, PublishError> {
    validate(std::str::from_utf8(value).map_err(|_| PublishError::NotUtf8)?)
}

/// [`validate_value`] of a value that is not packed: refused.
#[cfg(not(feature = "json-snapshots"))]
fn validate_text(value: &[u8]) -> Result<Published, PublishError> {
    Err(PublishError::NotPacked(crate::cache::not_packed(value)))
}

/// Checks a packed snapshot published by the origin: its environment and
/// version as the packed reader gives them, and that the edge loads it
/// ([`crate::cache::load_packed`]: it must carry its JSON text).
pub fn validate_packed(bytes: &[u8]) -> Result<Published, PublishError> {
    if bytes.len() > MAX_SNAPSHOT_BYTES {
        return Err(PublishError::TooLarge(bytes.len()));
    }
    let (environment, version) = {
        let parsed = ParsedSnapshot::from_packed(bytes)
            .map_err(|e| PublishError::NotASnapshot(e.to_string()))?;
        (parsed.environment().to_string(), parsed.version())
    };
    if environment.is_empty() {
        return Err(PublishError::NotASnapshot("`environment` is empty".into()));
    }
    crate::cache::load_packed(&environment, bytes).map_err(PublishError::Rejected)?;
    Ok(Published {
        environment,
        version,
    })
}

/// Checks a snapshot text published by the origin: its environment and
/// version, and that the edge can load it (the pointer must never hand
/// isolates something they refuse).
///
/// ```
/// use bunting_edge_worker::pointer::validate;
/// let text = r#"{"schemaVersion": 1, "environment": "acme/web/prod", "version": 7,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": []}"#;
/// let p = validate(text).unwrap();
/// assert_eq!((p.environment.as_str(), p.version), ("acme/web/prod", 7));
/// assert!(validate("{}").is_err());
/// ```
pub fn validate(text: &str) -> Result<Published, PublishError> {
    if text.len() > MAX_SNAPSHOT_BYTES {
        return Err(PublishError::TooLarge(text.len()));
    }
    #[derive(Deserialize)]
    struct Head {
        environment: String,
        version: u64,
    }
    let head: Head = serde_json::from_str(text).map_err(|e| {
        PublishError::NotASnapshot(format!(
            "{e} (a string `environment` and a non-negative integer `version` are required)"
        ))
    })?;
    if head.environment.is_empty() {
        return Err(PublishError::NotASnapshot("`environment` is empty".into()));
    }
    crate::cache::load(&head.environment, text).map_err(PublishError::Rejected)?;
    Ok(Published {
        environment: head.environment,
        version: head.version,
    })
}

/// What the object holds: the latest snapshot published to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pointer {
    /// The latest version and its value as published (a JSON text or a
    /// packed snapshot, [`is_packed`]); `None` before the first publish.
    pub latest: Option<(u64, Vec<u8>)>,
}

/// The outcome of [`Pointer::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newer than what the object held: stored.
    Stored,
    /// The same version again (a retried publish): nothing changes.
    Same,
    /// Older than what the object holds: ignored (the pointer never goes
    /// back, as isolates never do).
    Older {
        /// The version the object keeps.
        current: u64,
    },
}

impl Pointer {
    /// Applies a publish of `version`. A packed value of the version held
    /// as a JSON text replaces it (a republish after an upgrade to packed
    /// values): isolates read the packed one.
    ///
    /// ```
    /// use bunting_edge_worker::pointer::{Outcome, Pointer};
    /// let mut p = Pointer::default();
    /// assert_eq!(p.publish(2, b"v2".to_vec()), Outcome::Stored);
    /// assert_eq!(p.publish(2, b"v2".to_vec()), Outcome::Same);
    /// assert_eq!(p.publish(1, b"v1".to_vec()), Outcome::Older { current: 2 });
    /// assert_eq!(p.newer_than(Some(1)), Some((2, &b"v2"[..])));
    /// assert_eq!(p.newer_than(Some(2)), None);
    /// ```
    pub fn publish(&mut self, version: u64, value: Vec<u8>) -> Outcome {
        match &self.latest {
            Some((v, held)) if *v == version && (is_packed(held) || !is_packed(&value)) => {
                Outcome::Same
            }
            Some((v, _)) if *v > version => Outcome::Older { current: *v },
            _ => {
                self.latest = Some((version, value));
                Outcome::Stored
            }
        }
    }

    /// The snapshot value to send an isolate serving version `have`
    /// (`None`: nothing served yet): the latest, if it is newer.
    pub fn newer_than(&self, have: Option<u64>) -> Option<(u64, &[u8])> {
        let (v, value) = self.latest.as_ref()?;
        (have.is_none_or(|h| *v > h)).then_some((*v, value.as_slice()))
    }
}

/// Whether the object stores `value` as a JSON text (strings under
/// `snapshot:` keys, as every version of the object stored texts, so a
/// worker rolled back still reads them) rather than as bytes (under
/// `packed:` keys): a packed snapshot, or anything not UTF-8 (never
/// published, but never lost either), is bytes. The object's
/// `storeValue` (`pointer_storage.mjs`) cuts a text between characters.
///
/// ```
/// use bunting_edge_worker::pointer::stored_as_text;
/// assert!(stored_as_text(b"{\"a\":1}"));
/// assert!(stored_as_text(b""));
/// assert!(!stored_as_text(b"BSNP\x01"));
/// assert!(!stored_as_text(b"\xff\xfe"));
/// ```
pub fn stored_as_text(value: &[u8]) -> bool {
    !is_packed(value) && std::str::from_utf8(value).is_ok()
}

/// The `have` query parameter: the version an isolate serves.
///
/// ```
/// use bunting_edge_worker::pointer::parse_have;
/// assert_eq!(parse_have(Some("12")), Some(12));
/// assert_eq!(parse_have(Some("-1")), None);
/// assert_eq!(parse_have(None), None);
/// ```
pub fn parse_have(v: Option<&str>) -> Option<u64> {
    v?.trim().parse().ok()
}

/// One environment's questions from this isolate.
#[derive(Debug, Clone, Default)]
struct EnvGate {
    last_ms: Option<i64>,
    in_flight: bool,
    last_error: Option<String>,
    asked: u64,
}

/// Which environments this isolate should ask their object about now: at
/// most one question per environment every interval, never two at once.
#[derive(Debug, Default)]
pub struct Gate {
    envs: crate::cache::EnvMap<EnvGate>,
}

impl Gate {
    /// Whether to ask about `environment` now; when it answers `true`, the
    /// question counts as started (call [`Gate::done`] when it ends).
    ///
    /// ```
    /// use bunting_edge_worker::pointer::Gate;
    /// let mut g = Gate::default();
    /// assert!(g.start("p", 0, 500));
    /// assert!(!g.start("p", 1000, 500), "one question at a time");
    /// g.done("p", Ok(()));
    /// assert!(!g.start("p", 499, 500));
    /// assert!(g.start("p", 500, 500));
    /// ```
    pub fn start(&mut self, environment: &str, now_ms: i64, interval_ms: i64) -> bool {
        let g = self.envs.entry(environment);
        if g.in_flight
            && g.last_ms
                .is_some_and(|at| now_ms >= at && now_ms - at < STALE_QUESTION_MS)
        {
            return false;
        }
        let due = match g.last_ms {
            None => true,
            Some(at) => now_ms - at >= interval_ms || now_ms < at,
        };
        if due {
            g.in_flight = true;
            g.last_ms = Some(now_ms);
            g.asked += 1;
        }
        due
    }

    /// Ends the question about `environment`, with its error if it failed.
    /// Answers the error when it is news — not the one the previous
    /// question ended with — for the caller to log once, as refused KV
    /// values are (a pointer asked every half second would otherwise log
    /// the same refusal twice a second).
    ///
    /// ```
    /// use bunting_edge_worker::pointer::Gate;
    /// let mut g = Gate::default();
    /// assert!(g.start("p", 0, 0));
    /// assert_eq!(g.done("p", Err("refused".into())), Some("refused".into()));
    /// assert!(g.start("p", 1, 0));
    /// assert_eq!(g.done("p", Err("refused".into())), None, "the same error");
    /// assert!(g.start("p", 2, 0));
    /// assert_eq!(g.done("p", Ok(())), None);
    /// assert!(g.start("p", 3, 0));
    /// assert_eq!(g.done("p", Err("refused".into())), Some("refused".into()), "again after a success");
    /// ```
    pub fn done(&mut self, environment: &str, result: Result<(), String>) -> Option<String> {
        let g = self.envs.get_mut(environment)?;
        g.in_flight = false;
        let error = result.err();
        let news = error
            .as_ref()
            .filter(|e| g.last_error.as_ref() != Some(e))
            .cloned();
        g.last_error = error;
        news
    }

    /// `/healthz` details: per environment, questions asked and the last
    /// error.
    pub fn health(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, g) in self.envs.iter() {
            m.insert(
                name.to_string(),
                crate::health::object(vec![
                    ("checks", serde_json::Value::from(g.asked)),
                    ("lastError", serde_json::Value::from(g.last_error.clone())),
                ]),
            );
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAP: &str = r#"{"schemaVersion": 1, "environment": "p", "version": 3,
        "generatedAt": "2026-11-25T00:00:00Z",
        "flags": [{"key": "f", "type": "boolean", "variants": {"on": true, "off": false},
                   "offVariant": "off", "fallthrough": {"variant": "on"}}]}"#;

    #[test]
    fn validate_names_the_problem() {
        assert_eq!(
            validate(SNAP).unwrap(),
            Published {
                environment: "p".into(),
                version: 3
            }
        );
        for (bad, needle) in [
            ("not json", "not a snapshot"),
            (r#"{"environment": "p"}"#, "version"),
            (r#"{"environment": "p", "version": -1}"#, "version"),
            (r#"{"environment": "", "version": 1}"#, "empty"),
        ] {
            let e = validate(bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let wrong_schema = SNAP.replace("\"schemaVersion\": 1", "\"schemaVersion\": 9");
        assert!(matches!(
            validate(&wrong_schema),
            Err(PublishError::Rejected(_))
        ));
    }

    /// `text` packed, carrying `text`.
    fn packed(text: &str) -> Vec<u8> {
        packed::pack_with_document(&ParsedSnapshot::parse(text).unwrap(), text).unwrap()
    }

    #[test]
    fn a_packed_snapshot_is_validated_as_its_json_is() {
        let value = packed(SNAP);
        let p = Published {
            environment: "p".into(),
            version: 3,
        };
        assert_eq!(validate_packed(&value).unwrap(), p);
        assert_eq!(validate_value(&value).unwrap(), p);
        if cfg!(feature = "json-snapshots") {
            assert_eq!(validate_value(SNAP.as_bytes()).unwrap(), p);
        } else {
            // A JSON text: refused, with what to do.
            let e = validate_value(SNAP.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, PublishError::NotPacked(m) if m.contains("is JSON")),
                "{e}"
            );
            assert!(
                e.to_string().contains("bunting publish` or `bunting serve"),
                "{e}"
            );
        }
        // Damaged or cut short: not a snapshot, named by the packed reader.
        let mut damaged = value.clone();
        let at = damaged.len() - SNAP.len() - 1; // the last byte of the packed part
        damaged[at] ^= 0x55;
        let mut cut = value.clone();
        cut.truncate(40);
        for bad in [damaged, cut] {
            let e = validate_value(&bad).unwrap_err();
            assert!(matches!(e, PublishError::NotASnapshot(_)), "{e}");
            assert!(e.to_string().contains("packed snapshot"), "{e}");
        }
        // Packed without its JSON text: nothing to serve /sdk/v1/snapshot.
        let bare = packed::pack(&ParsedSnapshot::parse(SNAP).unwrap()).unwrap();
        let e = validate_value(&bare).unwrap_err();
        assert!(
            matches!(&e, PublishError::Rejected(m) if m.contains("no JSON document")),
            "{e}"
        );
        // A document-level problem rejects the packed form as the JSON.
        let wrong_env = SNAP.replace("\"environment\": \"p\"", "\"environment\": \"\"");
        assert!(matches!(
            validate_value(&packed(&wrong_env)),
            Err(PublishError::NotASnapshot(_))
        ));
        // Neither packed nor UTF-8.
        let not_utf8 = validate_value(b"{\xff}").unwrap_err();
        if cfg!(feature = "json-snapshots") {
            assert_eq!(not_utf8, PublishError::NotUtf8);
        } else {
            assert!(matches!(not_utf8, PublishError::NotPacked(_)), "{not_utf8}");
        }
        assert_eq!(
            validate_value(&vec![b' '; MAX_SNAPSHOT_BYTES + 1]),
            Err(PublishError::TooLarge(MAX_SNAPSHOT_BYTES + 1))
        );
    }

    #[test]
    fn the_pointer_never_goes_back() {
        let mut p = Pointer::default();
        assert_eq!(p.newer_than(None), None);
        assert_eq!(p.publish(5, b"v5".to_vec()), Outcome::Stored);
        assert_eq!(p.newer_than(None), Some((5, &b"v5"[..])));
        assert_eq!(p.newer_than(Some(4)), Some((5, &b"v5"[..])));
        assert_eq!(p.newer_than(Some(6)), None);
        assert_eq!(p.publish(4, b"v4".to_vec()), Outcome::Older { current: 5 });
        assert_eq!(p.publish(6, b"v6".to_vec()), Outcome::Stored);
        assert_eq!(p.newer_than(Some(5)), Some((6, &b"v6"[..])));
    }

    #[test]
    fn the_pointer_holds_a_packed_value_as_published() {
        let mut p = Pointer::default();
        assert_eq!(p.publish(3, SNAP.as_bytes().to_vec()), Outcome::Stored);
        let v4 = packed(&SNAP.replace("\"version\": 3", "\"version\": 4"));
        assert_eq!(p.publish(4, v4.clone()), Outcome::Stored);
        let (version, sent) = p.newer_than(Some(3)).unwrap();
        assert_eq!((version, sent), (4, v4.as_slice()));
        // What the isolates get loads as the packed form.
        let (_, text, format) = crate::cache::load_value("p", sent.to_vec()).unwrap();
        assert_eq!(format, crate::cache::Format::Packed);
        assert!(text.contains("\"version\": 4"));
        // A JSON retry of the same version changes nothing.
        assert_eq!(p.publish(4, SNAP.as_bytes().to_vec()), Outcome::Same);
        assert_eq!(p.newer_than(None).unwrap().1, v4.as_slice());
    }

    #[test]
    fn a_packed_republish_replaces_the_json_text_of_its_version() {
        // Held since an older worker stored it.
        let mut p = Pointer {
            latest: Some((3, SNAP.as_bytes().to_vec())),
        };
        let v3 = packed(SNAP);
        assert_eq!(p.publish(3, v3.clone()), Outcome::Stored);
        assert_eq!(p.newer_than(Some(2)), Some((3, v3.as_slice())));
        assert_eq!(p.publish(3, v3.clone()), Outcome::Same);
        assert_eq!(p.publish(2, packed(SNAP)), Outcome::Older { current: 3 });
        assert!(holds_json().contains("bunting publish` or `bunting serve"));
    }

    #[test]
    fn the_gate_coalesces_and_paces() {
        let mut g = Gate::default();
        assert!(g.start("a", 100, 1000));
        assert!(g.start("b", 100, 1000), "environments are independent");
        assert!(!g.start("a", 2000, 1000));
        // A question never answered (its task cancelled) is asked again later.
        assert!(g.start("a", 100 + STALE_QUESTION_MS, 1000));
        assert!(!g.start("a", 100 + STALE_QUESTION_MS, 1000));
        g.done("a", Err("unreachable".into()));
        assert_eq!(g.health()["a"]["lastError"], "unreachable");
        assert!(g.start("a", 20_000, 1000));
        g.done("a", Ok(()));
        assert_eq!(g.health()["a"]["checks"], 3);
        assert!(g.health()["a"]["lastError"].is_null());
        // A clock going back does not stall the checks.
        assert!(g.start("a", 10, 1000));
    }
}
