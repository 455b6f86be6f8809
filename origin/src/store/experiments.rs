//! Metric definitions (per project) and experiments (per environment).
//!
//! An experiment runs on a flag in an environment: its arms are the flag's
//! variants, one of them the control. Its lifecycle is `draft` → `running`
//! → `stopped` → `decided` (a running experiment may also be decided
//! directly). Every change is audited like any other write.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, FlagSpec, Store};
//! use bunting_origin::store::experiments::{ExperimentSpec, MetricKind, MetricSpec};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! store.create_flag(&ana, p.id, &FlagSpec::boolean("checkout")).await.unwrap();
//! store.create_metric(&ana, p.id, &MetricSpec::conversion("purchased", "purchase")).await.unwrap();
//! let e = store
//!     .create_experiment(&ana, prod.id, &ExperimentSpec::new("checkout-test", "checkout", "off", "purchased"))
//!     .await
//!     .unwrap();
//! let e = store.start_experiment(&ana, e.id, e.version).await.unwrap();
//! assert_eq!(e.status.as_str(), "running");
//! # });
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::keys::check_key;
use super::rows::{
    get_config, get_env, get_flag, get_project, list_flags, not_found, now, to_json,
};
use super::write::check_version;
use super::{Actor, ConfigSpec, FlagConfig, Problem, Result, Store, StoreError};

/// How a metric turns a user's events into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricKind {
    /// 1 if the user had the event within the attribution window after
    /// their first exposure, else 0.
    Conversion,
    /// The sum of the event's values per user (users without the event
    /// count 0); compared as a mean per user.
    Mean,
    /// The sum of the event's values per user; reported as a total and
    /// compared per user.
    Sum,
    /// Per-user sums of `event` over per-user sums of `denominatorEvent`
    /// (delta method).
    Ratio,
}

/// A metric definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Key, unique in the project: 1–200 characters of
    /// `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 200
    )]
    pub key: String,
    /// How events become a per-user number.
    pub kind: MetricKind,
    /// The event name (numerator of a ratio).
    pub event: String,
    /// The denominator event of a ratio metric.
    #[serde(default)]
    pub denominator_event: Option<String>,
    /// Seconds after a user's first exposure during which events count
    /// (default: 7 days; 1 to [`MAX_WINDOW_SECONDS`], 365 days).
    #[serde(default)]
    pub window_seconds: Option<u64>,
    /// Whether larger values are better (default true); guardrails and
    /// decisions read it.
    #[serde(default = "yes")]
    pub higher_is_better: bool,
    /// Winsorising: per-user values above this are capped to it.
    #[serde(default)]
    pub cap: Option<f64>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

/// Default attribution window: 7 days.
pub const DEFAULT_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

/// Longest attribution window: 365 days. The window is added to exposure
/// times in SQL, so it must stay far from the 64-bit bounds.
pub const MAX_WINDOW_SECONDS: u64 = 365 * 24 * 3600;

impl MetricSpec {
    /// A conversion metric on `event`.
    pub fn conversion(key: &str, event: &str) -> MetricSpec {
        MetricSpec {
            key: key.into(),
            kind: MetricKind::Conversion,
            event: event.into(),
            denominator_event: None,
            window_seconds: None,
            higher_is_better: true,
            cap: None,
            description: None,
        }
    }

