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
//! The rollup merge skips the users whose stored row already covers the
//! group's exposures (an earlier or equal first exposure, the variants
//! within the row's range): such a merge changes nothing, yet `ON CONFLICT
//! DO UPDATE` locks the row and writes WAL for it (issue 16: 10–15 % of
//! PostgreSQL's CPU per event in the ingest bench). Whether a row covers a
//! user is known without asking the database from [`Covered`]: the rows
//! this store committed, which the stored rows can only have grown from —
//! as long as no rollup row was deleted. Every deletion bumps
//! `rollup_epoch` (migration 0019); a writer reads it under the table's
//! ROW EXCLUSIVE lock (a rebuild's SHARE ROW EXCLUSIVE lock waits for it,
//! and it for a rebuild) and forgets everything when it moved.
//!
//! [`Store::pg`]: super::Store

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::{PgConnection, PgPool, Row};

use super::{Exposure, InsertCounts, MetricEvent, Span, UserSpan, counts, rollup_of, sort_rollup};
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
const DEADLOCK_RETRIES: u32 = 8;

/// How long a group aborted by its `n`-th deadlock (from 1) waits before
/// it is written again: a random time below 10 ms × 2ⁿ⁻¹ (at most 640 ms),
/// so that the writers it deadlocked with can commit first instead of
/// meeting it again in the same order (three writers of overlapping
/// groups did, six times in a row, on a loaded machine).
fn deadlock_backoff(n: u32) -> std::time::Duration {
    let ceiling_ms = 10u64 << n.clamp(1, DEADLOCK_RETRIES).saturating_sub(1).min(6);
    let jitter = getrandom::u64().unwrap_or(0);
    std::time::Duration::from_millis(jitter % ceiling_ms)
}

/// Takes the lock a rollup rebuild waits for (and that waits for one)...
const LOCK_ROLLUP_TABLE: &str = "LOCK TABLE exposure_users IN ROW EXCLUSIVE MODE";
/// ...then reads the rollup's epoch (migration 0019).
const READ_EPOCH: &str = "SELECT epoch FROM rollup_epoch WHERE id = 1";

/// The most rollup rows [`Covered`] remembers (≈ 100 bytes each plus the
/// keys); past it, it starts afresh.
const COVERED_MAX: usize = 500_000;

/// The rollup rows a store's ingestion committed, by environment, flag and
/// user: each a lower bound of the stored row (which other writers may
/// only have grown since), valid for one `rollup_epoch`.
#[derive(Default)]
pub(crate) struct Covered(Mutex<Remembered>);

/// The epoch and the number of rows only (a `Store`'s `Debug` includes it).
impl std::fmt::Debug for Covered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("Covered")
            .field("epoch", &m.epoch)
            .field("rows", &m.len)
            .finish()
    }
}

#[derive(Default)]
struct Remembered {
    /// The epoch the rows are of.
    epoch: i64,
    rows: Map<i64, Map<String, Map<String, Span>>>,
    len: usize,
}

/// A hash map with foldhash (randomly seeded per process): looking up
/// every exposure's user is most of [`Covered`]'s own cost (in the ingest
/// bench's store path ≈ +0.3 µs of the origin's CPU per event with
/// SipHash, +0.2 µs with foldhash, against ≈ −1.3 µs of PostgreSQL's).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl Covered {
    /// Keeps the rows of `users` that a committed row does not cover, after
    /// forgetting everything if the rollup's epoch is not `epoch`.
    fn keep_uncovered(&self, epoch: i64, users: &mut Vec<UserSpan<'_>>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.epoch != epoch {
            m.rows.clear();
            m.len = 0;
            m.epoch = epoch;
        }
        users.retain(|u| {
            let c = m
                .rows
                .get(&u.env_id)
                .and_then(|f| f.get(u.flag_key))
                .and_then(|f| f.get(u.user_key));
            !c.is_some_and(|c| c.covers(&u.span))
        });
    }

    /// Remembers the rows of `users`, merged and committed under `epoch`.
    fn record(&self, epoch: i64, users: &[UserSpan<'_>]) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.epoch != epoch {
            return; // a later transaction saw the rollup shrink
        }
        if m.len + users.len() > COVERED_MAX {
            m.rows.clear();
            m.len = 0;
        }
        let mut added = 0;
        for u in users {
            let flags = m.rows.entry(u.env_id).or_default();
            // The flag's key is cloned only for its first user.
            let users = if flags.contains_key(u.flag_key) {
                flags.get_mut(u.flag_key)
            } else {
                Some(flags.entry(u.flag_key.to_owned()).or_default())
            };
            let Some(users) = users else { continue };
            let s = &u.span;
            match users.get_mut(u.user_key) {
                Some(c) => c.widen(s.first_ms, s.variant, s.vmin, s.vmax),
                None => {
                    users.insert(u.user_key.to_owned(), s.to_owned());
                    added += 1;
                }
            }
        }
        m.len += added;
    }
}

