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
//! use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
//! use bunting_origin::model::metric::MetricSpec;
//! use bunting_origin::model::rollout::{GuardStatus, GuardedRolloutSpec};
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

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::{bad_json, get_env, get_flag, not_found, now, to_json, unknown};
use super::write::{Write, check_version};
use super::{Actor, ConfigSpec, FlagConfig, Problem, Result, Store, StoreError};
use crate::model::FlagFacts;
use crate::model::rollout::{GuardHealth, GuardStatus, GuardedRolloutRecord, GuardedRolloutSpec};

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
        status: GuardStatus::parse(&status)
            .ok_or_else(|| unknown("guarded rollout status", &status))?,
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

/// Every problem of `spec` in project `project_id`, and the flag's id when
/// it exists.
async fn guard_problems(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
    spec: &GuardedRolloutSpec,
) -> Result<(Vec<Problem>, Option<i64>)> {
    let flag = sqlx::query("SELECT id FROM flags WHERE project_id = $1 AND key = $2")
        .bind(project_id)
        .bind(&spec.flag)
        .fetch_optional(&mut *c)
        .await?;
    let flag = match flag {
        None => None,
        Some(r) => Some(get_flag(c, r.try_get("id")?).await?),
    };
    let metrics: Vec<String> = sqlx::query("SELECT key FROM metrics WHERE project_id = $1")
        .bind(project_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("key"))
        .collect::<std::result::Result<_, _>>()?;
    let facts = flag.as_ref().map(|f| FlagFacts {
        variants: &f.spec.variants,
        layer: f.spec.layer.as_ref().map(|l| l.key.as_str()),
    });
    Ok((spec.problems(facts, &metrics), flag.map(|f| f.id)))
}

/// The audit key of a guarded rollout: `flag/environment`.
async fn audit_key(c: &mut sqlx::AnyConnection, g: &GuardedRolloutRecord) -> Result<String> {
    let env = get_env(c, g.environment_id).await?;
    Ok(format!("{}/{}", g.spec.flag, env.key))
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
