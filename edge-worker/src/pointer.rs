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
//! This module is the pure part: the object's state transition
//! ([`Pointer`]), the isolates' gate ([`Gate`]) and the wire format.

use serde::Deserialize;
use thiserror::Error;

/// The worker route the origin publishes snapshots to.
pub const PUBLISH_PATH: &str = "/edge/v1/snapshot";

/// The header carrying a snapshot's version between the worker and the
/// object (and in the publish answer).
pub const VERSION_HEADER: &str = "X-Bunting-Version";

/// Default seconds between two questions of one isolate to one
/// environment's object.
pub const DEFAULT_CHECK_SECONDS: f64 = 0.5;

/// A question in flight for longer than this (ms) is taken as lost (its
/// task was cancelled) and may be asked again.
pub const STALE_QUESTION_MS: i64 = 3_000;

/// The largest snapshot the publish route accepts (KV's value limit).
pub const MAX_SNAPSHOT_BYTES: usize = 25 * 1024 * 1024;

/// Why a published snapshot is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PublishError {
    /// Not a JSON object with a string `environment` and an integer
    /// `version` ≥ 0.
    #[error("not a snapshot: {0}")]
    NotASnapshot(String),
    /// The snapshot does not load ([`crate::cache::load`]).
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
    /// The latest version and its text; `None` before the first publish.
    pub latest: Option<(u64, String)>,
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
    /// Applies a publish of `version`.
    ///
    /// ```
    /// use bunting_edge_worker::pointer::{Outcome, Pointer};
    /// let mut p = Pointer::default();
    /// assert_eq!(p.publish(2, "v2".into()), Outcome::Stored);
    /// assert_eq!(p.publish(2, "v2".into()), Outcome::Same);
    /// assert_eq!(p.publish(1, "v1".into()), Outcome::Older { current: 2 });
    /// assert_eq!(p.newer_than(Some(1)), Some((2, "v2")));
    /// assert_eq!(p.newer_than(Some(2)), None);
    /// ```
    pub fn publish(&mut self, version: u64, text: String) -> Outcome {
        match &self.latest {
            Some((v, _)) if *v == version => Outcome::Same,
            Some((v, _)) if *v > version => Outcome::Older { current: *v },
            _ => {
                self.latest = Some((version, text));
                Outcome::Stored
            }
        }
    }

    /// The snapshot to send an isolate serving version `have` (`None`:
    /// nothing served yet): the latest, if it is newer.
    pub fn newer_than(&self, have: Option<u64>) -> Option<(u64, &str)> {
        let (v, text) = self.latest.as_ref()?;
        (have.is_none_or(|h| *v > h)).then_some((*v, text.as_str()))
    }
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
    pub fn done(&mut self, environment: &str, result: Result<(), String>) {
        if let Some(g) = self.envs.get_mut(environment) {
            g.in_flight = false;
            g.last_error = result.err();
        }
    }

    /// `/healthz` details: per environment, questions asked and the last
    /// error.
    pub fn health(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (name, g) in self.envs.iter() {
            m.insert(
                name.to_string(),
                serde_json::json!({"checks": g.asked, "lastError": g.last_error}),
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

    #[test]
    fn the_pointer_never_goes_back() {
        let mut p = Pointer::default();
        assert_eq!(p.newer_than(None), None);
        assert_eq!(p.publish(5, "v5".into()), Outcome::Stored);
        assert_eq!(p.newer_than(None), Some((5, "v5")));
        assert_eq!(p.newer_than(Some(4)), Some((5, "v5")));
        assert_eq!(p.newer_than(Some(6)), None);
        assert_eq!(p.publish(4, "v4".into()), Outcome::Older { current: 5 });
        assert_eq!(p.publish(6, "v6".into()), Outcome::Stored);
        assert_eq!(p.newer_than(Some(5)), Some((6, "v6")));
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
