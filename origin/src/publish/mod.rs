//! Publishing environment snapshots and SDK keys to the edge's KV.
//!
//! Every committed change bumps its environment's snapshot version in the
//! change's own transaction; that bump is the durable publish intent (see
//! [`crate::store::publish`]). The background loop started by [`spawn`]
//! finds, for each [`Publisher`] (a *target*), the environments whose
//! snapshot version is ahead of what the target has published, and for
//! each: builds the snapshot, puts `snapshot:<org>/<project>/<env>`, then
//! the environment's new SDK keys (`sdk-key:<sha256>`), then records the
//! version as published. A failure is recorded (attempts, last error) and
//! retried with exponential backoff per environment and target, never
//! dropped: a crash or a KV outage only delays publication. Expired and
//! revoked SDK keys, and the keys and snapshots of deleted environments,
//! are deleted from every target.
//!
//! A **permanent** failure ([`PublishError::is_permanent`]: a key longer
//! than KV or a file name allows, a request the KV API refuses as such) is
//! not retried: trying again cannot succeed. It is recorded like any other
//! (attempts, last error), logged at error level, counted in
//! `bunting_publish_blocked`, shown as `lastErrorPermanent` in the
//! environment's publication status, and tried again only when the
//! environment changes (a new snapshot version) or the loop restarts.
//!
//! The `snapshot:<env>` value is, by default ([`KvFormat::Packed`]), the
//! snapshot's packed form ([`bunting_core::packed`]) carrying its compact
//! JSON text verbatim, which the edge loads without a JSON parser and the
//! server SDKs' KV and directory sources unwrap (see [`kv_value`]); with
//! [`PublishOptions::kv_format`] = [`KvFormat::Json`], the JSON text
//! itself, for readers that predate packed values (an older worker refuses
//! them and keeps its last snapshot); with [`KvFormat::PackedV1`], the
//! packed form's version 1 for readers that predate version 2. The edge
//! pointer ([`EdgePointer`]) gets the same value, version 1 from a worker
//! that reads packed values but not version 2, and the JSON text from a
//! worker too old to take a packed one. Beside a packed value, the KV an
//! edge worker reads ([`Publisher::splits_tables`]) gets the same snapshot
//! without its JSON text under `snapshot-tables:<env>`
//! ([`kv::tables_key`]): what the worker checks every few seconds and
//! loads a new version from, reading the whole value only for the text
//! (`GET /sdk/v1/snapshot`) or once a minute to be sure of it.
//!
//! Publishers: [`CloudflareKv`] (the KV REST API, with retries),
//! [`WranglerLocal`] (the local KV of `wrangler dev`), [`Directory`]
//! (one file per key, for wasmtime hosts) and [`EdgePointer`] (the edge
//! worker's per-environment Durable Object, which serves a change before
//! KV has propagated it).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bunting_origin::metrics::Metrics;
//! use bunting_origin::publish::{self, Directory, PublishOptions, Publisher};
//! use bunting_origin::store::{Actor, Store};
//! let dir = std::env::temp_dir().join(format!("bunting-doc-{}", std::process::id()));
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let env = store.create_environment(&ana, p.id, "dev", "Dev").await.unwrap();
//! let targets: Vec<Arc<dyn Publisher>> = vec![Arc::new(Directory::new(&dir))];
//! let handle = publish::spawn(store.clone(), targets, Arc::new(Metrics::new()), PublishOptions::default());
//! handle.notify();
//! while store.publish_status(env.id).await.unwrap().target("directory").published_version < 1 {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! handle.shutdown().await;
//! assert!(dir.join(publish::encode_key("snapshot:acme/web/dev")).exists());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```

mod cloudflare;
mod directory;
mod edge;
mod wrangler;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bunting_core::packed;
use thiserror::Error;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use cloudflare::{CloudflareKv, RetryPolicy};
pub use directory::Directory;
pub use edge::EdgePointer;
pub use wrangler::WranglerLocal;

use crate::kv;
use crate::metrics::{EnvLabels, Metrics};
use crate::store::{Store, StoreError};

