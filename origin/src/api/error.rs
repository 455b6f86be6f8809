//! The API's error type and its JSON body.
//!
//! Every error answers `{"error": {"code": "...", "message": "...",
//! "problems": [...]}}` with the status of its kind; `problems` lists every
//! validation problem (rule-language problems carry line and column in
//! their message; problems of an environment's snapshot also carry their
//! place as data in `location`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Problem, StoreError};

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `invalid`, `conflict`, `not_found`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Every validation problem (422; and the 403 of `POST /events` for
    /// events of environments the SDK key may not send for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemBody>,
    /// The current ETag of the entity (412 only).
    #[serde(skip_serializing_if = "Option::is_none", rename = "currentEtag")]
    pub current_etag: Option<String>,
}

/// One validation problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// The entity it is about, e.g. `flag dark-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Where in it, e.g. `rules[0].if (line 1, column 5)`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// For a problem of an environment's snapshot (a rule-language error,
    /// an unknown variant…): the place `path` names, as data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub location: Option<ProblemLocation>,
}

/// Where a problem of an environment's snapshot is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemLocation {
    /// The environment's key.
    pub environment: String,
    /// The flag, segment or layer; absent for a field of the snapshot
    /// itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub entity: Option<ProblemEntity>,
    /// The field as a JSON path relative to the entity, e.g.
    /// `rules[0].condition`.
    pub field: String,
    /// For a rule-language error: where in the condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline)]
    pub span: Option<ProblemSpan>,
}

/// A flag, segment or layer of an environment's snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemEntity {
    /// `flag`, `segment` or `layer`.
    #[schema(inline)]
    pub kind: EntityKind,
    /// 0-based position in the snapshot's list of that kind.
    pub index: usize,
    /// The entity's key.
    pub key: String,
}

/// The kinds of entity of a snapshot.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum EntityKind {
    /// A flag.
    Flag,
    /// A segment.
    Segment,
    /// A layer.
    Layer,
}

/// A stretch of a condition: 1-based line and column of its first
/// character and its length, in characters (0 at the end of the input).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemSpan {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Length in characters.
    pub length: u32,
}

impl From<Problem> for ProblemBody {
    fn from(p: Problem) -> ProblemBody {
        ProblemBody {
            entity: p.entity,
            path: p.path,
            message: p.message,
            location: p.location.map(|l| ProblemLocation {
                environment: l.environment,
                entity: l.location.entity.map(|e| ProblemEntity {
                    kind: match e.kind {
                        bunting_core::snapshot::EntityKind::Flag => EntityKind::Flag,
                        bunting_core::snapshot::EntityKind::Segment => EntityKind::Segment,
                        bunting_core::snapshot::EntityKind::Layer => EntityKind::Layer,
                    },
                    index: e.index,
                    key: e.key,
                }),
                field: l.location.field,
                span: l.span.map(|s| ProblemSpan {
                    line: s.line,
                    column: s.column,
                    length: s.length,
                }),
            }),
        }
    }
}

/// An API failure; converts into a response with a JSON body.
///
/// ```
/// use axum::response::IntoResponse;
/// use bunting_origin::api::ApiError;
/// let r = ApiError::not_found("flag dark-mode").into_response();
/// assert_eq!(r.status(), 404);
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Validation problems.
    pub problems: Vec<Problem>,
    /// Current ETag (412).
    pub current_etag: Option<String>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// What failed inside (500, 503): not sent, logged once by the request
    /// middleware ([`super::observe`]).
    pub failure: Option<Box<Failure>>,
}

/// A failure the client is not shown in full. The response of its
/// [`ApiError`] carries it in its extensions and the request middleware
/// logs it, once per request and beside the request's id, rather than
/// where the error is made (axum's error-handling example does the same).
///
/// ```
/// use axum::response::IntoResponse;
/// use bunting_origin::api::{ApiError, error::Failure};
/// let response = ApiError::internal("disk full").into_response();
/// let failure = response.extensions().get::<Failure>().unwrap();
/// assert_eq!((failure.message, failure.error.as_str()), ("internal error", "disk full"));
/// ```
#[derive(Debug, Clone)]
pub struct Failure {
    /// The message of the log line, e.g. `internal error`.
    pub message: &'static str,
    /// What failed, as displayed: the `error` field of the log line.
    pub error: String,
}

