//! Stored events: experiment exposures and metric events, as
//! `POST /api/v1/events` ([`crate::ingest`]) writes them for the experiment
//! analysis (first exposure per user, conversions and per-user sums of a
//! metric within attribution windows).
//!
//! Both tables are keyed by `(env_id, id)` (the environment's id, never
//! reused: migration 0009), and every insert skips the ids already stored
//! (`INSERT … ON CONFLICT DO NOTHING`; on PostgreSQL a binary `COPY` first,
//! repeated with `ON CONFLICT DO NOTHING` only after a duplicate): a retried
//! batch stores nothing twice, and [`InsertCounts`] says how many rows were
//! new and how many were duplicates. Times are Unix milliseconds.
//!
//! Inserts are batched: on SQLite as multi-row `INSERT … VALUES` statements
//! chunked under SQLite's 32,766 bound parameters; on PostgreSQL as one
//! `COPY … FROM STDIN (FORMAT binary)` per batch through a typed `PgPool`
//! (module `pg`; after a duplicate id, `INSERT … SELECT * FROM
//! UNNEST($1::int8[], $2::text[], …) ON CONFLICT DO NOTHING`, each column one
//! array in the binary protocol; no JSON on either side).
//!
//! Every inserted exposure (not a skipped duplicate) also merges into the
//! per-user rollup `exposure_users` ([`ExposureUser`], migration 0007) that
//! the experiment analysis reads: on PostgreSQL by one statement per
//! transaction merging the [`rollup`] rows of all its batches, on SQLite
//! by a trigger.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Exposure, InsertCounts, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let e = Exposure {
//!     env_id: 1,
//!     id: "x1".into(),
//!     flag_key: "checkout".into(),
//!     variant: "b".into(),
//!     user_key: "5c0f".into(),
//!     time_ms: 1_764_000_000_000,
//!     snapshot_version: Some(7),
//!     rule_id: None,
//!     reason: None,
//!     country: Some("DE".into()),
//!     device_type: None,
//!     received_ms: 1_764_000_000_100,
//! };
//! let first = store.insert_exposures(&[e.clone()]).await.unwrap();
//! assert_eq!(first, InsertCounts { accepted: 1, duplicates: 0 });
//! let again = store.insert_exposures(&[e.clone()]).await.unwrap();
//! assert_eq!(again, InsertCounts { accepted: 0, duplicates: 1 });
//! assert_eq!(store.count_exposures(1).await.unwrap(), 1);
//! assert_eq!(store.exposures_of(1).await.unwrap(), vec![e]);
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Result, Store};

mod pg;
pub(crate) use pg::Covered;
use pg::Rows;

/// Most bound parameters in one SQLite statement.
const SQLITE_MAX_PARAMS: usize = 32_766;

/// One stored exposure: a visitor was served `variant` of `flag_key` by a
/// pseudorandom split. Field names are the column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// The environment's id in the store (never reused): ingestion resolves
    /// the edge's name (`org/project/environment`) to it.
    pub env_id: i64,
    /// Deduplication id, unique within the environment.
    pub id: String,
    /// Flag key.
    pub flag_key: String,
    /// Served variant.
    pub variant: String,
    /// The user: the edge's keyed hash of the targeting key.
    pub user_key: String,
    /// When it was served (Unix ms).
    pub time_ms: i64,
    /// The snapshot version that served it.
    pub snapshot_version: Option<i64>,
    /// The targeting rule whose rollout assigned the variant.
    pub rule_id: Option<String>,
    /// The evaluation reason, when the producer sends one.
    pub reason: Option<String>,
    /// Country of the request, if known.
    pub country: Option<String>,
    /// Device type, if known.
    pub device_type: Option<String>,
    /// When the origin received it (Unix ms).
    pub received_ms: i64,
}

/// One stored metric event (a purchase, a sign-up…) of a user. Field names
/// are the column names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricEvent {
    /// The environment's id in the store (never reused).
    pub env_id: i64,
    /// Deduplication id (the client's idempotency id), unique within the
    /// environment.
    pub id: String,
    /// Event name, e.g. `purchase`.
    pub name: String,
    /// The user: the same keyed hash exposures carry.
    pub user_key: String,
    /// The numeric value (revenue, duration…), if any.
    pub value: Option<f64>,
    /// When it happened (Unix ms).
    pub time_ms: i64,
    /// When it was received (Unix ms): the edge's receive time, else the
    /// origin's.
    pub received_ms: i64,
    /// Extra properties: compact JSON object text.
    pub properties: Option<String>,
}