/// A boxed future, the return type of [`Publisher`]'s methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a publisher could not put or delete a key.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The target's HTTP API (Cloudflare's KV API, the edge pointer)
    /// answered with an error status (after any retries). The target is
    /// named where the error is recorded.
    #[error("HTTP {status}: {body}")]
    Http {
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The target's HTTP API could not be reached (after any retries).
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// A file could not be written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// wrangler could not be started.
    #[error(transparent)]
    Wrangler(#[from] kv::KvError),
    /// wrangler ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// The target cannot store this key (too long for KV or as a file
    /// name): permanent.
    #[error("the key {key:?} cannot be stored: {reason}")]
    Unstorable {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The snapshot could not be put in its packed form ([`kv_value`]):
    /// permanent (the same snapshot packs the same way).
    #[error("packing the snapshot failed: {0}")]
    Packing(String),
    /// Any other failure (e.g. of a test double).
    #[error("{0}")]
    Other(String),
}

impl PublishError {
    /// [`PublishError::Http`] from an error response: its status and the
    /// first 300 characters of its body.
    async fn http(response: reqwest::Response) -> PublishError {
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        PublishError::Http { status, body }
    }

    /// Whether trying the same put again cannot succeed: the key cannot be
    /// stored ([`PublishError::Unstorable`], or a file name the operating
    /// system refuses), the snapshot does not pack
    /// ([`PublishError::Packing`]), or the KV API refused the request itself (400 Bad
    /// Request, 413 Content Too Large, 414 URI Too Long). Everything else
    /// (unreachable API, 401/403/404 of a wrong configuration, 429, 5xx,
    /// wrangler failing, other I/O errors) is transient and retried with
    /// backoff.
    ///
    /// ```
    /// use bunting_origin::publish::PublishError;
    /// assert!(PublishError::Http { status: 414, body: String::new() }.is_permanent());
    /// assert!(!PublishError::Http { status: 503, body: String::new() }.is_permanent());
    /// assert!(!PublishError::Http { status: 403, body: String::new() }.is_permanent());
    /// assert!(!PublishError::Other("flaky".into()).is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            PublishError::Unstorable { .. } | PublishError::Packing(_) => true,
            PublishError::Http { status, .. } => matches!(status, 400 | 413 | 414),
            PublishError::Io { source, .. } => source.kind() == std::io::ErrorKind::InvalidFilename,
            _ => false,
        }
    }
}

/// [`PublishError::Unstorable`] for a key longer than
/// [`kv::MAX_KEY_BYTES`], checked before any target sees it.
fn check_key(key: &str) -> Result<(), PublishError> {
    if key.len() > kv::MAX_KEY_BYTES {
        return Err(PublishError::Unstorable {
            key: key.to_string(),
            reason: format!(
                "it is {} bytes, and KV keys have at most {}",
                key.len(),
                kv::MAX_KEY_BYTES
            ),
        });
    }
    Ok(())
}

/// A KV the edge reads: where snapshots and SDK keys are put.
///
/// Implementations must be idempotent (the loop may put or delete the same
/// key again after a crash) and treat deleting a missing key as success.
///
/// ```
/// use bunting_origin::publish::{BoxFuture, PublishError, Publisher};
/// struct Nowhere;
/// impl Publisher for Nowhere {
///     fn name(&self) -> &str { "nowhere" }
///     fn put<'a>(&'a self, _key: &'a str, _value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn delete<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// assert_eq!(Nowhere.name(), "nowhere");
/// ```
pub trait Publisher: Send + Sync {
    /// The target's name, the key of its publication state (stable across
    /// restarts: renaming a target republishes everything to it).
    fn name(&self) -> &str;
    /// Writes `value` under `key`.
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>>;
    /// Removes `key` (success if it is not there).
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), PublishError>>;
    /// Whether edge workers read this KV, and so get each packed
    /// snapshot's tables alone under `snapshot-tables:<env>`
    /// ([`kv::tables_key`]) after its whole value under `snapshot:<env>`,
    /// the key deleted when the value is a JSON text: `true` for
    /// Cloudflare's KV and wrangler's local one, `false` (the default) for
    /// targets read by other hosts (a directory, the edge pointer).
    fn splits_tables(&self) -> bool {
        false
    }
}

