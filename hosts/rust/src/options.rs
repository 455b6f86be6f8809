//! Client options and their defaults, set through [`crate::ClientBuilder`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::EngineKind;
use crate::source::Source;

/// The clock evaluations use, Unix milliseconds (tests pin it).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub(crate) fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// Every option of a client. Defaults are those of the shared host design.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) sdk_key: String,
    pub(crate) source: Option<Source>,
    pub(crate) bootstrap: Option<PathBuf>,
    pub(crate) environment: Option<String>,
    pub(crate) init_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) ingest_url: Option<String>,
    pub(crate) ingest_token: Option<String>,
    pub(crate) hash_secret: Option<String>,
    pub(crate) dedup_window: Duration,
    pub(crate) dedup_capacity: usize,
    pub(crate) max_queued_exposures: usize,
    pub(crate) max_queued_events: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) flush_at: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) engine: EngineKind,
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("source", &self.source.as_ref().map(Source::kind))
            .field("bootstrap", &self.bootstrap)
            .field("environment", &self.environment)
            .field("poll_interval", &self.poll_interval)
            .field("ingest_url", &self.ingest_url)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl Options {
    pub(crate) fn new(sdk_key: String) -> Options {
        Options {
            sdk_key,
            source: None,
            bootstrap: None,
            environment: None,
            init_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(10),
            ingest_url: None,
            ingest_token: None,
            hash_secret: None,
            dedup_window: Duration::from_secs(300),
            dedup_capacity: 100_000,
            max_queued_exposures: 10_000,
            max_queued_events: 10_000,
            flush_interval: Duration::from_secs(2),
            flush_at: 100,
            close_timeout: Duration::from_secs(5),
            http_timeout: Duration::from_secs(10),
            engine: EngineKind::default(),
            clock: system_clock(),
        }
    }
}
