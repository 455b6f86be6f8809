//! Optimistic concurrency over HTTP: every versioned entity is served with
//! `ETag: "<version>"`; writes to it must send `If-Match` with that tag.
//! A stale tag answers 412 with the current one; a missing tag answers 428
//! ([`IfMatch`]).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::{IntoParams, PartialSchema};

use super::ApiError;

/// The strong ETag of `version`.
///
/// ```
/// assert_eq!(bunting_origin::api::etag::etag(3), "\"3\"");
/// ```
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The header value of [`etag`].
pub fn header_value(version: i64) -> HeaderValue {
    HeaderValue::from_str(&etag(version)).expect("digits and quotes")
}

/// The request's `If-Match` header, for the writes that need it.
///
/// Extracting it never fails: a handler reads the version with
/// [`IfMatch::version`] where the write checks it, after the entity's
/// lookup, so a missing entity answers 404 (and a too low role 403) before
/// a missing tag answers 428. As a parameter of `#[utoipa::path]`
/// (`params(FlagPath, IfMatch)`) it documents the required header.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(Option<HeaderValue>);

impl IfMatch {
    /// The version the tag names: 428 without the header, 400 when it is
    /// not one ETag (`"3"`, or weak `W/"3"`).
    ///
    /// ```
    /// use axum::http::HeaderValue;
    /// use bunting_origin::api::etag::IfMatch;
    /// let tag = |v: &'static str| IfMatch::from(Some(HeaderValue::from_static(v)));
    /// assert_eq!(IfMatch::from(None).version().unwrap_err().status, 428);
    /// assert_eq!(tag("\"7\"").version().unwrap(), 7);
    /// assert_eq!(tag("W/\"7\"").version().unwrap(), 7);
    /// assert_eq!(tag("*").version().unwrap_err().status, 400);
    /// ```
    pub fn version(&self) -> Result<i64, ApiError> {
        let Some(v) = &self.0 else {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "this write needs an If-Match header with the entity's ETag (read it first)",
            ));
        };
        let s = v.to_str().unwrap_or("").trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "If-Match must be one ETag such as \"3\", not {:?}",
                    v.to_str().unwrap_or("(not text)")
                ))
            })
    }
}

impl From<Option<HeaderValue>> for IfMatch {
    fn from(value: Option<HeaderValue>) -> IfMatch {
        IfMatch(value)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<IfMatch, Infallible> {
        Ok(IfMatch(parts.headers.get(header::IF_MATCH).cloned()))
    }
}

impl IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("If-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .schema(Some(String::schema()))
                .build(),
        ]
    }
}
