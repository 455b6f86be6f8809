//! [`ClientBuilder`]: one method per option.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::Client;
use crate::engine::EngineKind;
use crate::error::SdkError;
use crate::options::{Clock, Options};
use crate::source::{CLOUDFLARE_API, Source};

/// Configures and starts a [`Client`].
///
/// ```no_run
/// # async fn demo() -> Result<(), bunting_server_sdk::SdkError> {
/// use std::time::Duration;
/// let client = bunting_server_sdk::Client::builder("bsk_server_key")
///     .edge("https://flags.example.com")
///     .bootstrap("/etc/bunting/snapshot.json")
///     .poll_interval(Duration::from_secs(10))
///     .ingest_url("https://origin.example.com/api/v1/events")
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    pub(crate) options: Options,
}

impl ClientBuilder {
    pub(crate) fn new(sdk_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            options: Options::new(sdk_key.into()),
        }
    }

    /// Source: the edge worker's `GET /sdk/v1/snapshot` at `url`.
    pub fn edge(mut self, url: impl Into<String>) -> Self {
        self.options.source = Some(Source::Edge { url: url.into() });
        self
    }

    /// Source: Cloudflare KV's REST API (`api_base` defaults to Cloudflare's;
    /// see [`ClientBuilder::kv_api_base`]).
    pub fn kv(
        mut self,
        account_id: impl Into<String>,
        namespace_id: impl Into<String>,
        environment: impl Into<String>,
        api_token: impl Into<String>,
    ) -> Self {
        self.options.source = Some(Source::Kv {
            api_base: CLOUDFLARE_API.into(),
            account_id: account_id.into(),
            namespace_id: namespace_id.into(),
            environment: environment.into(),
            api_token: api_token.into(),
        });
        self
    }

    /// Overrides the KV API root (a local fake in tests).
    pub fn kv_api_base(mut self, base: impl Into<String>) -> Self {
        if let Some(Source::Kv { api_base, .. }) = &mut self.options.source {
            *api_base = base.into();
        }
        self
    }

    /// Source: the origin's directory publisher files in `dir`, for
    /// `environment` (`<org>/<project>/<env>`).
    pub fn directory(mut self, dir: impl Into<PathBuf>, environment: impl Into<String>) -> Self {
        self.options.source = Some(Source::Directory {
            dir: dir.into(),
            environment: environment.into(),
        });
        self
    }

    /// Source: a fixed snapshot, never refreshed; its checksum is verified
    /// when present but not required. For offline use and tests.
    pub fn fixed(mut self, json: impl Into<String>, lenient: bool) -> Self {
        self.options.source = Some(Source::Fixed {
            json: json.into(),
            lenient,
        });
        self
    }

    /// A snapshot file to start from when the source fails at start: the
    /// snapshot's JSON, or its packed form (a copy of a KV value or of a
    /// publish-directory file), whose JSON text is taken out of it.
    pub fn bootstrap(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.bootstrap = Some(path.into());
        self
    }

    /// Refuse snapshots of any other environment (by default the first
    /// snapshot loaded fixes it).
    pub fn environment(mut self, env: impl Into<String>) -> Self {
        self.options.environment = Some(env.into());
        self
    }

    /// How long `build` waits for the first fetch (default 5 s).
    pub fn init_timeout(mut self, d: Duration) -> Self {
        self.options.init_timeout = d;
        self
    }

    /// How often the snapshot is refreshed (default 10 s).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.options.poll_interval = d;
        self
    }

    /// The origin's `…/api/v1/events`; without it exposures and events are
    /// counted and dropped at flush.
    pub fn ingest_url(mut self, url: impl Into<String>) -> Self {
        self.options.ingest_url = Some(url.into());
        self
    }

    /// Bearer token for the ingest (default: the server SDK key).
    pub fn ingest_token(mut self, token: impl Into<String>) -> Self {
        self.options.ingest_token = Some(token.into());
        self
    }

    /// Secret of the targeting-key hash in exposures and events. Set it to
    /// the edge's `EXPOSURE_SECRET` so host and edge traffic join; default:
    /// the SDK key string.
    pub fn hash_secret(mut self, secret: impl Into<String>) -> Self {
        self.options.hash_secret = Some(secret.into());
        self
    }

    /// One exposure per (user, flag, variant) within this window (default
    /// 300 s; zero turns deduplication off).
    pub fn exposure_dedup_window(mut self, d: Duration) -> Self {
        self.options.dedup_window = d;
        self
    }

    /// Entries the dedup map holds at most (default 100 000).
    pub fn exposure_dedup_capacity(mut self, n: usize) -> Self {
        self.options.dedup_capacity = n;
        self
    }

    /// Exposures queued at most; more are dropped and counted (default 10 000).
    pub fn max_queued_exposures(mut self, n: usize) -> Self {
        self.options.max_queued_exposures = n;
        self
    }

    /// Metric events queued at most (default 10 000).
    pub fn max_queued_events(mut self, n: usize) -> Self {
        self.options.max_queued_events = n;
        self
    }

    /// How often the flusher sends (default 2 s).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.options.flush_interval = d;
        self
    }

    /// Queue length that wakes the flusher early (default 100).
    pub fn flush_at(mut self, n: usize) -> Self {
        self.options.flush_at = n.max(1);
        self
    }

    /// How long [`Client::close`] may spend flushing (default 5 s).
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.options.close_timeout = d;
        self
    }

    /// Timeout of each HTTP request (default 10 s).
    pub fn http_timeout(mut self, d: Duration) -> Self {
        self.options.http_timeout = d;
        self
    }

    /// The engine backend (default: wasmtime when the `wasm` feature is on).
    pub fn engine(mut self, kind: EngineKind) -> Self {
        self.options.engine = kind;
        self
    }

    /// Native bunting-core instead of wasmtime.
    pub fn native(self) -> Self {
        self.engine(EngineKind::Native)
    }

    /// The clock evaluations use (Unix ms); tests pin it.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.options.clock = clock;
        self
    }

    /// Starts the client: fetches once (bounded by the init timeout), falls
    /// back to the bootstrap file, and starts the refresher and the flusher
    /// on the current tokio runtime. A client with no snapshot at all is
    /// returned in [`crate::Status::Error`] and keeps trying.
    pub async fn build(self) -> Result<Client, SdkError> {
        Client::start(self.options).await
    }
}
