//! Delivering webhook messages: the loop `bunting serve` starts ([`spawn`])
//! over the outbox of [`crate::store::webhooks`].
//!
//! Each round claims the due messages ([`Store::claim_deliveries`]: on
//! PostgreSQL with `FOR UPDATE SKIP LOCKED`, so origins sharing a database
//! never send one message twice at the same time) and POSTs each to its
//! subscription's URL, signed as the Standard Webhooks specification says
//! ([`sign`]): headers `webhook-id` (the message id, the same on every
//! attempt), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature`. The body is the event (`standard`) or a Slack
//! message ([`slack`]). A 2xx answer delivers the message; anything else
//! (another status, a redirect, a timeout, a refused connection) is
//! recorded and retried after an exponential backoff with jitter, up to
//! [`DeliveryOptions::max_attempts`]; then the message is `failed`, visible
//! in the delivery log, and can be redelivered by hand. Every attempt is
//! recorded (time, status or error, duration) and counted in
//! `bunting_webhook_deliveries_total{outcome}`.
//!
//! All state is in the database: a restarted loop (or another origin)
//! picks up what is pending; a message claimed by a loop that died is
//! claimed again once its lease (an attempt's timeout plus 30 s) has run
//! out. Delivery is at least once: receivers deduplicate by `webhook-id`.

pub mod sign;
pub mod slack;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::metrics::{Metrics, OutcomeLabels};
use crate::model::webhook::WebhookFormat;
use crate::store::Store;
use crate::store::webhooks::{Claimed, DeliveryAttempt, NextStep};

/// How the delivery loop runs.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// How often to look for due messages. Default 1 s.
    pub poll_interval: Duration,
    /// The longest an attempt may take (connecting, sending, the answer's
    /// status). Default 10 s.
    pub timeout: Duration,
    /// Attempts before a message is `failed`. Default 8.
    pub max_attempts: u32,
    /// The delay after the first failed attempt; doubles with each failure
    /// (times a jitter in `[0.5, 1)`). Default 30 s.
    pub initial_backoff: Duration,
    /// The longest delay between two attempts. Default 1 h (with the
    /// defaults, a message is given up about 1.5 h after it was queued).
    pub max_backoff: Duration,
    /// The most messages sent at once. Default 16.
    pub batch: i64,
    /// Wakes the loop before its next poll (e.g. after a redelivery).
    pub wakeup: Arc<Notify>,
}

impl Default for DeliveryOptions {
    fn default() -> DeliveryOptions {
        DeliveryOptions {
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            batch: 16,
            wakeup: Arc::new(Notify::new()),
        }
    }
}

impl DeliveryOptions {
    /// What follows an attempt that answered `ok` (2xx) or not, the
    /// message's `attempts` (this one included) and whether it was a
    /// manual redelivery (one attempt, no retries).
    ///
    /// ```
    /// use std::time::Duration;
    /// use bunting_origin::store::webhooks::NextStep;
    /// use bunting_origin::webhooks::DeliveryOptions;
    /// let o = DeliveryOptions { max_attempts: 3, ..DeliveryOptions::default() };
    /// assert_eq!(o.next_step(true, 1, false), NextStep::Delivered);
    /// assert!(matches!(o.next_step(false, 2, false), NextStep::Retry(d) if d < Duration::from_secs(60)));
    /// assert_eq!(o.next_step(false, 3, false), NextStep::Failed);
    /// assert_eq!(o.next_step(false, 4, true), NextStep::Failed);
    /// ```
    pub fn next_step(&self, ok: bool, attempts: i64, manual: bool) -> NextStep {
        if ok {
            NextStep::Delivered
        } else if manual || attempts >= i64::from(self.max_attempts) {
            NextStep::Failed
        } else {
            let n = u32::try_from(attempts).unwrap_or(u32::MAX);
            NextStep::Retry(crate::publish::backoff(
                self.initial_backoff,
                self.max_backoff,
                n,
            ))
        }
    }

    /// How long a claim holds a message: longer than any attempt.
    fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }
}

struct Shared {
    wakeup: Arc<Notify>,
    stop: Notify,
    stopping: AtomicBool,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The running delivery loop. Cheap to clone; [`DeliveryHandle::shutdown`]
/// stops it for every clone.
#[derive(Clone)]
pub struct DeliveryHandle {
    shared: Arc<Shared>,
}

impl DeliveryHandle {
    /// Wakes the loop now.
    pub fn notify(&self) {
        self.shared.wakeup.notify_one();
    }

    /// Stops the loop after the round in flight (its attempts are bounded
    /// by the timeout) and waits for it. Pending messages stay in the
    /// database for the next loop.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_one();
        let task = self.shared.task.lock().expect("not poisoned").take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "the webhook delivery loop panicked");
        }
    }
}