    /// The attribution window in milliseconds (at most
    /// [`MAX_WINDOW_SECONDS`]; longer ones are refused when stored).
    pub fn window_ms(&self) -> i64 {
        let s = self
            .window_seconds
            .unwrap_or(DEFAULT_WINDOW_SECONDS)
            .min(MAX_WINDOW_SECONDS);
        i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000)
    }

    fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        check_key(&mut p, &self.key);
        let event_ok = |e: &str| bunting_wire::check_event_name(e).is_ok();
        if !event_ok(&self.event) {
            p.push(Problem::new(
                "event",
                format!(
                    "{:?} is not an event name (1-128 of A-Z a-z 0-9 _ . : -)",
                    self.event
                ),
            ));
        }
        match (&self.kind, &self.denominator_event) {
            (MetricKind::Ratio, None) => p.push(Problem::new(
                "denominatorEvent",
                "a ratio metric needs a denominator event",
            )),
            (MetricKind::Ratio, Some(d)) if !event_ok(d) => p.push(Problem::new(
                "denominatorEvent",
                format!("{d:?} is not an event name"),
            )),
            (MetricKind::Ratio, Some(_)) => {}
            (_, Some(_)) => p.push(Problem::new(
                "denominatorEvent",
                "only ratio metrics have a denominator event",
            )),
            (_, None) => {}
        }
        match self.window_seconds {
            Some(0) => p.push(Problem::new("windowSeconds", "must be positive")),
            Some(w) if w > MAX_WINDOW_SECONDS => p.push(Problem::new(
                "windowSeconds",
                format!(
                    "{w} is more than {MAX_WINDOW_SECONDS} seconds (365 days), the longest window"
                ),
            )),
            _ => {}
        }
        if let Some(c) = self.cap
            && (!c.is_finite() || c <= 0.0)
        {
            p.push(Problem::new("cap", "must be a positive number"));
        }
        if self.cap.is_some() && self.kind == MetricKind::Conversion {
            p.push(Problem::new(
                "cap",
                "a conversion is 0 or 1: nothing to cap",
            ));
        }
        p
    }
}

/// A stored metric.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricRecord {
    /// Row id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: MetricSpec,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// What a guardrail does when it trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RollbackAction {
    /// Serve the control variant to everybody (every rule and the
    /// fallthrough serve it; targeting is kept for later).
    ServeControl,
    /// Percentage rollouts go to 0%: a schedule serves its `otherwise`
    /// variant to everybody, a weighted rollout the control.
    RolloutToZero,
    /// Turn the flag off (it serves its off variant).
    DisableFlag,
    /// Only alert.
    Alert,
}

/// A guardrail: a metric that must not get worse by more than `tolerance`
/// (absolute, in the metric's unit; its harmful direction is the metric's
/// `higherIsBetter` reversed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Guardrail {
    /// The metric key.
    pub metric: String,
    /// Tolerated harm (≥ 0).
    #[serde(default)]
    pub tolerance: f64,
    /// What to do when it trips (default: serve control).
    #[serde(default = "serve_control")]
    pub action: RollbackAction,
}

fn serve_control() -> RollbackAction {
    RollbackAction::ServeControl
}

/// An experiment definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Key, unique in the environment: 1–200 characters of
    /// `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 200
    )]
    pub key: String,
    /// The flag whose variants are the arms.
    pub flag: String,
    /// The control variant.
    pub control: String,
    /// The hypothesis.
    #[serde(default)]
    pub hypothesis: Option<String>,
    /// Planned allocation: variant → weight (any positive scale); the
    /// sample-ratio-mismatch check compares against it. Empty: equal.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub allocation: BTreeMap<String, f64>,
    /// The mutual-exclusion layer (the flag's).
    #[serde(default)]
    pub layer: Option<String>,
    /// The primary metric.
    pub primary_metric: String,
    /// Secondary metrics.
    #[serde(default)]
    pub secondary_metrics: Vec<String>,
    /// Guardrails. A metric may carry several with different tolerances
    /// or actions (each is its own test, e.g. a tight one that alerts and
    /// a looser one that rolls back); an exact repeat is refused.
    #[serde(default)]
    pub guardrails: Vec<Guardrail>,
    /// Planned start (RFC 3339), informative.
    #[serde(default)]
    pub start_at: Option<String>,
    /// Planned stop (RFC 3339), informative.
    #[serde(default)]
    pub stop_at: Option<String>,
}