/// What one insert did.
///
/// ```
/// let c = bunting_origin::store::InsertCounts { accepted: 2, duplicates: 1 };
/// assert_eq!(c.total(), 3);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InsertCounts {
    /// Rows stored.
    pub accepted: u64,
    /// Rows skipped because their id was already stored.
    pub duplicates: u64,
}

impl InsertCounts {
    /// Rows offered.
    pub fn total(&self) -> u64 {
        self.accepted + self.duplicates
    }
}

/// A batch of one kind of event, for [`Store::insert_event_batches`].
///
/// ```
/// use bunting_origin::store::EventBatch;
/// assert!(EventBatch::Metrics(Vec::new()).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum EventBatch {
    /// Exposures.
    Exposures(Vec<Exposure>),
    /// Metric events.
    Metrics(Vec<MetricEvent>),
}

impl EventBatch {
    /// Number of events.
    pub fn len(&self) -> usize {
        match self {
            EventBatch::Exposures(v) => v.len(),
            EventBatch::Metrics(v) => v.len(),
        }
    }

    /// Whether it holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const EXPOSURE_COLUMNS: &[&str] = &[
    "env_id",
    "id",
    "flag_key",
    "variant",
    "user_key",
    "time_ms",
    "snapshot_version",
    "rule_id",
    "reason",
    "country",
    "device_type",
    "received_ms",
];

const METRIC_COLUMNS: &[&str] = &[
    "env_id",
    "id",
    "name",
    "user_key",
    "value",
    "time_ms",
    "received_ms",
    "properties",
];

/// `INSERT INTO table (cols) VALUES (?, …), … ON CONFLICT DO NOTHING` for
/// `rows` rows (SQLite only). Anonymous `?` placeholders: SQLite treats
/// `$N` as a *named* parameter and looks each name up in a list, which is
/// quadratic in the number of parameters (a 2,000-row insert spent about a
/// second parsing its SQL).
fn values_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    sql.reserve(rows * (row.len() + 2) + 24);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// One row of the per-user exposure rollup (`exposure_users`, migration
/// 0007): a user's first exposure to a flag in an environment and the range
/// of variants they were served. Field names are the column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposureUser {
    /// The environment's id in the store.
    pub env_id: i64,
    /// Flag key.
    pub flag_key: String,
    /// The user.
    pub user_key: String,
    /// Time of the first exposure (Unix ms).
    pub first_ms: i64,
    /// Variant of the first exposure (ties at the same millisecond: the
    /// smallest variant).
    pub variant: String,
    /// The smallest variant served to the user.
    pub vmin: String,
    /// The largest variant served to the user (≠ `vmin`: several arms).
    pub vmax: String,
}

/// The rollup rows of `rows`: one per (environment, flag, user), merged
/// the way the stored rollup merges them (earliest (time, variant), min and
/// max variant), sorted by key: what a PostgreSQL exposure insert merges
/// into the stored rollup (SQLite's trigger merges row by row the same
/// way; tests compare the stored rollup with this over all exposures).
///
/// ```
/// use bunting_origin::store::{Exposure, events::rollup};
/// let x = |variant: &str, t: i64| Exposure {
///     env_id: 1, id: format!("{t}"), flag_key: "f".into(),
///     variant: variant.into(), user_key: "u".into(), time_ms: t,
///     snapshot_version: None, rule_id: None, reason: None, country: None,
///     device_type: None, received_ms: t,
/// };
/// let r = rollup(&[x("on", 9), x("off", 5), x("on", 5)]);
/// assert_eq!(r.len(), 1);
/// assert_eq!((r[0].first_ms, r[0].variant.as_str()), (5, "off"));
/// assert_eq!((r[0].vmin.as_str(), r[0].vmax.as_str()), ("off", "on"));
/// ```
pub fn rollup(rows: &[Exposure]) -> Vec<ExposureUser> {
    let mut users = rollup_of(&[rows]);
    sort_rollup(&mut users);
    users.iter().map(UserSpan::to_owned).collect()
}

