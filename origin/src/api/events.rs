//! Event ingestion over HTTP: `POST /api/v1/events`.
//!
//! Takes one batch per request, exactly as the edge worker sends it, and
//! answers **202** with `{"accepted": n, "duplicates": d}` once the batch
//! is committed. The pipeline and the format are in [`crate::ingest`] and
//! `docs/origin.md`. Two callers may send:
//!
//! - the edge, with `Authorization: Bearer <ingest secret>` (the edge's
//!   `INGEST_SECRET`, the origin's `--ingest-secret`): events of any
//!   environment;
//! - a host embedding the engine, with `Authorization: Bearer <server SDK
//!   key>`: events of that key's environment only, as the edge names it
//!   (`<org>/<project>/<env>`). Revoked keys, and rotated keys past their
//!   grace period, are unknown keys.
//!
//! | status | when |
//! |---|---|
//! | 202 | stored (`accepted` new events, `duplicates` already stored) |
//! | 400 | the body is not JSON |
//! | 401 | missing or wrong ingest secret, and no working SDK key |
//! | 403 | a client SDK key; or a server SDK key and events of another environment (every one in `problems`, e.g. `exposures[3].environment`); nothing stored |
//! | 413 | body over 10 MiB, or more events than one request may carry |
//! | 415 | `Content-Type` is not JSON |
//! | 422 | invalid batch: every problem with its path (`exposures[3].time`); nothing stored |
//! | 429 | the queue is full; `Retry-After` says when to retry; nothing stored |
//! | 503 | no ingest secret configured (and no working server SDK key), or the database failed; nothing stored |
//!
//! Every error has the API's JSON error body.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::{ApiError, ApiResult, AppState, auth};
use crate::ingest::IngestError;
use crate::store::{InsertCounts, SdkKeyKind};
use bunting_wire::same_secret;

/// Largest request body, in bytes (10 MiB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The ingestion route (merged under `/api/v1`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use bunting_origin::api::{AppState, ServeConfig, events};
/// use bunting_origin::store::Store;
/// let state = AppState::new(Store::open("sqlite::memory:").await.unwrap(), ServeConfig::default());
/// let (router, doc) = events::routes().split_for_parts();
/// assert!(doc.paths.paths.contains_key("/events"));
/// let _app: axum::Router = router.with_state(state);
/// # });
/// ```
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        match e {
            IngestError::Syntax(m) => ApiError::bad_request(format!("the body is not JSON: {m}")),
            IngestError::Invalid(problems) => ApiError::invalid(problems),
            IngestError::OtherEnvironment(problems) => {
                let mut r = ApiError::forbidden(format!(
                    "{} event(s) name an environment this SDK key may not send events for",
                    problems.len()
                ));
                r.problems = problems;
                r
            }
            e @ IngestError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            e @ IngestError::Overloaded { retry_after } => {
                ApiError::overloaded(e.to_string(), retry_after)
            }
            e @ (IngestError::Store(_) | IngestError::Stopped) => {
                let mut r = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the events could not be stored; retry later",
                )
                .logging("event batch not stored", e);
                r.retry_after = Some(1);
                r
            }
        }
    }
}

/// Stores one batch of exposures or metric events (ingest secret, or a
/// server SDK key for its own environment's events).
#[utoipa::path(post, path = "/events", tag = "events", security(()),
    request_body(content = Object, content_type = "application/json", description = "`{\"kind\": \"exposures\", \"exposures\": [...]}` or `{\"kind\": \"events\", \"environment\": \"...\", \"events\": [...]}`"),
    responses((status = 202, body = InsertCounts), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody), (status = 413, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody)))]
pub async fn ingest(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let only = match sender(&state, req.headers()).await? {
        Ok(Sender::Edge) => None,
        Ok(Sender::Server(environment)) => Some(environment),
        Err(refusal) => return Ok(refusal),
    };
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim() == "application/json");
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let body = Bytes::from_request(req, &state).await.map_err(|e| {
        let status = e.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, e.body_text())
    })?;
    let counts = state
        .ingest
        .ingest_for(&body, now_ms(), only.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(counts)).into_response())
}

/// Who sends a batch.
#[derive(Debug)]
enum Sender {
    /// The holder of the ingest secret (the edge): any environment.
    Edge,
    /// A server SDK key: only its environment, named as the edge names it.
    Server(String),
}

/// The sender of a request with `headers`, or the answer refusing it: 401
/// (with `WWW-Authenticate`) for no or an unknown secret, 403 for a client
/// SDK key, 503 when no ingest secret is configured and the request has no
/// working server SDK key.
async fn sender(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<Sender, Response>, ApiError> {
    let secret = state
        .config
        .ingest_secret
        .as_deref()
        .filter(|s| !s.is_empty());
    let token = auth::bearer_token(headers);
    if let (Some(secret), Some(token)) = (secret, token)
        && same_secret(token, secret)
    {
        return Ok(Ok(Sender::Edge));
    }
    if let Some(token) = token
        && let Some(key) = state.store.authenticate_sdk_key(token).await?
    {
        return match key.kind {
            SdkKeyKind::Server => Ok(Ok(Sender::Server(key.edge_env))),
            SdkKeyKind::Client => Err(ApiError::forbidden(
                "a client SDK key cannot send events: use a server SDK key of the environment",
            )),
        };
    }
    if secret.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "event ingestion is not configured (no ingest secret) and the request has no server SDK key",
        ));
    }
    Ok(Err(auth::challenge(
        "send the ingest secret or a server SDK key as `Authorization: Bearer <secret>`",
    )))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
