//! [`Client`]: the current snapshot, synchronous evaluation, exposures,
//! `track`, health, and the background refresher.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bunting_core::keyhash::KeyHasher;
use bunting_core::{Evaluation, FlagType};
use bunting_wire::{EventRecord, ExposureRecord};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::builder::ClientBuilder;
use crate::context::SdkContext;
use crate::engine::{Backend, FlagEngine};
use crate::error::{SdkError, SnapshotError};
use crate::exposure::{Dedup, Subject, exposure_of, is_exposure};
use crate::ingest::{Outbox, Queue, Sender, run_flusher};
use crate::options::Options;
use crate::packed::snapshot_text;
use crate::source::{Fetched, Fetcher, Source};
use crate::status::{ClientEvent, Counters, Health, Status};
use crate::verify::{self, Header, Rules, Verdict};

/// A loaded snapshot and what the client knows about it.
#[derive(Debug)]
struct Current {
    engine: Arc<dyn FlagEngine>,
    header: Header,
}

/// Refresh bookkeeping behind [`Client::health`].
#[derive(Debug)]
struct State {
    status: Status,
    source: String,
    etag: Option<String>,
    last_success_at: Option<i64>,
    last_attempt_at: Option<i64>,
    last_error: Option<String>,
    consecutive_failures: u64,
}

#[derive(Debug)]
struct Inner {
    options: Options,
    backend: Backend,
    schema_version: u32,
    fetcher: Fetcher,
    current: RwLock<Option<Arc<Current>>>,
    state: Mutex<State>,
    outbox: Arc<Outbox>,
    dedup: Mutex<Dedup>,
    hasher: KeyHasher,
    events: broadcast::Sender<ClientEvent>,
}

/// The bunting server SDK client: keeps an environment's snapshot fresh in
/// the background and evaluates flags locally and synchronously.
///
/// Cloning is cheap and shares everything. Dropping the last clone stops
/// the background tasks without flushing; call [`Client::close`] to flush.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    stop: Arc<watch::Sender<bool>>,
}

impl Client {
    /// Starts configuring a client that authenticates with `sdk_key` (a
    /// server SDK key).
    pub fn builder(sdk_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(sdk_key)
    }

