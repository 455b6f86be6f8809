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
//! use bunting_origin::model::experiment::ExperimentSpec;
//! use bunting_origin::model::metric::{MetricKind, MetricSpec};
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

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::{
    bad_json, get_config, get_env, get_flag, get_project, list_flags, not_found, now, to_json,
    unknown,
};
use super::write::{Entity, check_version};
use super::{Actor, ConfigSpec, FlagConfig, Problem, Result, Store, StoreError};
use crate::model::FlagFacts;
use crate::model::experiment::{Decision, ExperimentRecord, ExperimentSpec, ExperimentStatus};
use crate::model::metric::{MetricRecord, MetricSpec, MetricUser};
use crate::model::rollout::GuardedRolloutSpec;

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
        status: ExperimentStatus::parse(&status)
            .ok_or_else(|| unknown("experiment status", &status))?,
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

impl Entity for MetricRecord {
    const TABLE: &'static str = "metrics";
    const ENTITY: &'static str = "metric";
    async fn get(c: &mut sqlx::AnyConnection, id: i64) -> Result<Self> {
        get_metric(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.spec.key, self.version)
    }
}

impl Entity for ExperimentRecord {
    const TABLE: &'static str = "experiments";
    const ENTITY: &'static str = "experiment";
    async fn get(c: &mut sqlx::AnyConnection, id: i64) -> Result<Self> {
        get_experiment(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.spec.key, self.version)
    }
}

/// Every problem of `spec` in project `project_id` (its flags and metrics).
async fn experiment_problems(
    c: &mut sqlx::AnyConnection,
    project_id: i64,
    spec: &ExperimentSpec,
) -> Result<Vec<Problem>> {
    let flags = list_flags(c, project_id).await?;
    let metrics: Vec<String> = project_metrics(c, project_id)
        .await?
        .into_iter()
        .map(|m| m.spec.key)
        .collect();
    let flag = flags
        .iter()
        .find(|f| f.spec.key == spec.flag)
        .map(|f| FlagFacts {
            variants: &f.spec.variants,
            layer: f.spec.layer.as_ref().map(|l| l.key.as_str()),
        });
    Ok(spec.problems(flag, &metrics))
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
        let Ok(g) = serde_json::from_str::<GuardedRolloutSpec>(&spec) else {
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
        let after = w.replace_spec(id, &spec.key, spec, &before).await?;
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

    /// The experiments whose results the refresh looks at
    /// ([`crate::refresh`]): every running one, and every one stopped or
    /// decided at `stopped_since` or later, in id order.
    pub async fn experiments_to_refresh(
        &self,
        stopped_since: time::OffsetDateTime,
    ) -> Result<Vec<ExperimentRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM experiments WHERE status = 'running' \
             OR (status IN ('stopped', 'decided') AND stopped_at >= $1) ORDER BY id",
        )
        .bind(super::rows::stored_time(stopped_since))
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
        problems.extend(before.change_problems(spec));
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let after = w.replace_spec(id, &spec.key, spec, &before).await?;
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
