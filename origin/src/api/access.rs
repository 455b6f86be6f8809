//! API tokens of an organization and SDK keys of an environment.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::Body;
use super::org::Items;
use super::paths::{EnvPath, OrgPath, SdkKeyPath, TokenPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{Organization, Role, SdkKeyKind, SdkKeyRecord, TokenRecord};

/// The routes of API tokens and SDK keys.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(rotate_key))
}

/// Body creating an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. `ci` or `ana@example.com`.
    pub name: String,
    /// Its role in the organization.
    pub role: Role,
}

/// A new secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created<T> {
    /// The stored record.
    #[serde(flatten)]
    pub record: T,
    /// The secret. It is not stored and cannot be shown again.
    pub secret: String,
}

/// The API tokens of an organization (admin), revoked ones included.
#[utoipa::path(get, path = "/orgs/{org}/tokens", tag = "access",
    params(OrgPath), responses((status = 200, body = Items<TokenRecord>),
        (status = 403, description = "listing tokens needs the admin role", body = super::error::ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<TokenRecord>>> {
    let org = scope::org(&state, &caller, &path.org, Role::Admin).await?;
    Ok(Json(Items {
        items: state.store.tokens(org.id).await?,
    }))
}

/// Makes an API token (admin); the answer holds its secret, once.
#[utoipa::path(post, path = "/orgs/{org}/tokens", tag = "access", request_body = CreateToken,
    params(OrgPath), responses((status = 201, body = Created<TokenRecord>)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(body): Body<CreateToken>,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Role::Admin).await?;
    let (record, secret) = state
        .store
        .create_token(&caller.actor(org.id), org.id, &body.name, body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// Revokes an API token (admin); it stops working at once. Revoking a
/// revoked token answers 200 with it unchanged and writes no audit entry.
#[utoipa::path(delete, path = "/orgs/{org}/tokens/{id}", tag = "access",
    params(TokenPath), responses((status = 200, body = TokenRecord)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<TokenPath>,
) -> ApiResult<Json<TokenRecord>> {
    let org = scope::org(&state, &caller, &path.org, Role::Admin).await?;
    let token = state.store.token(path.id).await?;
    if token.org_id != org.id {
        return Err(ApiError::not_found(format!("token {}", path.id)));
    }
    Ok(Json(
        state
            .store
            .revoke_token(&caller.actor(org.id), path.id)
            .await?,
    ))
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
    let (_, _, env) = scope::env(&state, &caller, &path, Role::Viewer).await?;
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
    let (org, _, env) = scope::env(&state, &caller, &path, Role::Publisher).await?;
    let (record, secret) = state
        .store
        .create_sdk_key(&caller.actor(org.id), env.id, body.kind, &body.name)
        .await?;
    state.notify_publish();
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// The SDK key of `path`, checking `role`: 404 when it belongs to another
/// environment.
async fn key(
    state: &AppState,
    caller: &Principal,
    path: &SdkKeyPath,
    role: Role,
) -> ApiResult<(Organization, SdkKeyRecord)> {
    let (org, _, env) = scope::env(state, caller, path, role).await?;
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
    let (org, key) = key(&state, &caller, &path, Role::Publisher).await?;
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
    let (org, key) = key(&state, &caller, &path, Role::Publisher).await?;
    let key = state
        .store
        .revoke_sdk_key(&caller.actor(org.id), key.id)
        .await?;
    state.notify_publish();
    Ok(Json(key))
}
