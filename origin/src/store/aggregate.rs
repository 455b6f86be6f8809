//! Per-arm aggregates of an experiment's data, computed in SQL on both
//! backends: the sufficient statistics the analysis (`bunting-analysis`)
//! needs — users, Σ y, Σ y² per arm and metric, Σ of the ratio
//! denominator, CUPED pre-period sums — plus multi-arm users and a daily
//! cumulative series.
//!
//! The statements read the per-user exposure rollup that ingestion
//! maintains (`exposure_users`: 2M rows for 10M exposures of 2M users)
//! rather than every exposure; the raw path ([`AggregateOptions::raw`])
//! defines the semantics below and the tests require both to agree
//! (docs/performance.md has the plan and the figures).
//!
//! # Semantics
//!
//! * **Exposures of the experiment**: `env_id` = the experiment's
//!   environment (its id, never reused), `flag_key` = the experiment's
//!   flag, `time_ms` within `[started_at, stopped_at]` (when set) and within
//!   [`AggregateOptions::from_ms`]`..=`[`AggregateOptions::until_ms`].
//! * **Arm**: a user's arm is the variant of their earliest exposure (ties
//!   at the same millisecond: the smallest variant name). Users exposed to
//!   more than one variant are counted in
//!   [`ExperimentData::multi_arm_users`] and stay in their first arm.
//! * **Attribution window**: a metric event of the user counts when its
//!   `time_ms` is in `[t0, t0 + window)`, `t0` the user's first exposure
//!   and `window` [`MetricSpec::window_ms`]. Events are not cut at the
//!   experiment's stop: a user exposed just before the stop keeps their
//!   whole window.
//! * **Per-user values**: conversion → 1 if the user had the event in the
//!   window, else 0; mean and sum → Σ `value` (an event without a value
//!   counts 0); ratio → numerator Σ `value` of `event` and denominator
//!   Σ `value` of `denominatorEvent`, where an event **without** a value
//!   counts 1 on both sides (ratio events are typically counts: clicks per
//!   session). Users without events count 0 and are in `n`.
//! * **Capping** (winsorising at a fixed cap): a per-user value above
//!   `cap` becomes `cap` (mean, sum, and a ratio's numerator); the
//!   pre-period value is capped the same way.
//! * **CUPED pre-period**: the same per-user value over `[t0 - window, t0)`
//!   (conversion, mean, sum; not ratio metrics).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::aggregate::AggregateOptions;
//! use bunting_origin::model::experiment::ExperimentSpec;
//! use bunting_origin::model::metric::MetricSpec;
//! use bunting_origin::store::{Actor, Exposure, FlagSpec, MetricEvent, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! store.create_flag(&ana, p.id, &FlagSpec::boolean("checkout")).await.unwrap();
//! let purchased = MetricSpec::conversion("purchased", "purchase");
//! store.create_metric(&ana, p.id, &purchased).await.unwrap();
//! let e = store
//!     .create_experiment(&ana, prod.id, &ExperimentSpec::new("t", "checkout", "off", "purchased"))
//!     .await
//!     .unwrap();
//! let exposure = |user: &str, variant: &str, t: i64| Exposure {
//!     env_id: prod.id, id: format!("{user}-{t}"),
//!     flag_key: "checkout".into(), variant: variant.into(), user_key: user.into(),
//!     time_ms: t, snapshot_version: None, rule_id: None, reason: None,
//!     country: None, device_type: None, received_ms: t,
//! };
//! store.insert_exposures(&[exposure("u1", "off", 1_000), exposure("u2", "on", 2_000)]).await.unwrap();
//! store.insert_metric_events(&[MetricEvent {
//!     env_id: prod.id, id: "o-1".into(), name: "purchase".into(),
//!     user_key: "u2".into(), value: None, time_ms: 5_000, received_ms: 5_000, properties: None,
//! }]).await.unwrap();
//! let data = store.experiment_data(&e, &[purchased], &AggregateOptions::default()).await.unwrap();
//! assert_eq!(data.arms[0].variant, "off"); // control first
//! assert_eq!(data.arms[1].users, 1);
//! assert_eq!(data.arms[1].metrics["purchased"].conversions, Some(1));
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::rows::{edge_env, get_env};
use super::{Backend, Problem, Result, Store, StoreError};
use crate::model::experiment::ExperimentRecord;
use crate::model::metric::{MetricKind, MetricSpec};

/// One day in milliseconds.
const DAY_MS: i64 = 86_400_000;

/// Sufficient statistics of one metric in one arm. `sum`, `sum_sq` are over
/// the per-user values (after capping) of the arm's `n` users.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricAgg {
    /// Users in the arm.
    pub n: u64,
    /// Σ per-user value (a ratio's numerator).
    pub sum: f64,
    /// Σ per-user value².
    pub sum_sq: f64,
    /// Conversion metrics: users with value 1.
    pub conversions: Option<u64>,
    /// Ratio metrics: Σ per-user denominator.
    pub den_sum: Option<f64>,
    /// Ratio metrics: Σ per-user denominator².
    pub den_sum_sq: Option<f64>,
    /// Ratio metrics: Σ numerator · denominator per user.
    pub cross_sum: Option<f64>,
    /// CUPED (not ratio metrics): Σ x, the per-user value in the window of
    /// the same length before the first exposure.
    pub pre_sum: Option<f64>,
    /// CUPED: Σ x².
    pub pre_sum_sq: Option<f64>,
    /// CUPED: Σ x · y.
    pub pre_cross: Option<f64>,
}

/// One arm (variant) of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmData {
    /// The variant.
    pub variant: String,
    /// Users whose first exposure was to this variant.
    pub users: u64,
    /// Metric key → aggregates.
    #[schema(value_type = Object)]
    pub metrics: BTreeMap<String, MetricAgg>,
}

/// One arm on one day of a [`DailyPoint`]: cumulative figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyArm {
    /// Users first exposed up to and including the day.
    pub users: u64,
    /// Σ of their primary-metric values (after capping).
    pub sum: f64,
    /// Σ of the squares of their primary-metric values (after capping).
    pub sum_sq: f64,
}

/// Cumulative figures per arm up to and including one day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyPoint {
    /// UTC date (`YYYY-MM-DD`) of first exposure.
    pub day: String,
    /// Variant → cumulative users and primary-metric sum.
    #[schema(value_type = Object)]
    pub arms: BTreeMap<String, DailyArm>,
}