/// Percent-encodes a KV key for a URL path segment or a file name: every
/// byte but `A-Z a-z 0-9 - _ . ~` becomes `%XX`.
///
/// ```
/// assert_eq!(bunting_origin::publish::encode_key("snapshot:acme/web/dev"), "snapshot%3Aacme%2Fweb%2Fdev");
/// ```
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A random factor in `[0.5, 1.0)` to spread retries.
fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0, |_| u16::from_le_bytes(b));
    0.5 + f64::from(r) / f64::from(u16::MAX) / 2.0
}

/// `base · 2^(attempt − 1)`, at most `max`, times a jitter in `[0.5, 1)`
/// (also the webhook delivery loop's retry delay).
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(max).mul_f64(jitter())
}

/// The form of the `snapshot:<env>` values the publish loop writes.
///
/// ```
/// use bunting_origin::publish::KvFormat;
/// assert_eq!(KvFormat::default(), KvFormat::Packed);
/// assert_eq!("packed".parse::<KvFormat>().unwrap(), KvFormat::Packed);
/// assert_eq!(KvFormat::Packed.to_string(), "packed");
/// assert_eq!("packed-v1".parse::<KvFormat>().unwrap(), KvFormat::PackedV1);
/// assert!("binary".parse::<KvFormat>().is_err());
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum KvFormat {
    /// The snapshot's compact JSON text: for readers that predate packed
    /// values (every server SDK reads it, and an edge worker from before
    /// packed-only workers or built with its `json-snapshots` feature).
    Json,
    /// The packed binary form with the same JSON text inside
    /// ([`bunting_core::packed::pack_with_document`]), the default: about
    /// half the cost of a new version's first request at the edge. Edge
    /// workers and server SDKs from before packed values refuse it and
    /// keep serving their last snapshot. Written in the packed format's
    /// current version ([`bunting_core::packed::FORMAT_VERSION`], rule
    /// conditions precompiled), which edge workers from before it refuse
    /// (they keep serving their last snapshot): publish `packed-v1` to
    /// those until they are upgraded.
    #[default]
    Packed,
    /// The packed form in format version 1 (condition texts), for edge
    /// workers and server SDKs that read packed values but predate
    /// version 2. A current edge worker reads it only when built with its
    /// `json-snapshots` feature (which brings the rule parser).
    #[value(name = "packed-v1")]
    #[serde(rename = "packed-v1")]
    PackedV1,
}

impl KvFormat {
    /// `json`, `packed` or `packed-v1`, as in `--kv-format`.
    pub fn as_str(self) -> &'static str {
        match self {
            KvFormat::Json => "json",
            KvFormat::Packed => "packed",
            KvFormat::PackedV1 => "packed-v1",
        }
    }

    /// Whether the values are packed (of either version).
    pub fn is_packed(self) -> bool {
        self != KvFormat::Json
    }
}

impl std::fmt::Display for KvFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `KvFormat` named by something other than `json` or `packed`.
#[derive(Debug, Error)]
#[error("unknown KV format {0:?}: expected json, packed or packed-v1")]
pub struct UnknownKvFormat(String);

impl std::str::FromStr for KvFormat {
    type Err = UnknownKvFormat;

    fn from_str(s: &str) -> Result<KvFormat, UnknownKvFormat> {
        match s {
            "json" => Ok(KvFormat::Json),
            "packed" => Ok(KvFormat::Packed),
            "packed-v1" => Ok(KvFormat::PackedV1),
            _ => Err(UnknownKvFormat(s.to_string())),
        }
    }
}

