//! Incremental looks at an experiment or a guarded rollout on PostgreSQL
//! ([`AggregateOptions::incremental`](super::aggregate::AggregateOptions::incremental);
//! the results endpoint and the monitor's rounds): a look updates the
//! per-(arm, day) sums of the previous look with the users whose rows
//! changed since, so it costs the changes, not the users looked at.
//!
//! # What is stored
//!
//! `analysis_cache` (migration 0018) keeps one row per *configuration*:
//! its `key` hashes everything the sums depend on (the environment, the
//! flag, the exposure bounds from start/stop and the look's own bounds,
//! the metrics with their keys, events, windows, caps and kinds, in order,
//! and whether users first exposed before the start are looked up), so
//! any change of configuration starts from a full aggregation. The row
//! holds a [`State`]: the PostgreSQL snapshot of the look (text of
//! `pg_current_snapshot()`) and, per (arm, day), users, multi-arm users and
//! each metric's sums as exact sums ([`ExactSum`]).
//!
//! The key names no owner: the stored sums are a function of the key
//! alone (control, listed variants, primary metric and series are applied
//! to the cells afterwards, in
//! [`Store::scope_data`](super::Store::scope_data)). Looks that differ in
//! any of the above (an experiment's results with all its metrics, a
//! guarded rollout's guardrails from its own start) have different keys
//! and never share a state; looks that agree in all of it would compute
//! the same sums from the same rows, so sharing one state is exact,
//! whoever looks (the results endpoint, the results refresh and the
//! monitor all look at an experiment through its results' look).
//!
//! # A look
//!
//! * **No state** (first look, new configuration, or dropped): the usual
//!   aggregation ([`Store::part_rows`]: rollup key ranges on parallel
//!   connections plus the early users), every part in the one snapshot the
//!   look exports (`pg_export_snapshot()`), so the sums are exactly the
//!   state of the snapshot recorded with them. O(users).
//! * **A state of snapshot `prev`**: one REPEATABLE READ transaction
//!   records its snapshot `now` and finds the users with rows `prev` did
//!   not see: exposures of the flag and metric events of the metrics' names
//!   in the environment whose writing transaction (`xid`, the column
//!   default `pg_current_xact_id()`, stored as a BIGINT) satisfies
//!   `xid >= pg_snapshot_xmin(prev) AND NOT pg_visible_in_snapshot(xid, prev)`.
//!   A transaction that took its id before the previous look and committed
//!   after it is in `prev`'s in-progress list, so it counts now. One
//!   statement ([`listed_sql`]) then gives the raw rows of exactly those
//!   users twice: over the rows `prev` saw (their contribution to the
//!   stored sums) and over every row (their contribution now); the first
//!   is subtracted, the second added. It reads the users' exposures once
//!   for both (a probe of the hashed exposure index and heap fetches per
//!   changed user); their metric events are probed once per state. When
//!   more than a fortieth of the experiment's users changed
//!   ([`FULL_LOOK_SHARE`]), a full aggregation is cheaper and replaces the
//!   state.
//!
//! Exposures and metric events are only ever inserted (a redelivered event
//! inserts nothing), so "the rows `prev` saw" is "the rows now, without the
//! new ones": the previous contribution needs no per-user storage. The only
//! deletions are the purge of deleted environments' events (whose
//! experiments and guarded rollouts can no longer be looked at) and the
//! rollup rebuild; both drop the cached looks ([`Store::drop_cached_looks`]).
//!
//! # Exactness
//!
//! The statements' sums are `DOUBLE PRECISION`. Subtracting and adding
//! them in floating point would drift, so each stored sum is an
//! [`ExactSum`]: the exact real sum of every term added, kept as
//! non-overlapping partials (Shewchuk), rounded once when read. An
//! incremental look therefore returns the correctly rounded sum of exactly
//! the terms a full aggregation in the same snapshot adds; whenever those
//! are exact in `f64` (integer values, as counts, conversions and
//! integer amounts are) the figures are identical bit for bit to the raw
//! path's, which the tests require.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::aggregate::{CellKey, PartQuery, SUMS, fetch, listed_sql, row_sums, set_local};
use super::{Result, Store};
use crate::model::metric::MetricSpec;

/// Bump when the stored [`State`] or the statements' semantics change:
/// older rows then miss and are rebuilt.
const FORMAT: u32 = 1;

