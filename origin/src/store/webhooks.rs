//! Webhook subscriptions of an organization, the events they receive, and
//! the outbox their messages wait in until the delivery loop
//! ([`crate::webhooks`]) has sent them.
//!
//! **Events.** Every audited action is an event `<entityType>.<action>`
//! (`flag.create`, `flagConfig.update`) whose data is the audit entry:
//! `Write::commit` (`store/write.rs`) queues a message for every enabled
//! subscription of the entry's organization that selects its type, in the
//! transaction that appends the entry, so a committed change always has
//! its messages and a rolled-back one never does.
//!
//! **Other events** (not audit entries) go through the same outbox:
//!
//! - [`Store::emit_event`] queues one in a transaction of its own, e.g. the
//!   monitor's `rollback`, the publisher's `publish.failed`;
//! - `Write::emit` (in the store, `w.emit(org_id, "changeRequest.approved",
//!   data)`) queues one inside a write, committed or rolled back with it:
//!   the change-request worker emits `changeRequest.opened`, `.approved`,
//!   `.rejected`, `.applied`, `.cancelled` and `breakGlass` this way.
//!
//! The event type must be a known one ([`model::webhook::is_event_type`]:
//! a family of [`model::webhook::EVENT_FAMILIES`] and an action, or a
//! standalone name of [`model::webhook::STANDALONE_EVENTS`]). The message
//! body is `{"type", "timestamp", "data"}` with `data.organization` set to
//! the organization's key.
//!
//! [`model::webhook::is_event_type`]: crate::model::webhook::is_event_type
//! [`model::webhook::EVENT_FAMILIES`]: crate::model::webhook::EVENT_FAMILIES
//! [`model::webhook::STANDALONE_EVENTS`]: crate::model::webhook::STANDALONE_EVENTS
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::model::webhook::WebhookInput;
//! use bunting_origin::store::{Actor, FlagSpec, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let org = store.create_org(&Actor::new("root"), "acme", "Acme").await.unwrap();
//! let ana = Actor::new("ana").in_org(org.id);
//! let input: WebhookInput = serde_json::from_value(serde_json::json!(
//!     {"url": "https://hooks.example.com/x", "events": ["project.*", "rollback"]})).unwrap();
//! let (hook, secret) = store.create_webhook(&ana, org.id, &input.validate().unwrap()).await.unwrap();
//! assert!(secret.starts_with("whsec_"));
//! store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! store.emit_event(org.id, "rollback", serde_json::json!({"flag": "web/x"})).await.unwrap();
//! let log = store.deliveries(hook.id, 10).await.unwrap();
//! let types: Vec<_> = log.iter().map(|d| d.event_type.as_str()).collect();
//! assert_eq!(types, ["rollback", "project.create"]);
//! # });
//! ```

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use utoipa::ToSchema;

use super::rows::{from_json, get_org, not_found, now, stored_time, to_json, unknown};
use super::write::{Write, check_version};
use super::{Actor, AuditEntry, Backend, Problem, Result, Store, StoreError};
use crate::model::webhook::{WebhookFormat, WebhookSpec, is_event_type, selects};

/// The default grace period of a rotated secret: 24 hours, in seconds.
pub const DEFAULT_SECRET_GRACE_SECONDS: u64 = 24 * 3600;
/// The longest grace period of a rotated secret: 30 days, in seconds.
pub const MAX_SECRET_GRACE_SECONDS: u64 = 30 * 24 * 3600;

/// A stored subscription (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    /// Row id.
    pub id: i64,
    /// The organization whose events it receives.
    pub org_id: i64,
    /// Where messages are POSTed.
    pub url: String,
    /// Event-type patterns (`*`, `<family>.*`, an event type).
    pub events: Vec<String>,
    /// `standard` or `slack`.
    pub format: WebhookFormat,
    /// Whether messages are sent.
    pub enabled: bool,
    /// A note for people.
    pub description: String,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// When its secret was last rotated, if ever.
    pub secret_rotated_at: Option<String>,
    /// Until when the secret before the last rotation signs too (every
    /// message then carries two signatures), if that is still ahead.
    pub previous_secret_expires_at: Option<String>,
    /// Bumped by every change (the ETag).
    pub version: i64,
}

/// An event: a message's body in the `standard` format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// Its type, e.g. `flag.create` or `rollback`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (the stored time format, UTC).
    pub timestamp: String,
    /// What happened: the audit entry, or the emitter's data; always with
    /// `organization` (the organization's key).
    pub data: Value,
}