impl ExperimentSpec {
    /// An experiment on `flag` with `control` and `primary_metric`, equal
    /// allocation.
    pub fn new(key: &str, flag: &str, control: &str, primary_metric: &str) -> ExperimentSpec {
        ExperimentSpec {
            key: key.into(),
            flag: flag.into(),
            control: control.into(),
            hypothesis: None,
            allocation: BTreeMap::new(),
            layer: None,
            primary_metric: primary_metric.into(),
            secondary_metrics: Vec::new(),
            guardrails: Vec::new(),
            start_at: None,
            stop_at: None,
        }
    }
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExperimentStatus {
    /// Being defined; editable.
    Draft,
    /// Collecting data.
    Running,
    /// No longer collecting; awaiting a decision.
    Stopped,
    /// A decision is recorded.
    Decided,
}

impl ExperimentStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentStatus::Draft => "draft",
            ExperimentStatus::Running => "running",
            ExperimentStatus::Stopped => "stopped",
            ExperimentStatus::Decided => "decided",
        }
    }

    fn parse(s: &str) -> Result<ExperimentStatus> {
        Ok(match s {
            "draft" => ExperimentStatus::Draft,
            "running" => ExperimentStatus::Running,
            "stopped" => ExperimentStatus::Stopped,
            "decided" => ExperimentStatus::Decided,
            other => {
                return Err(StoreError::Database(sqlx::Error::Decode(
                    format!("unknown experiment status {other:?}").into(),
                )));
            }
        })
    }
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// The variant chosen to ship.
    pub variant: String,
    /// Why.
    #[serde(default)]
    pub rationale: Option<String>,
    /// Who decided (set by the store).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When (set by the store).
    #[serde(default)]
    pub decided_at: Option<String>,
}

/// A stored experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: ExperimentSpec,
    /// Lifecycle state.
    pub status: ExperimentStatus,
    /// When it started running.
    pub started_at: Option<String>,
    /// When it stopped.
    pub stopped_at: Option<String>,
    /// The decision, once decided.
    pub decision: Option<Decision>,
    /// Optimistic-concurrency version.
    pub version: i64,
}

fn bad_json(e: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(e)))
}

fn metric_row(r: &AnyRow) -> Result<MetricRecord> {
    let spec: String = r.try_get("spec")?;
    Ok(MetricRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        spec: serde_json::from_str(&spec).map_err(bad_json)?,
        version: r.try_get("version")?,
    })
}

fn experiment_row(r: &AnyRow) -> Result<ExperimentRecord> {
    let spec: String = r.try_get("spec")?;
    let status: String = r.try_get("status")?;
    let decision: Option<String> = r.try_get("decision")?;
    Ok(ExperimentRecord {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        spec: serde_json::from_str(&spec).map_err(bad_json)?,
        status: ExperimentStatus::parse(&status)?,
        started_at: r.try_get("started_at")?,
        stopped_at: r.try_get("stopped_at")?,
        decision: decision
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(bad_json)?,
        version: r.try_get("version")?,
    })
}