/// The `snapshot:<env>` value for the snapshot JSON text `json` in
/// `format`: `json` itself, or its packed form carrying `json` verbatim,
/// read back before it is returned (same environment, version and
/// checksum, `json` as its document), so a packer bug never reaches KV.
/// A packing failure ([`PublishError::Packing`]) is permanent.
///
/// ```
/// use bunting_core::ParsedSnapshot;
/// use bunting_core::packed;
/// use bunting_origin::publish::{KvFormat, kv_value};
/// let json = br#"{"schemaVersion":1,"environment":"a/b/c","version":3,"generatedAt":"2026-11-25T00:00:00Z","flags":[]}"#;
/// assert_eq!(kv_value(KvFormat::Json, json.to_vec()).unwrap(), json);
/// let value = kv_value(KvFormat::Packed, json.to_vec()).unwrap();
/// assert!(value.starts_with(&packed::MAGIC));
/// assert_eq!(packed::document(&value).unwrap().unwrap().as_bytes(), json);
/// assert_eq!(ParsedSnapshot::from_packed(&value).unwrap().version(), 3);
/// assert_eq!(value[4..6], packed::FORMAT_VERSION.to_le_bytes());
/// let v1 = kv_value(KvFormat::PackedV1, json.to_vec()).unwrap();
/// assert_eq!(v1[4..6], packed::FORMAT_VERSION_1.to_le_bytes());
/// assert_eq!(packed::document(&v1).unwrap().unwrap().as_bytes(), json);
/// assert!(kv_value(KvFormat::Packed, b"{}".to_vec()).is_err());
/// ```
pub fn kv_value(format: KvFormat, json: Vec<u8>) -> Result<Vec<u8>, PublishError> {
    match format {
        KvFormat::Json => Ok(json),
        KvFormat::Packed => pack_json(&json, packed::FORMAT_VERSION).map_err(PublishError::Packing),
        KvFormat::PackedV1 => {
            pack_json(&json, packed::FORMAT_VERSION_1).map_err(PublishError::Packing)
        }
    }
}

/// The packed form (format `version`) of the snapshot text `json`, with
/// `json` inside, read back as a check.
pub(crate) fn pack_json(json: &[u8], version: u16) -> Result<Vec<u8>, String> {
    use bunting_core::ParsedSnapshot;
    let text = std::str::from_utf8(json).map_err(|e| e.to_string())?;
    let parsed = ParsedSnapshot::parse(text).map_err(|e| e.to_string())?;
    let bytes = packed::pack_as(&parsed, Some(text), version).map_err(|e| e.to_string())?;
    let read = ParsedSnapshot::from_packed(&bytes).map_err(|e| format!("reading it back: {e}"))?;
    if packed::document(&bytes).map_err(|e| format!("reading it back: {e}"))? != Some(text)
        || (read.environment(), read.version(), read.checksum())
            != (parsed.environment(), parsed.version(), parsed.checksum())
    {
        return Err("it does not read back as the snapshot packed".into());
    }
    Ok(bytes)
}

/// Puts `value`, the `snapshot:<environment>` value ([`kv_value`]), under
/// `key` to `p`; to a target edge workers read ([`Publisher::splits_tables`])
/// also its tables alone under `snapshot-tables:<environment>`
/// ([`kv::tables_key`]) when it is packed, after it (a worker that finds
/// new tables finds their text under `key`, or soon will), or deletes that
/// key before it when it is a JSON text (a worker must never serve tables
/// older than the text beside them: without the key it reads `key`).
async fn put_snapshot(
    p: &dyn Publisher,
    environment: &str,
    key: &str,
    value: &[u8],
) -> Result<(), PublishError> {
    if !p.splits_tables() {
        return p.put(key, value).await;
    }
    let tables_key = kv::tables_key(environment);
    check_key(&tables_key)?;
    if !value.starts_with(&packed::MAGIC) {
        p.delete(&tables_key).await?;
        return p.put(key, value).await;
    }
    let tables = packed::without_document(value)
        .map_err(|e| PublishError::Packing(format!("the packed snapshot's tables alone: {e}")))?;
    p.put(key, value).await?;
    p.put(&tables_key, &tables).await
}

/// How the publish loop runs.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// How often to look for unpublished changes without a wake-up (changes
    /// made by another origin process, expiring SDK keys). Default 1 s.
    pub poll_interval: Duration,
    /// The first retry delay of a failing environment; doubles with each
    /// failure. Default 500 ms.
    pub initial_backoff: Duration,
    /// The longest retry delay. Default 30 s.
    pub max_backoff: Duration,
    /// The wake-up [`PublishHandle::notify`] signals; share
    /// [`crate::api::AppState::publish_wakeup`] here so that
    /// `AppState::notify_publish` reaches the loop.
    pub wakeup: Arc<Notify>,
    /// The form of the `snapshot:<env>` values put to every target (see
    /// [`kv_value`]; the edge pointer gets the same value, or the JSON
    /// text if its worker refuses the packed one, [`EdgePointer`]).
    /// Default [`KvFormat::Packed`].
    pub kv_format: KvFormat,
}