/// Starts the delivery loop on the current tokio runtime: a round at once,
/// then every [`DeliveryOptions::poll_interval`] (at once again when a
/// round was full), until [`DeliveryHandle::shutdown`].
pub fn spawn(store: Store, metrics: Arc<Metrics>, options: DeliveryOptions) -> DeliveryHandle {
    let shared = Arc::new(Shared {
        wakeup: options.wakeup.clone(),
        stop: Notify::new(),
        stopping: AtomicBool::new(false),
        task: std::sync::Mutex::new(None),
    });
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bunting-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client");
    let worker = Worker {
        store,
        metrics,
        options,
        client,
    };
    let s = shared.clone();
    let task = tokio::spawn(async move {
        tracing::info!("webhook delivery loop started");
        while !s.stopping.load(Ordering::SeqCst) {
            let full = match worker.round().await {
                Ok(n) => n as i64 >= worker.options.batch,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook messages failed");
                    false
                }
            };
            if full || s.stopping.load(Ordering::SeqCst) {
                continue;
            }
            tokio::select! {
                _ = s.wakeup.notified() => {}
                _ = s.stop.notified() => {}
                _ = tokio::time::sleep(worker.options.poll_interval) => {}
            }
        }
        tracing::info!("webhook delivery loop stopped");
    });
    *shared.task.lock().expect("not poisoned") = Some(task);
    DeliveryHandle { shared }
}

struct Worker {
    store: Store,
    metrics: Arc<Metrics>,
    options: DeliveryOptions,
    client: reqwest::Client,
}

impl Worker {
    /// Sends every claimed message once, at the same time; returns how
    /// many were claimed.
    async fn round(&self) -> crate::store::Result<usize> {
        let claimed = self
            .store
            .claim_deliveries(self.options.batch, self.options.lease())
            .await?;
        let n = claimed.len();
        let mut attempts = JoinSet::new();
        for m in claimed {
            let (store, metrics, options, client) = (
                self.store.clone(),
                self.metrics.clone(),
                self.options.clone(),
                self.client.clone(),
            );
            attempts.spawn(async move {
                let (attempt, ok) = send(&client, &m).await;
                let next = options.next_step(ok, m.attempts + 1, m.manual);
                let outcome = match next {
                    NextStep::Delivered => "delivered",
                    NextStep::Retry(_) => "retried",
                    NextStep::Failed => "failed",
                };
                metrics
                    .webhook_deliveries
                    .get_or_create(&OutcomeLabels {
                        outcome: outcome.into(),
                    })
                    .inc();
                let log = (&m.msg_id, &m.event_type, attempt.status_code, &attempt.error);
                match next {
                    NextStep::Delivered => tracing::debug!(?log, "webhook delivered"),
                    NextStep::Retry(d) => {
                        tracing::info!(?log, retry_in_ms = d.as_millis() as u64, "webhook attempt failed")
                    }
                    NextStep::Failed => {
                        tracing::warn!(?log, attempts = m.attempts + 1, "webhook message failed")
                    }
                }
                if let Err(e) = store.record_attempt(m.row_id, &attempt, next).await {
                    // The claim runs out and the message is sent again.
                    tracing::warn!(msg_id = %m.msg_id, error = %e, "recording a webhook attempt failed");
                }
            });
        }
        while let Some(r) = attempts.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a webhook attempt panicked");
            }
        }
        Ok(n)
    }
}

/// One attempt of `m`: what to record, and whether it was delivered.
async fn send(client: &reqwest::Client, m: &Claimed) -> (DeliveryAttempt, bool) {
    let started = std::time::Instant::now();
    let at = time::OffsetDateTime::now_utc();
    let body = match m.format {
        WebhookFormat::Standard => m.payload.clone().into_bytes(),
        WebhookFormat::Slack => {
            let event = serde_json::from_str(&m.payload).unwrap_or_default();
            slack::message(&event).to_string().into_bytes()
        }
    };
    let timestamp = at.unix_timestamp();
    let secrets: Vec<&str> = m.secrets.iter().map(String::as_str).collect();
    let result = match sign::sign(&secrets, &m.msg_id, timestamp, &body) {
        None => Err("the subscription's secret is not whsec_<base64>".to_string()),
        Some(signature) => client
            .post(&m.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &m.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e)),
    };
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let at = crate::store::webhooks::stored(at);
    match result {
        Ok(r) => (
            DeliveryAttempt {
                at,
                status_code: Some(i64::from(r.status().as_u16())),
                error: None,
                duration_ms,
            },
            r.status().is_success(),
        ),
        Err(error) => (
            DeliveryAttempt {
                at,
                status_code: None,
                error: Some(error),
                duration_ms,
            },
            false,
        ),
    }
}

/// A request failure in a few words (no URL: it may hold a credential).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}