/// One delivery attempt of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// When it started.
    pub at: String,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i64>,
    /// Why it failed without an answer (timeout, connection refused…).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// A message of a subscription and its attempts: the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The message id, sent as `webhook-id` on every attempt.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// When the event was queued.
    pub created_at: String,
    /// `pending` (waiting for its next attempt), `delivered` (a 2xx
    /// answer) or `failed` (no 2xx after the last attempt; redeliver it
    /// by hand).
    pub status: String,
    /// When the next attempt is due (pending messages).
    pub next_attempt_at: Option<String>,
    /// The event (the `standard` body).
    #[schema(value_type = Object)]
    pub event: Value,
    /// Every attempt, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// A message the delivery loop has claimed: what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The message's row id.
    pub row_id: i64,
    /// The message id (`webhook-id`).
    pub msg_id: String,
    /// The event type.
    pub event_type: String,
    /// The event as stored (compact JSON).
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// Whether this attempt is a manual redelivery (one attempt, no
    /// retries).
    pub manual: bool,
    /// Where to send it.
    pub url: String,
    /// How to write it.
    pub format: WebhookFormat,
    /// The secrets that sign it: the current one, then the previous one
    /// during a rotation's grace period.
    pub secrets: Vec<String>,
}

/// What became of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// The receiver answered 2xx.
    Delivered,
    /// Try again after this long.
    Retry(Duration),
    /// No more automatic attempts.
    Failed,
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes (the
/// Standard Webhooks format).
fn new_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

/// A new message id: `msg_` and 32 hex digits.
fn new_msg_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source");
    format!("msg_{}", hex::encode(b))
}

/// `t` in the stored time format (UTC, microseconds).
pub fn stored(t: time::OffsetDateTime) -> String {
    stored_time(t)
}

/// `d` from now, in the stored format.
fn from_now(d: Duration) -> String {
    stored_time(time::OffsetDateTime::now_utc() + d)
}

/// `url` without what may be a credential: its path and query (a Slack
/// incoming-webhook URL is one) become `…`.
///
/// ```
/// use bunting_origin::store::webhooks::redacted_url;
/// assert_eq!(redacted_url("https://hooks.slack.com/services/T0/B0/XyZ"), "https://hooks.slack.com/…");
/// assert_eq!(redacted_url("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/");
/// ```
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let origin = u.origin().ascii_serialization();
            let bare = u.path() == "/" && u.query().is_none() && u.fragment().is_none();
            format!("{origin}/{}", if bare { "" } else { "…" })
        }
        Err(_) => "…".into(),
    }
}

/// A subscription as the audit log (which every viewer of the
/// organization reads) records it: the URL redacted ([`redacted_url`]),
/// never a secret (the record holds none).
fn audited(record: &WebhookRecord) -> Value {
    let mut v = serde_json::to_value(record).expect("serializable");
    v["url"] = Value::String(redacted_url(&record.url));
    v
}

fn webhook_row(r: &AnyRow) -> Result<WebhookRecord> {
    let format: String = r.try_get("format")?;
    let enabled: i64 = r.try_get("enabled")?;
    let previous_until: Option<String> = r.try_get("previous_until")?;
    Ok(WebhookRecord {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        url: r.try_get("url")?,
        events: from_json(r, "events")?,
        format: format
            .parse()
            .map_err(|_| unknown("webhook format", &format))?,
        enabled: enabled != 0,
        description: r.try_get("description")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        secret_rotated_at: r.try_get("rotated_at")?,
        previous_secret_expires_at: previous_until.filter(|u| *u > now()),
        version: r.try_get("version")?,
    })
}

async fn get_webhook(c: &mut AnyConnection, id: i64) -> Result<WebhookRecord> {
    let r = sqlx::query("SELECT * FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    webhook_row(&r.ok_or_else(|| not_found("webhook", id))?)
}

/// The enabled subscriptions of organization `org_id`: (id, patterns).
async fn subscriptions(c: &mut AnyConnection, org_id: i64) -> Result<Vec<(i64, Vec<String>)>> {
    let rows = sqlx::query("SELECT id, events FROM webhooks WHERE org_id = $1 AND enabled = 1")
        .bind(org_id)
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, from_json(r, "events")?)))
        .collect()
}

