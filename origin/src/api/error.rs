//! The API's error type and its JSON body.
//!
//! Every error answers `{"error": {"code": "...", "message": "...",
//! "problems": [...]}}` with the status of its kind; `problems` lists every
//! validation problem (rule-language problems carry line and column in
//! their message and path).

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
    /// Every validation problem (422 only).
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
}

impl From<Problem> for ProblemBody {
    fn from(p: Problem) -> ProblemBody {
        ProblemBody {
            entity: p.entity,
            path: p.path,
            message: p.message,
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

    /// 500 `internal` (the message is logged, not shown in full).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the origin's log)",
        )
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
            StoreError::Duplicate { entity, key } => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("{entity} key {key:?} already exists"),
            ),
            StoreError::Invalid(problems) => ApiError::invalid(problems),
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
        r
    }
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;
