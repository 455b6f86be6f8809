//! Webhook subscriptions of an organization, their signing secrets and
//! their delivery log (see [`crate::webhooks`] for delivery and
//! [`crate::store::webhooks`] for the events).
//!
//! Every endpoint here needs the permission to manage webhooks, checked in
//! one place (`manage`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{DeliveryPath, OrgPath, WebhookPath};
use super::tokens::Created;
use super::{ApiError, ApiResult, AppState, scope};
use crate::model::webhook::WebhookInput;
use crate::store::webhooks::DEFAULT_SECRET_GRACE_SECONDS;
use crate::store::{Delivery, Organization, Permission, WebhookRecord};

/// The routes of webhook subscriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, replace_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// Organization `org`, if the caller may manage its webhooks (the admin
/// role; the `webhooks.manage` permission once permissions replace roles).
async fn manage(state: &AppState, caller: &Principal, org: &str) -> ApiResult<Organization> {
    scope::org(state, caller, org, Permission::WebhooksManage).await
}

/// The organization and subscription of `path`: 404 when the subscription
/// belongs to another organization.
async fn webhook(
    state: &AppState,
    caller: &Principal,
    org: &str,
    id: i64,
) -> ApiResult<(Organization, WebhookRecord)> {
    let org = manage(state, caller, org).await?;
    match state.store.webhook(id).await {
        Ok(hook) if hook.org_id == org.id => Ok((org, hook)),
        Ok(_) | Err(crate::store::StoreError::NotFound { .. }) => {
            Err(ApiError::not_found(format!("webhook {id}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// The organization's webhook subscriptions (admin).
#[utoipa::path(get, path = "/orgs/{org}/webhooks", tag = "webhooks",
    params(OrgPath), responses((status = 200, body = Items<WebhookRecord>),
        (status = 403, description = "managing webhooks needs the admin role", body = super::error::ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<WebhookRecord>>> {
    let org = manage(&state, &caller, &path.org).await?;
    Ok(Json(Items {
        items: state.store.webhooks(org.id).await?,
    }))
}

/// Subscribes a URL to the organization's events (admin). The answer
/// holds the signing secret (`whsec_…`), once.
#[utoipa::path(post, path = "/orgs/{org}/webhooks", tag = "webhooks", request_body = WebhookInput,
    params(OrgPath), responses((status = 201, body = Created<WebhookRecord>),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(body): Body<WebhookInput>,
) -> ApiResult<Response> {
    let org = manage(&state, &caller, &path.org).await?;
    let spec = body.validate().map_err(ApiError::invalid)?;
    let (record, secret) = state
        .store
        .create_webhook(&caller.actor(org.id), org.id, &spec)
        .await?;
    let version = record.version;
    Ok(tagged(
        StatusCode::CREATED,
        version,
        &Created { record, secret },
    ))
}

/// A subscription (admin), with its ETag.
#[utoipa::path(get, path = "/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(WebhookPath), responses((status = 200, body = WebhookRecord),
        (status = 403, description = "managing webhooks needs the admin role", body = super::error::ErrorBody)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<WebhookPath>,
) -> ApiResult<Response> {
    let (_, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    Ok(tagged(StatusCode::OK, hook.version, &hook))
}

/// Replaces a subscription (admin; `If-Match`). Its secret stays.
#[utoipa::path(put, path = "/orgs/{org}/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    params(WebhookPath, IfMatch),
    responses((status = 200, body = WebhookRecord), (status = 412, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_webhook(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<WebhookPath>,
    if_match: IfMatch,
    Body(body): Body<WebhookInput>,
) -> ApiResult<Response> {
    let (org, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    let spec = body.validate().map_err(ApiError::invalid)?;
    let expected = if_match.version()?;
    let hook = state
        .store
        .update_webhook(&caller.actor(org.id), hook.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, hook.version, &hook))
}

/// Deletes a subscription with its pending messages and delivery log
/// (admin; `If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}/webhooks/{id}", tag = "webhooks",
    params(WebhookPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<WebhookPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_webhook(&caller.actor(org.id), hook.id, expected)
        .await?;
    Ok(no_content())
}

/// Body rotating a subscription's secret.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateSecret {
    /// Seconds the previous secret keeps signing beside the new one
    /// (default 86,400: 24 hours; 0 stops it now), at most 2,592,000 (30
    /// days).
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub grace_seconds: Option<u64>,
}

/// Gives a subscription a new signing secret (admin); the answer holds it,
/// once. Until `graceSeconds` have passed, messages carry a signature by
/// the previous secret too.
#[utoipa::path(post, path = "/orgs/{org}/webhooks/{id}/rotate-secret", tag = "webhooks",
    request_body = RotateSecret, params(WebhookPath),
    responses((status = 200, body = Created<WebhookRecord>), (status = 422, body = super::error::ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<WebhookPath>,
    Body(body): Body<RotateSecret>,
) -> ApiResult<Response> {
    let (org, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    let grace = body.grace_seconds.unwrap_or(DEFAULT_SECRET_GRACE_SECONDS);
    let (record, secret) = state
        .store
        .rotate_webhook_secret(&caller.actor(org.id), hook.id, grace)
        .await?;
    let version = record.version;
    Ok(tagged(StatusCode::OK, version, &Created { record, secret }))
}

/// Paging of the delivery log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// How many of the newest messages, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Messages of a subscription, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    /// The messages, each with its attempts.
    pub items: Vec<Delivery>,
}

/// The delivery log of a subscription (admin): its newest messages with
/// their status and every attempt (time, HTTP status or error, duration).
#[utoipa::path(get, path = "/orgs/{org}/webhooks/{id}/deliveries", tag = "webhooks",
    params(WebhookPath, DeliveryFilter),
    responses((status = 200, body = Deliveries), (status = 400, body = super::error::ErrorBody),
        (status = 422, description = "`limit` is out of range", body = super::error::ErrorBody),
        (status = 403, description = "managing webhooks needs the admin role", body = super::error::ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<WebhookPath>,
    filter: Result<Query<DeliveryFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Deliveries>> {
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (_, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    let limit = filter.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(vec![crate::store::Problem::new(
            "limit",
            format!("{limit} is not between 1 and 500"),
        )]));
    }
    Ok(Json(Deliveries {
        items: state.store.deliveries(hook.id, i64::from(limit)).await?,
    }))
}

/// Sends a message again (admin), with the same `webhook-id`: a delivered
/// or failed message gets one new attempt, a pending one is due at once.
/// The delivery loop makes the attempt; the answer is the message, pending.
#[utoipa::path(post, path = "/orgs/{org}/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(DeliveryPath), responses((status = 202, body = Delivery)))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<DeliveryPath>,
) -> ApiResult<Response> {
    let (_, hook) = webhook(&state, &caller, &path.org, path.id).await?;
    let delivery = state.store.redeliver(hook.id, &path.delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}