/// A rollup row whose text borrows from the exposures it was made of:
/// grouping a batch's exposures and checking them against the rows
/// committed before ([`Covered`]) allocates nothing; only the rows
/// still to merge are copied, and only where they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSpan<'a> {
    /// The environment's id in the store.
    pub(crate) env_id: i64,
    /// Flag key.
    pub(crate) flag_key: &'a str,
    /// The user.
    pub(crate) user_key: &'a str,
    /// First exposure and variants.
    pub(crate) span: Span<&'a str>,
}

impl UserSpan<'_> {
    /// The rollup's key: (environment, flag, user).
    fn key(&self) -> (i64, &str, &str) {
        (self.env_id, self.flag_key, self.user_key)
    }

    /// The row as an [`ExposureUser`].
    fn to_owned(&self) -> ExposureUser {
        ExposureUser {
            env_id: self.env_id,
            flag_key: self.flag_key.to_owned(),
            user_key: self.user_key.to_owned(),
            first_ms: self.span.first_ms,
            variant: self.span.variant.to_owned(),
            vmin: self.span.vmin.to_owned(),
            vmax: self.span.vmax.to_owned(),
        }
    }
}

/// The rollup rows of the exposures of `batches`, one per (environment,
/// flag, user), merged by [`Span::widen`], in no particular order (see
/// [`sort_rollup`]).
pub(crate) fn rollup_of<'a>(batches: &[&'a [Exposure]]) -> Vec<UserSpan<'a>> {
    let n = batches.iter().map(|b| b.len()).sum();
    let mut users: HashMap<(i64, &str, &str), Span<&str>, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(n, Default::default());
    for e in batches.iter().copied().flatten() {
        let v = e.variant.as_str();
        users
            .entry((e.env_id, e.flag_key.as_str(), e.user_key.as_str()))
            .and_modify(|s| s.widen(e.time_ms, v, v, v))
            .or_insert(Span {
                first_ms: e.time_ms,
                variant: v,
                vmin: v,
                vmax: v,
            });
    }
    users
        .into_iter()
        .map(|((env_id, flag_key, user_key), span)| UserSpan {
            env_id,
            flag_key,
            user_key,
            span,
        })
        .collect()
}

/// Sorts rollup rows by key (environment, flag, user): [`rollup`]'s order,
/// and the order in which PostgreSQL writers lock rollup rows.
pub(crate) fn sort_rollup(users: &mut [UserSpan<'_>]) {
    users.sort_unstable_by(|a, b| a.key().cmp(&b.key()));
}

/// What a rollup row holds besides its key, and the rollup's merge rule:
/// the one place it is written in Rust ([`rollup`], and the rows
/// PostgreSQL ingestion remembers as committed). Its text is owned
/// (`String`, remembered rows) or borrowed (`&str`, from a batch's
/// exposures while grouping them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span<S = String> {
    /// Time of the first exposure (Unix ms).
    pub(crate) first_ms: i64,
    /// Variant of the first exposure (ties: the smallest variant).
    pub(crate) variant: S,
    /// The smallest variant served.
    pub(crate) vmin: S,
    /// The largest variant served.
    pub(crate) vmax: S,
}

/// A [`Span`]'s text: set from a `&'v str`, by copying it into a `String`
/// (reusing its buffer) or by keeping the reference.
pub(crate) trait SpanText<'v>: AsRef<str> {
    /// Makes this text `v`.
    fn set(&mut self, v: &'v str);
}

impl<'v> SpanText<'v> for String {
    fn set(&mut self, v: &'v str) {
        v.clone_into(self);
    }
}

impl<'v> SpanText<'v> for &'v str {
    fn set(&mut self, v: &'v str) {
        *self = v;
    }
}

