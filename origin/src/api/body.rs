//! JSON request bodies with JSON errors, and responses carrying an ETag.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use super::etag::header_value;
use crate::store::Problem;

/// A JSON body; malformed JSON answers 400, a body of the wrong shape 422
/// (with the serde path, line and column), a missing content type 415 — all
/// with the JSON error body.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => {
                let detail = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text());
                Err(ApiError::invalid(vec![Problem::new("body", detail)]))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::bad_request(format!(
                "the body is not JSON: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.body_text())
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
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
