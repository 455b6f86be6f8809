//! Guarded rollouts: a flag in an environment watched by guardrail metrics
//! without an experiment (a percentage rollout or a scheduled ramp moving
//! users away from a control variant).
//!
//! There is at most one guarded rollout per flag and environment; the API
//! names it by the flag's key. Its status is `active` (the monitor watches
//! it), `rolledBack` (a guardrail tripped; set only by the monitor),
//! `completed` or `disabled`. Becoming active (on create, or again later)
//! sets `startedAt`: the comparison counts exposures from then on.
//! Definition and status changes are versioned and audited (entity type
//! `guardedRollout`); the monitor's observations (`health`, `checkedAt`,
//! `heldUntil`) are written every round without a version bump or an audit
//! entry, while holding a ramp is audited on the flag's configuration
//! ([`Store::hold_ramp`]). See `docs/rollback.md`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, FlagSpec, Store};
//! use bunting_origin::store::experiments::{Guardrail, MetricSpec, RollbackAction};
//! use bunting_origin::store::rollouts::{GuardStatus, GuardedRolloutSpec};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! store.create_flag(&ana, p.id, &FlagSpec::boolean("checkout")).await.unwrap();
//! let mut errors = MetricSpec::conversion("errors", "checkout_error");
//! errors.higher_is_better = false;
//! store.create_metric(&ana, p.id, &errors).await.unwrap();
//! let mut spec = GuardedRolloutSpec::new("checkout", "off");
//! spec.guardrails.push(Guardrail { metric: "errors".into(), tolerance: 0.0, action: RollbackAction::RolloutToZero });
//! let g = store.create_guarded_rollout(&ana, prod.id, &spec).await.unwrap();
//! assert_eq!(g.status, GuardStatus::Active);
//! assert!(g.started_at.is_some());
//! let g = store.set_guarded_rollout_status(&ana, g.id, g.version, GuardStatus::Disabled).await.unwrap();
//! assert_eq!(g.status.as_str(), "disabled");
//! # });
//! ```

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::experiments::{Guardrail, RollbackAction};
use super::rows::{get_env, get_flag, not_found, now, to_json};
use super::write::{Write, check_version};
use super::{Actor, ConfigSpec, FlagConfig, Problem, Result, Store, StoreError};

/// A guarded rollout's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardedRolloutSpec {
    /// The flag (a key of the project); one guarded rollout per flag and
    /// environment.
    pub flag: String,
    /// The variant the rollout moves users away from: the baseline every
    /// other variant served is compared with (for a schedule, usually its
    /// `otherwise`).
    pub control: String,
    /// Guardrails (at least one): metric, harm tolerance, rollback action.
    /// A metric may carry several guardrails with different tolerances or
    /// actions (each is its own test), but not the same one twice.
    pub guardrails: Vec<Guardrail>,
    /// Users needed in both arms before a look counts toward health and
    /// before the harm test runs (default: the monitor's, 100). At least 2.
    #[serde(default)]
    pub min_users_per_arm: Option<u64>,
    /// Whether the guardrails gate the flag's scheduled ramp in this
    /// environment: the next step is postponed while they are not healthy.
    #[serde(default)]
    pub gate_ramp: bool,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

impl GuardedRolloutSpec {
    /// A guarded rollout of `flag` away from `control`, without guardrails
    /// yet (add at least one), not gating a ramp.
    ///
    /// ```
    /// let s = bunting_origin::store::rollouts::GuardedRolloutSpec::new("checkout", "off");
    /// assert!(s.guardrails.is_empty() && !s.gate_ramp);
    /// ```
    pub fn new(flag: &str, control: &str) -> GuardedRolloutSpec {
        GuardedRolloutSpec {
            flag: flag.into(),
            control: control.into(),
            guardrails: Vec::new(),
            min_users_per_arm: None,
            gate_ramp: false,
            description: None,
        }
    }
}

/// Where a guarded rollout is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum GuardStatus {
    /// Watched by the monitor.
    Active,
    /// A guardrail tripped and the flag was rolled back (set by the
    /// monitor only).
    RolledBack,
    /// Done: the rollout finished; no longer watched.
    Completed,
    /// Paused by a person; not watched.
    Disabled,
}