impl<S: AsRef<str>> Span<S> {
    /// Merges a first exposure `(first_ms, variant)` and the variants
    /// `vmin..=vmax` in, as the stored rollup's merge does: the earliest
    /// `(time, variant)`, the smallest and the largest variant.
    pub(crate) fn widen<'v>(
        &mut self,
        first_ms: i64,
        variant: &'v str,
        vmin: &'v str,
        vmax: &'v str,
    ) where
        S: SpanText<'v>,
    {
        if (first_ms, variant) < (self.first_ms, self.variant.as_ref()) {
            self.first_ms = first_ms;
            self.variant.set(variant);
        }
        if vmin < self.vmin.as_ref() {
            self.vmin.set(vmin);
        }
        if vmax > self.vmax.as_ref() {
            self.vmax.set(vmax);
        }
    }

    /// Whether merging `s` into a row holding at least this would change
    /// nothing (the stored merge's `WHERE` would be false).
    pub(crate) fn covers<T: AsRef<str>>(&self, s: &Span<T>) -> bool {
        (self.first_ms, self.variant.as_ref()) <= (s.first_ms, s.variant.as_ref())
            && self.vmin.as_ref() <= s.vmin.as_ref()
            && self.vmax.as_ref() >= s.vmax.as_ref()
    }

    /// The span with its text copied.
    pub(crate) fn to_owned(&self) -> Span {
        Span {
            first_ms: self.first_ms,
            variant: self.variant.as_ref().to_owned(),
            vmin: self.vmin.as_ref().to_owned(),
            vmax: self.vmax.as_ref().to_owned(),
        }
    }
}

/// The latest migration that (re)creates `exposure_users` (0009, keyed by
/// environment id); the store rebuilds the rollup from the stored exposures
/// right after applying it.
pub(crate) const ROLLUP_MIGRATION: i64 = 9;

/// Replaces the rollup with one computed from every stored exposure (the
/// same merge as ingestion: earliest (time, variant), min and max variant).
/// Returns the number of rollup rows.
pub(crate) async fn rebuild_rollup(c: &mut AnyConnection, backend: Backend) -> Result<u64> {
    let insert = match backend {
        Backend::Postgres => {
            "INSERT INTO exposure_users (env_id, flag_key, user_key, first_ms, variant, vmin, vmax) \
             SELECT env_id, flag_key, user_key, MIN(time_ms), \
               (array_agg(variant ORDER BY time_ms, variant))[1], MIN(variant), MAX(variant) \
             FROM exposures GROUP BY env_id, flag_key, user_key"
        }
        // No ordered aggregate: the smallest variant of the earliest
        // exposures, looked up per user.
        Backend::Sqlite => {
            "INSERT INTO exposure_users (env_id, flag_key, user_key, first_ms, variant, vmin, vmax) \
             SELECT g.env_id, g.flag_key, g.user_key, g.t0, \
               (SELECT MIN(x.variant) FROM exposures x WHERE x.env_id = g.env_id \
                AND x.flag_key = g.flag_key AND x.user_key = g.user_key AND x.time_ms = g.t0), \
               g.vmin, g.vmax \
             FROM (SELECT env_id, flag_key, user_key, MIN(time_ms) AS t0, \
                   MIN(variant) AS vmin, MAX(variant) AS vmax \
                   FROM exposures GROUP BY env_id, flag_key, user_key) g"
        }
    };
    if backend == Backend::Postgres {
        // Concurrent ingestion waits for the rebuild instead of racing it:
        // batches that merged before wait to commit first (the rebuild then
        // reads their exposures), batches that merge after see the rebuilt
        // rows. (SQLite has one writer: the transaction is enough.)
        sqlx::query("LOCK TABLE exposure_users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *c)
            .await?;
    }
    sqlx::query("DELETE FROM exposure_users")
        .execute(&mut *c)
        .await?;
    let n = sqlx::query(insert).execute(&mut *c).await?.rows_affected();
    Ok(n)
}

fn counts(offered: usize, inserted: u64) -> InsertCounts {
    InsertCounts {
        accepted: inserted,
        duplicates: (offered as u64).saturating_sub(inserted),
    }
}

/// SQLite: inserts exposures; the `exposures_rollup` trigger (migration
/// 0007) merges every inserted row into the rollup.
async fn sqlite_insert_exposures(c: &mut AnyConnection, rows: &[Exposure]) -> Result<InsertCounts> {
    let mut inserted = 0;
    for chunk in rows.chunks(SQLITE_MAX_PARAMS / EXPOSURE_COLUMNS.len()) {
        let sql = values_sql("exposures", EXPOSURE_COLUMNS, chunk.len());
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.env_id)
                .bind(&e.id)
                .bind(&e.flag_key)
                .bind(&e.variant)
                .bind(&e.user_key)
                .bind(e.time_ms)
                .bind(e.snapshot_version)
                .bind(&e.rule_id)
                .bind(&e.reason)
                .bind(&e.country)
                .bind(&e.device_type)
                .bind(e.received_ms);
        }
        inserted += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(counts(rows.len(), inserted))
}