impl Default for PublishOptions {
    fn default() -> PublishOptions {
        PublishOptions {
            poll_interval: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            wakeup: Arc::new(Notify::new()),
            kv_format: KvFormat::default(),
        }
    }
}

struct Shared {
    wakeup: Arc<Notify>,
    stop: Notify,
    stopping: AtomicBool,
    targets: Vec<String>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// (environment id, target name) → the permanent error that blocks it.
    blocked: std::sync::Mutex<HashMap<(i64, String), String>>,
}

/// The running publish loop. Cheap to clone; [`PublishHandle::shutdown`]
/// stops it for every clone.
#[derive(Clone)]
pub struct PublishHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PublishHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishHandle")
            .field("targets", &self.shared.targets)
            .finish()
    }
}

impl PublishHandle {
    /// Wakes the loop now (after a committed change). A wake-up while it is
    /// busy is kept for its next turn.
    pub fn notify(&self) {
        self.shared.wakeup.notify_one();
    }

    /// The names of the loop's targets.
    pub fn targets(&self) -> &[String] {
        &self.shared.targets
    }

    /// The permanent error that stops `target` from publishing environment
    /// `env_id` (until the environment changes), if any.
    pub fn permanent_error(&self, env_id: i64, target: &str) -> Option<String> {
        self.shared
            .blocked
            .lock()
            .expect("not poisoned")
            .get(&(env_id, target.to_string()))
            .cloned()
    }

    /// Stops the loop after the step in flight (one environment on one
    /// target, or one key) and waits for it. Unpublished changes stay in
    /// the database for the next loop.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_one();
        let task = self.shared.task.lock().expect("not poisoned").take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the publish loop panicked");
        }
    }
}

/// Starts the publish loop on the current tokio runtime: it runs a round
/// at once, on every [`PublishHandle::notify`], every
/// [`PublishOptions::poll_interval`], and when a backoff ends. It runs
/// until [`PublishHandle::shutdown`] (dropping the handles does not stop
/// it).
pub fn spawn(
    store: Store,
    publishers: Vec<Arc<dyn Publisher>>,
    metrics: Arc<Metrics>,
    options: PublishOptions,
) -> PublishHandle {
    let shared = Arc::new(Shared {
        wakeup: options.wakeup.clone(),
        stop: Notify::new(),
        stopping: AtomicBool::new(false),
        targets: publishers.iter().map(|p| p.name().to_string()).collect(),
        task: std::sync::Mutex::new(None),
        blocked: std::sync::Mutex::new(HashMap::new()),
    });
    let mut worker = Worker {
        store,
        publishers,
        metrics,
        options,
        shared: shared.clone(),
        backoff: HashMap::new(),
        key_backoff: HashMap::new(),
        blocked: HashMap::new(),
        lagging: HashSet::new(),
    };
    let task = tokio::spawn(async move { worker.run().await });
    *shared.task.lock().expect("not poisoned") = Some(task);
    PublishHandle { shared }
}

/// Failures in a row and when to try again.
#[derive(Debug, Clone, Copy)]
struct Retry {
    failures: u32,
    at: Instant,
}

struct Worker {
    store: Store,
    publishers: Vec<Arc<dyn Publisher>>,
    metrics: Arc<Metrics>,
    options: PublishOptions,
    shared: Arc<Shared>,
    /// Per (environment, target index).
    backoff: HashMap<(i64, usize), Retry>,
    /// Per SDK key id (removals).
    key_backoff: HashMap<i64, Retry>,
    /// Per (environment, target index): the snapshot version that failed
    /// permanently there; not tried again until the version is newer.
    blocked: HashMap<(i64, usize), i64>,
    /// Edge environments whose lag gauge is set.
    lagging: HashSet<String>,
}

