//! What one tenant may store: bounds on each environment's snapshot, so that
//! no tenant can make its own writes — and, through the writes it delays,
//! other tenants' — arbitrarily slow, nor publish a snapshot the edge cannot
//! load quickly.
//!
//! Every write that changes what an environment serves rebuilds and
//! validates that environment's snapshot before it commits
//! ([`crate::store`]); [`check`] measures the snapshot's canonical JSON
//! there, per flag, per segment and in total, and a write that would exceed
//! a bound is refused with [`StoreError::TooLarge`](super::StoreError::TooLarge) (HTTP 413) naming each
//! offender. Nothing is stored.
//!
//! ```
//! use bunting_origin::store::limits::{check, MAX_FLAG_BYTES};
//! let mut s = bunting_core::snapshot::parse_json(r#"{"schemaVersion":1,"environment":"a/b/c",
//!     "version":1,"generatedAt":"2026-01-01T00:00:00Z","flags":[]}"#).unwrap();
//! assert!(check(&s).is_ok());
//! let mut flag: bunting_core::Flag = serde_json::from_value(serde_json::json!({
//!     "key": "big", "type": "string", "variants": {"a": "x".repeat(MAX_FLAG_BYTES)},
//!     "offVariant": "a", "enabled": true, "fallthrough": {"variant": "a"}})).unwrap();
//! s.flags.push(flag);
//! let problems = check(&s).unwrap_err();
//! assert_eq!(problems[0].entity.as_deref(), Some("big"));
//! ```

use std::io::Write;

use bunting_core::Snapshot;
use serde::Serialize;

use super::Problem;

/// Largest flag in a snapshot (its variants, rules, fallthrough and
/// prerequisites in one environment), as compact JSON: 256 KiB.
pub const MAX_FLAG_BYTES: usize = 256 * 1024;
/// Largest segment (its included and excluded keys and condition): 1 MiB.
pub const MAX_SEGMENT_BYTES: usize = 1024 * 1024;
/// Largest snapshot of one environment: 4 MiB of compact JSON (the edge
/// loads it into every isolate; Cloudflare KV's own limit is 25 MiB).
pub const MAX_SNAPSHOT_BYTES: usize = 4 * 1024 * 1024;
/// Most flags in one project (each environment's snapshot has them all).
pub const MAX_FLAGS: usize = 5_000;
/// Most segments in one environment.
pub const MAX_SEGMENTS: usize = 1_000;

/// Counts the bytes serde writes.
#[derive(Default)]
struct Count(usize);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn size<T: Serialize>(v: &T) -> usize {
    let mut c = Count::default();
    serde_json::to_writer(&mut c, v).expect("serializing to a counter cannot fail");
    c.0
}

fn kib(n: usize) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

/// The problems of `snapshot` against the bounds above (every offender
/// named), or `Ok` when it is within them. Paths are relative to the
/// snapshot (`flags`, `segments`, `snapshot`).
pub fn check(snapshot: &Snapshot) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut total = 0;
    // Each entity's size against its bound, into the total.
    let mut entity = |kind: &str, key: &str, n: usize, max: usize| {
        total += n;
        if n > max {
            problems.push(Problem {
                entity: Some(key.to_string()),
                path: kind.into(),
                message: format!(
                    "{kind} {key:?} would take {} as JSON in this environment; at most {}",
                    kib(n),
                    kib(max)
                ),
                location: None,
            });
        }
    };
    for f in &snapshot.flags {
        entity("flag", &f.key, size(f), MAX_FLAG_BYTES);
    }
    for s in &snapshot.segments {
        entity("segment", &s.key, size(s), MAX_SEGMENT_BYTES);
    }
    total += size(&snapshot.layers);
    if snapshot.flags.len() > MAX_FLAGS {
        problems.push(Problem::new(
            "flags",
            format!(
                "{} flags; a project holds at most {MAX_FLAGS}",
                snapshot.flags.len()
            ),
        ));
    }
    if snapshot.segments.len() > MAX_SEGMENTS {
        problems.push(Problem::new(
            "segments",
            format!(
                "{} segments; an environment holds at most {MAX_SEGMENTS}",
                snapshot.segments.len()
            ),
        ));
    }
    if total > MAX_SNAPSHOT_BYTES {
        problems.push(Problem::new(
            "snapshot",
            format!(
                "the environment's snapshot would take {} as JSON; at most {}",
                kib(total),
                kib(MAX_SNAPSHOT_BYTES)
            ),
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