/// Cached looks not used for this long are deleted (at a full aggregation).
const UNUSED_MS: i64 = 30 * 86_400_000;

/// A look aggregates in full instead when more than this share (1/n) of
/// the experiment's users changed: updating a user costs index probes of
/// its rows twice over (then and now), ≈ 50 µs per changed user on the
/// 2-vCPU bench machine with 10M exposures, a full aggregation a merge
/// join over every user, ≈ 1.1 µs per user: break-even near 2 %.
const FULL_LOOK_SHARE: i64 = 40;

/// … but never for fewer changed users than this.
const FULL_LOOK_MIN: i64 = 1_000;

/// Full looks of this process, one at a time (see [`Store::full_look`]).
static FULL_LOOKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// What [`Store::advance`] made of a stored state.
enum Advance {
    /// The state at the new snapshot.
    Done(State),
    /// Too many users changed: a full aggregation is cheaper.
    Many,
    /// The update gave an impossible state (negative users): rebuild.
    Impossible,
}

/// An exact sum of `f64` terms: non-overlapping partials whose real sum is
/// exactly the sum of every term added (Shewchuk's algorithm, as in
/// Python's `math.fsum`); [`ExactSum::value`] rounds it once, correctly.
/// Subtracting a term is adding its negation, exactly, so a sum never
/// drifts however often terms come and go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct ExactSum(Vec<f64>);