impl GuardStatus {
    /// Its name.
    ///
    /// ```
    /// use bunting_origin::store::rollouts::GuardStatus;
    /// assert_eq!(GuardStatus::RolledBack.as_str(), "rolledBack");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            GuardStatus::Active => "active",
            GuardStatus::RolledBack => "rolledBack",
            GuardStatus::Completed => "completed",
            GuardStatus::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Result<GuardStatus> {
        Ok(match s {
            "active" => GuardStatus::Active,
            "rolledBack" => GuardStatus::RolledBack,
            "completed" => GuardStatus::Completed,
            "disabled" => GuardStatus::Disabled,
            other => {
                return Err(StoreError::Database(sqlx::Error::Decode(
                    format!("unknown guarded rollout status {other:?}").into(),
                )));
            }
        })
    }
}

/// One guardrail × treatment arm at the monitor's latest look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailState {
    /// Index of the guardrail in the guarded rollout's `guardrails` (two
    /// guardrails may watch one metric with different tolerances).
    #[serde(default)]
    pub guardrail: usize,
    /// The guardrail's tolerance.
    #[serde(default)]
    pub tolerance: f64,
    /// The guardrail metric.
    pub metric: String,
    /// The treatment variant.
    pub variant: String,
    /// Users in the control arm.
    pub control_users: u64,
    /// Users in the treatment arm.
    pub treatment_users: u64,
    /// Estimated effect, treatment − control, in the metric's unit.
    pub estimate: Option<f64>,
    /// Always-valid one-sided p-value of the harm test.
    pub p_value: Option<f64>,
    /// Lower end of the always-valid interval of the effect.
    pub lower: Option<f64>,
    /// Looks the harm test has taken since the monitor (re)started.
    pub looks: u32,
    /// Whether the harm test rejected (significant harm beyond tolerance).
    pub significant: bool,
}

/// The monitor's verdict on a guarded rollout at its latest round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardHealth {
    /// Healthy: at least one treatment arm is exposed and, for every
    /// guardrail and treatment arm, the harm test looked at ≥
    /// `minUsersPerArm` users in both arms and does not find significant
    /// harm. A ramp gated by the guard advances only while healthy.
    pub healthy: bool,
    /// Why not healthy (empty when healthy).
    pub reasons: Vec<String>,
    /// The minimum users per arm applied.
    pub min_users_per_arm: u64,
    /// Per guardrail and treatment arm.
    pub guardrails: Vec<GuardrailState>,
}

/// A stored guarded rollout.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardedRolloutRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The flag's row id.
    pub flag_id: i64,
    /// The definition (`flag` is the flag's current key).
    #[serde(flatten)]
    pub spec: GuardedRolloutSpec,
    /// Lifecycle state.
    pub status: GuardStatus,
    /// When it last became active: exposures count from then on.
    pub started_at: Option<String>,
    /// When it last stopped being active.
    pub stopped_at: Option<String>,
    /// When the monitor last checked it.
    pub checked_at: Option<String>,
    /// The monitor's latest verdict.
    pub health: Option<GuardHealth>,
    /// When the ramp step the monitor last postponed takes effect now.
    pub held_until: Option<String>,
    /// Optimistic-concurrency version (definition and status only).
    pub version: i64,
}

fn bad_json(e: serde_json::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(Box::new(e)))
}

const SELECT: &str = "SELECT g.*, f.key AS flag_key FROM guarded_rollouts g \
                      JOIN flags f ON f.id = g.flag_id";

fn guard_row(r: &AnyRow) -> Result<GuardedRolloutRecord> {
    let spec: String = r.try_get("spec")?;
    let mut spec: GuardedRolloutSpec = serde_json::from_str(&spec).map_err(bad_json)?;
    spec.flag = r.try_get("flag_key")?;
    let status: String = r.try_get("status")?;
    let health: Option<String> = r.try_get("health")?;
    Ok(GuardedRolloutRecord {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        flag_id: r.try_get("flag_id")?,
        spec,
        status: GuardStatus::parse(&status)?,
        started_at: r.try_get("started_at")?,
        stopped_at: r.try_get("stopped_at")?,
        checked_at: r.try_get("checked_at")?,
        health: health
            .map(|h| serde_json::from_str(&h))
            .transpose()
            .map_err(bad_json)?,
        held_until: r.try_get("held_until")?,
        version: r.try_get("version")?,
    })
}