/// One environment behind on some targets.
struct Behind {
    edge_env: String,
    /// The snapshot version when the pending list was read.
    version: i64,
    /// (target index, its published version).
    targets: Vec<(usize, i64)>,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    async fn run(&mut self) {
        tracing::info!(targets = ?self.shared.targets, kv_format = %self.options.kv_format, "publish loop started");
        while !self.stopping() {
            self.round().await;
            if self.stopping() {
                break;
            }
            let now = Instant::now();
            let mut until = now + self.options.poll_interval;
            for r in self.backoff.values().chain(self.key_backoff.values()) {
                until = until.min(r.at.max(now));
            }
            tokio::select! {
                _ = self.shared.wakeup.notified() => {}
                _ = self.shared.stop.notified() => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
        tracing::info!("publish loop stopped");
    }

    fn retry(&self, failures: u32) -> Retry {
        Retry {
            failures,
            at: Instant::now()
                + backoff(
                    self.options.initial_backoff,
                    self.options.max_backoff,
                    failures,
                ),
        }
    }

    /// Publishes what is pending, removes what has expired, updates the lag.
    async fn round(&mut self) {
        let mut behind: BTreeMap<i64, Behind> = BTreeMap::new();
        for (i, p) in self.publishers.iter().enumerate() {
            match self.store.pending_publications(p.name()).await {
                Ok(list) => {
                    for pb in list {
                        behind
                            .entry(pb.environment_id)
                            .or_insert_with(|| Behind {
                                edge_env: pb.edge_env.clone(),
                                version: pb.snapshot_version,
                                targets: Vec::new(),
                            })
                            .targets
                            .push((i, pb.published_version));
                    }
                }
                Err(e) => {
                    tracing::warn!(target_name = p.name(), error = %e, "reading pending publications failed")
                }
            }
        }
        for (env_id, b) in behind {
            if self.stopping() {
                return;
            }
            self.publish_env(env_id, b).await;
        }
        if self.stopping() {
            return;
        }
        self.remove_keys().await;
        if self.stopping() {
            return;
        }
        self.remove_orphans().await;
        self.update_lag().await;
    }

    /// Publishes environment `env_id` to every target behind and not
    /// backing off.
    async fn publish_env(&mut self, env_id: i64, b: Behind) {
        let now = Instant::now();
        let due: Vec<(usize, i64)> = b
            .targets
            .iter()
            .copied()
            .filter(|(i, _)| self.backoff.get(&(env_id, *i)).is_none_or(|r| r.at <= now))
            .filter(|(i, _)| {
                self.blocked
                    .get(&(env_id, *i))
                    .is_none_or(|failed| *failed < b.version)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let snapshot = match self.store.snapshot(env_id).await {
            Ok(s) => s,
            Err(StoreError::NotFound { .. }) => return, // deleted meanwhile
            Err(e) => {
                tracing::warn!(environment = %b.edge_env, error = %e, "building the snapshot failed");
                return;
            }
        };
        let version = snapshot.version as i64;
        let body = match serde_json::to_vec(&snapshot) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(environment = %b.edge_env, error = %e, "serializing the snapshot failed");
                return;
            }
        };
        // Packed (if asked) once for every target; a snapshot that does not
        // pack fails each target permanently, recorded as any failure.
        let value = kv_value(self.options.kv_format, body).map_err(|e| match e {
            PublishError::Packing(e) => e,
            other => other.to_string(),
        });
        let snapshot_key = kv::snapshot_key(&snapshot.environment);
        // The keys every target of this round put: each target reads the
        // keys when its turn comes, so a key committed meanwhile reaches
        // only the later targets, and must not be marked live for the
        // earlier ones (they get it with the next version).
        let mut put_keys: Option<HashSet<i64>> = None;
        let mut all_ok = due.len() == b.targets.len()
            && (due.len() == self.publishers.len() || version == b.version);
        for (i, published) in due {
            let p = self.publishers[i].clone();
            let result = async {
                // Read after the snapshot: every key committed with a version
                // up to `version` is visible here.
                let keys = self
                    .store
                    .sdk_keys_to_put(env_id, published == 0)
                    .await
                    .map_err(|e| PublishError::Other(e.to_string()))?;
                check_key(&snapshot_key)?;
                let value = value
                    .as_deref()
                    .map_err(|e| PublishError::Packing(e.clone()))?;
                put_snapshot(&*p, &snapshot.environment, &snapshot_key, value).await?;
                for k in &keys {
                    let key = kv::sdk_key_key_for_hash(&k.hash);
                    check_key(&key)?;
                    p.put(&key, kv::sdk_key_value(&k.edge_env, k.kind.kv()).as_bytes())
                        .await?;
                }
                Ok::<_, PublishError>(keys)
            }
            .await;
            match result {
                Ok(keys) => {
                    if let Err(e) = self
                        .store
                        .mark_published(env_id, p.name(), &snapshot.environment, version)
                        .await
                    {
                        // Published but not recorded: it is published again.
                        tracing::warn!(environment = %b.edge_env, target_name = p.name(), error = %e, "recording a publication failed");
                        all_ok = false;
                        continue;
                    }
                    self.backoff.remove(&(env_id, i));
                    self.unblock(env_id, i);
                    self.metrics.publishes.inc();
                    tracing::info!(environment = %b.edge_env, target_name = p.name(), version, keys = keys.len(), "published");
                    let ids: HashSet<i64> = keys.into_iter().map(|k| k.id).collect();
                    put_keys = Some(match put_keys {
                        None => ids,
                        Some(earlier) => earlier.intersection(&ids).copied().collect(),
                    });
                }
                Err(e) => {
                    all_ok = false;
                    self.metrics.publish_failures.inc();
                    let attempts = self
                        .store
                        .mark_failed(env_id, p.name(), &snapshot.environment, &e.to_string())
                        .await
                        .unwrap_or(0);
                    if attempts == 1 {
                        // The target just started failing (the count is
                        // durable): once per failure, not per retry.
                        self.emit_failed(env_id, &b.edge_env, p.name(), &e).await;
                    }
                    if e.is_permanent() {
                        // Trying again cannot help: wait for a change.
                        self.backoff.remove(&(env_id, i));
                        self.block(env_id, i, version, e.to_string());
                        tracing::error!(
                            environment = %b.edge_env, target_name = p.name(), version, attempts, error = %e,
                            "publishing failed permanently; not retried until the environment changes"
                        );
                        continue;
                    }
                    let failures = self.backoff.get(&(env_id, i)).map_or(0, |r| r.failures) + 1;
                    let retry = self.retry(failures);
                    self.backoff.insert((env_id, i), retry);
                    tracing::warn!(
                        environment = %b.edge_env, target_name = p.name(), version, attempts, error = %e,
                        retry_in_ms = retry.at.saturating_duration_since(Instant::now()).as_millis() as u64,
                        "publishing failed"
                    );
                }
            }
        }
        if all_ok {
            // Every target holds `version`: its keys are live everywhere.
            let mut put_keys: Vec<i64> = put_keys.unwrap_or_default().into_iter().collect();
            put_keys.sort_unstable();
            let done = async {
                self.store.mark_sdk_keys(&put_keys, "live").await?;
                self.store.mark_caught_up(env_id, version).await
            };
            if let Err(e) = done.await {
                tracing::warn!(environment = %b.edge_env, error = %e, "recording live SDK keys failed");
            }
            self.metrics
                .publish_lag_seconds
                .get_or_create(&EnvLabels {
                    environment: b.edge_env.clone(),
                })
                .set(0.0);
        }
    }

    /// Queues the webhook event `publish.failed` for the organization of
    /// environment `env_id`; a failure is logged.
    async fn emit_failed(&self, env_id: i64, edge_env: &str, target: &str, e: &PublishError) {
        let data = serde_json::json!({
            "environment": edge_env,
            "target": target,
            "error": e.to_string(),
            "permanent": e.is_permanent(),
        });
        let queued = async {
            let org = self.store.org_of_environment(env_id).await?;
            self.store.emit_event(org, "publish.failed", data).await
        };
        if let Err(err) = queued.await {
            tracing::warn!(environment = %edge_env, error = %err, "queueing the publish.failed webhook event failed");
        }
    }

    /// Records that `version` of environment `env_id` failed permanently on
    /// target `i`.
    fn block(&mut self, env_id: i64, i: usize, version: i64, error: String) {
        let name = self.publishers[i].name().to_string();
        if self.blocked.insert((env_id, i), version).is_none() {
            self.metrics.publish_blocked.inc();
        }
        self.shared
            .blocked
            .lock()
            .expect("not poisoned")
            .insert((env_id, name), error);
    }

    /// Forgets a permanent failure of environment `env_id` on target `i`
    /// (it published, or the environment is gone).
    fn unblock(&mut self, env_id: i64, i: usize) {
        if self.blocked.remove(&(env_id, i)).is_some() {
            self.metrics.publish_blocked.dec();
            let name = self.publishers[i].name().to_string();
            self.shared
                .blocked
                .lock()
                .expect("not poisoned")
                .remove(&(env_id, name));
        }
    }

    /// Deletes expired or revoked SDK keys, and those of deleted
    /// environments, from every target.
    async fn remove_keys(&mut self) {
        let keys = match self.store.sdk_keys_to_remove().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "reading SDK keys to remove failed");
                return;
            }
        };
        let now = Instant::now();
        let mut removed = Vec::new();
        for k in keys {
            if self.stopping() {
                break;
            }
            if self.key_backoff.get(&k.id).is_some_and(|r| r.at > now) {
                continue;
            }
            let key = kv::sdk_key_key_for_hash(&k.hash);
            let mut ok = true;
            for p in &self.publishers {
                if let Err(e) = p.delete(&key).await {
                    ok = false;
                    self.metrics.publish_failures.inc();
                    tracing::warn!(environment = %k.edge_env, target_name = p.name(), key_id = k.id, error = %e, "removing an SDK key failed");
                }
            }
            if ok {
                self.key_backoff.remove(&k.id);
                tracing::info!(environment = %k.edge_env, key_id = k.id, "SDK key removed from KV");
                removed.push(k.id);
            } else {
                let failures = self.key_backoff.get(&k.id).map_or(0, |r| r.failures) + 1;
                let retry = self.retry(failures);
                self.key_backoff.insert(k.id, retry);
            }
        }
        if let Err(e) = self.store.mark_sdk_keys(&removed, "removed").await {
            tracing::warn!(error = %e, "recording removed SDK keys failed");
        }
    }

    /// Deletes the snapshots of deleted environments.
    async fn remove_orphans(&mut self) {
        for i in 0..self.publishers.len() {
            let p = self.publishers[i].clone();
            let orphans = match self.store.orphaned_publications(p.name()).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(target_name = p.name(), error = %e, "reading deleted environments failed");
                    continue;
                }
            };
            for (env_id, edge_env) in orphans {
                let key = kv::snapshot_key(&edge_env);
                // A key no target can hold was never put: nothing to delete.
                // The tables go first: a worker never finds them without
                // the whole value.
                let deleted = match check_key(&key) {
                    Ok(()) if p.splits_tables() => {
                        match p.delete(&kv::tables_key(&edge_env)).await {
                            Ok(()) => p.delete(&key).await,
                            Err(e) => Err(e),
                        }
                    }
                    Ok(()) => p.delete(&key).await,
                    Err(_) => Ok(()),
                };
                match deleted {
                    Ok(()) => {
                        if let Err(e) = self.store.forget_publication(env_id, p.name()).await {
                            tracing::warn!(environment = %edge_env, error = %e, "forgetting a publication failed");
                        } else {
                            self.unblock(env_id, i);
                            tracing::info!(environment = %edge_env, target_name = p.name(), "snapshot of a deleted environment removed");
                        }
                    }
                    Err(e) => {
                        self.metrics.publish_failures.inc();
                        tracing::warn!(environment = %edge_env, target_name = p.name(), error = %e, "removing a deleted environment's snapshot failed");
                    }
                }
            }
        }
    }

    /// Sets `publish_lag_seconds` of every environment: the age of its
    /// oldest change some target lacks, 0 once published everywhere.
    async fn update_lag(&mut self) {
        let mut lag: HashMap<String, f64> = HashMap::new();
        for p in &self.publishers {
            match self.store.pending_publications(p.name()).await {
                Ok(list) => {
                    for pb in list {
                        let l = crate::store::publish::lag_seconds(pb.pending_since.as_deref());
                        let e = lag.entry(pb.edge_env).or_insert(0.0);
                        *e = e.max(l);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading pending publications failed");
                    return;
                }
            }
        }
        for env in self.lagging.drain() {
            if !lag.contains_key(&env) {
                self.metrics
                    .publish_lag_seconds
                    .get_or_create(&EnvLabels { environment: env })
                    .set(0.0);
            }
        }
        for (env, l) in lag {
            self.metrics
                .publish_lag_seconds
                .get_or_create(&EnvLabels {
                    environment: env.clone(),
                })
                .set(l);
            self.lagging.insert(env);
        }
    }
}
