//! JSON request bodies with JSON errors, and responses carrying an ETag.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use super::etag::header_value;
use crate::store::Problem;

/// A JSON body; malformed JSON answers 400, text the store cannot hold (a
/// NUL character in any string or object key, see [`super::text`]) 422
/// with one problem per field, a body of the wrong shape 422 with the path
/// of the field (`graceSeconds`, `rules[0].serve`), a missing content type
/// 415 — all with the JSON error body.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = is_json(req.headers());
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
        // Syntax first (400), then shape (422, with the path of the field).
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let problems = super::text::json_problems(&value);
        if !problems.is_empty() {
            return Err(ApiError::invalid(problems));
        }
        serde_path_to_error::deserialize(value)
            .map(Body)
            .map_err(|e| {
                let path = match e.path().to_string() {
                    p if p == "." => "body".to_string(),
                    p => p,
                };
                ApiError::invalid(vec![Problem::new(path, e.into_inner().to_string())])
            })
    }
}

/// `value` as JSON with `ETag: "<version>"`.
pub fn tagged<T: Serialize>(status: StatusCode, version: i64, value: &T) -> Response {
    let mut r = (status, Json(value)).into_response();
    r.headers_mut().insert(header::ETAG, header_value(version));
    r
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Whether `headers` declare a JSON body: `Content-Type` `application/json`
/// or `application/<something>+json`, parameters ignored.
///
/// ```
/// use axum::http::HeaderMap;
/// use bunting_origin::api::body::is_json;
/// let mut h = HeaderMap::new();
/// h.insert("content-type", "application/json; charset=utf-8".parse().unwrap());
/// assert!(is_json(&h));
/// h.insert("content-type", "text/plain".parse().unwrap());
/// assert!(!is_json(&h) && !is_json(&HeaderMap::new()));
/// ```
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}