    pub(crate) async fn start(options: Options) -> Result<Client, SdkError> {
        let source = options
            .source
            .clone()
            .ok_or_else(|| SdkError::Config("no snapshot source configured".into()))?;
        let backend = Backend::new(&options.engine)?;
        let schema_version = backend.schema_version()?;
        let http = reqwest::Client::builder()
            .timeout(options.http_timeout)
            .build()
            .map_err(|e| SdkError::Config(format!("HTTP client: {e}")))?;
        let sender = options.ingest_url.as_ref().map(|url| Sender {
            http: http.clone(),
            url: url.clone(),
            // Until the origin accepts server SDK keys at ingest, set
            // `ingest_token` to the ingest secret.
            token: options
                .ingest_token
                .clone()
                .unwrap_or_else(|| options.sdk_key.clone()),
        });
        let outbox = Arc::new(Outbox {
            exposures: Queue::new(options.max_queued_exposures),
            events: Queue::new(options.max_queued_events),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            sender,
            wake: tokio::sync::Notify::new(),
        });
        let hasher = KeyHasher::new(options.hash_secret.as_deref().unwrap_or(&options.sdk_key));
        let inner = Arc::new(Inner {
            fetcher: Fetcher {
                source: source.clone(),
                sdk_key: options.sdk_key.clone(),
                http,
            },
            backend,
            schema_version,
            current: RwLock::new(None),
            state: Mutex::new(State {
                status: Status::NotReady,
                source: source.kind().into(),
                etag: None,
                last_success_at: None,
                last_attempt_at: None,
                last_error: None,
                consecutive_failures: 0,
            }),
            dedup: Mutex::new(Dedup::new(options.dedup_window, options.dedup_capacity)),
            outbox,
            hasher,
            events: broadcast::channel(64).0,
            options,
        });
        let first = tokio::time::timeout(inner.options.init_timeout, inner.refresh())
            .await
            .unwrap_or_else(|_| {
                let e = SnapshotError::Fetch(format!(
                    "no answer within the init timeout of {:?}",
                    inner.options.init_timeout
                ));
                inner.failed(&e);
                Err(e)
            });
        if let Err(e) = first {
            inner.start_from_bootstrap(&e).await?;
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if !matches!(source, Source::Fixed { .. }) {
            tasks.push(tokio::spawn(poll(inner.clone(), stop_rx.clone())));
        }
        tasks.push(tokio::spawn(run_flusher(
            inner.outbox.clone(),
            inner.options.flush_interval,
            stop_rx,
        )));
        Ok(Client {
            inner,
            tasks: Arc::new(Mutex::new(tasks)),
            stop: Arc::new(stop),
        })
    }

    fn current(&self) -> Option<Arc<Current>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Evaluates `flag` for `context` (a JSON object with `targetingKey`
    /// and attributes) now, with no network; queues an exposure when it
    /// assigns a split. `expected` fails the evaluation with
    /// `TYPE_MISMATCH` for a flag of another type. Errors only when no
    /// snapshot is loaded.
    ///
    /// `context` is a `serde_json::Value` or a [`bunting_core::Context`]
    /// ([`SdkContext`]); a `Context` gives the same evaluation and exposure
    /// as its JSON form.
    pub fn evaluate<C: SdkContext + ?Sized>(
        &self,
        flag: &str,
        expected: Option<FlagType>,
        context: &C,
    ) -> Result<Evaluation<'static>, SdkError> {
        let current = self.current().ok_or_else(|| self.not_ready())?;
        let now = (self.inner.options.clock)();
        let eval = context.evaluate_in(&*current.engine, flag, expected, now);
        self.inner
            .expose(&current, std::slice::from_ref(&eval), context, now);
        Ok(eval)
    }

    /// Evaluates every flag (the batch call), queuing exposures for splits.
    pub fn evaluate_all<C: SdkContext + ?Sized>(
        &self,
        context: &C,
    ) -> Result<Vec<Evaluation<'static>>, SdkError> {
        let current = self.current().ok_or_else(|| self.not_ready())?;
        let now = (self.inner.options.clock)();
        let all = context.evaluate_all_in(&*current.engine, now);
        self.inner.expose(&current, &all, context, now);
        Ok(all)
    }

    fn not_ready(&self) -> SdkError {
        let state = self.inner.lock_state();
        SdkError::NotReady(
            state
                .last_error
                .clone()
                .unwrap_or_else(|| "the client is starting".into()),
        )
    }

