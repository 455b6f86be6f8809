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

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{EnvPath, RolloutPath};
use super::{ApiResult, AppState, scope};
use crate::model::rollout::{GuardStatus, GuardedRolloutRecord, GuardedRolloutSpec};
use crate::store::{Organization, Permission};

/// The routes of guarded rollouts.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_guarded_rollouts, create_guarded_rollout))
        .routes(routes!(
            get_guarded_rollout,
            replace_guarded_rollout,
            delete_guarded_rollout
        ))
        .routes(routes!(set_status))
}

/// The guarded rollout of `path`, checking `role`.
async fn rollout(
    state: &AppState,
    caller: &Principal,
    path: &RolloutPath,
    p: Permission,
) -> ApiResult<(Organization, GuardedRolloutRecord)> {
    let (org, _, env) = scope::env(state, caller, path, p).await?;
    let rollout = state
        .store
        .guarded_rollout_by_flag(env.id, &path.flag)
        .await?;
    Ok((org, rollout))
}

/// The guarded rollouts of an environment, by flag key.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts", tag = "rollback",
    params(EnvPath),
    responses((status = 200, body = Items<GuardedRolloutRecord>)))]
pub async fn list_guarded_rollouts(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Items<GuardedRolloutRecord>>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.guarded_rollouts(env.id).await?,
    }))
}

/// Guards a flag's rollout in an environment (editor): the control variant,
/// guardrails (metric, tolerance, action), optionally `minUsersPerArm` and
/// `gateRamp`. Active at once: the monitor compares the control with every
/// other variant served from now on. One per flag and environment (409).
/// Every problem answers 422.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts", tag = "rollback",
    request_body = GuardedRolloutSpec, params(EnvPath),
    responses((status = 201, body = GuardedRolloutRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_guarded_rollout(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    Body(spec): Body<GuardedRolloutSpec>,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let rollout = state
        .store
        .create_guarded_rollout(&caller.actor(org.id), env.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, rollout.version, &rollout))
}

/// A guarded rollout: definition, status, start, and the monitor's latest
/// verdict (`health`, `checkedAt`) and ramp hold (`heldUntil`).
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    params(RolloutPath),
    responses((status = 200, body = GuardedRolloutRecord)))]
pub async fn get_guarded_rollout(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolloutPath>,
) -> ApiResult<Response> {
    let (_, rollout) = rollout(&state, &caller, &path, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, rollout.version, &rollout))
}

/// Replaces a guarded rollout's definition (editor; `If-Match`); the flag
/// cannot change.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    request_body = GuardedRolloutSpec,
    params(RolloutPath, IfMatch),
    responses((status = 200, body = GuardedRolloutRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_guarded_rollout(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolloutPath>,
    if_match: IfMatch,
    Body(spec): Body<GuardedRolloutSpec>,
) -> ApiResult<Response> {
    let (org, rollout) = rollout(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let rollout = state
        .store
        .update_guarded_rollout(&caller.actor(org.id), rollout.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, rollout.version, &rollout))
}

/// Deletes a guarded rollout (editor; `If-Match`); an active one must be
/// disabled or completed first (422).
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}", tag = "rollback",
    params(RolloutPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_guarded_rollout(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolloutPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, rollout) = rollout(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_guarded_rollout(&caller.actor(org.id), rollout.id, expected)
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
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}/status", tag = "rollback",
    request_body = StatusChange,
    params(RolloutPath, IfMatch),
    responses((status = 200, body = GuardedRolloutRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolloutPath>,
    if_match: IfMatch,
    Body(change): Body<StatusChange>,
) -> ApiResult<Response> {
    let (org, rollout) = rollout(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let rollout = state
        .store
        .set_guarded_rollout_status(&caller.actor(org.id), rollout.id, expected, change.status)
        .await?;
    Ok(tagged(StatusCode::OK, rollout.version, &rollout))
}
