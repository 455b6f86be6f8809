//! The operational endpoints, outside `/api/v1` and the OpenAPI document:
//! `/healthz` (liveness), `/readyz` (the database answers) and `/metrics`
//! (Prometheus text for the operator's token only).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppState, auth};

/// The routes of the operational endpoints.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Liveness: the process serves HTTP.
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the database answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(state.store.pool()).await {
        Ok(_) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// The metrics, for the operator only (see
/// [`super::ServeConfig::metrics_token`]).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let config = &state.config;
    let operator = [
        config.metrics_token.as_deref(),
        config.admin_token.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|token| !token.is_empty())
    .any(|token| auth::bearer_matches(&headers, token));
    if !operator {
        return auth::challenge(
            "send the metrics token (--metrics-token) or the administrator token as \
             `Authorization: Bearer <token>`",
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