/// Queues `event` for the subscriptions of `subs` that select it; returns
/// how many messages were queued.
async fn enqueue(
    c: &mut AnyConnection,
    subs: &[(i64, Vec<String>)],
    event: &WebhookEvent,
) -> Result<usize> {
    let payload = to_json(event);
    let at = now();
    let mut queued = 0;
    for (id, patterns) in subs {
        if !selects(patterns, &event.event_type) {
            continue;
        }
        sqlx::query(
            "INSERT INTO webhook_messages (webhook_id, msg_id, event_type, payload, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id)
        .bind(new_msg_id())
        .bind(&event.event_type)
        .bind(&payload)
        .bind(&at)
        .execute(&mut *c)
        .await?;
        queued += 1;
    }
    Ok(queued)
}

/// `data` with `organization` set to `org_key` (an object; anything else
/// is wrapped as `{"value": data}`).
fn with_org(data: Value, org_key: &str) -> Value {
    let mut data = match data {
        Value::Object(m) => m,
        other => serde_json::Map::from_iter([("value".to_string(), other)]),
    };
    data.insert("organization".into(), Value::String(org_key.into()));
    Value::Object(data)
}

/// Queues event `event_type` with `data` for organization `org_id`'s
/// subscriptions on connection `c` (inside the caller's transaction).
async fn emit_on(
    c: &mut AnyConnection,
    org_id: i64,
    event_type: &str,
    data: Value,
) -> Result<usize> {
    if !is_event_type(event_type) {
        return Err(StoreError::Invalid(vec![Problem::new(
            "eventType",
            format!("{event_type:?} is not a known event type"),
        )]));
    }
    let subs = subscriptions(c, org_id).await?;
    if !subs.iter().any(|(_, p)| selects(p, event_type)) {
        return Ok(0);
    }
    let org = get_org(c, org_id).await?;
    let event = WebhookEvent {
        event_type: event_type.to_string(),
        timestamp: now(),
        data: with_org(data, &org.key),
    };
    enqueue(c, &subs, &event).await
}

/// The event of an audit entry: `<entityType>.<action>` with the entry as
/// data (`before`/`after` as JSON, not text).
fn audit_event(e: &AuditEntry, org_key: &str) -> WebhookEvent {
    let json = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    };
    WebhookEvent {
        event_type: format!("{}.{}", e.entity_type, e.action),
        timestamp: e.at.clone(),
        data: serde_json::json!({
            "organization": org_key,
            "seq": e.seq,
            "actor": e.actor,
            "at": e.at,
            "action": e.action,
            "entityType": e.entity_type,
            "entityId": e.entity_id,
            "entityKey": e.entity_key,
            "before": json(&e.before),
            "after": json(&e.after),
            "requestId": e.request_id,
        }),
    }
}

/// Queues the events of `entries` (just appended to the audit chain, in
/// the same transaction) for their organizations' subscriptions.
pub(super) async fn enqueue_audit(c: &mut AnyConnection, entries: &[AuditEntry]) -> Result<()> {
    /// An organization's subscriptions and, once needed, its key.
    struct Org {
        subs: Vec<(i64, Vec<String>)>,
        key: Option<String>,
    }
    let mut orgs: HashMap<i64, Org> = HashMap::new();
    for e in entries {
        let Some(org_id) = e.org_id else { continue };
        let org = match orgs.entry(org_id) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => v.insert(Org {
                subs: subscriptions(c, org_id).await?,
                key: None,
            }),
        };
        let event_type = format!("{}.{}", e.entity_type, e.action);
        if !org.subs.iter().any(|(_, p)| selects(p, &event_type)) {
            continue;
        }
        if org.key.is_none() {
            org.key = Some(get_org(c, org_id).await?.key);
        }
        let event = audit_event(e, org.key.as_deref().unwrap_or_default());
        enqueue(c, &org.subs, &event).await?;
    }
    Ok(())
}

impl Write<'_> {
    /// Queues event `event_type` (e.g. `changeRequest.approved`,
    /// `breakGlass`) with `data` for organization `org_id`'s subscriptions
    /// in this write's transaction: it is delivered only if the write
    /// commits. Returns how many messages were queued.
    #[allow(dead_code)] // the change-request worker's entry point
    pub(super) async fn emit(
        &mut self,
        org_id: i64,
        event_type: &str,
        data: Value,
    ) -> Result<usize> {
        emit_on(self.c(), org_id, event_type, data).await
    }
}

