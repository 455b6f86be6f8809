//! Event inserts on PostgreSQL through the typed pool ([`Store::pg`]):
//! every column of a batch is bound as one typed array (`$1::int8[]`,
//! `$2::text[]`, …) in the binary protocol and turned back into rows by
//! `UNNEST`, so neither side writes or parses JSON and a statement has the
//! same twelve (or eight) parameters however many rows it carries.
//!
//! A group of batches is one transaction: one `INSERT` per batch, then
//! **one** merge of the rollup rows of every exposure of the group
//! ([`super::rollup`], sorted by key so that concurrent writers lock
//! rollup rows in one order) into `exposure_users`, then the commit.
//!
//! The inserts are first tried as plain `INSERT`s: almost every event is
//! new, and a plain insert checks the primary key in the same descent that
//! adds the entry, where `ON CONFLICT DO NOTHING` (a speculative insertion)
//! probes the primary key first, inserts, then writes a second WAL record
//! per row to confirm it. When an id is already stored (a retried batch, a
//! duplicate within the group, a concurrent writer's), the plain insert
//! fails with a unique violation and the whole group is rolled back and
//! written again with `ON CONFLICT DO NOTHING` (its row count is the
//! batch's accepted count; a duplicate of an earlier batch of the group is
//! a duplicate of the later one). Either way the transaction stores the
//! same rows and merges the same rollup.
//!
//! [`Store::pg`]: super::Store

use sqlx::{PgConnection, PgPool};

use super::{Exposure, ExposureUser, InsertCounts, MetricEvent, counts, rollup_of};
use crate::store::Result;

/// One batch of rows, borrowed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rows<'a> {
    /// Exposures.
    Exposures(&'a [Exposure]),
    /// Metric events.
    Metrics(&'a [MetricEvent]),
}

/// How the group's inserts treat ids already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Plain `INSERT`: fails on the first id already stored.
    New,
    /// `INSERT … ON CONFLICT DO NOTHING`: skips them.
    SkipDuplicates,
}

// The inserts as macros, so that each statement exists as a constant in
// both forms (each form is prepared once per connection).
macro_rules! insert_exposures {
    () => {
        "INSERT INTO exposures (env_id, id, flag_key, variant, user_key, \
         time_ms, snapshot_version, rule_id, reason, country, device_type, received_ms) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::int8[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[])"
    };
}

macro_rules! insert_metrics {
    () => {
        "INSERT INTO metric_events (env_id, id, name, user_key, value, \
         time_ms, received_ms, properties) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::float8[], \
         $6::int8[], $7::int8[], $8::text[])"
    };
}

/// The exposure insert in `mode`.
fn insert_exposures_sql(mode: Mode) -> &'static str {
    match mode {
        Mode::New => insert_exposures!(),
        Mode::SkipDuplicates => concat!(insert_exposures!(), " ON CONFLICT DO NOTHING"),
    }
}

/// The metric event insert in `mode`.
fn insert_metrics_sql(mode: Mode) -> &'static str {
    match mode {
        Mode::New => insert_metrics!(),
        Mode::SkipDuplicates => concat!(insert_metrics!(), " ON CONFLICT DO NOTHING"),
    }
}

/// Merges rollup rows into `exposure_users`: every merge is a min or a max,
/// so a row merged twice (a retried batch) changes nothing; the update only
/// writes when it changes something (an earlier exposure or a new variant).
const MERGE_ROLLUP: &str = "INSERT INTO exposure_users (env_id, flag_key, user_key, first_ms, \
     variant, vmin, vmax) \
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[], \
     $6::text[], $7::text[]) \
     ON CONFLICT (env_id, flag_key, user_key) DO UPDATE SET \
       first_ms = LEAST(exposure_users.first_ms, excluded.first_ms), \
       variant = CASE WHEN excluded.first_ms < exposure_users.first_ms \
         OR (excluded.first_ms = exposure_users.first_ms AND excluded.variant < exposure_users.variant) \
         THEN excluded.variant ELSE exposure_users.variant END, \
       vmin = LEAST(exposure_users.vmin, excluded.vmin), \
       vmax = GREATEST(exposure_users.vmax, excluded.vmax) \
     WHERE excluded.first_ms < exposure_users.first_ms \
       OR (excluded.first_ms = exposure_users.first_ms AND excluded.variant < exposure_users.variant) \
       OR excluded.vmin < exposure_users.vmin OR excluded.vmax > exposure_users.vmax";