async fn get_metric(c: &mut sqlx::AnyConnection, id: i64) -> Result<MetricRecord> {
    let r = sqlx::query("SELECT * FROM metrics WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    metric_row(&r.ok_or_else(|| not_found("metric", id))?)
}

async fn get_experiment(c: &mut sqlx::AnyConnection, id: i64) -> Result<ExperimentRecord> {
    let r = sqlx::query("SELECT * FROM experiments WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    experiment_row(&r.ok_or_else(|| not_found("experiment", id))?)
}

async fn project_metrics(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
) -> Result<Vec<MetricRecord>> {
    let rows = sqlx::query("SELECT * FROM metrics WHERE project_id = $1 ORDER BY key")
        .bind(project_id)
        .fetch_all(c)
        .await?;
    rows.iter().map(metric_row).collect()
}

/// Every problem of `spec` in a project with these flags and metrics.
async fn experiment_problems(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
    spec: &ExperimentSpec,
) -> Result<Vec<Problem>> {
    let mut p = Vec::new();
    check_key(&mut p, &spec.key);
    let flags = list_flags(c, project_id).await?;
    let metrics: Vec<String> = project_metrics(c, project_id)
        .await?
        .into_iter()
        .map(|m| m.spec.key)
        .collect();
    match flags.iter().find(|f| f.spec.key == spec.flag) {
        None => p.push(Problem::new(
            "flag",
            format!("{:?} is not a flag of the project", spec.flag),
        )),
        Some(f) => {
            if !f.spec.variants.contains_key(&spec.control) {
                p.push(Problem::new(
                    "control",
                    format!("{:?} is not a variant of {}", spec.control, spec.flag),
                ));
            }
            for (v, w) in &spec.allocation {
                if !f.spec.variants.contains_key(v) {
                    p.push(Problem::new(
                        format!("allocation.{v}"),
                        format!("{v:?} is not a variant of {}", spec.flag),
                    ));
                }
                if !w.is_finite() || *w < 0.0 {
                    p.push(Problem::new(
                        format!("allocation.{v}"),
                        "a weight is a number ≥ 0",
                    ));
                }
            }
            let total: f64 = spec.allocation.values().sum();
            if !spec.allocation.is_empty()
                && spec.allocation.values().all(|w| w.is_finite() && *w >= 0.0)
                && (!total.is_finite() || total <= 0.0)
            {
                // Shares are weight / total: neither may be 0 or overflow.
                p.push(Problem::new(
                    "allocation",
                    format!("the weights sum to {total}: the sum must be a positive finite number"),
                ));
            }
            if !spec.allocation.is_empty() && !spec.allocation.contains_key(&spec.control) {
                p.push(Problem::new(
                    "allocation",
                    "the allocation must include the control",
                ));
            }
            if spec.layer.is_some() && f.spec.layer.as_ref().map(|l| &l.key) != spec.layer.as_ref()
            {
                p.push(Problem::new(
                    "layer",
                    format!("the flag {} is not in layer {:?}", spec.flag, spec.layer),
                ));
            }
        }
    }
    let mut named: Vec<(String, &str)> = vec![("primaryMetric".into(), &spec.primary_metric)];
    for (i, m) in spec.secondary_metrics.iter().enumerate() {
        named.push((format!("secondaryMetrics[{i}]"), m));
    }
    for (i, g) in spec.guardrails.iter().enumerate() {
        named.push((format!("guardrails[{i}].metric"), &g.metric));
    }
    for (path, m) in named {
        if !metrics.iter().any(|k| k == m) {
            p.push(Problem::new(
                path,
                format!("{m:?} is not a metric of the project"),
            ));
        }
    }
    for (i, g) in spec.guardrails.iter().enumerate() {
        if !g.tolerance.is_finite() || g.tolerance < 0.0 {
            p.push(Problem::new(
                format!("guardrails[{i}].tolerance"),
                "a tolerance is a number ≥ 0",
            ));
        }
    }
    p.extend(repeated_guardrails(&spec.guardrails));
    Ok(p)
}

/// Something that uses a metric ([`Store::metric_users`]).
///
/// ```
/// use bunting_origin::store::experiments::MetricUser;
/// let u = MetricUser {
///     kind: "guardedRollout".into(), key: "checkout".into(),
///     environment: "production".into(), status: "active".into(),
/// };
/// assert_eq!(u.to_string(), "active guarded rollout \"checkout\" in production");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricUser {
    /// `experiment` or `guardedRollout`.
    pub kind: String,
    /// The experiment's key, or the guarded rollout's flag key.
    pub key: String,
    /// Its environment's key.
    pub environment: String,
    /// Its status (`draft`, `running`, …; `active`, `disabled`, …).
    pub status: String,
}

impl std::fmt::Display for MetricUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind.as_str() {
            "guardedRollout" => "guarded rollout",
            other => other,
        };
        write!(
            f,
            "{} {kind} {:?} in {}",
            self.status, self.key, self.environment
        )
    }
}