    /// Queues a metric event `name` for the context's user, with an optional
    /// value. Never blocks; a full queue drops the event and counts it.
    /// `context` is JSON or a [`bunting_core::Context`] ([`SdkContext`]).
    pub fn track<C: SdkContext + ?Sized>(
        &self,
        name: &str,
        context: &C,
        value: Option<f64>,
    ) -> Result<(), SdkError> {
        bunting_wire::check_event_name(name).map_err(|e| SdkError::InvalidEvent(e.to_string()))?;
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(SdkError::InvalidEvent("the value must be finite".into()));
        }
        let key = context.targeting_key().ok_or_else(|| {
            SdkError::InvalidEvent("the context needs a string or number targetingKey".into())
        })?;
        let hash = self.inner.hasher.hash(&key);
        let current = self.current().ok_or_else(|| self.not_ready())?;
        let now = (self.inner.options.clock)();
        let record = EventRecord {
            name: name.into(),
            targeting_key_hash: hash,
            value,
            timestamp: now,
            received_at: Some(now),
            id: Some(uuid::Uuid::new_v4().to_string()),
            properties: None,
        };
        let outbox = &self.inner.outbox;
        match outbox
            .events
            .push((current.header.environment.clone(), record))
        {
            Ok(len) if len >= self.inner.options.flush_at => outbox.wake.notify_one(),
            Ok(_) => {}
            Err(_) => Counters::add(&outbox.counters.events_dropped, 1),
        }
        Ok(())
    }

    /// The client's health: status, snapshot, refresh and exposure figures.
    pub fn health(&self) -> Health {
        let current = self.current();
        let state = self.inner.lock_state();
        Health {
            status: state.status,
            environment: current.as_ref().map(|c| c.header.environment.clone()),
            snapshot_version: current.as_ref().map(|c| c.header.version),
            source: state.source.clone(),
            engine: self.inner.backend.name().into(),
            last_success_at: state.last_success_at,
            last_attempt_at: state.last_attempt_at,
            last_error: state.last_error.clone(),
            consecutive_failures: state.consecutive_failures,
            counters: self
                .inner
                .outbox
                .counters
                .values(self.inner.outbox.last_error()),
        }
    }

    /// The status alone.
    pub fn status(&self) -> Status {
        self.inner.lock_state().status
    }

    /// Keys of the loaded snapshot's flags.
    pub fn flag_keys(&self) -> Vec<String> {
        self.current()
            .map(|c| c.header.flags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The loaded flag's `type`, if any (`boolean`, `string`, `number`, `object`).
    pub fn flag_type(&self, flag: &str) -> Option<FlagType> {
        let current = self.current()?;
        serde_json::from_value(current.header.flags.get(flag)?.get("type")?.clone()).ok()
    }

    /// Subscribes to [`ClientEvent`]s (READY, CONFIGURATION_CHANGED, STALE,
    /// ERROR).
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// Fetches now instead of waiting for the next poll.
    pub async fn refresh(&self) -> Result<(), SnapshotError> {
        self.inner.refresh().await
    }

    /// Sends every queued exposure and event now; false if some remain
    /// (the ingest failed).
    pub async fn flush(&self) -> bool {
        self.inner.outbox.flush().await
    }

    /// Stops polling, then flushes exposures and events within the close
    /// timeout. Returns whether everything was sent.
    pub async fn close(&self) -> bool {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::timeout(self.inner.options.close_timeout, self.flush())
            .await
            .unwrap_or(false)
    }
}

impl Inner {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues the exposures among `evals` (deduplicated); the context's
    /// subject is read once, at the first split.
    fn expose<C: SdkContext + ?Sized>(
        &self,
        current: &Current,
        evals: &[Evaluation<'_>],
        context: &C,
        now: i64,
    ) {
        let mut subject = None;
        for eval in evals.iter().filter(|e| is_exposure(e)) {
            let Some(subject) = subject.get_or_insert_with(|| Subject::of(context, &self.hasher))
            else {
                return;
            };
            if let Some(record) = exposure_of(
                eval,
                subject,
                &current.header.environment,
                current.header.version,
                now,
            ) {
                self.queue_exposure(record);
            }
        }
    }

    fn queue_exposure(&self, record: ExposureRecord) {
        let counters = &self.outbox.counters;
        let first = self
            .dedup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first(&record, Instant::now());
        if !first {
            Counters::add(&counters.exposures_deduplicated, 1);
            return;
        }
        match self.outbox.exposures.push(record) {
            Ok(len) => {
                Counters::add(&counters.exposures_queued, 1);
                if len >= self.options.flush_at {
                    self.outbox.wake.notify_one();
                }
            }
            Err(_) => Counters::add(&counters.exposures_dropped, 1),
        }
    }

    fn now(&self) -> i64 {
        crate::options::system_clock()()
    }

    /// Records a failed refresh: STALE once per transition when serving.
    fn failed(&self, e: &SnapshotError) {
        let serving = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let mut state = self.lock_state();
        state.last_error = Some(e.to_string());
        state.consecutive_failures += 1;
        let event = match (state.status, serving) {
            (Status::Ready, true) => {
                state.status = Status::Stale;
                Some(ClientEvent::Stale {
                    error: e.to_string(),
                })
            }
            (Status::NotReady, false) => {
                state.status = Status::Error;
                Some(ClientEvent::Error {
                    error: e.to_string(),
                })
            }
            _ => None,
        };
        drop(state);
        if let Some(ev) = event {
            let _ = self.events.send(ev);
        }
    }

    /// A fetch that worked (new, unchanged or not modified).
    fn succeeded(&self, source: &str) {
        let mut state = self.lock_state();
        let was = state.status;
        state.status = Status::Ready;
        state.source = source.into();
        state.last_success_at = Some(self.now());
        state.last_error = None;
        state.consecutive_failures = 0;
        drop(state);
        if was != Status::Ready {
            let _ = self.events.send(ClientEvent::Ready);
        }
    }

    /// One refresh: fetch, check, load, swap.
    async fn refresh(&self) -> Result<(), SnapshotError> {
        self.lock_state().last_attempt_at = Some(self.now());
        let etag = self.lock_state().etag.clone();
        let outcome = match self.fetcher.fetch(etag.as_deref()).await {
            Ok(Fetched::NotModified) => Ok(()),
            Ok(Fetched::Body(text, tag)) => self.accept(text, tag).await,
            Err(e) => Err(e),
        };
        match &outcome {
            Ok(()) => self.succeeded(self.fetcher.source.kind()),
            Err(e) => self.failed(e),
        }
        outcome
    }

    /// Checks and loads a fetched snapshot.
    async fn accept(&self, text: String, tag: Option<String>) -> Result<(), SnapshotError> {
        let fixed = matches!(self.fetcher.source, Source::Fixed { .. });
        let lenient = matches!(self.fetcher.source, Source::Fixed { lenient: true, .. });
        let old = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let expected_env = self
            .options
            .environment
            .clone()
            .or_else(|| self.fetcher.source.environment().map(String::from))
            .or_else(|| old.as_ref().map(|c| c.header.environment.clone()));
        let rules = Rules {
            schema_version: self.schema_version,
            environment: expected_env.as_deref(),
            current_version: old.as_ref().map(|c| c.header.version),
            require_checksum: !fixed,
        };
        let header = match verify::check(&text, &rules)? {
            Verdict::Unchanged => {
                self.lock_state().etag = tag;
                return Ok(());
            }
            Verdict::Load(h) => h,
        };
        let backend = self.backend.clone();
        let engine = tokio::task::spawn_blocking(move || backend.load(&text, lenient))
            .await
            .map_err(|e| SnapshotError::Rejected(e.to_string()))?
            .map_err(SnapshotError::Rejected)?;
        let changed = old
            .as_ref()
            .map(|o| verify::changed_flags(&o.header.flags, &header.flags));
        let version = header.version;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(Current { engine, header }));
        self.lock_state().etag = tag;
        if let Some(flags_changed) = changed {
            let _ = self.events.send(ClientEvent::ConfigurationChanged {
                flags_changed,
                version,
            });
        }
        Ok(())
    }

    /// The source failed at start: load the bootstrap file, if any, and
    /// report STALE; otherwise stay in ERROR.
    async fn start_from_bootstrap(&self, why: &SnapshotError) -> Result<(), SdkError> {
        let Some(path) = &self.options.bootstrap else {
            return Ok(());
        };
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| SdkError::Bootstrap {
                path: path.clone(),
                source,
            })?;
        self.accept(snapshot_text(bytes)?, None).await?;
        let mut state = self.lock_state();
        state.status = Status::Stale;
        state.source = "bootstrap".into();
        state.last_error = Some(why.to_string());
        drop(state);
        let _ = self.events.send(ClientEvent::Stale {
            error: why.to_string(),
        });
        Ok(())
    }
}

/// The refresher: every poll interval, until stopped.
async fn poll(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.options.poll_interval) => {}
            _ = stop.changed() => return,
        }
        let _ = inner.refresh().await;
    }
}