impl ApiError {
    /// An error of `status` with `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
            current_etag: None,
            retry_after: None,
            failure: None,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    /// 422 `invalid` with every problem.
    pub fn invalid(problems: Vec<Problem>) -> ApiError {
        let message = match problems.len() {
            1 => format!("1 problem: {}", problems[0].message),
            n => format!("{n} problems"),
        };
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message);
        e.problems = problems;
        e
    }

    /// 429 `overloaded` with `Retry-After`.
    pub fn overloaded(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message);
        e.retry_after = Some(retry_after);
        e
    }

    /// 500 `internal`: `error` is logged (see [`Failure`]), not shown.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the origin's log)",
        )
        .logging("internal error", error)
    }

    /// This error, with `error` logged as `message` when it is answered
    /// (see [`Failure`]).
    pub fn logging(mut self, message: &'static str, error: impl std::fmt::Display) -> ApiError {
        self.failure = Some(Box::new(Failure {
            message,
            error: error.to_string(),
        }));
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound { entity, id } => ApiError::not_found(format!("{entity} {id}")),
            StoreError::Conflict { current } => {
                let mut e = ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "conflict",
                    format!(
                        "the entity changed: it is at version {current}; read it again and retry with its ETag"
                    ),
                );
                e.current_etag = Some(super::etag::etag(current));
                e
            }
            StoreError::Stale { base, reason } => {
                let mut e = ApiError::new(StatusCode::PRECONDITION_FAILED, "stale_base", reason);
                e.current_etag = Some(format!("\"{base}\""));
                e
            }
            StoreError::Duplicate { entity, key } => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("{entity} key {key:?} already exists"),
            ),
            StoreError::Invalid(problems) => ApiError::invalid(problems),
            StoreError::TooLarge(problems) => {
                let mut e = ApiError::invalid(problems);
                e.status = StatusCode::PAYLOAD_TOO_LARGE;
                e.code = "too_large";
                e
            }
            StoreError::OutdatedChanges(problems) => {
                let mut e = ApiError::invalid(problems);
                e.status = StatusCode::CONFLICT;
                e.code = "stale_base";
                e.message = "what is live changed since the change request was made: rebase it \
                             (POST …/rebase) and have it approved again"
                    .into();
                e
            }
            e @ StoreError::Archived { .. } => {
                ApiError::new(StatusCode::CONFLICT, "archived", e.to_string())
            }
            e @ StoreError::Prerequisite { .. } => {
                ApiError::new(StatusCode::CONFLICT, "prerequisite", e.to_string())
            }
            StoreError::Database(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                problems: self.problems.into_iter().map(ProblemBody::from).collect(),
                current_etag: self.current_etag.clone(),
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(tag) = self
            .current_etag
            .and_then(|t| HeaderValue::from_str(&t).ok())
        {
            r.headers_mut().insert(header::ETAG, tag);
        }
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(failure) = self.failure {
            r.extensions_mut().insert(*failure);
        }
        r
    }
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

/// Middleware (`axum::middleware::map_response`): an error response that is
/// not JSON becomes the JSON error body, so the answers axum gives before a
/// handler runs are JSON like every other error: the rejections of its
/// extractors (a path parameter that does not parse, a query string, a
/// body it cannot read, 400/413/415/422), 405 for a method a route does not
/// have. The status and the other headers (`Allow`, `WWW-Authenticate`,
/// `Retry-After`) stay; the plain-text message becomes the error's message.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use axum::http::StatusCode;
/// use axum::response::IntoResponse;
/// let r = (StatusCode::BAD_REQUEST, "Invalid URL: Cannot parse `x` to a `i64`").into_response();
/// let r = bunting_origin::api::error::json_errors(r).await;
/// assert_eq!(r.headers()["content-type"], "application/json");
/// let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
/// let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(body["error"]["code"], "bad_request");
/// assert_eq!(body["error"]["message"], "Invalid URL: Cannot parse `x` to a `i64`");
/// # });
/// ```
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let json = super::body::is_json(response.headers());
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejection messages are short; a longer body is cut, never buffered whole.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "overloaded",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let mut r = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            r.headers_mut().append(name, value.clone());
        }
    }
    r
}