/// SQLite: inserts metric events.
async fn sqlite_insert_metrics(
    c: &mut AnyConnection,
    rows: &[MetricEvent],
) -> Result<InsertCounts> {
    let mut inserted = 0;
    for chunk in rows.chunks(SQLITE_MAX_PARAMS / METRIC_COLUMNS.len()) {
        let sql = values_sql("metric_events", METRIC_COLUMNS, chunk.len());
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.env_id)
                .bind(&e.id)
                .bind(&e.name)
                .bind(&e.user_key)
                .bind(e.value)
                .bind(e.time_ms)
                .bind(e.received_ms)
                .bind(&e.properties);
        }
        inserted += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(counts(rows.len(), inserted))
}

fn exposure_row(r: &AnyRow) -> Result<Exposure> {
    Ok(Exposure {
        env_id: r.try_get("env_id")?,
        id: r.try_get("id")?,
        flag_key: r.try_get("flag_key")?,
        variant: r.try_get("variant")?,
        user_key: r.try_get("user_key")?,
        time_ms: r.try_get("time_ms")?,
        snapshot_version: r.try_get("snapshot_version")?,
        rule_id: r.try_get("rule_id")?,
        reason: r.try_get("reason")?,
        country: r.try_get("country")?,
        device_type: r.try_get("device_type")?,
        received_ms: r.try_get("received_ms")?,
    })
}

fn metric_row(r: &AnyRow) -> Result<MetricEvent> {
    Ok(MetricEvent {
        env_id: r.try_get("env_id")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        user_key: r.try_get("user_key")?,
        value: r.try_get("value")?,
        time_ms: r.try_get("time_ms")?,
        received_ms: r.try_get("received_ms")?,
        properties: r.try_get("properties")?,
    })
}

/// Rows the purge deletes per statement: one short transaction each, so
/// ingestion and writes never wait long behind it.
const PURGE_CHUNK: i64 = 5_000;

impl Store {
    /// The ids of the environments named `names` (the edge's names,
    /// `org/project/environment`) that exist now; names of no environment
    /// are absent from the map.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
    /// let names = ["acme/web/production".to_string(), "acme/web/staging".to_string()];
    /// let found = store.environment_ids(&names).await.unwrap();
    /// assert_eq!(found["acme/web/production"], prod.id);
    /// assert!(!found.contains_key("acme/web/staging"));
    /// # });
    /// ```
    pub async fn environment_ids(&self, names: &[String]) -> Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        let mut c = self.conn().await?;
        for name in names {
            let mut parts = name.splitn(3, '/');
            let (Some(org), Some(project), Some(env)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let row = sqlx::query(
                "SELECT v.id FROM environments v \
                 JOIN projects p ON p.id = v.project_id JOIN organizations o ON o.id = p.org_id \
                 WHERE o.key = $1 AND p.key = $2 AND v.key = $3",
            )
            .bind(org)
            .bind(project)
            .bind(env)
            .fetch_optional(&mut *c)
            .await?;
            if let Some(r) = row {
                out.insert(name.clone(), r.try_get("id")?);
            }
        }
        Ok(out)
    }

