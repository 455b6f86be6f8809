//! Event inserts on PostgreSQL through the typed pool ([`Store::pg`]).
//!
//! A group of batches is one transaction: each batch streamed into its
//! table by `COPY … FROM STDIN (FORMAT binary)` (module `copy`), then
//! **one** merge of the rollup rows of every exposure of the group
//! ([`super::rollup`], sorted by key so that concurrent writers lock
//! rollup rows in one order) into `exposure_users`, then the commit.
//!
//! `COPY` is tried first because almost every event is new: like a plain
//! `INSERT` it checks the primary key in the same descent that adds the
//! entry (where `ON CONFLICT DO NOTHING`, a speculative insertion, probes
//! the primary key first, inserts, then writes a second WAL record per row
//! to confirm it), and it stores rows through PostgreSQL's multi-insert
//! path (one heap WAL record per page of rows, not per row) without the
//! parameter arrays and `UNNEST` of an `INSERT … SELECT` (issue 16: ≈ 10 %
//! less PostgreSQL CPU per event than plain `INSERT … SELECT * FROM
//! UNNEST(…)`). When an id is already stored (a retried batch, a duplicate
//! within the group, a concurrent writer's), the `COPY` fails with a unique
//! violation and the whole group is rolled back and written again with
//! `INSERT … SELECT * FROM UNNEST($1::int8[], $2::text[], …) ON CONFLICT DO
//! NOTHING` (every column one typed array in the binary protocol; its row
//! count is the batch's accepted count; a duplicate of an earlier batch of
//! the group is a duplicate of the later one). Either way the transaction
//! stores the same rows and merges the same rollup.
//!
//! [`Store::pg`]: super::Store

use sqlx::{PgConnection, PgPool};

use super::{Exposure, ExposureUser, InsertCounts, MetricEvent, counts, rollup_of};
use crate::store::Result;

mod copy;

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
    /// `COPY`: fails on the first id already stored.
    New,
    /// `INSERT … ON CONFLICT DO NOTHING`: skips them.
    SkipDuplicates,
}

/// The exposure insert that skips ids already stored.
const INSERT_EXPOSURES: &str = "INSERT INTO exposures (env_id, id, flag_key, variant, user_key, \
     time_ms, snapshot_version, rule_id, reason, country, device_type, received_ms) \
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::int8[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[]) \
     ON CONFLICT DO NOTHING";

/// The metric event insert that skips ids already stored.
const INSERT_METRICS: &str = "INSERT INTO metric_events (env_id, id, name, user_key, value, \
     time_ms, received_ms, properties) \
     SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::float8[], \
     $6::int8[], $7::int8[], $8::text[]) \
     ON CONFLICT DO NOTHING";

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

/// How many times a group is written again after PostgreSQL broke a
/// deadlock by aborting it.
const DEADLOCK_RETRIES: usize = 5;

/// Stores `batches` in one transaction and returns the counts of each, in
/// order; merges the rollup of every exposure offered (inserted or not).
/// `COPY` first; on a unique violation the group again, skipping the ids
/// already stored.
///
/// Two writers storing overlapping ids in opposite orders (two groups that
/// hold the same retried batches) wait for each other's uncommitted ids;
/// PostgreSQL aborts one of them (`40P01`, after `deadlock_timeout`). The
/// aborted transaction wrote nothing, so its group is written again,
/// skipping the ids the other writer stored, up to [`DEADLOCK_RETRIES`]
/// times.
pub(super) async fn insert_batches(
    pool: &PgPool,
    batches: &[Rows<'_>],
) -> Result<Vec<InsertCounts>> {
    let mut mode = Mode::New;
    let mut deadlocks = 0;
    loop {
        match write(pool, batches, mode).await {
            Err(sqlx::Error::Database(e)) if mode == Mode::New && e.is_unique_violation() => {
                mode = Mode::SkipDuplicates;
            }
            Err(sqlx::Error::Database(e))
                if deadlocks < DEADLOCK_RETRIES && e.code().as_deref() == Some("40P01") =>
            {
                deadlocks += 1;
                mode = Mode::SkipDuplicates;
            }
            r => return Ok(r?),
        }
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

/// Streams one batch's binary `COPY` data (module `copy`) and returns its
/// counts: `COPY` stores every row or fails, like a plain `INSERT`.
async fn copy_in(
    c: &mut PgConnection,
    statement: &str,
    data: Vec<u8>,
    rows: usize,
) -> sqlx::Result<InsertCounts> {
    let mut copy = c.copy_in_raw(statement).await?;
    // On an error the dropped `PgCopyIn` sends the server its abort.
    copy.send(data).await?;
    let n = copy.finish().await?;
    Ok(counts(rows, n))
}

async fn insert_exposures(
    c: &mut PgConnection,
    rows: &[Exposure],
    mode: Mode,
) -> sqlx::Result<InsertCounts> {
    if rows.is_empty() {
        return Ok(InsertCounts::default());
    }
    if mode == Mode::New {
        return copy_in(
            c,
            copy::COPY_EXPOSURES,
            copy::exposure_rows(rows),
            rows.len(),
        )
        .await;
    }
    let col = |f: fn(&Exposure) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&Exposure) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let n = sqlx::query(INSERT_EXPOSURES)
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
    if mode == Mode::New {
        return copy_in(c, copy::COPY_METRICS, copy::metric_rows(rows), rows.len()).await;
    }
    let col = |f: fn(&MetricEvent) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let n = sqlx::query(INSERT_METRICS)
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