/// An experiment's data, aggregated per arm.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentData {
    /// The edge environment name (`org/project/environment`).
    pub environment: String,
    /// Every variant of the allocation or seen in exposures, control first,
    /// then by name.
    pub arms: Vec<ArmData>,
    /// Users exposed to more than one variant (kept in their first arm).
    pub multi_arm_users: u64,
    /// Daily cumulative series (empty unless [`AggregateOptions::series`]).
    pub series: Vec<DailyPoint>,
    /// Exposures counted from (Unix ms, inclusive), if bounded.
    pub from_ms: Option<i64>,
    /// Exposures counted until (Unix ms, inclusive), if bounded.
    pub until_ms: Option<i64>,
}

/// Whose data [`Store::scope_data`] aggregates: an experiment's, or any
/// other comparison of a flag's variants in an environment (a guarded
/// rollout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisScope {
    /// The environment (its id in the store).
    pub environment_id: i64,
    /// The flag whose exposures assign users to arms.
    pub flag: String,
    /// The control variant: the first arm.
    pub control: String,
    /// Variants listed as arms even without exposures (besides control).
    pub variants: Vec<String>,
    /// The metric of the daily series (else the first metric).
    pub primary_metric: Option<String>,
    /// Exposures from this stored time on (RFC 3339), if set.
    pub started_at: Option<String>,
    /// Exposures until this stored time (RFC 3339), if set.
    pub stopped_at: Option<String>,
}

impl From<&ExperimentRecord> for AnalysisScope {
    fn from(e: &ExperimentRecord) -> AnalysisScope {
        AnalysisScope {
            environment_id: e.environment_id,
            flag: e.spec.flag.clone(),
            control: e.spec.control.clone(),
            variants: e.spec.allocation.keys().cloned().collect(),
            primary_metric: Some(e.spec.primary_metric.clone()),
            started_at: e.started_at.clone(),
            stopped_at: e.stopped_at.clone(),
        }
    }
}

/// What [`Store::experiment_data`] looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AggregateOptions {
    /// Only exposures at or after this time (Unix ms), on top of the
    /// experiment's start.
    pub from_ms: Option<i64>,
    /// Only exposures at or before this time (Unix ms), on top of the
    /// experiment's stop.
    pub until_ms: Option<i64>,
    /// Whether to compute [`ExperimentData::series`].
    pub series: bool,
    /// Aggregate every raw exposure instead of the per-user rollup
    /// (`exposure_users`): the reference semantics, slow on large data;
    /// tests compare the two.
    pub raw: bool,
    /// Cut the users into this many key ranges aggregated concurrently
    /// (each on its own connection); `None`: automatic (one range, or two
    /// on PostgreSQL with a large rollup).
    pub partitions: Option<usize>,
    /// On PostgreSQL, update the stored sums of the previous look with the
    /// users whose exposures or metric events were written since (see
    /// `store::results_cache`) instead of aggregating every user: a look
    /// then costs the changes, not the experiment's size. The figures are
    /// the same. Ignored with [`AggregateOptions::raw`] and on SQLite.
    pub incremental: bool,
}

/// A stored timestamp (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, RFC 3339) as Unix ms.
///
/// ```
/// use bunting_origin::store::aggregate::timestamp_ms;
/// assert_eq!(timestamp_ms("1970-01-02T00:00:00.001000Z").unwrap(), 86_400_001);
/// assert!(timestamp_ms("yesterday").is_err());
/// ```
pub fn timestamp_ms(s: &str) -> Result<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        StoreError::Invalid(vec![Problem::new(
            "timestamp",
            format!("{s:?} is not an RFC 3339 time: {e}"),
        )])
    })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The UTC date of day number `day` (days since 1970-01-01).
fn day_string(day: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400)) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("day {day}"),
    }
}

