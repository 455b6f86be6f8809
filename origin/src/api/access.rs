//! API tokens of an organization and SDK keys of an environment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::Body;
use super::org::Items;
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{Role, SdkKeyKind, SdkKeyRecord, TokenRecord};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    let e = "/orgs/{org}/projects/{project}/environments/{env}";
    Router::new()
        .route("/orgs/{org}/tokens", get(list_tokens).post(create_token))
        .route("/orgs/{org}/tokens/{id}", delete(revoke_token))
        .route(&format!("{e}/sdk-keys"), get(list_keys).post(create_key))
        .route(&format!("{e}/sdk-keys/{{id}}"), delete(revoke_key))
        .route(&format!("{e}/sdk-keys/{{id}}/rotate"), post(rotate_key))
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
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tokens", tag = "access",
    params(("org" = String, Path)), responses((status = 200, body = Items<TokenRecord>),
        (status = 403, description = "listing tokens needs the admin role", body = super::error::ErrorBody)))]
pub async fn list_tokens(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
) -> ApiResult<Json<Items<TokenRecord>>> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    Ok(Json(Items {
        items: s.store.tokens(o.id).await?,
    }))
}

/// Makes an API token (admin); the answer holds its secret, once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/tokens", tag = "access", request_body = CreateToken,
    params(("org" = String, Path)), responses((status = 201, body = Created<TokenRecord>)))]
pub async fn create_token(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
    Body(b): Body<CreateToken>,
) -> ApiResult<Response> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    let (record, secret) = s
        .store
        .create_token(&p.actor(o.id), o.id, &b.name, b.role)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// Revokes an API token (admin); it stops working at once. Revoking a
/// revoked token answers 200 with it unchanged and writes no audit entry.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/tokens/{id}", tag = "access",
    params(("org" = String, Path), ("id" = i64, Path)), responses((status = 200, body = TokenRecord)))]
pub async fn revoke_token(
    State(s): State<AppState>,
    p: Principal,
    Path((org, id)): Path<(String, i64)>,
) -> ApiResult<Json<TokenRecord>> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    let t = s.store.token(id).await?;
    if t.org_id != o.id {
        return Err(ApiError::not_found(format!("token {id}")));
    }
    Ok(Json(s.store.revoke_token(&p.actor(o.id), id).await?))
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
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", tag = "access",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Items<SdkKeyRecord>)))]
pub async fn list_keys(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Items<SdkKeyRecord>>> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.sdk_keys(e.id).await?,
    }))
}

/// Makes an SDK key (publisher); published to the edge with the
/// environment. The answer holds the key, once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys", tag = "access",
    request_body = CreateKey, params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 201, body = Created<SdkKeyRecord>)))]
pub async fn create_key(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    Body(b): Body<CreateKey>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Publisher).await?;
    let (record, secret) = s
        .store
        .create_sdk_key(&p.actor(o.id), e.id, b.kind, &b.name)
        .await?;
    s.notify_publish();
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

async fn key_of_env(s: &AppState, env_id: i64, id: i64) -> ApiResult<SdkKeyRecord> {
    let k = s.store.sdk_key(id).await?;
    if k.environment_id != env_id {
        return Err(ApiError::not_found(format!("sdk key {id}")));
    }
    Ok(k)
}

/// Replaces an SDK key by a new one (publisher); the old one keeps working
/// for `graceSeconds`. The answer holds the new key, once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}/rotate", tag = "access",
    request_body = Rotate,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("id" = i64, Path)),
    responses((status = 201, body = Created<SdkKeyRecord>), (status = 422, body = super::error::ErrorBody)))]
pub async fn rotate_key(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, id)): Path<(String, String, String, i64)>,
    Body(b): Body<Rotate>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Publisher).await?;
    key_of_env(&s, e.id, id).await?;
    let (record, secret) = s
        .store
        .rotate_sdk_key(&p.actor(o.id), id, b.grace_seconds)
        .await?;
    s.notify_publish();
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// Revokes an SDK key now (publisher); the edge forgets it with the next
/// publication. A key that already stopped working answers 200 unchanged,
/// without an audit entry.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}", tag = "access",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = SdkKeyRecord)))]
pub async fn revoke_key(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, id)): Path<(String, String, String, i64)>,
) -> ApiResult<Json<SdkKeyRecord>> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Publisher).await?;
    key_of_env(&s, e.id, id).await?;
    let k = s.store.revoke_sdk_key(&p.actor(o.id), id).await?;
    s.notify_publish();
    Ok(Json(k))
}
