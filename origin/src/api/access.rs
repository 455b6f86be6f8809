//! SDK keys of an environment.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::Body;
use super::org::Items;
use super::paths::{EnvPath, SdkKeyPath};
use super::tokens::Created;
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{Organization, Permission, SdkKeyKind, SdkKeyRecord};

/// The routes of SDK keys.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(rotate_key))
}

/// Body creating an SDK key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `client` (browsers, apps) or `server`.
    pub kind: SdkKeyKind,
    /// A label.
    pub name: String,
}

/// Body rotating an SDK key.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rotate {
    /// Seconds the old key keeps working (default 0: it stops now), at
    /// most 31,536,000 (365 days); more answers 422 naming `graceSeconds`.
    #[serde(default)]
    #[schema(maximum = 31536000)]
    pub grace_seconds: u64,
}

/// The SDK keys of an environment (viewer; only their prefixes).
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", tag = "access",
    params(EnvPath), responses((status = 200, body = Items<SdkKeyRecord>)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Items<SdkKeyRecord>>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.sdk_keys(env.id).await?,
    }))
}

/// Makes an SDK key (publisher); published to the edge with the
/// environment. The answer holds the key, once.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", tag = "access",
    request_body = CreateKey, params(EnvPath),
    responses((status = 201, body = Created<SdkKeyRecord>)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    Body(body): Body<CreateKey>,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::SdkKeysWrite).await?;
    let (record, secret) = state
        .store
        .create_sdk_key(&caller.actor(org.id), env.id, body.kind, &body.name)
        .await?;
    state.notify_publish();
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// The SDK key of `path`, checking `p`: 404 when it belongs to another
/// environment.
async fn key(
    state: &AppState,
    caller: &Principal,
    path: &SdkKeyPath,
    p: Permission,
) -> ApiResult<(Organization, SdkKeyRecord)> {
    let (org, _, env) = scope::env(state, caller, path, p).await?;
    let key = state.store.sdk_key(path.id).await?;
    if key.environment_id != env.id {
        return Err(ApiError::not_found(format!("sdk key {}", path.id)));
    }
    Ok((org, key))
}

/// Replaces an SDK key by a new one (publisher); the old one keeps working
/// for `graceSeconds`. The answer holds the new key, once.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}/rotate", tag = "access",
    request_body = Rotate, params(SdkKeyPath),
    responses((status = 201, body = Created<SdkKeyRecord>), (status = 422, body = super::error::ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<SdkKeyPath>,
    Body(body): Body<Rotate>,
) -> ApiResult<Response> {
    let (org, key) = key(&state, &caller, &path, Permission::SdkKeysWrite).await?;
    let (record, secret) = state
        .store
        .rotate_sdk_key(&caller.actor(org.id), key.id, body.grace_seconds)
        .await?;
    state.notify_publish();
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// Revokes an SDK key now (publisher); the edge forgets it with the next
/// publication. A key that already stopped working answers 200 unchanged,
/// without an audit entry.
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}", tag = "access",
    params(SdkKeyPath), responses((status = 200, body = SdkKeyRecord)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<SdkKeyPath>,
) -> ApiResult<Json<SdkKeyRecord>> {
    let (org, key) = key(&state, &caller, &path, Permission::SdkKeysWrite).await?;
    let key = state
        .store
        .revoke_sdk_key(&caller.actor(org.id), key.id)
        .await?;
    state.notify_publish();
    Ok(Json(key))
}