/// A float literal for SQL (finite values only: specs are validated).
fn lit(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// `value` capped at `cap` (SQL expression).
fn capped(expr: &str, cap: Option<f64>) -> String {
    match cap {
        Some(c) => format!(
            "CASE WHEN {expr} > {c} THEN {c} ELSE {expr} END",
            c = lit(c)
        ),
        None => expr.to_string(),
    }
}

/// The per-user metric columns (`y{i}`, `x{i}` / `z{i}`, from the joined
/// event `e` and the user's first exposure `t0`, an SQL expression) and the per-cell sums of
/// them: `s{i}`, `q{i}` (Σ y, Σ y²), ratio `d{i}`, `dq{i}`, `x{i}` (Σ den,
/// Σ den², Σ num·den), others `p{i}`, `pq{i}`, `px{i}` (Σ x, Σ x², Σ x·y).
/// Event names are parameters from `$5` (in `names` order); windows and
/// caps are inlined literals.
fn metric_columns(metrics: &[MetricSpec], names: &[&str], t0: &str) -> (String, String) {
    let param = |name: &str| {
        let i = names.iter().position(|n| *n == name).expect("collected");
        format!("${}", i + 5)
    };
    let mut per_user = String::new();
    let mut outer = String::new();
    for (i, m) in metrics.iter().enumerate() {
        let w = m.window_ms();
        let ev = param(&m.event);
        let post = format!("e.name = {ev} AND e.time_ms >= {t0} AND e.time_ms < {t0} + {w}");
        let pre = format!("e.name = {ev} AND e.time_ms >= {t0} - {w} AND e.time_ms < {t0}");
        match m.kind {
            MetricKind::Conversion => {
                let _ = write!(
                    per_user,
                    ", MAX(CASE WHEN {post} THEN 1 ELSE 0 END) AS y{i}\
                     , MAX(CASE WHEN {pre} THEN 1 ELSE 0 END) AS x{i}"
                );
            }
            MetricKind::Mean | MetricKind::Sum => {
                let _ = write!(
                    per_user,
                    ", SUM(CASE WHEN {post} THEN COALESCE(e.value, 0) ELSE 0 END) AS y{i}\
                     , SUM(CASE WHEN {pre} THEN COALESCE(e.value, 0) ELSE 0 END) AS x{i}"
                );
            }
            MetricKind::Ratio => {
                let den = param(m.denominator_event.as_deref().unwrap_or(&m.event));
                let den_post =
                    format!("e.name = {den} AND e.time_ms >= {t0} AND e.time_ms < {t0} + {w}");
                let _ = write!(
                    per_user,
                    ", SUM(CASE WHEN {post} THEN COALESCE(e.value, 1) ELSE 0 END) AS y{i}\
                     , SUM(CASE WHEN {den_post} THEN COALESCE(e.value, 1) ELSE 0 END) AS z{i}"
                );
            }
        }
        let y = capped(&format!("y{i}"), m.cap);
        let f = |e: String| format!("CAST(COALESCE(SUM({e}), 0) AS DOUBLE PRECISION)");
        let _ = write!(
            outer,
            ", {} AS s{i}, {} AS q{i}",
            f(format!("({y})")),
            f(format!("({y}) * ({y})"))
        );
        if m.kind == MetricKind::Ratio {
            let _ = write!(
                outer,
                ", {} AS d{i}, {} AS dq{i}, {} AS x{i}",
                f(format!("z{i}")),
                f(format!("z{i} * z{i}")),
                f(format!("({y}) * z{i}"))
            );
        } else {
            let x = capped(&format!("x{i}"), m.cap);
            let _ = write!(
                outer,
                ", {} AS p{i}, {} AS pq{i}, {} AS px{i}",
                f(format!("({x})")),
                f(format!("({x}) * ({x})")),
                f(format!("({x}) * ({y})"))
            );
        }
    }
    (per_user, outer)
}

/// `e.name IN ($5, …)` and the widest window of `metrics`.
fn event_filter(metrics: &[MetricSpec], names: &[&str]) -> (String, i64) {
    let in_names = (0..names.len())
        .map(|i| format!("${}", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let reach = metrics.iter().map(MetricSpec::window_ms).max().unwrap_or(0);
    (format!("e.name IN ({in_names})"), reach)
}

/// The day of a first exposure `t0` (SQL expression).
fn day_of(t0: &str) -> String {
    format!("CAST({t0} / {DAY_MS} AS BIGINT)")
}

/// Whose exposures [`raw_sql`] groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawUsers {
    /// Every user of the flag: the reference semantics.
    All,
    /// Only the users the rollup cannot place: first exposed before `$3`
    /// (the start), so their first exposure *within* the bounds needs the
    /// raw exposures. Driven from the rollup: on SQLite from its `first_ms`
    /// index (a `CROSS JOIN` keeps SQLite's planner from scanning every
    /// exposure first), on PostgreSQL from its primary key, one index-only
    /// pass over the flag's users (migration 0020 dropped the `first_ms`
    /// index, which every new rollup row paid for at ingestion).
    Early,
    /// Only the listed users of an incremental look (PostgreSQL): the rows
    /// of the common table `listed` that [`listed_sql`] reads once for the
    /// look's two states, seeing, with `before` set, only the rows that the
    /// PostgreSQL snapshot in parameter `$before` (text) saw: the rows of a
    /// previous look (migration 0018's `xid`; rows without one are older).
    Listed { before: Option<usize> },
}

/// The condition that the exposure row `t` is of flag `flag` and user
/// `user` (SQL expressions; `t`'s environment is compared apart). On
/// PostgreSQL it also compares the key that `exposures_analysis` hashes
/// (migration 0021), `flag_key || '/' || user_key`, so that the planner can
/// probe that index; the column equalities keep the answer exact whatever
/// the keys contain. On SQLite the column equalities reach its B-tree.
pub(super) fn exposures_of(postgres: bool, t: &str, flag: &str, user: &str) -> String {
    let columns = format!("{t}.flag_key = {flag} AND {t}.user_key = {user}");
    if postgres {
        format!("{columns} AND {t}.flag_key || '/' || {t}.user_key = {flag} || '/' || {user}")
    } else {
        columns
    }
}

/// The raw statement (every exposure; the reference semantics): one row per
/// (arm, day of first exposure), with columns `variant`, `day`, `n`,
/// `multi` and the [`metric_columns`] sums, over the users `who` selects,
/// written for PostgreSQL with `postgres` (see [`exposures_of`]), else for
/// SQLite.
///
/// Parameters: `$1` environment id, `$2` flag, `$3`/`$4` time bounds, `$5…`
/// the distinct event names.
pub(super) fn raw_sql(
    metrics: &[MetricSpec],
    names: &[&str],
    who: RawUsers,
    postgres: bool,
) -> String {
    let (per_user, outer) = metric_columns(metrics, names, "u.t0");
    let (from, early) = match who {
        RawUsers::All => ("exposures", String::new()),
        RawUsers::Early => (
            "exposure_users r CROSS JOIN exposures",
            format!(
                "AND r.env_id = $1 AND r.flag_key = $2 AND r.first_ms < $3 AND {}",
                exposures_of(postgres, "exposures", "r.flag_key", "r.user_key")
            ),
        ),
        RawUsers::Listed { .. } => ("listed exposures", String::new()),
    };
    // A multi-arm user's arm is the least variant of their first exposure:
    // probed in the exposures' index, except in the (unindexed) listed rows,
    // which a per-user ordered aggregate reads instead.
    let (first_variant, vfirst) = match who {
        RawUsers::Listed { .. } => (
            "vfirst".to_string(),
            ", (array_agg(exposures.variant ORDER BY exposures.time_ms, exposures.variant))[1] \
             AS vfirst",
        ),
        _ => (
            format!(
                "(SELECT MIN(x.variant) FROM exposures x WHERE x.env_id = $1 \
                  AND {} AND x.time_ms = g.t0)",
                exposures_of(postgres, "x", "$2", "g.user_key")
            ),
            "",
        ),
    };
    // Rows a previous snapshot saw (every row without `before`).
    let seen = |t: &str| match who {
        RawUsers::Listed {
            before: Some(b), ..
        } => format!(
            " AND ({t}.xid IS NULL OR pg_visible_in_snapshot(\
             CAST(CAST({t}.xid AS TEXT) AS xid8), CAST(${b} AS pg_snapshot)))"
        ),
        _ => String::new(),
    };
    let (seen_exposures, seen_e) = (seen("exposures"), seen("e"));
    let users = format!(
        "SELECT user_key, t0, \
           CASE WHEN vmin = vmax THEN vmin ELSE {first_variant} END AS variant, \
           CASE WHEN vmin = vmax THEN 0 ELSE 1 END AS multi \
         FROM (SELECT exposures.user_key AS user_key, MIN(exposures.time_ms) AS t0, \
                 MIN(exposures.variant) AS vmin, MAX(exposures.variant) AS vmax{vfirst} \
               FROM {from} WHERE exposures.env_id = $1 AND exposures.flag_key = $2 \
               AND exposures.time_ms >= $3 AND exposures.time_ms <= $4 {early}{seen_exposures} \
               GROUP BY exposures.user_key) g"
    );
    let per_user_sql = if metrics.is_empty() {
        format!("SELECT u.t0, u.variant, u.multi FROM ({users}) u")
    } else {
        let (names_in, reach) = event_filter(metrics, names);
        format!(
            "SELECT MIN(u.t0) AS t0, MIN(u.variant) AS variant, MIN(u.multi) AS multi{per_user} \
             FROM ({users}) u \
             LEFT JOIN metric_events e ON e.env_id = $1 AND {names_in} \
             AND e.user_key = u.user_key AND e.time_ms >= u.t0 - {reach} AND e.time_ms < u.t0 + {reach}{seen_e} \
             GROUP BY u.user_key"
        )
    };
    format!(
        "SELECT variant, {day} AS day, COUNT(*) AS n, \
         CAST(SUM(multi) AS BIGINT) AS multi{outer} \
         FROM ({per_user_sql}) p GROUP BY variant, {day}",
        day = day_of("t0")
    )
}

/// An incremental look's statement (PostgreSQL): [`raw_sql`]'s rows for
/// the users of a JSON array of user keys (parameter `$users`) in two
/// states, told apart by a column `is_now`: 0 for the rows that the snapshot
/// in parameter `$before` (text) saw, 1 for every row. The listed users'
/// exposures of the flag within the bounds are read once, into the common
/// table `listed`, for both states: a user's rows cost a probe of the
/// hashed `exposures_analysis` (migration 0021) and heap fetches, since
/// `xid` is in no index, which two statements paid twice. The flag's own
/// equality keeps the answer exact whatever the keys contain.
pub(super) fn listed_sql(
    metrics: &[MetricSpec],
    names: &[&str],
    users: usize,
    before: usize,
) -> String {
    let then = raw_sql(
        metrics,
        names,
        RawUsers::Listed {
            before: Some(before),
        },
        true,
    );
    let now = raw_sql(metrics, names, RawUsers::Listed { before: None }, true);
    format!(
        "WITH listed AS MATERIALIZED (\
           SELECT env_id, flag_key, user_key, time_ms, variant, xid FROM exposures \
           WHERE env_id = $1 AND flag_key = $2 AND time_ms >= $3 AND time_ms <= $4 \
           AND flag_key || '/' || user_key IN \
             (SELECT $2 || '/' || json_array_elements_text(CAST(${users} AS json)))) \
         SELECT 0 AS is_now, a.* FROM ({then}) a UNION ALL SELECT 1 AS is_now, b.* FROM ({now}) b"
    )
}

/// A `user_key` range condition on `col`: with `lo` / `hi` set, the range's
/// bounds (inclusive / exclusive) are the parameters from `$first` on, in
/// that order; an unset bound is unbounded.
fn range_sql(col: &str, first: usize, lo: bool, hi: bool) -> String {
    let mut s = String::new();
    if lo {
        let _ = write!(s, " AND {col} >= ${first}");
    }
    if hi {
        let _ = write!(s, " AND {col} < ${}", first + usize::from(lo));
    }
    s
}

/// The rollup statement: the same rows as [`raw_sql`] for the users whose
/// rollup `first_ms` is within the bounds, with `range` (a condition on
/// `u.user_key`) and `e_range` (the same on the events' `user_key`).
///
/// One row per user of the rollup (`GROUP BY` its primary key, so its
/// other columns need no aggregate) with their events in the widest window
/// `LEFT JOIN`ed. On PostgreSQL the events are a key-ordered subquery, so
/// that the planner can merge-join two key-ordered index scans; `+first_ms`
/// keeps an index on `first_ms` out (SQLite has one; it would cost a row
/// lookup per user). On SQLite a `LEFT JOIN` probes each user's events by
/// index.
///
/// With `bounded_until`, a user served several variants counts as
/// multi-arm only when one of the other variants was served by `$4` (looked
/// up in the raw exposures, for those users only).
fn rollup_sql(
    metrics: &[MetricSpec],
    names: &[&str],
    bounded_until: bool,
    postgres: bool,
    (range, e_range): (&str, &str),
) -> String {
    let (per_user, outer) = metric_columns(metrics, names, "u.first_ms");
    let multi = if bounded_until {
        format!(
            "CASE WHEN u.vmin = u.vmax THEN 0 WHEN EXISTS (SELECT 1 FROM exposures x \
             WHERE x.env_id = $1 AND {} \
             AND x.time_ms <= $4 AND x.variant <> u.variant) THEN 1 ELSE 0 END",
            exposures_of(postgres, "x", "$2", "u.user_key")
        )
    } else {
        "CASE WHEN u.vmin = u.vmax THEN 0 ELSE 1 END".to_string()
    };
    let users = "u.env_id = $1 AND u.flag_key = $2 AND +u.first_ms >= $3 AND +u.first_ms <= $4";
    let per_user_sql = if metrics.is_empty() {
        format!(
            "SELECT u.first_ms AS t0, u.variant AS variant, {multi} AS multi \
             FROM exposure_users u WHERE {users}{range}"
        )
    } else {
        let (names_in, reach) = event_filter(metrics, names);
        let window = format!(
            "e.user_key = u.user_key AND e.time_ms >= u.first_ms - {reach} \
             AND e.time_ms < u.first_ms + {reach}"
        );
        let join = if postgres {
            format!(
                "LEFT JOIN (SELECT user_key, name, time_ms, value FROM metric_events e \
                   WHERE e.env_id = $1 AND {names_in}{e_range} ORDER BY user_key) e ON {window}"
            )
        } else {
            format!("LEFT JOIN metric_events e ON e.env_id = $1 AND {names_in} AND {window}")
        };
        format!(
            "SELECT u.first_ms AS t0, u.variant AS variant, {multi} AS multi{per_user} \
             FROM exposure_users u {join} WHERE {users}{range} \
             GROUP BY u.env_id, u.flag_key, u.user_key"
        )
    };
    format!(
        "SELECT variant, {day} AS day, COUNT(*) AS n, \
         CAST(SUM(multi) AS BIGINT) AS multi{outer} \
         FROM ({per_user_sql}) p GROUP BY variant, {day}",
        day = day_of("t0")
    )
}

/// From this many users (the planner's estimate) in a key range, the
/// rollup statement runs on PostgreSQL as a merge join of the two
/// key-ordered covering indexes (the planner's own choice, a hash join,
/// spills to disk; a nested loop probes once per user).
const LARGE_RANGE_USERS: f64 = 50_000.0;

/// From this many users in a key range the rollup statement's expressions
/// are JIT-compiled without optimization or inlining (≈ 40 ms of compile
/// time, about 10 % faster execution); below it JIT costs more than it
/// saves.
const JIT_RANGE_USERS: f64 = 250_000.0;

/// From this many users in a key range the JIT also optimizes and inlines
/// (≈ 290 ms of compile time, ≈ 20 % faster execution: worth it from about
/// three quarters of a million users). Measured on 2 vCPUs, 2026-12-06
/// (docs/performance.md, "Results kept warm").
const JIT_OPTIMIZED_RANGE_USERS: f64 = 750_000.0;

/// The JIT settings of a rollup statement over a key range of `users`
/// (the planner's estimate) users.
fn jit_settings(users: f64) -> &'static [&'static str] {
    if users >= JIT_OPTIMIZED_RANGE_USERS {
        &[
            "jit = on",
            "jit_above_cost = 0",
            "jit_optimize_above_cost = 0",
            "jit_inline_above_cost = 0",
        ]
    } else if users >= JIT_RANGE_USERS {
        &[
            "jit = on",
            "jit_above_cost = 0",
            "jit_optimize_above_cost = -1",
            "jit_inline_above_cost = -1",
        ]
    } else {
        &["jit = off"]
    }
}

/// Runs `sql` with `$1` environment id, `$2` flag, `$3`/`$4` the bounds, then
/// `tail` (event names, key bounds). Everything owned: borrowed binds make
/// the caller's future not `Send` (higher-ranked lifetime inference), and
/// the API spawns it.
pub(super) async fn fetch(
    c: &mut sqlx::AnyConnection,
    sql: String,
    head: (i64, String),
    (from, until): (i64, i64),
    tail: Vec<String>,
) -> Result<Vec<AnyRow>> {
    let mut q = sqlx::query(&sql)
        .bind(head.0)
        .bind(head.1)
        .bind(from)
        .bind(until);
    for t in tail {
        q = q.bind(t);
    }
    Ok(q.fetch_all(&mut *c).await?)
}

/// The result of a spawned part: a panic goes on unwinding in the caller; a
/// cancelled task (the runtime shutting down) is an I/O error.
fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(
            std::io::Error::other(format!("aggregation task: {e}")),
        ))),
    }
}