impl Store {
    /// A transaction that may write at once (SQLite: `BEGIN IMMEDIATE`).
    async fn begin_outbox(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Queues event `event_type` with `data` for organization `org_id`'s
    /// enabled subscriptions that select it, in a transaction of its own:
    /// how code outside a store write reports what happened (the monitor's
    /// and the alert endpoint's `rollback`, the publisher's
    /// `publish.failed`). Returns how many messages were queued;
    /// [`StoreError::Invalid`] for an unknown event type.
    pub async fn emit_event(&self, org_id: i64, event_type: &str, data: Value) -> Result<usize> {
        let mut tx = self.begin_outbox().await?;
        let n = emit_on(&mut tx, org_id, event_type, data).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The organization of environment `env_id`.
    pub async fn org_of_environment(&self, env_id: i64) -> Result<i64> {
        let r = sqlx::query(
            "SELECT p.org_id FROM environments e JOIN projects p ON p.id = e.project_id WHERE e.id = $1",
        )
        .bind(env_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.ok_or_else(|| not_found("environment", env_id))?
            .try_get("org_id")?)
    }

    /// Makes a subscription of organization `org_id`; returns it and its
    /// signing secret (shown once).
    pub async fn create_webhook(
        &self,
        actor: &Actor,
        org_id: i64,
        spec: &WebhookSpec,
    ) -> Result<(WebhookRecord, String)> {
        let secret = new_secret();
        let mut w = self.begin(actor).await?;
        get_org(w.c(), org_id).await?;
        let row = sqlx::query(
            "INSERT INTO webhooks (org_id, url, events, format, enabled, description, secret, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(org_id)
        .bind(&spec.url)
        .bind(to_json(&spec.events))
        .bind(spec.format.as_str())
        .bind(i64::from(spec.enabled))
        .bind(&spec.description)
        .bind(&secret)
        .bind(now())
        .bind(&actor.name)
        .fetch_one(w.c())
        .await?;
        let id: i64 = row.try_get("id")?;
        let hook = get_webhook(w.c(), id).await?;
        let key = redacted_url(&hook.url);
        w.audit(
            "create",
            "webhook",
            (id, &key),
            None::<&()>,
            Some(&audited(&hook)),
        )
        .await?;
        w.commit().await?;
        Ok((hook, secret))
    }

    /// The subscriptions of organization `org_id`, by id.
    pub async fn webhooks(&self, org_id: i64) -> Result<Vec<WebhookRecord>> {
        let rows = sqlx::query("SELECT * FROM webhooks WHERE org_id = $1 ORDER BY id")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(webhook_row).collect()
    }

    /// Subscription `id`.
    pub async fn webhook(&self, id: i64) -> Result<WebhookRecord> {
        get_webhook(&mut *self.conn().await?, id).await
    }

    /// Replaces subscription `id` (at version `expected`) by `spec`.
    pub async fn update_webhook(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &WebhookSpec,
    ) -> Result<WebhookRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_webhook(w.c(), id).await?;
        check_version(before.version, expected)?;
        sqlx::query(
            "UPDATE webhooks SET url = $1, events = $2, format = $3, enabled = $4, description = $5, \
             version = version + 1 WHERE id = $6",
        )
        .bind(&spec.url)
        .bind(to_json(&spec.events))
        .bind(spec.format.as_str())
        .bind(i64::from(spec.enabled))
        .bind(&spec.description)
        .bind(id)
        .execute(w.c())
        .await?;
        let after = get_webhook(w.c(), id).await?;
        let key = redacted_url(&after.url);
        let (b, a) = (audited(&before), audited(&after));
        w.audit("update", "webhook", (id, &key), Some(&b), Some(&a))
            .await?;
        w.commit().await?;
        Ok(after)
    }

    /// Deletes subscription `id` (at version `expected`) with its messages
    /// and their delivery log.
    pub async fn delete_webhook(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_webhook(w.c(), id).await?;
        let key = redacted_url(&before.url);
        w.delete(
            "webhook",
            "webhooks",
            id,
            expected,
            (before.version, key, audited(&before)),
        )
        .await?;
        w.commit().await
    }

    /// Gives subscription `id` a new signing secret (returned, shown once);
    /// the current one keeps signing beside it for `grace_seconds` (at
    /// most [`MAX_SECRET_GRACE_SECONDS`], else [`StoreError::Invalid`] at
    /// `graceSeconds`). A secret still in its grace period from an earlier
    /// rotation stops now.
    pub async fn rotate_webhook_secret(
        &self,
        actor: &Actor,
        id: i64,
        grace_seconds: u64,
    ) -> Result<(WebhookRecord, String)> {
        if grace_seconds > MAX_SECRET_GRACE_SECONDS {
            return Err(StoreError::Invalid(vec![Problem::new(
                "graceSeconds",
                format!(
                    "{grace_seconds} is more than {MAX_SECRET_GRACE_SECONDS} seconds (30 days), \
                     the longest grace period"
                ),
            )]));
        }
        let secret = new_secret();
        let mut w = self.begin(actor).await?;
        let before = get_webhook(w.c(), id).await?;
        let current: String = sqlx::query("SELECT secret FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_one(w.c())
            .await?
            .try_get("secret")?;
        let (previous, until) = match grace_seconds {
            0 => (None, None),
            s => (Some(current), Some(from_now(Duration::from_secs(s)))),
        };
        sqlx::query(
            "UPDATE webhooks SET previous_secret = $1, previous_until = $2, secret = $3, rotated_at = $4, \
             version = version + 1 WHERE id = $5",
        )
        .bind(previous)
        .bind(until)
        .bind(&secret)
        .bind(now())
        .bind(id)
        .execute(w.c())
        .await?;
        let after = get_webhook(w.c(), id).await?;
        let key = redacted_url(&after.url);
        let (b, a) = (audited(&before), audited(&after));
        w.audit("rotate", "webhook", (id, &key), Some(&b), Some(&a))
            .await?;
        w.commit().await?;
        Ok((after, secret))
    }

    /// Claims up to `limit` due messages of enabled subscriptions for one
    /// delivery attempt each, for `lease` (longer than an attempt's
    /// timeout): until then, or until [`Store::record_attempt`], no other
    /// delivery loop claims them. On PostgreSQL, loops sharing the
    /// database skip each other's rows (`FOR UPDATE SKIP LOCKED`); SQLite
    /// has a single writer.
    pub async fn claim_deliveries(&self, limit: i64, lease: Duration) -> Result<Vec<Claimed>> {
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE OF m SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let at = now();
        let mut tx = self.begin_outbox().await?;
        let rows = sqlx::query(&format!(
            "UPDATE webhook_messages SET claimed_until = $1 WHERE id IN (\
             SELECT m.id FROM webhook_messages m JOIN webhooks w ON w.id = m.webhook_id \
             WHERE m.status = 'pending' AND m.next_attempt_at <= $2 \
             AND (m.claimed_until IS NULL OR m.claimed_until <= $2) AND w.enabled = 1 \
             ORDER BY m.next_attempt_at, m.id LIMIT $3{skip_locked}) RETURNING id"
        ))
        .bind(from_now(lease))
        .bind(&at)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            let row_id: i64 = r.try_get("id")?;
            let m = sqlx::query(
                "SELECT m.msg_id, m.event_type, m.payload, m.attempts, m.manual, w.url, w.format, \
                 w.secret, w.previous_secret, w.previous_until \
                 FROM webhook_messages m JOIN webhooks w ON w.id = m.webhook_id WHERE m.id = $1",
            )
            .bind(row_id)
            .fetch_one(&mut *tx)
            .await?;
            let format: String = m.try_get("format")?;
            let manual: i64 = m.try_get("manual")?;
            let mut secrets = vec![m.try_get::<String, _>("secret")?];
            let previous: Option<String> = m.try_get("previous_secret")?;
            let until: Option<String> = m.try_get("previous_until")?;
            if let (Some(p), Some(u)) = (previous, until)
                && u > at
            {
                secrets.push(p);
            }
            claimed.push(Claimed {
                row_id,
                msg_id: m.try_get("msg_id")?,
                event_type: m.try_get("event_type")?,
                payload: m.try_get("payload")?,
                attempts: m.try_get("attempts")?,
                manual: manual != 0,
                url: m.try_get("url")?,
                format: format
                    .parse()
                    .map_err(|_| unknown("webhook format", &format))?,
                secrets,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt of claimed message `row_id` and what follows
    /// (`next`); releases the claim. A message deleted meanwhile (its
    /// subscription was) is ignored.
    pub async fn record_attempt(
        &self,
        row_id: i64,
        attempt: &DeliveryAttempt,
        next: NextStep,
    ) -> Result<()> {
        let (status, next_at) = match next {
            NextStep::Delivered => ("delivered", now()),
            NextStep::Retry(after) => ("pending", from_now(after)),
            NextStep::Failed => ("failed", now()),
        };
        let mut tx = self.begin_outbox().await?;
        let updated = sqlx::query(
            "UPDATE webhook_messages SET status = $1, next_attempt_at = $2, attempts = attempts + 1, \
             manual = 0, claimed_until = NULL WHERE id = $3",
        )
        .bind(status)
        .bind(next_at)
        .bind(row_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            sqlx::query(
                "INSERT INTO webhook_attempts (message_id, at, status_code, error, duration_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(row_id)
            .bind(&attempt.at)
            .bind(attempt.status_code)
            .bind(&attempt.error)
            .bind(attempt.duration_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The delivery log of subscription `webhook_id`: its `limit` newest
    /// messages, newest first, each with its attempts.
    pub async fn deliveries(&self, webhook_id: i64, limit: i64) -> Result<Vec<Delivery>> {
        let mut c = self.conn().await?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_messages WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(delivery_row(&mut c, r).await?);
        }
        Ok(out)
    }

    /// Message `msg_id` of subscription `webhook_id`.
    pub async fn delivery(&self, webhook_id: i64, msg_id: &str) -> Result<Delivery> {
        let mut c = self.conn().await?;
        let r = sqlx::query("SELECT * FROM webhook_messages WHERE webhook_id = $1 AND msg_id = $2")
            .bind(webhook_id)
            .bind(msg_id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or_else(|| not_found("delivery", msg_id))?;
        delivery_row(&mut c, &r).await
    }

    /// Asks for a new attempt of message `msg_id` of subscription
    /// `webhook_id` now, with the same message id. A delivered or failed
    /// message gets one attempt (no retries after it); a pending one keeps
    /// its retries and is simply due now.
    pub async fn redeliver(&self, webhook_id: i64, msg_id: &str) -> Result<Delivery> {
        let mut tx = self.begin_outbox().await?;
        let updated = sqlx::query(
            "UPDATE webhook_messages SET manual = CASE WHEN status = 'pending' THEN manual ELSE 1 END, \
             status = 'pending', next_attempt_at = $1 WHERE webhook_id = $2 AND msg_id = $3",
        )
        .bind(now())
        .bind(webhook_id)
        .bind(msg_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(not_found("delivery", msg_id));
        }
        tx.commit().await?;
        self.delivery(webhook_id, msg_id).await
    }
}

async fn delivery_row(c: &mut AnyConnection, r: &AnyRow) -> Result<Delivery> {
    let row_id: i64 = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let attempts = sqlx::query(
        "SELECT at, status_code, error, duration_ms FROM webhook_attempts WHERE message_id = $1 ORDER BY id",
    )
    .bind(row_id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|a| {
        Ok(DeliveryAttempt {
            at: a.try_get("at")?,
            status_code: a.try_get("status_code")?,
            error: a.try_get("error")?,
            duration_ms: a.try_get("duration_ms")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(Delivery {
        id: r.try_get("msg_id")?,
        event_type: r.try_get("event_type")?,
        created_at: r.try_get("created_at")?,
        next_attempt_at: if status == "pending" {
            r.try_get("next_attempt_at")?
        } else {
            None
        },
        status,
        event: from_json(r, "payload")?,
        attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_emitted_in_a_write_commits_or_rolls_back_with_it() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let org = store
            .create_org(&Actor::new("root"), "acme", "Acme")
            .await
            .unwrap();
        let actor = Actor::new("ana").in_org(org.id);
        let spec = WebhookSpec {
            url: "https://hooks.example.com/x".into(),
            events: vec!["changeRequest.*".into(), "breakGlass".into()],
            format: WebhookFormat::Standard,
            enabled: true,
            description: String::new(),
        };
        let (hook, _) = store.create_webhook(&actor, org.id, &spec).await.unwrap();
        let data = serde_json::json!({"changeRequest": 7});
        let queued = store
            .write(&actor, async |w| {
                w.emit(org.id, "changeRequest.approved", data.clone()).await
            })
            .await
            .unwrap();
        assert_eq!(queued, 1);
        let failed = store
            .write(&actor, async |w| {
                w.emit(org.id, "breakGlass", data.clone()).await?;
                Err::<(), _>(StoreError::Conflict { current: 1 })
            })
            .await;
        assert!(failed.is_err());
        let log = store.deliveries(hook.id, 10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].event_type, "changeRequest.approved");
        assert_eq!(log[0].event["data"]["organization"], "acme");
        assert_eq!(log[0].event["data"]["changeRequest"], 7);
        let unknown = store
            .write(&actor, async |w| {
                w.emit(org.id, "changeRequest", data.clone()).await
            })
            .await;
        assert!(matches!(unknown, Err(StoreError::Invalid(_))));
    }
}