async fn get_guard(c: &mut sqlx::AnyConnection, id: i64) -> Result<GuardedRolloutRecord> {
    let r = sqlx::query(&format!("{SELECT} WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?;
    guard_row(&r.ok_or_else(|| not_found("guardedRollout", id))?)
}

/// The audit key of a guarded rollout: `flag/environment`.
async fn audit_key(c: &mut sqlx::AnyConnection, g: &GuardedRolloutRecord) -> Result<String> {
    let env = get_env(c, g.environment_id).await?;
    Ok(format!("{}/{}", g.spec.flag, env.key))
}

/// Every problem of `spec` in project `project_id`, and the flag's id when
/// it exists.
async fn guard_problems(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
    spec: &GuardedRolloutSpec,
) -> Result<(Vec<Problem>, Option<i64>)> {
    let mut p = Vec::new();
    let flag = sqlx::query("SELECT id FROM flags WHERE project_id = $1 AND key = $2")
        .bind(project_id)
        .bind(&spec.flag)
        .fetch_optional(&mut *c)
        .await?;
    let flag_id = match flag {
        None => {
            p.push(Problem::new(
                "flag",
                format!("{:?} is not a flag of the project", spec.flag),
            ));
            None
        }
        Some(r) => {
            let id: i64 = r.try_get("id")?;
            let f = get_flag(c, id).await?;
            if !f.spec.variants.contains_key(&spec.control) {
                p.push(Problem::new(
                    "control",
                    format!("{:?} is not a variant of {}", spec.control, spec.flag),
                ));
            }
            Some(id)
        }
    };
    let metrics: Vec<String> = sqlx::query("SELECT key FROM metrics WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("key"))
        .collect::<std::result::Result<_, _>>()?;
    if spec.guardrails.is_empty() {
        p.push(Problem::new(
            "guardrails",
            "a guarded rollout needs at least one guardrail",
        ));
    }
    for (i, g) in spec.guardrails.iter().enumerate() {
        if !metrics.contains(&g.metric) {
            p.push(Problem::new(
                format!("guardrails[{i}].metric"),
                format!("{:?} is not a metric of the project", g.metric),
            ));
        }
        if !g.tolerance.is_finite() || g.tolerance < 0.0 {
            p.push(Problem::new(
                format!("guardrails[{i}].tolerance"),
                "a tolerance is a number ≥ 0",
            ));
        }
        if spec.gate_ramp && g.action == RollbackAction::Alert {
            p.push(Problem::new(
                format!("guardrails[{i}].action"),
                "a guardrail gating a ramp must roll back (serveControl, rolloutToZero or \
                 disableFlag): after an alert the ramp would advance unwatched",
            ));
        }
    }
    p.extend(super::experiments::repeated_guardrails(&spec.guardrails));
    if spec.min_users_per_arm.is_some_and(|n| n < 2) {
        p.push(Problem::new("minUsersPerArm", "at least 2 users per arm"));
    }
    Ok((p, flag_id))
}

impl Store {
    /// Creates guarded rollout `spec` in environment `env_id`, active from
    /// now. A flag has at most one per environment
    /// ([`StoreError::Duplicate`]).
    pub async fn create_guarded_rollout(
        &self,
        actor: &Actor,
        env_id: i64,
        spec: &GuardedRolloutSpec,
    ) -> Result<GuardedRolloutRecord> {
        let mut w = self.begin(actor).await?;
        let env = get_env(w.c(), env_id).await?;
        let (problems, flag_id) = guard_problems(w.c(), env.project_id, spec).await?;
        let Some(flag_id) = flag_id.filter(|_| problems.is_empty()) else {
            return Err(StoreError::Invalid(problems));
        };
        let row = sqlx::query(
            "INSERT INTO guarded_rollouts (environment_id, flag_id, spec, status, started_at) \
             VALUES ($1, $2, $3, 'active', $4) RETURNING id",
        )
        .bind(env_id)
        .bind(flag_id)
        .bind(to_json(spec))
        .bind(now())
        .fetch_one(w.c())
        .await
        .map_err(StoreError::on_write("guardedRollout", &spec.flag))?;
        let id: i64 = row.try_get("id")?;
        let g = get_guard(w.c(), id).await?;
        let key = audit_key(w.c(), &g).await?;
        w.audit(
            "create",
            "guardedRollout",
            (id, &key),
            None::<&()>,
            Some(&g),
        )
        .await?;
        w.commit().await?;
        Ok(g)
    }

    /// Guarded rollout `id`.
    pub async fn guarded_rollout(&self, id: i64) -> Result<GuardedRolloutRecord> {
        get_guard(&mut *self.conn().await?, id).await
    }

    /// The guarded rollout of flag `flag` (key) in environment `env_id`.
    pub async fn guarded_rollout_by_flag(
        &self,
        env_id: i64,
        flag: &str,
    ) -> Result<GuardedRolloutRecord> {
        let r = sqlx::query(&format!(
            "{SELECT} WHERE g.environment_id = $1 AND f.key = $2"
        ))
        .bind(env_id)
        .bind(flag)
        .fetch_optional(&self.pool)
        .await?;
        guard_row(&r.ok_or_else(|| not_found("guardedRollout", flag))?)
    }

    /// The guarded rollouts of environment `env_id`, by flag key.
    pub async fn guarded_rollouts(&self, env_id: i64) -> Result<Vec<GuardedRolloutRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT} WHERE g.environment_id = $1 ORDER BY f.key"
        ))
        .bind(env_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(guard_row).collect()
    }

    /// Every active guarded rollout (for the monitor), by id.
    pub async fn active_guarded_rollouts(&self) -> Result<Vec<GuardedRolloutRecord>> {
        let rows = sqlx::query(&format!("{SELECT} WHERE g.status = 'active' ORDER BY g.id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(guard_row).collect()
    }

    /// Replaces guarded rollout `id`'s definition (at version `expected`);
    /// its flag cannot change. Allowed in every status; an active one keeps
    /// its start (the monitor starts fresh tests for changed guardrails).
    pub async fn update_guarded_rollout(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &GuardedRolloutSpec,
    ) -> Result<GuardedRolloutRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_guard(w.c(), id).await?;
        check_version(before.version, expected)?;
        let env = get_env(w.c(), before.environment_id).await?;
        let (mut problems, _) = guard_problems(w.c(), env.project_id, spec).await?;
        if spec.flag != before.spec.flag {
            problems.push(Problem::new(
                "flag",
                format!(
                    "a guarded rollout's flag cannot change (it is {:?})",
                    before.spec.flag
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        sqlx::query("UPDATE guarded_rollouts SET spec = $1, version = version + 1 WHERE id = $2")
            .bind(to_json(spec))
            .bind(id)
            .execute(w.c())
            .await?;
        let after = get_guard(w.c(), id).await?;
        let key = audit_key(w.c(), &after).await?;
        w.audit(
            "update",
            "guardedRollout",
            (id, &key),
            Some(&before),
            Some(&after),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// Changes guarded rollout `id`'s status (at version `expected`) to
    /// `active` (again: a new start, fresh health), `completed` or
    /// `disabled`; `rolledBack` is the monitor's
    /// ([`Store::mark_guarded_rollout_rolled_back`]).
    pub async fn set_guarded_rollout_status(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        to: GuardStatus,
    ) -> Result<GuardedRolloutRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_guard(w.c(), id).await?;
        check_version(before.version, expected)?;
        if to == GuardStatus::RolledBack {
            return Err(StoreError::Invalid(vec![Problem::new(
                "status",
                "only the monitor rolls a guarded rollout back (use an alert, or change the flag)",
            )]));
        }
        if to == before.status {
            return Err(StoreError::Invalid(vec![Problem::new(
                "status",
                format!("the guarded rollout is already {}", to.as_str()),
            )]));
        }
        let after = w.guard_status(&before, to).await?;
        w.commit().await?;
        Ok(after)
    }

    /// Marks active guarded rollout `id` rolled back (whatever its
    /// version: the monitor's verdict wins over a concurrent edit);
    /// unchanged when it is no longer active.
    pub async fn mark_guarded_rollout_rolled_back(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<GuardedRolloutRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_guard(w.c(), id).await?;
        if before.status != GuardStatus::Active {
            return Ok(before);
        }
        let after = w.guard_status(&before, GuardStatus::RolledBack).await?;
        w.commit().await?;
        Ok(after)
    }

    /// Deletes guarded rollout `id` (at version `expected`); an active one
    /// must be disabled or completed first.
    pub async fn delete_guarded_rollout(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
    ) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_guard(w.c(), id).await?;
        if before.status == GuardStatus::Active {
            check_version(before.version, expected)?;
            return Err(StoreError::Invalid(vec![Problem::new(
                "status",
                "disable or complete the guarded rollout before deleting it",
            )]));
        }
        let key = audit_key(w.c(), &before).await?;
        w.delete(
            "guardedRollout",
            "guarded_rollouts",
            id,
            expected,
            (before.version, key, &before),
        )
        .await?;
        w.commit().await
    }

    /// Records the monitor's verdict on guarded rollout `id` (no version
    /// bump, no audit entry): only while it is still active since
    /// `started_at`, so a verdict computed before a restart of the guard
    /// or a status change is dropped. Returns whether it was recorded.
    pub async fn record_guard_health(
        &self,
        id: i64,
        started_at: Option<&str>,
        health: &GuardHealth,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE guarded_rollouts SET health = $1, checked_at = $2 \
             WHERE id = $3 AND status = 'active' AND started_at = $4",
        )
        .bind(to_json(health))
        .bind(now())
        .bind(id)
        .bind(started_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Holds a scheduled ramp: replaces flag `flag_id`'s configuration in
    /// `env_id` by `next` (at version `expected`: the postponed schedule;
    /// see [`crate::monitor::hold_schedules`]),
    /// sets guarded rollout `guard_id`'s `heldUntil`, and appends a
    /// `holdRamp` audit entry on the flag configuration carrying `details`
    /// (reason, the guard's health, the steps moved), in one transaction.
    /// The entry and the configuration's `update` entry are in the flag's
    /// history.
    pub async fn hold_ramp<D: Serialize>(
        &self,
        actor: &Actor,
        (guard_id, flag_id, env_id): (i64, i64, i64),
        (expected, next): (i64, &ConfigSpec),
        held_until: &str,
        details: &D,
    ) -> Result<FlagConfig> {
        let mut w = self.begin(actor).await?;
        let config = w
            .update_config(flag_id, env_id, Some(expected), next)
            .await?;
        sqlx::query("UPDATE guarded_rollouts SET held_until = $1 WHERE id = $2")
            .bind(held_until)
            .bind(guard_id)
            .execute(w.c())
            .await?;
        let flag = get_flag(w.c(), flag_id).await?;
        let env = get_env(w.c(), env_id).await?;
        let key = format!("{}/{}", flag.spec.key, env.key);
        w.audit(
            "holdRamp",
            "flagConfig",
            (flag_id, &key),
            None::<&()>,
            Some(&serde_json::json!({ "details": details, "heldUntil": held_until, "config": config })),
        )
        .await?;
        w.commit().await?;
        Ok(config)
    }
}

impl Write<'_> {
    /// Moves `before` to status `to` and audits it.
    async fn guard_status(
        &mut self,
        before: &GuardedRolloutRecord,
        to: GuardStatus,
    ) -> Result<GuardedRolloutRecord> {
        let at = now();
        if to == GuardStatus::Active {
            sqlx::query(
                "UPDATE guarded_rollouts SET status = 'active', started_at = $1, stopped_at = NULL, \
                 health = NULL, checked_at = NULL, held_until = NULL, version = version + 1 WHERE id = $2",
            )
            .bind(&at)
            .bind(before.id)
            .execute(self.c())
            .await?;
        } else {
            sqlx::query(
                "UPDATE guarded_rollouts SET status = $1, \
                 stopped_at = CASE WHEN status = 'active' THEN $2 ELSE stopped_at END, \
                 version = version + 1 WHERE id = $3",
            )
            .bind(to.as_str())
            .bind(&at)
            .bind(before.id)
            .execute(self.c())
            .await?;
        }
        let after = get_guard(self.c(), before.id).await?;
        let key = audit_key(self.c(), &after).await?;
        let action = match to {
            GuardStatus::Active => "activate",
            GuardStatus::RolledBack => "rollback",
            GuardStatus::Completed => "complete",
            GuardStatus::Disabled => "disable",
        };
        self.audit(
            action,
            "guardedRollout",
            (before.id, &key),
            Some(before),
            Some(&after),
        )
        .await?;
        Ok(after)
    }
}