/// The experiments and guarded rollouts of project `project_id` that use
/// metric `key` (primary, secondary or guardrail metric).
async fn metric_users(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
    key: &str,
) -> Result<Vec<MetricUser>> {
    let mut users = Vec::new();
    let rows = sqlx::query(
        "SELECT e.spec, e.status, v.key AS env FROM experiments e \
         JOIN environments v ON v.id = e.environment_id \
         WHERE v.project_id = $1 ORDER BY v.key, e.key",
    )
    .bind(project_id)
    .fetch_all(&mut *c)
    .await?;
    for r in &rows {
        let spec: String = r.try_get("spec")?;
        let Ok(e) = serde_json::from_str::<ExperimentSpec>(&spec) else {
            continue;
        };
        if e.primary_metric == key
            || e.secondary_metrics.iter().any(|m| m == key)
            || e.guardrails.iter().any(|g| g.metric == key)
        {
            users.push(MetricUser {
                kind: "experiment".into(),
                key: e.key,
                environment: r.try_get("env")?,
                status: r.try_get("status")?,
            });
        }
    }
    let rows = sqlx::query(
        "SELECT g.spec, g.status, v.key AS env, f.key AS flag FROM guarded_rollouts g \
         JOIN environments v ON v.id = g.environment_id JOIN flags f ON f.id = g.flag_id \
         WHERE v.project_id = $1 ORDER BY v.key, f.key",
    )
    .bind(project_id)
    .fetch_all(&mut *c)
    .await?;
    for r in &rows {
        let spec: String = r.try_get("spec")?;
        let Ok(g) = serde_json::from_str::<super::rollouts::GuardedRolloutSpec>(&spec) else {
            continue;
        };
        if g.guardrails.iter().any(|g| g.metric == key) {
            users.push(MetricUser {
                kind: "guardedRollout".into(),
                key: r.try_get("flag")?,
                environment: r.try_get("env")?,
                status: r.try_get("status")?,
            });
        }
    }
    Ok(users)
}

/// The problems of `guardrails` (of an experiment or a guarded rollout)
/// that repeat an earlier guardrail exactly (same metric, tolerance and
/// action). Several guardrails on one metric are fine when they differ in
/// tolerance or action: each is its own test (e.g. a tight one that alerts
/// and a looser one that rolls back).
///
/// ```
/// use bunting_origin::store::experiments::{Guardrail, RollbackAction, repeated_guardrails};
/// let g = |tolerance, action| Guardrail { metric: "errors".into(), tolerance, action };
/// let two = [g(0.0, RollbackAction::Alert), g(0.01, RollbackAction::ServeControl)];
/// assert!(repeated_guardrails(&two).is_empty());
/// let again = [g(0.0, RollbackAction::Alert), g(0.0, RollbackAction::Alert)];
/// let p = repeated_guardrails(&again);
/// assert_eq!(p[0].path, "guardrails[1]");
/// ```
pub fn repeated_guardrails(guardrails: &[Guardrail]) -> Vec<Problem> {
    guardrails
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let first = guardrails[..i].iter().position(|o| o == g)?;
            Some(Problem::new(
                format!("guardrails[{i}]"),
                format!(
                    "repeats guardrails[{first}] ({:?}, tolerance {}, {}): give it another \
                     tolerance or action, or remove it",
                    g.metric,
                    g.tolerance,
                    serde_json::to_value(g.action).unwrap_or_default()
                ),
            ))
        })
        .collect()
}