/// Stores `batches` in one transaction and returns the counts of each, in
/// order; merges the rollup of every exposure offered (inserted or not).
/// `COPY` first; on a unique violation the group again, skipping the ids
/// already stored.
///
/// Two writers storing overlapping ids in opposite orders (two groups that
/// hold the same retried batches) wait for each other's uncommitted ids;
/// PostgreSQL aborts one of them (`40P01`, after `deadlock_timeout`). The
/// aborted transaction wrote nothing, so its group is written again after
/// a random wait ([`deadlock_backoff`]), skipping the ids the other writer
/// stored, up to [`DEADLOCK_RETRIES`] times.
pub(super) async fn insert_batches(
    pool: &PgPool,
    batches: &[Rows<'_>],
    covered: &Covered,
) -> Result<Vec<InsertCounts>> {
    let mut mode = Mode::New;
    let mut deadlocks = 0;
    loop {
        match write(pool, batches, mode, covered).await {
            Err(sqlx::Error::Database(e)) if mode == Mode::New && e.is_unique_violation() => {
                mode = Mode::SkipDuplicates;
            }
            Err(sqlx::Error::Database(e))
                if deadlocks < DEADLOCK_RETRIES && e.code().as_deref() == Some("40P01") =>
            {
                deadlocks += 1;
                mode = Mode::SkipDuplicates;
                tokio::time::sleep(deadlock_backoff(deadlocks)).await;
            }
            r => return Ok(r?),
        }
    }
}

/// One attempt of [`insert_batches`] (the transaction rolls back when it
/// fails).
async fn write(
    pool: &PgPool,
    batches: &[Rows<'_>],
    mode: Mode,
    covered: &Covered,
) -> sqlx::Result<Vec<InsertCounts>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        out.push(match *b {
            Rows::Exposures(rows) => insert_exposures(&mut tx, rows, mode).await?,
            Rows::Metrics(rows) => insert_metrics(&mut tx, rows, mode).await?,
        });
    }
    let exposures: Vec<&[Exposure]> = batches
        .iter()
        .filter_map(|b| match *b {
            Rows::Exposures(rows) => Some(rows),
            Rows::Metrics(_) => None,
        })
        .collect();
    let mut users = rollup_of(&exposures);
    if users.is_empty() {
        tx.commit().await?;
        return Ok(out);
    }
    let epoch = lock_rollup(&mut tx).await?;
    covered.keep_uncovered(epoch, &mut users);
    sort_rollup(&mut users);
    merge_rollup(&mut tx, &users).await?;
    tx.commit().await?;
    covered.record(epoch, &users);
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

/// Locks the rollup against rebuilds and returns its epoch.
async fn lock_rollup(c: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query(LOCK_ROLLUP_TABLE).execute(&mut *c).await?;
    sqlx::query(READ_EPOCH)
        .fetch_one(&mut *c)
        .await?
        .try_get("epoch")
}

async fn merge_rollup(c: &mut PgConnection, users: &[UserSpan<'_>]) -> sqlx::Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    let col = |f: for<'u> fn(&UserSpan<'u>) -> &'u str| users.iter().map(f).collect::<Vec<_>>();
    sqlx::query(MERGE_ROLLUP)
        .bind(users.iter().map(|u| u.env_id).collect::<Vec<_>>())
        .bind(col(|u| u.flag_key))
        .bind(col(|u| u.user_key))
        .bind(users.iter().map(|u| u.span.first_ms).collect::<Vec<_>>())
        .bind(col(|u| u.span.variant))
        .bind(col(|u| u.span.vmin))
        .bind(col(|u| u.span.vmax))
        .execute(&mut *c)
        .await?;
    Ok(())
}
