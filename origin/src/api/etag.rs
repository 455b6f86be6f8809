//! Optimistic concurrency over HTTP: every versioned entity is served with
//! `ETag: "<version>"`; writes to it must send `If-Match` with that tag.
//! A stale tag answers 412 with the current one; a missing tag answers 428.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

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

/// The version named by the request's `If-Match` header.
///
/// ```
/// use axum::http::HeaderMap;
/// use bunting_origin::api::etag::if_match;
/// let mut h = HeaderMap::new();
/// assert_eq!(if_match(&h).unwrap_err().status, 428);
/// h.insert("if-match", "\"7\"".parse().unwrap());
/// assert_eq!(if_match(&h).unwrap(), 7);
/// h.insert("if-match", "W/\"7\"".parse().unwrap());
/// assert_eq!(if_match(&h).unwrap(), 7);
/// h.insert("if-match", "*".parse().unwrap());
/// assert_eq!(if_match(&h).unwrap_err().status, 400);
/// ```
pub fn if_match(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
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