/// Stores `batches` in one transaction and returns the counts of each, in
/// order; merges the rollup of every exposure offered (inserted or not).
/// Plain inserts first; on a unique violation the group again, skipping
/// the ids already stored.
pub(super) async fn insert_batches(
    pool: &PgPool,
    batches: &[Rows<'_>],
) -> Result<Vec<InsertCounts>> {
    match write(pool, batches, Mode::New).await {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Ok(write(pool, batches, Mode::SkipDuplicates).await?)
        }
        r => Ok(r?),
    }
}

/// One attempt of [`insert_batches`] (the transaction rolls back when it
/// fails).
async fn write(pool: &PgPool, batches: &[Rows<'_>], mode: Mode) -> sqlx::Result<Vec<InsertCounts>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        out.push(match *b {
            Rows::Exposures(rows) => insert_exposures(&mut tx, rows, mode).await?,
            Rows::Metrics(rows) => insert_metrics(&mut tx, rows, mode).await?,
        });
    }
    let users = rollup_of(batches.iter().flat_map(|b| match *b {
        Rows::Exposures(rows) => rows,
        Rows::Metrics(_) => &[],
    }));
    merge_rollup(&mut tx, &users).await?;
    tx.commit().await?;
    Ok(out)
}

async fn insert_exposures(
    c: &mut PgConnection,
    rows: &[Exposure],
    mode: Mode,
) -> sqlx::Result<InsertCounts> {
    if rows.is_empty() {
        return Ok(InsertCounts::default());
    }
    let col = |f: fn(&Exposure) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&Exposure) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let n = sqlx::query(insert_exposures_sql(mode))
        .bind(rows.iter().map(|e| e.env_id).collect::<Vec<_>>())
        .bind(col(|e| &e.id))
        .bind(col(|e| &e.flag_key))
        .bind(col(|e| &e.variant))
        .bind(col(|e| &e.user_key))
        .bind(rows.iter().map(|e| e.time_ms).collect::<Vec<_>>())
        .bind(rows.iter().map(|e| e.snapshot_version).collect::<Vec<_>>())
        .bind(opt(|e| e.rule_id.as_deref()))
        .bind(opt(|e| e.reason.as_deref()))
        .bind(opt(|e| e.country.as_deref()))
        .bind(opt(|e| e.device_type.as_deref()))
        .bind(rows.iter().map(|e| e.received_ms).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(counts(rows.len(), n))
}

async fn insert_metrics(
    c: &mut PgConnection,
    rows: &[MetricEvent],
    mode: Mode,
) -> sqlx::Result<InsertCounts> {
    if rows.is_empty() {
        return Ok(InsertCounts::default());
    }
    let col = |f: fn(&MetricEvent) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let n = sqlx::query(insert_metrics_sql(mode))
        .bind(rows.iter().map(|e| e.env_id).collect::<Vec<_>>())
        .bind(col(|e| &e.id))
        .bind(col(|e| &e.name))
        .bind(col(|e| &e.user_key))
        .bind(rows.iter().map(|e| e.value).collect::<Vec<_>>())
        .bind(rows.iter().map(|e| e.time_ms).collect::<Vec<_>>())
        .bind(rows.iter().map(|e| e.received_ms).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|e| e.properties.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(counts(rows.len(), n))
}

async fn merge_rollup(c: &mut PgConnection, users: &[ExposureUser]) -> sqlx::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&ExposureUser) -> &str| users.iter().map(f).collect::<Vec<_>>();
    sqlx::query(MERGE_ROLLUP)
        .bind(users.iter().map(|u| u.env_id).collect::<Vec<_>>())
        .bind(col(|u| &u.flag_key))
        .bind(col(|u| &u.user_key))
        .bind(users.iter().map(|u| u.first_ms).collect::<Vec<_>>())
        .bind(col(|u| &u.variant))
        .bind(col(|u| &u.vmin))
        .bind(col(|u| &u.vmax))
        .execute(&mut *c)
        .await?;
    Ok(())
}
