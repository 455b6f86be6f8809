//! The client's health: status, snapshot, last attempts, exposure counters;
//! and the events a client emits on transitions.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// The client's state, as the OpenFeature provider statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Starting; nothing loaded yet.
    NotReady,
    /// Serving the latest snapshot the source had.
    Ready,
    /// Serving the last good snapshot; the latest refresh failed (or it came
    /// from the bootstrap file because the source failed at start).
    Stale,
    /// No snapshot at all: evaluations return the caller's defaults.
    Error,
}

/// What [`crate::Client::health`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// The status.
    pub status: Status,
    /// The loaded snapshot's environment.
    pub environment: Option<String>,
    /// The loaded snapshot's version.
    pub snapshot_version: Option<u64>,
    /// `edge`, `kv`, `directory`, `fixed` (`bootstrap` while serving it).
    pub source: String,
    /// `wasm` or `native`.
    pub engine: String,
    /// Last successful fetch (or not-modified answer), Unix ms.
    pub last_success_at: Option<i64>,
    /// Last fetch attempt, Unix ms.
    pub last_attempt_at: Option<i64>,
    /// The last refresh error, cleared by a success.
    pub last_error: Option<String>,
    /// Failed refreshes since the last success.
    pub consecutive_failures: u64,
    /// Exposure and event counters.
    #[serde(flatten)]
    pub counters: CounterValues,
}

/// Exposure and event counters, since the client started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exposures_queued: AtomicU64,
    pub(crate) exposures_sent: AtomicU64,
    pub(crate) exposures_dropped: AtomicU64,
    pub(crate) exposures_deduplicated: AtomicU64,
    pub(crate) events_sent: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) failed_requests: AtomicU64,
    pub(crate) rejected_batches: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterValues {
    /// Exposures accepted into the queue.
    pub exposures_queued: u64,
    /// Exposures the ingest accepted.
    pub exposures_sent: u64,
    /// Exposures dropped: queue full, or a batch the ingest refused (4xx).
    pub exposures_dropped: u64,
    /// Exposures not queued because the same one was seen within the window.
    pub exposures_deduplicated: u64,
    /// Metric events the ingest accepted.
    pub events_sent: u64,
    /// Metric events dropped (queue full or refused).
    pub events_dropped: u64,
    /// Ingest requests that failed (network, 429, 5xx, other 4xx).
    pub failed_requests: u64,
    /// Batches the ingest refused with a 4xx other than 429 (dropped).
    pub rejected_batches: u64,
    /// The last ingest error.
    pub last_ingest_error: Option<String>,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn values(&self, last_ingest_error: Option<String>) -> CounterValues {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterValues {
            exposures_queued: get(&self.exposures_queued),
            exposures_sent: get(&self.exposures_sent),
            exposures_dropped: get(&self.exposures_dropped),
            exposures_deduplicated: get(&self.exposures_deduplicated),
            events_sent: get(&self.events_sent),
            events_dropped: get(&self.events_dropped),
            failed_requests: get(&self.failed_requests),
            rejected_batches: get(&self.rejected_batches),
            last_ingest_error,
        }
    }
}

/// A transition the client reports (the OpenFeature provider events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A snapshot is loaded and current.
    Ready,
    /// A newer snapshot replaced the previous one.
    ConfigurationChanged {
        /// Keys of flags changed, added or removed.
        flags_changed: Vec<String>,
        /// The new snapshot version.
        version: u64,
    },
    /// Refreshing failed; the last good snapshot keeps serving. Sent once
    /// per transition.
    Stale {
        /// Why.
        error: String,
    },
    /// No snapshot could be loaded at all.
    Error {
        /// Why.
        error: String,
    },
}
