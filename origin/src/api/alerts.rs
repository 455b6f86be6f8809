//! External alerts that roll a flag back: `POST
//! /api/v1/orgs/{org}/alerts/alertmanager` takes a Prometheus Alertmanager
//! webhook payload (version 4). Every *firing* alert names the flag with
//! the labels `bunting_project`, `bunting_environment` and `bunting_flag`
//! and may pick the action with `bunting_action` (`serveControl`,
//! `rolloutToZero`, `disableFlag`, `alert`); otherwise the action is the
//! first guardrail's of the experiment running on the flag, else of the
//! flag's active guarded rollout in the environment, else `serveControl`.
//! The control is that experiment's or guarded rollout's, else the flag's
//! off variant. Resolved alerts change nothing (rolling forward again is a
//! human decision; the experiment keeps running and the guarded rollout
//! stays active). Editor role; all-or-nothing validation (422 lists every
//! unusable alert).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::Body;
use super::paths::OrgPath;
use super::{ApiError, ApiResult, AppState, scope};
use crate::model::experiment::ExperimentStatus;
use crate::model::guardrail::RollbackAction;
use crate::model::rollout::GuardStatus;
use crate::rollback::{Evidence, roll_back};
use crate::store::{Permission, Problem, Scope, StoreError};

/// The routes of external alerts.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(alertmanager))
}

/// An Alertmanager webhook payload (the fields bunting reads).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    /// `firing` or `resolved` (of the group).
    #[serde(default)]
    pub status: Option<String>,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels (`alertname`, `bunting_*`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (summary, description).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One rollback done for an alert.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRollback {
    /// `project/flag`.
    pub flag: String,
    /// The environment key.
    pub environment: String,
    /// The action applied.
    pub action: RollbackAction,
    /// Whether serving changed (false: already rolled back, or `alert`).
    pub changed: bool,
    /// The configuration's version now.
    pub version: i64,
}

/// What the alerts did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOutcome {
    /// Rollbacks, in alert order.
    pub rollbacks: Vec<AlertRollback>,
    /// Resolved alerts (ignored).
    pub resolved: usize,
}

fn action_of(label: &str) -> Option<RollbackAction> {
    serde_json::from_value(json!(label)).ok()
}

/// Rolls back the flags named by firing Alertmanager alerts (editor).
#[utoipa::path(post, path = "/orgs/{org}/alerts/alertmanager", tag = "rollback",
    request_body = AlertmanagerPayload, params(OrgPath),
    responses((status = 200, body = AlertOutcome), (status = 422, body = super::error::ErrorBody)))]
pub async fn alertmanager(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(payload): Body<AlertmanagerPayload>,
) -> ApiResult<Json<AlertOutcome>> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    // Resolve every firing alert first: all or nothing.
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    let mut resolved = 0;
    for (i, alert) in payload.alerts.iter().enumerate() {
        if alert.status != "firing" {
            resolved += 1;
            continue;
        }
        let label = |k: &str| alert.labels.get(k).filter(|v| !v.is_empty());
        let (Some(project_key), Some(env_key), Some(flag_key)) = (
            label("bunting_project"),
            label("bunting_environment"),
            label("bunting_flag"),
        ) else {
            problems.push(Problem::new(
                format!("alerts[{i}].labels"),
                "a firing alert needs bunting_project, bunting_environment and bunting_flag",
            ));
            continue;
        };
        let found = async {
            let project = state.store.project_by_key(org.id, project_key).await?;
            let env = state.store.environment_by_key(project.id, env_key).await?;
            let flag = state.store.flag_by_key(project.id, flag_key).await?;
            let running = state
                .store
                .experiments(env.id)
                .await?
                .into_iter()
                .find(|experiment| {
                    experiment.status == ExperimentStatus::Running
                        && experiment.spec.flag == *flag_key
                });
            let guarded = match state.store.guarded_rollout_by_flag(env.id, flag_key).await {
                Ok(g) if g.status == GuardStatus::Active => Some(g),
                Ok(_) | Err(StoreError::NotFound { .. }) => None,
                Err(err) => return Err(err),
            };
            Ok::<_, StoreError>((env, flag, running, guarded))
        }
        .await;
        let (env, flag, running, guarded) = match found {
            Ok(v) => v,
            Err(err) => {
                problems.push(Problem::new(format!("alerts[{i}].labels"), err.to_string()));
                continue;
            }
        };
        // Rolling back is the kill switch's permission, in that environment.
        caller.require(
            Permission::Killswitch,
            &Scope::Environment {
                org: org.id,
                project: env.project_id,
                environment: env.id,
            },
            &org.key,
            &format!("environment {project_key}/{env_key}"),
        )?;
        let action = match label("bunting_action") {
            Some(l) => match action_of(l) {
                Some(a) => a,
                None => {
                    problems.push(Problem::new(
                        format!("alerts[{i}].labels.bunting_action"),
                        format!("{l:?} is not serveControl, rolloutToZero, disableFlag or alert"),
                    ));
                    continue;
                }
            },
            None => running
                .as_ref()
                .and_then(|experiment| experiment.spec.guardrails.first())
                .or_else(|| guarded.as_ref().and_then(|g| g.spec.guardrails.first()))
                .map(|g| g.action)
                .unwrap_or(RollbackAction::ServeControl),
        };
        let control = running
            .as_ref()
            .map(|experiment| experiment.spec.control.clone())
            .or_else(|| guarded.as_ref().map(|g| g.spec.control.clone()))
            .unwrap_or_else(|| flag.spec.off_variant.clone());
        let evidence = Evidence {
            source: "alert".into(),
            metric: alert.labels.get("bunting_metric").cloned(),
            effect: None,
            interval: None,
            p_value: None,
            details: json!({
                "alertname": alert.labels.get("alertname"),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "experiment": running.as_ref().map(|experiment| &experiment.spec.key),
                "guardedRollout": guarded.as_ref().map(|g| &g.spec.flag),
            }),
        };
        plan.push((
            format!("{project_key}/{flag_key}"),
            env,
            flag,
            action,
            control,
            evidence,
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let actor = caller.actor(org.id);
    let mut rollbacks = Vec::new();
    for (name, env, flag, action, control, evidence) in plan {
        let out = roll_back(
            &state.store,
            &actor,
            (flag.id, env.id),
            action,
            &control,
            &evidence,
        )
        .await?;
        let event = json!({
            "type": "rollback",
            "organization": org.key,
            "flag": name,
            "environment": env.key,
            "action": action,
            "changed": out.changed,
            "actor": actor.name,
            "evidence": evidence,
        });
        state.notifier.send(event.clone());
        // The rollback is committed: a failure to queue its webhook event
        // is logged, not answered.
        if let Err(e) = state.store.emit_event(org.id, "rollback", event).await {
            tracing::warn!(error = %e, "queueing the rollback webhook event failed");
        }
        rollbacks.push(AlertRollback {
            flag: name,
            environment: env.key,
            action,
            changed: out.changed,
            version: out.config.version,
        });
    }
    if rollbacks.iter().any(|r| r.changed) {
        state.notify_publish();
    }
    Ok(Json(AlertOutcome {
        rollbacks,
        resolved,
    }))
}