    /// Deletes the stored events (exposures, their rollup, metric events)
    /// of deleted environments, in chunks of short transactions, and
    /// returns the number of rows deleted. An environment's events are
    /// unreachable from the moment it is deleted (they are keyed by its id,
    /// never reused); `bunting serve` runs this in the background. An
    /// environment leaves the purge queue once nothing of it is left and
    /// `settle_ms` have passed since its deletion (a batch resolved just
    /// before the deletion may still commit during that time).
    pub async fn purge_orphaned_events(&self, settle_ms: i64) -> Result<u64> {
        let queued =
            sqlx::query("SELECT env_id, deleted_ms FROM deleted_environments ORDER BY env_id")
                .fetch_all(&self.pool)
                .await?;
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let mut deleted = 0;
        for r in queued {
            let env_id: i64 = r.try_get("env_id")?;
            let deleted_ms: i64 = r.try_get("deleted_ms")?;
            for (table, key) in [
                ("exposures", "id"),
                ("metric_events", "id"),
                ("exposure_users", "flag_key, user_key"),
            ] {
                loop {
                    let mut tx = self.begin_events().await?;
                    let n = sqlx::query(&format!(
                        "DELETE FROM {table} WHERE env_id = $1 AND ({key}) IN \
                         (SELECT {key} FROM {table} WHERE env_id = $1 LIMIT $2)"
                    ))
                    .bind(env_id)
                    .bind(PURGE_CHUNK)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    deleted += n;
                    if n < PURGE_CHUNK as u64 {
                        break;
                    }
                }
            }
            self.drop_cached_looks(Some(env_id)).await?;
            if now.saturating_sub(deleted_ms) >= settle_ms {
                sqlx::query("DELETE FROM deleted_environments WHERE env_id = $1")
                    .bind(env_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(deleted)
    }

    /// Stores exposures in one transaction; ids already stored (in the same
    /// environment) are skipped and counted as duplicates.
    /// See the [module example](self).
    pub async fn insert_exposures(&self, rows: &[Exposure]) -> Result<InsertCounts> {
        Ok(self.insert_rows(&[Rows::Exposures(rows)]).await?[0])
    }

    /// Stores metric events in one transaction; ids already stored (in the
    /// same environment) are skipped and counted as duplicates.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{MetricEvent, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let e = MetricEvent {
    ///     env_id: 1, id: "o-1".into(), name: "purchase".into(),
    ///     user_key: "5c0f".into(), value: Some(12.5), time_ms: 1, received_ms: 2,
    ///     properties: Some(r#"{"currency":"EUR"}"#.into()),
    /// };
    /// let twice = [e.clone(), e.clone()];
    /// let n = store.insert_metric_events(&twice).await.unwrap();
    /// assert_eq!((n.accepted, n.duplicates), (1, 1));
    /// assert_eq!(store.metric_events_of(1).await.unwrap(), vec![e]);
    /// # });
    /// ```
    pub async fn insert_metric_events(&self, rows: &[MetricEvent]) -> Result<InsertCounts> {
        Ok(self.insert_rows(&[Rows::Metrics(rows)]).await?[0])
    }

    /// Stores several batches in **one** transaction (one commit, the
    /// expensive part) and returns the counts of each, in order. A duplicate
    /// of an event of an earlier batch of the same call counts as a
    /// duplicate of the later one. Either every batch is stored or none.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{EventBatch, MetricEvent, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let e = MetricEvent {
    ///     env_id: 1, id: "o-1".into(), name: "signup".into(),
    ///     user_key: "u".into(), value: None, time_ms: 1, received_ms: 1, properties: None,
    /// };
    /// let batches = [EventBatch::Metrics(vec![e.clone()]), EventBatch::Metrics(vec![e])];
    /// let counts = store.insert_event_batches(&batches).await.unwrap();
    /// assert_eq!((counts[0].accepted, counts[1].duplicates), (1, 1));
    /// # });
    /// ```
    pub async fn insert_event_batches(&self, batches: &[EventBatch]) -> Result<Vec<InsertCounts>> {
        let rows: Vec<Rows<'_>> = batches
            .iter()
            .map(|b| match b {
                EventBatch::Exposures(rows) => Rows::Exposures(rows),
                EventBatch::Metrics(rows) => Rows::Metrics(rows),
            })
            .collect();
        self.insert_rows(&rows).await
    }

    /// Stores `batches` in one transaction: through the typed pool on
    /// PostgreSQL ([`pg`]), as multi-row `VALUES` on SQLite.
    async fn insert_rows(&self, batches: &[Rows<'_>]) -> Result<Vec<InsertCounts>> {
        if let Some(pool) = &self.pg {
            return pg::insert_batches(pool, batches, &self.covered).await;
        }
        let mut tx = self.begin_events().await?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            out.push(match *b {
                Rows::Exposures(rows) => sqlite_insert_exposures(&mut tx, rows).await?,
                Rows::Metrics(rows) => sqlite_insert_metrics(&mut tx, rows).await?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A write transaction for events. On SQLite `BEGIN IMMEDIATE`: it takes
    /// the write lock up front and waits for it (busy timeout), where a
    /// deferred `BEGIN` of two concurrent writers can deadlock and fail
    /// with "database is locked".
    async fn begin_events(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Number of exposures stored for environment `env_id`.
    /// See the [module example](self).
    pub async fn count_exposures(&self, env_id: i64) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM exposures WHERE env_id = $1",
            env_id,
        )
        .await
    }

    /// Number of metric events stored for environment `env_id`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = bunting_origin::store::Store::open("sqlite::memory:").await.unwrap();
    /// assert_eq!(store.count_metric_events(1).await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn count_metric_events(&self, env_id: i64) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM metric_events WHERE env_id = $1",
            env_id,
        )
        .await
    }

    async fn count(&self, sql: &str, env_id: i64) -> Result<i64> {
        let row = sqlx::query(sql).bind(env_id).fetch_one(&self.pool).await?;
        Ok(row.try_get("n")?)
    }

    /// Every exposure of environment `env_id`, by time then id (tests and small
    /// exports; the analysis queries the tables).
    /// See the [module example](self).
    pub async fn exposures_of(&self, env_id: i64) -> Result<Vec<Exposure>> {
        let rows = sqlx::query("SELECT * FROM exposures WHERE env_id = $1 ORDER BY time_ms, id")
            .bind(env_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(exposure_row).collect()
    }

    /// Rebuilds the per-user exposure rollup (`exposure_users`) from every
    /// stored exposure, in one transaction; returns its rows. Ingestion
    /// keeps the rollup current by itself: this is for exposures written
    /// around it (a bulk `INSERT … SELECT`, a restore of the `exposures`
    /// table alone, deleted exposures). Safe while ingestion runs: on
    /// PostgreSQL the rebuild locks the rollup against concurrent merges
    /// (they wait), on SQLite the single writer serializes them.
    pub async fn rebuild_exposure_users(&self) -> Result<u64> {
        let mut tx = self.begin_events().await?;
        let n = rebuild_rollup(&mut tx, self.backend()).await?;
        tx.commit().await?;
        self.drop_cached_looks(None).await?;
        Ok(n)
    }

    /// The per-user exposure rollup of environment `env_id` (tests and
    /// diagnostics), by flag then user: what ingestion maintained, which
    /// equals [`rollup`] of every stored exposure.
    pub async fn exposure_users_of(&self, env_id: i64) -> Result<Vec<ExposureUser>> {
        let rows = sqlx::query(
            "SELECT * FROM exposure_users WHERE env_id = $1 ORDER BY flag_key, user_key",
        )
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ExposureUser {
                    env_id: r.try_get("env_id")?,
                    flag_key: r.try_get("flag_key")?,
                    user_key: r.try_get("user_key")?,
                    first_ms: r.try_get("first_ms")?,
                    variant: r.try_get("variant")?,
                    vmin: r.try_get("vmin")?,
                    vmax: r.try_get("vmax")?,
                })
            })
            .collect()
    }

    /// Every metric event of environment `env_id`, by time then id.
    /// See [`Store::insert_metric_events`] for an example.
    pub async fn metric_events_of(&self, env_id: i64) -> Result<Vec<MetricEvent>> {
        let rows =
            sqlx::query("SELECT * FROM metric_events WHERE env_id = $1 ORDER BY time_ms, id")
                .bind(env_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(metric_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_sql_has_a_placeholder_per_value() {
        assert_eq!(
            values_sql("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn sqlite_chunks_stay_under_the_parameter_limit() {
        let rows = SQLITE_MAX_PARAMS / EXPOSURE_COLUMNS.len();
        assert!(rows * EXPOSURE_COLUMNS.len() <= SQLITE_MAX_PARAMS);
        assert!((rows + 1) * EXPOSURE_COLUMNS.len() > SQLITE_MAX_PARAMS);
    }
}
