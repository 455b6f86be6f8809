//! Guarded rollouts: guardrail metrics on a flag's rollout in an
//! environment without an experiment, under
//! `/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts`,
//! one per flag, named by the flag's key.
//!
//! Roles are those of experiments: viewers read (health included), editors
//! write. Every response carries the `ETag` of the definition and status;
//! replacing, deleting and changing the status need `If-Match`. The
//! monitor's observations (`health`, `checkedAt`, `heldUntil`) change
//! without a new ETag. None of these writes changes what the edge serves.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::if_match;
use super::org::Items;
use super::{ApiResult, AppState, scope};
use crate::store::rollouts::{GuardStatus, GuardedRolloutRecord, GuardedRolloutSpec};
use crate::store::{Organization, Role};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    let g = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts";
    Router::new()
        .route(g, get(list_guarded_rollouts).post(create_guarded_rollout))
        .route(
            &format!("{g}/{{flag}}"),
            get(get_guarded_rollout)
                .put(replace_guarded_rollout)
                .delete(delete_guarded_rollout),
        )
        .route(&format!("{g}/{{flag}}/status"), post(set_status))
}

/// The guarded rollout of flag `flag` in `org/project/env`, checking `role`.
async fn guard(
    s: &AppState,
    p: &Principal,
    (o, pr, env, flag): (&str, &str, &str, &str),
    role: Role,
) -> ApiResult<(Organization, GuardedRolloutRecord)> {
    let (o, _, e) = scope::env(s, p, (o, pr, env), role).await?;
    let g = s.store.guarded_rollout_by_flag(e.id, flag).await?;
    Ok((o, g))
}

/// The guarded rollouts of an environment, by flag key.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts", tag = "rollback",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Items<GuardedRolloutRecord>)))]
pub async fn list_guarded_rollouts(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Items<GuardedRolloutRecord>>> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.guarded_rollouts(e.id).await?,
    }))
}

/// Guards a flag's rollout in an environment (editor): the control variant,
/// guardrails (metric, tolerance, action), optionally `minUsersPerArm` and
/// `gateRamp`. Active at once: the monitor compares the control with every
/// other variant served from now on. One per flag and environment (409).
/// Every problem answers 422.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts", tag = "rollback",
    request_body = GuardedRolloutSpec, params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 201, body = GuardedRolloutRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_guarded_rollout(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    Body(spec): Body<GuardedRolloutSpec>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Editor).await?;
    let g = s
        .store
        .create_guarded_rollout(&p.actor(o.id), e.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, g.version, &g))
}

/// A guarded rollout: definition, status, start, and the monitor's latest
/// verdict (`health`, `checkedAt`) and ramp hold (`heldUntil`).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("flag" = String, Path)),
    responses((status = 200, body = GuardedRolloutRecord)))]
pub async fn get_guarded_rollout(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, flag)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, g) = guard(&s, &p, (&org, &project, &env, &flag), Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, g.version, &g))
}

/// Replaces a guarded rollout's definition (editor; `If-Match`); the flag
/// cannot change.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    request_body = GuardedRolloutSpec,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("flag" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = GuardedRolloutRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_guarded_rollout(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, flag)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(spec): Body<GuardedRolloutSpec>,
) -> ApiResult<Response> {
    let (o, g) = guard(&s, &p, (&org, &project, &env, &flag), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let g = s
        .store
        .update_guarded_rollout(&p.actor(o.id), g.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, g.version, &g))
}

/// Deletes a guarded rollout (editor; `If-Match`); an active one must be
/// disabled or completed first (422).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("flag" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_guarded_rollout(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, flag)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, g) = guard(&s, &p, (&org, &project, &env, &flag), Role::Editor).await?;
    let expected = if_match(&headers)?;
    s.store
        .delete_guarded_rollout(&p.actor(o.id), g.id, expected)
        .await?;
    Ok(no_content())
}

/// Body of a status change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `active` (again: a new start, so the comparison counts exposures
    /// from now on), `completed` or `disabled`. `rolledBack` is the
    /// monitor's.
    pub status: GuardStatus,
}

/// Changes a guarded rollout's status (editor; `If-Match`): re-arm it after
/// a rollback or a pause (`active`), pause it (`disabled`), or close it
/// (`completed`).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}/status", tag = "rollback",
    request_body = StatusChange,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("flag" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = GuardedRolloutRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn set_status(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, flag)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(change): Body<StatusChange>,
) -> ApiResult<Response> {
    let (o, g) = guard(&s, &p, (&org, &project, &env, &flag), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let g = s
        .store
        .set_guarded_rollout_status(&p.actor(o.id), g.id, expected, change.status)
        .await?;
    Ok(tagged(StatusCode::OK, g.version, &g))
}
