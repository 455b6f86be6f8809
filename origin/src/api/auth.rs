//! Who is calling, and what they may do.
//!
//! Every `/api/v1` endpoint (except the OpenAPI document and event
//! ingestion) needs `Authorization: Bearer <token>`:
//!
//! - the bootstrap administrator token of the configuration
//!   ([`super::ServeConfig::admin_token`]) may do everything, including
//!   creating organizations;
//! - an organization's API token (made by its admins, stored hashed) acts
//!   only in that organization, with its [`Role`].
//!
//! No or an unknown token answers 401. A token of another organization gets
//! 404 for everything under `/orgs/{org}` — exactly as if the organization
//! did not exist, so tokens cannot probe for other tenants. A token of the
//! organization whose role is too low gets 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bunting_wire::same_secret;

use super::{ApiError, AppState, REQUEST_ID};
use crate::store::{Actor, Organization, Role, TokenRecord};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The bootstrap administrator, or an organization token.
    pub kind: PrincipalKind,
    /// The request id (for the audit log).
    pub request_id: Option<String>,
}

/// Who a [`Principal`] is.
#[derive(Debug, Clone)]
pub enum PrincipalKind {
    /// The bootstrap administrator token.
    Root,
    /// An organization's API token.
    Token(TokenRecord),
}

impl Principal {
    /// The audit-log name: `admin` or `token:<id>:<name>`.
    pub fn name(&self) -> String {
        match &self.kind {
            PrincipalKind::Root => "admin".into(),
            PrincipalKind::Token(t) => format!("token:{}:{}", t.id, t.name),
        }
    }

    /// Whether this is the bootstrap administrator.
    pub fn is_root(&self) -> bool {
        matches!(self.kind, PrincipalKind::Root)
    }

    /// The actor for writes in organization `org_id`.
    pub fn actor(&self, org_id: i64) -> Actor {
        let mut a = Actor::new(self.name()).in_org(org_id);
        a.request_id = self.request_id.clone();
        a
    }

    /// Checks that the caller may act with `role` in `org`: 404 for another
    /// organization's token, 403 when the role is too low.
    ///
    /// ```
    /// use bunting_origin::api::auth::{Principal, PrincipalKind};
    /// use bunting_origin::store::{Organization, Role, TokenRecord};
    /// let org = |id| Organization { id, key: "k".into(), name: "n".into(), version: 1 };
    /// let editor = Principal { request_id: None, kind: PrincipalKind::Token(TokenRecord {
    ///     id: 1, org_id: 7, name: "ci".into(), role: Role::Editor, prefix: "bnt_api_x".into(),
    ///     created_at: "".into(), created_by: "".into(), revoked_at: None }) };
    /// assert!(editor.allow(&org(7), Role::Editor).is_ok());
    /// assert_eq!(editor.allow(&org(7), Role::Admin).unwrap_err().status, 403);
    /// assert_eq!(editor.allow(&org(8), Role::Viewer).unwrap_err().status, 404);
    /// ```
    pub fn allow(&self, org: &Organization, role: Role) -> Result<(), ApiError> {
        match &self.kind {
            PrincipalKind::Root => Ok(()),
            PrincipalKind::Token(t) if t.org_id != org.id => {
                Err(ApiError::not_found(format!("organization {}", org.key)))
            }
            PrincipalKind::Token(t) if t.role < role => Err(ApiError::forbidden(format!(
                "this needs the {role} role; the token is {}",
                t.role
            ))),
            PrincipalKind::Token(_) => Ok(()),
        }
    }
}

/// The token of `Authorization: Bearer <token>` in `headers`, if any. The
/// scheme is case-insensitive (RFC 9110 §11.1), so `BEARER` and `bearer`
/// work as well; surrounding spaces are ignored. The API's tokens and the
/// ingest secret of `POST /api/v1/events` are both read here.
///
/// ```
/// use axum::http::HeaderMap;
/// use bunting_origin::api::auth::bearer_token;
/// let mut h = HeaderMap::new();
/// h.insert("authorization", "BEARER  s3cret ".parse().unwrap());
/// assert_eq!(bearer_token(&h), Some("s3cret"));
/// h.insert("authorization", "Basic s3cret".parse().unwrap());
/// assert_eq!(bearer_token(&h), None);
/// assert_eq!(bearer_token(&HeaderMap::new()), None);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `headers` carry `Authorization: Bearer <secret>`, compared in
/// constant time ([`same_secret`]): how the secrets of the configuration
/// that are not API tokens (the ingest secret of `POST /api/v1/events`,
/// the metrics token) are checked.
///
/// ```
/// use axum::http::HeaderMap;
/// use bunting_origin::api::auth::bearer_matches;
/// let mut h = HeaderMap::new();
/// h.insert("authorization", "Bearer s3cret".parse().unwrap());
/// assert!(bearer_matches(&h, "s3cret"));
/// assert!(!bearer_matches(&h, "s3cre"));
/// h.insert("authorization", "BEARER s3cret".parse().unwrap()); // the scheme is case-insensitive
/// assert!(bearer_matches(&h, "s3cret"));
/// assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
/// ```
pub fn bearer_matches(headers: &HeaderMap, secret: &str) -> bool {
    bearer_token(headers).is_some_and(|given| same_secret(given, secret))
}

/// 401 `unauthorized` with `WWW-Authenticate: Bearer`: the answer to a
/// request without the secret an endpoint takes ([`bearer_matches`]).
pub fn challenge(message: &str) -> Response {
    let mut response = ApiError::unauthorized(message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = parts
            .headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(raw) = bearer_token(&parts.headers) else {
            return Err(ApiError::unauthorized(
                "send Authorization: Bearer <API token>",
            ));
        };
        if let Some(admin) = &state.config.admin_token
            && same_secret(raw, admin)
        {
            return Ok(Principal {
                kind: PrincipalKind::Root,
                request_id,
            });
        }
        match state.store.authenticate(raw).await? {
            Some(t) => Ok(Principal {
                kind: PrincipalKind::Token(t),
                request_id,
            }),
            None => Err(ApiError::unauthorized("unknown or revoked API token")),
        }
    }
}