impl Store {
    /// Creates metric `spec` in project `project_id`.
    pub async fn create_metric(
        &self,
        actor: &Actor,
        project_id: i64,
        spec: &MetricSpec,
    ) -> Result<MetricRecord> {
        let problems = spec.problems();
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let mut w = self.begin(actor).await?;
        get_project(w.c(), project_id).await?;
        let row = sqlx::query(
            "INSERT INTO metrics (project_id, key, spec) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(project_id)
        .bind(&spec.key)
        .bind(to_json(spec))
        .fetch_one(w.c())
        .await
        .map_err(StoreError::on_write("metric", &spec.key))?;
        let id: i64 = row.try_get("id")?;
        let m = get_metric(w.c(), id).await?;
        w.audit("create", "metric", (id, &spec.key), None::<&()>, Some(&m))
            .await?;
        w.commit().await?;
        Ok(m)
    }

    /// The metrics of project `project_id`, by key.
    pub async fn metrics(&self, project_id: i64) -> Result<Vec<MetricRecord>> {
        project_metrics(&mut *self.conn().await?, project_id).await
    }

    /// The metric `key` of project `project_id`.
    pub async fn metric_by_key(&self, project_id: i64, key: &str) -> Result<MetricRecord> {
        let r = sqlx::query("SELECT * FROM metrics WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        metric_row(&r.ok_or_else(|| not_found("metric", key))?)
    }

    /// Replaces metric `id`'s definition (its key cannot change); it must be
    /// at version `expected`.
    pub async fn update_metric(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &MetricSpec,
    ) -> Result<MetricRecord> {
        let mut problems = spec.problems();
        let mut w = self.begin(actor).await?;
        let before = get_metric(w.c(), id).await?;
        check_version(before.version, expected)?;
        if spec.key != before.spec.key {
            problems.push(Problem::new(
                "key",
                format!("a metric's key cannot change (it is {:?})", before.spec.key),
            ));
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        sqlx::query("UPDATE metrics SET spec = $1, version = version + 1 WHERE id = $2")
            .bind(to_json(spec))
            .bind(id)
            .execute(w.c())
            .await?;
        let after = get_metric(w.c(), id).await?;
        w.audit(
            "update",
            "metric",
            (id, &spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// What uses metric `key` of project `project_id`: its experiments and
    /// guarded rollouts in every environment and status, experiments
    /// first.
    pub async fn metric_users(&self, project_id: i64, key: &str) -> Result<Vec<MetricUser>> {
        metric_users(&mut *self.conn().await?, project_id, key).await
    }

    /// Deletes metric `id` (at version `expected`). Refused while an
    /// experiment or a guarded rollout of the project uses it, in any
    /// status (a stopped experiment's results and a disabled guard that
    /// may be re-armed still read it): [`StoreError::Invalid`] with one
    /// problem at path `metric` per user ([`MetricUser`]), the only
    /// `Invalid` this method returns (the API answers it 409 `in_use`).
    pub async fn delete_metric(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_metric(w.c(), id).await?;
        let key = &before.spec.key;
        let users = metric_users(w.c(), before.project_id, key).await?;
        if !users.is_empty() {
            return Err(StoreError::Invalid(
                users
                    .iter()
                    .map(|u| Problem::new("metric", format!("{key:?} is used by {u}")))
                    .collect(),
            ));
        }
        w.delete(
            "metric",
            "metrics",
            id,
            expected,
            (before.version, key.clone(), &before),
        )
        .await?;
        w.commit().await
    }

    /// Creates experiment `spec` (status `draft`) in environment `env_id`.
    pub async fn create_experiment(
        &self,
        actor: &Actor,
        env_id: i64,
        spec: &ExperimentSpec,
    ) -> Result<ExperimentRecord> {
        let mut w = self.begin(actor).await?;
        let env = get_env(w.c(), env_id).await?;
        let problems = experiment_problems(w.c(), env.project_id, spec).await?;
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let row = sqlx::query(
            "INSERT INTO experiments (environment_id, key, spec) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(env_id)
        .bind(&spec.key)
        .bind(to_json(spec))
        .fetch_one(w.c())
        .await
        .map_err(StoreError::on_write("experiment", &spec.key))?;
        let id: i64 = row.try_get("id")?;
        let e = get_experiment(w.c(), id).await?;
        w.audit(
            "create",
            "experiment",
            (id, &spec.key),
            None::<&()>,
            Some(&e),
        )
        .await?;
        w.commit().await?;
        Ok(e)
    }

    /// Experiment `id`.
    pub async fn experiment(&self, id: i64) -> Result<ExperimentRecord> {
        get_experiment(&mut *self.conn().await?, id).await
    }

    /// The experiment `key` of environment `env_id`.
    pub async fn experiment_by_key(&self, env_id: i64, key: &str) -> Result<ExperimentRecord> {
        let r = sqlx::query("SELECT * FROM experiments WHERE environment_id = $1 AND key = $2")
            .bind(env_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        experiment_row(&r.ok_or_else(|| not_found("experiment", key))?)
    }

    /// The experiments of environment `env_id`, by key.
    pub async fn experiments(&self, env_id: i64) -> Result<Vec<ExperimentRecord>> {
        let rows = sqlx::query("SELECT * FROM experiments WHERE environment_id = $1 ORDER BY key")
            .bind(env_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(experiment_row).collect()
    }

    /// Every running experiment (for monitors).
    pub async fn running_experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let rows = sqlx::query("SELECT * FROM experiments WHERE status = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(experiment_row).collect()
    }

    /// Replaces experiment `id`'s definition (at version `expected`). A
    /// running experiment may change only its hypothesis, planned times,
    /// secondary metrics and guardrails: its flag, control, allocation and
    /// primary metric are what its data mean. Stopped and decided
    /// experiments are read-only.
    pub async fn update_experiment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &ExperimentSpec,
    ) -> Result<ExperimentRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_experiment(w.c(), id).await?;
        check_version(before.version, expected)?;
        let env = get_env(w.c(), before.environment_id).await?;
        let mut problems = experiment_problems(w.c(), env.project_id, spec).await?;
        if spec.key != before.spec.key {
            problems.push(Problem::new("key", "an experiment's key cannot change"));
        }
        match before.status {
            ExperimentStatus::Draft => {}
            ExperimentStatus::Running => {
                let b = &before.spec;
                if spec.flag != b.flag
                    || spec.control != b.control
                    || spec.allocation != b.allocation
                    || spec.primary_metric != b.primary_metric
                    || spec.layer != b.layer
                {
                    problems.push(Problem::new(
                        "status",
                        "a running experiment keeps its flag, control, allocation, layer and primary metric",
                    ));
                }
            }
            s => problems.push(Problem::new(
                "status",
                format!("a {} experiment cannot change", s.as_str()),
            )),
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        sqlx::query("UPDATE experiments SET spec = $1, version = version + 1 WHERE id = $2")
            .bind(to_json(spec))
            .bind(id)
            .execute(w.c())
            .await?;
        let after = get_experiment(w.c(), id).await?;
        w.audit(
            "update",
            "experiment",
            (id, &spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// Deletes experiment `id` (at version `expected`); a running one must
    /// be stopped first.
    pub async fn delete_experiment(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_experiment(w.c(), id).await?;
        if before.status == ExperimentStatus::Running {
            check_version(before.version, expected)?;
            return Err(StoreError::Invalid(vec![Problem::new(
                "status",
                "stop the experiment before deleting it",
            )]));
        }
        let key = before.spec.key.clone();
        w.delete(
            "experiment",
            "experiments",
            id,
            expected,
            (before.version, key, &before),
        )
        .await?;
        w.commit().await
    }

    /// `draft` → `running`.
    pub async fn start_experiment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
    ) -> Result<ExperimentRecord> {
        self.transition(actor, id, expected, ExperimentStatus::Running, None)
            .await
    }

    /// `running` → `stopped`.
    pub async fn stop_experiment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
    ) -> Result<ExperimentRecord> {
        self.transition(actor, id, expected, ExperimentStatus::Stopped, None)
            .await
    }

    /// `running` or `stopped` → `decided`, recording `decision` (its
    /// variant must be an arm).
    pub async fn decide_experiment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        decision: &Decision,
    ) -> Result<ExperimentRecord> {
        self.transition(
            actor,
            id,
            expected,
            ExperimentStatus::Decided,
            Some(decision),
        )
        .await
    }

    async fn transition(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        to: ExperimentStatus,
        decision: Option<&Decision>,
    ) -> Result<ExperimentRecord> {
        use ExperimentStatus::*;
        let mut w = self.begin(actor).await?;
        let before = get_experiment(w.c(), id).await?;
        check_version(before.version, expected)?;
        let allowed = matches!(
            (before.status, to),
            (Draft, Running) | (Running, Stopped) | (Running, Decided) | (Stopped, Decided)
        );
        if !allowed {
            return Err(StoreError::Invalid(vec![Problem::new(
                "status",
                format!(
                    "a {} experiment cannot become {}",
                    before.status.as_str(),
                    to.as_str()
                ),
            )]));
        }
        let at = now();
        let decision = match decision {
            Some(d) => {
                let env = get_env(w.c(), before.environment_id).await?;
                let flag = list_flags(w.c(), env.project_id)
                    .await?
                    .into_iter()
                    .find(|f| f.spec.key == before.spec.flag);
                if !flag.is_some_and(|f| f.spec.variants.contains_key(&d.variant)) {
                    return Err(StoreError::Invalid(vec![Problem::new(
                        "variant",
                        format!("{:?} is not an arm of the experiment", d.variant),
                    )]));
                }
                Some(to_json(&Decision {
                    variant: d.variant.clone(),
                    rationale: d.rationale.clone(),
                    decided_by: Some(actor.name.clone()),
                    decided_at: Some(at.clone()),
                }))
            }
            None => None,
        };
        sqlx::query(
            "UPDATE experiments SET status = $1, version = version + 1, \
             started_at = CASE WHEN $2 = 'running' THEN $3 ELSE started_at END, \
             stopped_at = CASE WHEN $2 IN ('stopped', 'decided') AND stopped_at IS NULL THEN $3 ELSE stopped_at END, \
             decision = COALESCE($4, decision) WHERE id = $5",
        )
        .bind(to.as_str())
        .bind(to.as_str())
        .bind(&at)
        .bind(decision)
        .bind(id)
        .execute(w.c())
        .await?;
        let after = get_experiment(w.c(), id).await?;
        let action = match to {
            Running => "start",
            Stopped => "stop",
            Decided => "decide",
            Draft => "update",
        };
        w.audit(
            action,
            "experiment",
            (id, &before.spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }
}

impl Store {
    /// Replaces flag `flag_id`'s configuration in `env_id` by `next` (when
    /// given; at version `expected`) and appends a `rollback` audit entry
    /// carrying `evidence`, in one transaction. See [`crate::rollback`].
    pub async fn rollback_flag_config<E: Serialize>(
        &self,
        actor: &Actor,
        (flag_id, env_id): (i64, i64),
        expected: i64,
        next: Option<&ConfigSpec>,
        evidence: &E,
    ) -> Result<FlagConfig> {
        let mut w = self.begin(actor).await?;
        let config = match next {
            Some(spec) => {
                w.update_config(flag_id, env_id, Some(expected), spec)
                    .await?
            }
            None => get_config(w.c(), flag_id, env_id).await?,
        };
        let flag = get_flag(w.c(), flag_id).await?;
        let env = get_env(w.c(), env_id).await?;
        let key = format!("{}/{}", flag.spec.key, env.key);
        w.audit(
            "rollback",
            "flagConfig",
            (flag_id, &key),
            None::<&()>,
            Some(&serde_json::json!({ "evidence": evidence, "changed": next.is_some(), "config": config })),
        )
        .await?;
        w.commit().await?;
        Ok(config)
    }
}