impl ExactSum {
    /// Adds `x` (finite) exactly.
    pub(super) fn add(&mut self, mut x: f64) {
        let mut kept = 0;
        for j in 0..self.0.len() {
            let mut y = self.0[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.0[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.0.truncate(kept);
        self.0.push(x);
    }

    /// The exact sum rounded to the nearest `f64` (ties to even).
    pub(super) fn value(&self) -> f64 {
        let p = &self.0;
        let Some(mut n) = p.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Half-way cases: round by the sign of the rest.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

/// One (arm, day) of a [`State`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredCell {
    variant: String,
    day: i64,
    /// Users first exposed to `variant` on `day`.
    n: i64,
    /// Of them, users exposed to several variants.
    multi: i64,
    /// [`SUMS`] sums per metric, metric after metric.
    sums: Vec<ExactSum>,
}

/// The stored state of an experiment's look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    /// `pg_current_snapshot()` of the look, as text (`xmin:xmax:xip,…`).
    snapshot: String,
    /// Cells with at least one user, by (variant, day).
    cells: Vec<StoredCell>,
}

/// Cells being updated: (variant, day) → users, multi-arm users, sums.
type Cells = BTreeMap<CellKey, (i64, i64, Vec<ExactSum>)>;

/// The cache key of an aggregation: a hash of everything its sums depend
/// on (see the [module documentation](self)).
fn fingerprint(q: &PartQuery, metrics: &[MetricSpec], early: bool) -> String {
    let text = format!("{FORMAT}\n{q:?}\n{metrics:?}\n{early}");
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Adds `sign` (±1) times a result row's figures into `cells`.
fn merge(cells: &mut Cells, row: (CellKey, i64, i64, Vec<f64>), sign: i64) {
    let (key, n, multi, sums) = row;
    let width = sums.len();
    let cell = cells
        .entry(key)
        .or_insert_with(|| (0, 0, vec![ExactSum::default(); width]));
    cell.0 += sign * n;
    cell.1 += sign * multi;
    for (acc, v) in cell.2.iter_mut().zip(sums) {
        acc.add(if sign < 0 { -v } else { v });
    }
}

impl State {
    fn cells(&self) -> Cells {
        self.cells
            .iter()
            .map(|c| ((c.variant.clone(), c.day), (c.n, c.multi, c.sums.clone())))
            .collect()
    }

    /// The state of `cells` at `snapshot`, without empty cells; `None` if a
    /// cell went negative (a state that cannot be: rebuild).
    fn of(snapshot: String, cells: Cells) -> Option<State> {
        let mut out = Vec::with_capacity(cells.len());
        for ((variant, day), (n, multi, sums)) in cells {
            if n < 0 || multi < 0 || multi > n {
                return None;
            }
            if n > 0 {
                out.push(StoredCell {
                    variant,
                    day,
                    n,
                    multi,
                    sums,
                });
            }
        }
        Some(State {
            snapshot,
            cells: out,
        })
    }
}

impl Store {
    /// The per-(arm, day) users, multi-arm users and [`SUMS`] sums per
    /// metric of the aggregation `q` (`early`: with the users first exposed
    /// before the start), from the cached look updated with what changed
    /// since (PostgreSQL; see the [module documentation](self)).
    pub(super) async fn incremental_cells(
        &self,
        q: &PartQuery,
        metrics: &[MetricSpec],
        early: bool,
    ) -> Result<BTreeMap<CellKey, (u64, u64, Vec<f64>)>> {
        let key = fingerprint(q, metrics, early);
        let stored: Option<String> = sqlx::query("SELECT state FROM analysis_cache WHERE key = $1")
            .bind(key.clone())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("state"))
            .transpose()?;
        let width = metrics.len() * SUMS;
        // A state that does not parse or fit is rebuilt, never trusted.
        let previous = stored
            .and_then(|s| serde_json::from_str::<State>(&s).ok())
            .filter(|s| s.cells.iter().all(|c| c.sums.len() == width));
        let state = match previous {
            Some(prev) => match self.advance(q, metrics, prev).await? {
                Advance::Done(state) => state,
                Advance::Many => self.full_look(q, metrics, early).await?,
                Advance::Impossible => {
                    tracing::warn!(key, "cached look inconsistent; aggregating in full");
                    self.full_look(q, metrics, early).await?
                }
            },
            None => self.full_look(q, metrics, early).await?,
        };
        self.save_look(&key, q, &state).await?;
        Ok(state
            .cells
            .into_iter()
            .map(|c| {
                let sums = c.sums.iter().map(ExactSum::value).collect();
                ((c.variant, c.day), (c.n as u64, c.multi as u64, sums))
            })
            .collect())
    }

    /// A full aggregation, every part in one exported snapshot, as a
    /// [`State`] of that snapshot.
    async fn full_look(&self, q: &PartQuery, metrics: &[MetricSpec], early: bool) -> Result<State> {
        // The exporting transaction holds a connection while the parts wait
        // for theirs: with several such looks at once every connection of
        // the pool could be a waiting holder. One at a time, each part
        // holding a single connection, always progresses.
        let _one = FULL_LOOKS.acquire().await.expect("never closed");
        let mut lead = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *lead)
            .await?;
        let r = sqlx::query(
            "SELECT pg_export_snapshot() AS id, CAST(pg_current_snapshot() AS TEXT) AS snapshot",
        )
        .fetch_one(&mut *lead)
        .await?;
        let id: String = r.try_get("id")?;
        let snapshot: String = r.try_get("snapshot")?;
        // The exporting transaction stays open until every part has read.
        let rows = self
            .part_rows(q, metrics, false, None, early, Some(id))
            .await;
        lead.commit().await?;
        let mut cells = Cells::new();
        for r in &rows? {
            merge(&mut cells, row_sums(r, metrics)?, 1);
        }
        sqlx::query("DELETE FROM analysis_cache WHERE used_ms < $1")
            .bind(now_ms() - UNUSED_MS)
            .execute(&self.pool)
            .await?;
        // Cells of a fresh aggregation are never negative.
        Ok(State::of(snapshot, cells).expect("counts of one aggregation"))
    }

    /// `prev` updated to a new snapshot with the users whose exposures or
    /// metric events `prev` did not see.
    async fn advance(&self, q: &PartQuery, metrics: &[MetricSpec], prev: State) -> Result<Advance> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        // Plans for the actual snapshot and user list (the `xid` range
        // is small; a generic plan would guess a third of the table).
        set_local(
            &mut tx,
            &["plan_cache_mode = force_custom_plan", "jit = off"],
        )
        .await?;
        let snapshot: String = sqlx::query("SELECT CAST(pg_current_snapshot() AS TEXT) AS s")
            .fetch_one(&mut *tx)
            .await?
            .try_get("s")?;
        // `xid` is a BIGINT holding an `xid8` (migration 0018).
        let new = "xid >= CAST(CAST(pg_snapshot_xmin(CAST($1 AS pg_snapshot)) AS TEXT) AS BIGINT) \
                   AND NOT pg_visible_in_snapshot(CAST(CAST(xid AS TEXT) AS xid8), \
                   CAST($1 AS pg_snapshot))";
        let users: Vec<String> = sqlx::query(&format!(
            "SELECT user_key FROM exposures WHERE {new} AND env_id = $2 AND flag_key = $3 \
             UNION SELECT user_key FROM metric_events WHERE {new} AND env_id = $2 \
             AND name IN (SELECT json_array_elements_text(CAST($4 AS json)))"
        ))
        .bind(prev.snapshot.clone())
        .bind(q.head.0)
        .bind(q.head.1.clone())
        .bind(serde_json::to_string(&q.names).expect("strings serialize"))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("user_key"))
        .collect::<std::result::Result<_, _>>()?;
        let known: i64 = prev.cells.iter().map(|c| c.n).sum();
        if users.len() as i64 > (known / FULL_LOOK_SHARE).max(FULL_LOOK_MIN) {
            tx.commit().await?;
            return Ok(Advance::Many);
        }
        let mut cells = prev.cells();
        if !users.is_empty() {
            let names: Vec<&str> = q.names.iter().map(String::as_str).collect();
            let list = 5 + names.len();
            let users = serde_json::to_string(&users).expect("strings serialize");
            let mut tail = q.names.clone();
            tail.push(users);
            tail.push(prev.snapshot.clone());
            let sql = listed_sql(metrics, &names, list, list + 1);
            for r in &fetch(&mut tx, sql, q.head.clone(), q.bounds, tail).await? {
                // The rows `prev` saw leave the sums, every row now enters.
                let sign = if r.try_get::<i32, _>("is_now")? == 1 {
                    1
                } else {
                    -1
                };
                merge(&mut cells, row_sums(r, metrics)?, sign);
            }
        }
        tx.commit().await?;
        Ok(State::of(snapshot, cells).map_or(Advance::Impossible, Advance::Done))
    }