/// The planner's row estimate of the rollup scan in an `EXPLAIN` result:
/// the largest `rows=` of a plan line scanning `exposure_users` (0 when
/// none is found).
///
/// ```text
/// Index Only Scan using exposure_users_pkey on exposure_users u  (cost=0.55..172620.55 rows=10000 width=44)
/// ```
fn estimated_users(plan: &[String]) -> f64 {
    plan.iter()
        .filter(|l| l.contains(" on exposure_users"))
        .filter_map(|l| {
            let rest = &l[l.find(" rows=")? + 6..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse::<f64>().ok()
        })
        .fold(0.0, f64::max)
}

/// Makes the transaction just begun on `c` read the exported PostgreSQL
/// snapshot `id` (`pg_export_snapshot()`; its characters are checked, as
/// `SET` takes no parameters).
async fn import_snapshot(c: &mut sqlx::AnyConnection, id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '-') {
        return Err(StoreError::Invalid(vec![Problem::new(
            "snapshot",
            format!("{id:?} is not an exported snapshot id"),
        )]));
    }
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *c)
        .await?;
    sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{id}'"))
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// `SET LOCAL` each PostgreSQL setting for the rest of the transaction.
pub(super) async fn set_local(
    c: &mut sqlx::AnyConnection,
    settings: &[&'static str],
) -> Result<()> {
    for s in settings {
        sqlx::query(&format!("SET LOCAL {s}"))
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// One (arm, day) cell: users, multi-arm users, per-metric sums.
#[derive(Debug, Clone, Default)]
struct Cell {
    n: u64,
    multi: u64,
    aggs: Vec<MetricAgg>,
}

/// The sums per metric in a result row, in this order: Σ y, Σ y², then
/// for a ratio Σ den, Σ den², Σ num · den (columns `s`, `q`, `d`, `dq`,
/// `x`), else the CUPED Σ x, Σ x², Σ x · y (`s`, `q`, `p`, `pq`, `px`).
pub(super) const SUMS: usize = 5;

/// An (arm, day): variant and day number of the first exposure.
pub(super) type CellKey = (String, i64);

/// A result row: its (arm, day), users, multi-arm users and the
/// [`SUMS`] sums of each metric, metric after metric.
pub(super) fn row_sums(
    r: &AnyRow,
    metrics: &[MetricSpec],
) -> Result<(CellKey, i64, i64, Vec<f64>)> {
    let variant: String = r.try_get("variant")?;
    let day: i64 = r.try_get("day")?;
    let n: i64 = r.try_get("n")?;
    let multi: i64 = r.try_get("multi")?;
    let mut sums = Vec::with_capacity(metrics.len() * SUMS);
    for (i, m) in metrics.iter().enumerate() {
        let columns = if m.kind == MetricKind::Ratio {
            ["s", "q", "d", "dq", "x"]
        } else {
            ["s", "q", "p", "pq", "px"]
        };
        for c in columns {
            sums.push(r.try_get::<f64, _>(format!("{c}{i}").as_str())?);
        }
    }
    Ok(((variant, day), n, multi, sums))
}

/// The cell of `n` users (`multi` of them multi-arm) with the per-metric
/// sums `sums` (as [`row_sums`] returns them). Metric `n`s stay 0: the
/// caller sets them to the cell's users.
fn cell_of(n: u64, multi: u64, sums: &[f64], metrics: &[MetricSpec]) -> Cell {
    let aggs = metrics
        .iter()
        .zip(sums.chunks(SUMS))
        .map(|(m, v)| {
            let mut b = empty(m);
            b.sum = v[0];
            b.sum_sq = v[1];
            if m.kind == MetricKind::Conversion {
                b.conversions = Some(v[0].round() as u64);
            }
            if m.kind == MetricKind::Ratio {
                (b.den_sum, b.den_sum_sq, b.cross_sum) = (Some(v[2]), Some(v[3]), Some(v[4]));
            } else {
                (b.pre_sum, b.pre_sum_sq, b.pre_cross) = (Some(v[2]), Some(v[3]), Some(v[4]));
            }
            b
        })
        .collect();
    Cell { n, multi, aggs }
}

/// Adds a result row (users, multi-arm users, metric sums of one (arm,
/// day)) into `cells`.
fn add_row(
    cells: &mut BTreeMap<(String, i64), Cell>,
    metrics: &[MetricSpec],
    r: &AnyRow,
) -> Result<()> {
    let (key, n, multi, sums) = row_sums(r, metrics)?;
    let b = cell_of(n as u64, multi as u64, &sums, metrics);
    let cell = cells.entry(key).or_insert_with(|| Cell {
        aggs: metrics.iter().map(empty).collect(),
        ..Cell::default()
    });
    cell.n += b.n;
    cell.multi += b.multi;
    for (a, b) in cell.aggs.iter_mut().zip(&b.aggs) {
        add(a, b);
    }
    Ok(())
}

/// Adds `b` into `a` (sums of disjoint user sets).
fn add(a: &mut MetricAgg, b: &MetricAgg) {
    fn opt(a: &mut Option<f64>, b: Option<f64>) {
        if let Some(b) = b {
            *a = Some(a.unwrap_or(0.0) + b);
        }
    }
    a.n += b.n;
    a.sum += b.sum;
    a.sum_sq += b.sum_sq;
    if let Some(c) = b.conversions {
        a.conversions = Some(a.conversions.unwrap_or(0) + c);
    }
    opt(&mut a.den_sum, b.den_sum);
    opt(&mut a.den_sum_sq, b.den_sum_sq);
    opt(&mut a.cross_sum, b.cross_sum);
    opt(&mut a.pre_sum, b.pre_sum);
    opt(&mut a.pre_sum_sq, b.pre_sum_sq);
    opt(&mut a.pre_cross, b.pre_cross);
}

/// The empty aggregate of a metric (an arm without users).
fn empty(m: &MetricSpec) -> MetricAgg {
    let ratio = m.kind == MetricKind::Ratio;
    let some_if = |b: bool| if b { Some(0.0) } else { None };
    MetricAgg {
        conversions: (m.kind == MetricKind::Conversion).then_some(0),
        den_sum: some_if(ratio),
        den_sum_sq: some_if(ratio),
        cross_sum: some_if(ratio),
        pre_sum: some_if(!ratio),
        pre_sum_sq: some_if(!ratio),
        pre_cross: some_if(!ratio),
        ..MetricAgg::default()
    }
}

impl Store {
    /// The metrics experiment `x` of project `project_id` reads (primary,
    /// secondary, then guardrail metrics, each once) and its data with the
    /// daily series: the inputs of [`crate::results::assemble`].
    pub async fn results_data(
        &self,
        project_id: i64,
        x: &ExperimentRecord,
    ) -> Result<(Vec<MetricSpec>, ExperimentData)> {
        let all = self.metrics(project_id).await?;
        let metrics: Vec<MetricSpec> = x
            .spec
            .metric_keys()
            .into_iter()
            .filter_map(|k| all.iter().find(|m| m.spec.key == k))
            .map(|m| m.spec.clone())
            .collect();
        let options = AggregateOptions {
            series: true,
            incremental: true,
            ..Default::default()
        };
        let data = self.experiment_data(x, &metrics, &options).await?;
        Ok((metrics, data))
    }

    /// The experiment's data per arm: users, per-metric sufficient
    /// statistics (see the [module documentation](self) for the exact
    /// semantics), users exposed to several arms and, with
    /// [`AggregateOptions::series`], a daily cumulative series of the
    /// primary metric (the metric of `metrics` whose key is the
    /// experiment's primary metric, else the first; sums 0 without one).
    ///
    /// SQL does the work, per range of user keys ([`AggregateOptions::partitions`],
    /// concurrently): the users of the per-user rollup `exposure_users`
    /// (migration 0007) whose first exposure is in the window, their metric
    /// events within the widest window, per-user values, then per (arm,
    /// day) sums; the raw exposures only for users first exposed before the
    /// start (and, after a stop, to check multi-arm users). See the module
    /// example and [`AggregateOptions::raw`] for the reference path.
    pub async fn experiment_data(
        &self,
        e: &ExperimentRecord,
        metrics: &[MetricSpec],
        options: &AggregateOptions,
    ) -> Result<ExperimentData> {
        self.scope_data(&AnalysisScope::from(e), metrics, options)
            .await
    }

    /// [`Store::experiment_data`] for any [`AnalysisScope`] (an experiment,
    /// or a guarded rollout that has no experiment record).
    pub async fn scope_data(
        &self,
        e: &AnalysisScope,
        metrics: &[MetricSpec],
        options: &AggregateOptions,
    ) -> Result<ExperimentData> {
        let environment = {
            let mut c = self.pool.acquire().await?;
            let env = get_env(&mut c, e.environment_id).await?;
            edge_env(&mut c, &env).await?
        };
        let started = e.started_at.as_deref().map(timestamp_ms).transpose()?;
        let stopped = e.stopped_at.as_deref().map(timestamp_ms).transpose()?;
        let from_ms = started.into_iter().chain(options.from_ms).max();
        let until_ms = stopped.into_iter().chain(options.until_ms).min();

        // The distinct event names, owned: no borrowed `&str` may live
        // across an await (the future must be `Send` for callers that
        // spawn it).
        let mut names: Vec<String> = Vec::new();
        for m in metrics {
            for n in std::iter::once(m.event.as_str()).chain(m.denominator_event.as_deref()) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        let q = PartQuery {
            head: (e.environment_id, e.flag.clone()),
            bounds: (from_ms.unwrap_or(i64::MIN), until_ms.unwrap_or(i64::MAX)),
            bounded_until: until_ms.is_some(),
            names,
        };
        let early = from_ms.is_some();
        let mut cells: BTreeMap<(String, i64), Cell> = BTreeMap::new();
        if options.incremental && !options.raw && self.backend() == Backend::Postgres {
            for (key, (n, multi, sums)) in self.incremental_cells(&q, metrics, early).await? {
                cells.insert(key, cell_of(n, multi, &sums, metrics));
            }
        } else {
            let rows = self
                .part_rows(&q, metrics, options.raw, options.partitions, early, None)
                .await?;
            for r in &rows {
                add_row(&mut cells, metrics, r)?;
            }
        }
        // A cell's metric `n` is its users (with or without events).
        let mut multi_arm_users = 0;
        for c in cells.values_mut() {
            multi_arm_users += c.multi;
            for a in &mut c.aggs {
                a.n = c.n;
            }
        }

        let primary = metrics
            .iter()
            .position(|m| Some(&m.key) == e.primary_metric.as_ref())
            .or(if metrics.is_empty() { None } else { Some(0) });

        // Arms: control, then the allocation's and the seen variants by name.
        let mut others: BTreeSet<String> = e.variants.iter().cloned().collect();
        others.extend(cells.keys().map(|(v, _)| v.clone()));
        others.remove(&e.control);
        let order: Vec<String> = std::iter::once(e.control.clone()).chain(others).collect();
        let arms = order
            .iter()
            .map(|v| {
                let mut total: Vec<MetricAgg> = metrics.iter().map(empty).collect();
                let mut users = 0;
                for (_, c) in cells.range((v.clone(), i64::MIN)..=(v.clone(), i64::MAX)) {
                    for (t, a) in total.iter_mut().zip(&c.aggs) {
                        add(t, a);
                    }
                    users += c.n;
                }
                ArmData {
                    variant: v.clone(),
                    users,
                    metrics: metrics.iter().map(|m| m.key.clone()).zip(total).collect(),
                }
            })
            .collect();

        let mut series = Vec::new();
        if options.series {
            let days: BTreeSet<i64> = cells.keys().map(|(_, d)| *d).collect();
            let mut running: BTreeMap<String, DailyArm> = order
                .iter()
                .map(|v| (v.clone(), DailyArm::default()))
                .collect();
            for day in days {
                for v in &order {
                    if let Some(c) = cells.get(&(v.clone(), day)) {
                        let slot = running.get_mut(v).expect("every arm");
                        slot.users += c.n;
                        if let Some(p) = primary {
                            slot.sum += c.aggs[p].sum;
                            slot.sum_sq += c.aggs[p].sum_sq;
                        }
                    }
                }
                series.push(DailyPoint {
                    day: day_string(day),
                    arms: running.clone(),
                });
            }
        }

        Ok(ExperimentData {
            environment,
            arms,
            multi_arm_users,
            series,
            from_ms,
            until_ms,
        })
    }
}

/// What every part of one aggregation shares.
#[derive(Debug, Clone)]
pub(super) struct PartQuery {
    /// `$1` environment id, `$2` flag.
    pub(super) head: (i64, String),
    /// `$3` / `$4`: first exposures counted from / until (Unix ms).
    pub(super) bounds: (i64, i64),
    /// Whether `$4` is a real bound (multi-arm users then need a look at
    /// the raw exposures).
    pub(super) bounded_until: bool,
    /// Distinct event names (`$5…` in the metric statements).
    pub(super) names: Vec<String>,
}

/// Key ranges aggregated concurrently on PostgreSQL when
/// [`AggregateOptions::partitions`] is not set and the rollup is large.
const AUTO_PARTITIONS: usize = 2;

/// Rows of the rollup (all flags) from which automatic partitioning pays.
const AUTO_PARTITION_ROWS: f64 = 200_000.0;

impl Store {
    /// The result rows of one aggregation (one per (arm, day) and part:
    /// [`add_row`] merges them): every raw exposure with `raw`, else the
    /// rollup per key range (`partitions`, see [`Store::key_ranges`]) and,
    /// with `early`, the users first exposed before the start. With
    /// `snapshot` (a PostgreSQL snapshot id of `pg_export_snapshot()`,
    /// whose transaction stays open meanwhile), every part reads that
    /// snapshot, so the rows are one consistent state.
    pub(super) async fn part_rows(
        &self,
        q: &PartQuery,
        metrics: &[MetricSpec],
        raw: bool,
        partitions: Option<usize>,
        early: bool,
        snapshot: Option<String>,
    ) -> Result<Vec<AnyRow>> {
        if raw {
            return self.raw_part(q, metrics, RawUsers::All, snapshot).await;
        }
        let ranges = self.key_ranges(&q.head, partitions).await?;
        // Spawned tasks with owned inputs: each range runs on its own
        // connection, and no borrowed future leaks into callers' `Send`
        // inference (the API and the monitor spawn this).
        let mut parts = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            let (store, q, metrics) = (self.clone(), q.clone(), metrics.to_vec());
            let snapshot = snapshot.clone();
            parts.push(tokio::spawn(async move {
                store.rollup_part(&q, &metrics, lo, hi, snapshot).await
            }));
        }
        // Users first exposed before the start: from the raw exposures.
        let early = if early {
            let (store, q, metrics) = (self.clone(), q.clone(), metrics.to_vec());
            Some(tokio::spawn(async move {
                store
                    .raw_part(&q, &metrics, RawUsers::Early, snapshot)
                    .await
            }))
        } else {
            None
        };
        let mut rows = Vec::new();
        for p in parts {
            rows.extend(joined(p.await)?);
        }
        if let Some(h) = early {
            rows.extend(joined(h.await)?);
        }
        Ok(rows)
    }

    /// The raw statement ([`raw_sql`]) for the users `who` selects, in
    /// `snapshot` if set (see [`Store::part_rows`]).
    async fn raw_part(
        &self,
        q: &PartQuery,
        metrics: &[MetricSpec],
        who: RawUsers,
        snapshot: Option<String>,
    ) -> Result<Vec<AnyRow>> {
        let sql = {
            let names: Vec<&str> = q.names.iter().map(String::as_str).collect();
            raw_sql(metrics, &names, who, self.backend() == Backend::Postgres)
        };
        let mut tx = self.pool.begin().await?;
        if let Some(id) = &snapshot {
            import_snapshot(&mut tx, id).await?;
        }
        let rows = fetch(&mut tx, sql, q.head.clone(), q.bounds, q.names.clone()).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// One `user_key` range of the rollup ([`rollup_sql`]), in one read
    /// transaction: on PostgreSQL planner-steered for large ranges
    /// ([`LARGE_RANGE_USERS`]), with JIT only for ranges where its compile
    /// time pays off ([`jit_settings`]).
    async fn rollup_part(
        &self,
        q: &PartQuery,
        metrics: &[MetricSpec],
        lo: Option<String>,
        hi: Option<String>,
        snapshot: Option<String>,
    ) -> Result<Vec<AnyRow>> {
        let postgres = self.backend() == Backend::Postgres;
        let (has_lo, has_hi) = (lo.is_some(), hi.is_some());
        let keys: Vec<String> = lo.into_iter().chain(hi).collect();
        // Key bounds follow the event names (`$5…`) in the statement.
        let first = 5 + q.names.len();
        let sql = {
            let names: Vec<&str> = q.names.iter().map(String::as_str).collect();
            rollup_sql(
                metrics,
                &names,
                q.bounded_until,
                postgres,
                (
                    &range_sql("u.user_key", first, has_lo, has_hi),
                    &range_sql("e.user_key", first, has_lo, has_hi),
                ),
            )
        };
        let mut tail = q.names.clone();
        tail.extend(keys.iter().cloned());
        let mut tx = self.pool.begin().await?;
        if let Some(id) = &snapshot {
            import_snapshot(&mut tx, id).await?;
        }
        if postgres {
            // The estimate of the range's users alone: the full statement's
            // `+first_ms` conditions make the planner guess far too few.
            let count = format!(
                "EXPLAIN SELECT 1 FROM exposure_users u WHERE u.env_id = $1 \
                 AND u.flag_key = $2 AND $3 <= $4{}",
                range_sql("u.user_key", 5, has_lo, has_hi)
            );
            let plan = fetch(&mut tx, count, q.head.clone(), q.bounds, keys).await?;
            let plan: Vec<String> = plan
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<_, _>>()?;
            let users = estimated_users(&plan);
            if users >= LARGE_RANGE_USERS {
                set_local(
                    &mut tx,
                    &[
                        "enable_hashjoin = off",
                        "enable_nestloop = off",
                        "enable_sort = off",
                        "max_parallel_workers_per_gather = 0",
                    ],
                )
                .await?;
            }
            set_local(&mut tx, jit_settings(users)).await?;
        }
        let rows = fetch(&mut tx, sql, q.head.clone(), q.bounds, tail).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// The `user_key` ranges `[lo, hi)` (`None`: unbounded) to aggregate
    /// concurrently: `Some(k)` cuts the flag's rollup at exact quantiles
    /// (k ≥ 2; for tests and tuning); `None` is one range, or on PostgreSQL
    /// with a large rollup [`AUTO_PARTITIONS`] ranges cut at the planner
    /// statistics' histogram of user keys (no scan; a skewed cut only costs
    /// speed, never correctness).
    async fn key_ranges(
        &self,
        (env, flag): &(i64, String),
        partitions: Option<usize>,
    ) -> Result<Vec<(Option<String>, Option<String>)>> {
        let mut cuts: Vec<String> = Vec::new();
        match partitions {
            Some(k) if k >= 2 => {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM exposure_users WHERE env_id = $1 AND flag_key = $2",
                )
                .bind(*env)
                .bind(flag.clone())
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
                for j in 1..k {
                    let offset = n * j as i64 / k as i64;
                    let row = sqlx::query(
                        "SELECT user_key FROM exposure_users WHERE env_id = $1 AND flag_key = $2 \
                         ORDER BY user_key LIMIT 1 OFFSET $3",
                    )
                    .bind(*env)
                    .bind(flag.clone())
                    .bind(offset)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(r) = row {
                        cuts.push(r.try_get("user_key")?);
                    }
                }
            }
            Some(_) => {}
            None if self.backend() == Backend::Postgres => {
                let rows = sqlx::query(
                    "SELECT CAST(c.reltuples AS DOUBLE PRECISION) AS rows, h.b AS bound \
                     FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
                     JOIN pg_stats p ON p.schemaname = s.nspname AND p.tablename = c.relname \
                       AND p.attname = 'user_key' \
                     CROSS JOIN LATERAL unnest(CAST(CAST(p.histogram_bounds AS TEXT) AS TEXT[])) \
                       WITH ORDINALITY AS h(b, i) \
                     WHERE c.relname = 'exposure_users' AND s.nspname = current_schema() \
                     ORDER BY h.i",
                )
                .fetch_all(&self.pool)
                .await?;
                let large = rows
                    .first()
                    .map(|r| r.try_get::<f64, _>("rows"))
                    .transpose()?
                    .is_some_and(|n| n >= AUTO_PARTITION_ROWS);
                if large {
                    let bounds: Vec<String> = rows
                        .iter()
                        .map(|r| r.try_get("bound"))
                        .collect::<std::result::Result<_, _>>()?;
                    for j in 1..AUTO_PARTITIONS {
                        cuts.push(bounds[bounds.len() * j / AUTO_PARTITIONS].clone());
                    }
                }
            }
            None => {}
        }
        cuts.dedup();
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        let mut lo = None;
        for c in cuts {
            ranges.push((lo, Some(c.clone())));
            lo = Some(c);
        }
        ranges.push((lo, None));
        Ok(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(20_417), "2025-11-25");
    }

    #[test]
    fn planner_estimates_of_the_rollup_scan() {
        let plan = [
            "HashAggregate  (cost=1.1..2.2 rows=1000 width=107)".to_string(),
            "  ->  Index Only Scan using exposure_users_pkey on exposure_users u  (cost=0.55..172620.55 rows=1999599 width=44)".to_string(),
            "  ->  Index Only Scan using metric_events_analysis on metric_events e  (cost=0.55..1.0 rows=3000000 width=58)".to_string(),
        ];
        assert_eq!(estimated_users(&plan), 1_999_599.0);
        assert_eq!(estimated_users(&plan[..1]), 0.0);
    }

    /// On PostgreSQL every lookup of one flag's exposures of given users
    /// probes the hashed `exposures_analysis` (migration 0021) instead of
    /// scanning: the early users, the users an incremental look lists, the
    /// multi-arm probe of a bounded look and the raw path's earliest
    /// variant. (Answers are the incremental and rollup tests' business;
    /// this guards the speed, which a changed expression would lose
    /// silently.) Needs `BUNTING_TEST_POSTGRES`'s server, as the store tests.
    #[tokio::test]
    async fn postgres_lookups_probe_the_hashed_analysis_index() {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let admin = std::env::var("BUNTING_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("t_unit_hashed_{}", std::process::id());
        let mut c = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin} ({e})"));
        sqlx::raw_sql(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .execute(&mut c)
        .await
        .unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::open(&url).await.unwrap();
        // 20 flags × 10,000 users, two exposures each (time in ms = the
        // user's number, + 1 for the second); one user in a hundred saw
        // both arms.
        sqlx::raw_sql(
            "INSERT INTO exposures (env_id, id, flag_key, variant, user_key, time_ms, received_ms) \
             SELECT 1, f || '-' || u || '-' || k, 'f' || f, \
               CASE WHEN k = 1 AND u % 100 = 0 THEN 'b' ELSE 'a' END, 'u' || u, u + k, u + k \
             FROM generate_series(0, 19) f, generate_series(0, 9999) u, generate_series(0, 1) k; \
             ANALYZE exposures",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.rebuild_exposure_users().await.unwrap();
        sqlx::raw_sql("ANALYZE exposure_users")
            .execute(store.pool())
            .await
            .unwrap();
        let users = serde_json::to_string(&["u1", "u2", "u3"]).unwrap();
        let statements = [
            (
                "early users",
                raw_sql(&[], &[], RawUsers::Early, true),
                vec![],
            ),
            (
                "listed users",
                listed_sql(&[], &[], 5, 6),
                vec![users, "100:100:".to_string()],
            ),
            (
                "multi-arm probe",
                rollup_sql(&[], &[], true, true, ("", "")),
                vec![],
            ),
            ("raw path", raw_sql(&[], &[], RawUsers::All, true), vec![]),
        ];
        for (what, sql, tail) in statements {
            // From the 100th user on: a hundred users are early.
            let mut tx = store.pool().begin().await.unwrap();
            let plan = fetch(
                &mut tx,
                format!("EXPLAIN {sql}"),
                (1, "f7".into()),
                (100, 9_000),
                tail,
            )
            .await
            .unwrap();
            let plan: Vec<String> = plan.iter().map(|r| r.get::<String, _>(0)).collect();
            assert!(
                plan.iter()
                    .any(|l| l.contains("Index Scan using exposures_analysis")),
                "{what}: the plan does not probe exposures_analysis:\n{}",
                plan.join("\n")
            );
        }
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut c)
            .await
            .unwrap();
    }

    #[test]
    fn float_literals_are_sql_numbers() {
        assert_eq!(lit(100.0), "100.0");
        assert_eq!(lit(2.5), "2.5");
        assert_eq!(lit(1e300), "1e300");
    }
}