    /// Stores `state` as the cached look `key` (the last look to finish
    /// wins; every stored state is consistent with its snapshot).
    async fn save_look(&self, key: &str, q: &PartQuery, state: &State) -> Result<()> {
        sqlx::query(
            "INSERT INTO analysis_cache (key, env_id, flag_key, state, used_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE \
             SET state = excluded.state, used_ms = excluded.used_ms",
        )
        .bind(key.to_string())
        .bind(q.head.0)
        .bind(q.head.1.clone())
        .bind(serde_json::to_string(state).expect("finite sums serialize"))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops the cached looks of environment `env_id` (every
    /// environment's with `None`), so that the next look aggregates in
    /// full: for whatever deletes or rewrites stored exposures, metric
    /// events or the rollup ([`Store::purge_orphaned_events`],
    /// [`Store::rebuild_exposure_users`]). Returns the looks dropped.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = bunting_origin::store::Store::open("sqlite::memory:").await.unwrap();
    /// assert_eq!(store.drop_cached_looks(None).await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn drop_cached_looks(&self, env_id: Option<i64>) -> Result<u64> {
        let done = match env_id {
            Some(env) => {
                sqlx::query("DELETE FROM analysis_cache WHERE env_id = $1")
                    .bind(env)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM analysis_cache")
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sums_survive_subtraction() {
        let mut s = ExactSum::default();
        for x in [0.1, 1e16, 0.2, -1e16, 0.3] {
            s.add(x);
        }
        // The exact sum of the three doubles, rounded once (a running
        // `f64` sum gives 0.0 after the large terms, then 0.3).
        assert_eq!(s.value(), 0.6);
        s.add(-0.1);
        s.add(-0.2);
        s.add(-0.3);
        assert_eq!(s.value(), 0.0);
        let mut t = ExactSum::default();
        for x in [3.0, 5.0, -2.0] {
            t.add(x);
        }
        assert_eq!(t.value(), 6.0);
        assert_eq!(ExactSum::default().value(), 0.0);
    }

    #[test]
    fn states_round_trip_and_reject_negative_cells() {
        let mut cells = Cells::new();
        merge(
            &mut cells,
            (("on".into(), 20_000), 3, 1, vec![1.5, 2.25]),
            1,
        );
        merge(
            &mut cells,
            (("off".into(), 20_000), 1, 0, vec![4.0, 16.0]),
            1,
        );
        merge(
            &mut cells,
            (("off".into(), 20_000), 1, 0, vec![4.0, 16.0]),
            -1,
        );
        let state = State::of("10:12:10".into(), cells.clone()).unwrap();
        assert_eq!(state.cells.len(), 1, "the emptied cell is gone");
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), state);
        merge(
            &mut cells,
            (("on".into(), 20_000), 4, 0, vec![0.0, 0.0]),
            -1,
        );
        assert_eq!(State::of("10:12:10".into(), cells), None);
    }
}
