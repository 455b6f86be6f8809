//! Who is calling, and what they may do.
//!
//! Every `/api/v1` endpoint (except the OpenAPI document and event
//! ingestion) needs a caller:
//!
//! - the bootstrap administrator token of the configuration
//!   ([`super::ServeConfig::admin_token`]) may do everything, including
//!   creating organizations;
//! - a service token acts with its role at its scope (organization,
//!   project or environment);
//! - a personal token acts as its user, in its organization, never beyond
//!   the user's rights nor its own role;
//! - a signed-in user (browser session) acts with the roles bound to the
//!   user and to the user's teams.
//!
//! A request without `Authorization` is authenticated by its session
//! cookie ([`super::session`]); its writes need the session's CSRF token.
//! No or an unknown token, or an ended session, answers 401. A caller with nothing in an
//! organization gets 404 for everything under `/orgs/{org}` — exactly as if
//! the organization did not exist, so callers cannot probe for other
//! tenants. A caller of the organization without the permission an action
//! needs at its scope gets 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bunting_wire::same_secret;

use super::{ApiError, AppState, REQUEST_ID, session};
use crate::store::{
    Actor, Grant, Grants, Organization, Permission, Permissions, Scope, Store, TokenKind,
    TokenRecord, User,
};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is.
    pub kind: PrincipalKind,
    /// What it may do, where.
    pub grants: Grants,
    /// The request id (for the audit log).
    pub request_id: Option<String>,
}

/// Who a [`Principal`] is.
#[derive(Debug, Clone)]
pub enum PrincipalKind {
    /// The bootstrap administrator token.
    Root,
    /// A service token.
    Service(TokenRecord),
    /// A person: signed in (no token), or through a personal token.
    User {
        /// The person.
        user: User,
        /// The personal token, when the request carried one.
        token: Option<TokenRecord>,
    },
}

impl Principal {
    /// The bootstrap administrator (everything everywhere).
    pub fn root(request_id: Option<String>) -> Principal {
        Principal {
            kind: PrincipalKind::Root,
            grants: Grants::everything(),
            request_id,
        }
    }

    /// A service token, with its role at its scope.
    pub async fn service(
        store: &Store,
        token: TokenRecord,
        request_id: Option<String>,
    ) -> Result<Principal, ApiError> {
        let permissions = store
            .role_permissions(token.org_id, &token.role)
            .await?
            .unwrap_or_default();
        let scope = token.scope.unwrap_or(Scope::Org { org: token.org_id });
        Ok(Principal {
            grants: Grants::of(vec![Grant { scope, permissions }]),
            kind: PrincipalKind::Service(token),
            request_id,
        })
    }

    /// A signed-in `user`, or `user` through personal `token` (then only
    /// in the token's organization, capped by the token's role).
    pub async fn user(
        store: &Store,
        user: User,
        token: Option<TokenRecord>,
        request_id: Option<String>,
    ) -> Result<Principal, ApiError> {
        let mut grants = store.user_grants(&user).await?;
        if let Some(t) = &token {
            let cap = store
                .role_permissions(t.org_id, &t.role)
                .await?
                .unwrap_or_default();
            grants = grants.within_org(t.org_id).capped(cap);
        }
        Ok(Principal {
            kind: PrincipalKind::User { user, token },
            grants,
            request_id,
        })
    }

    /// The audit-log name: `admin`, `user:<email>`, `user:<email> via
    /// token:<id>` or `token:<id>:<name>`.
    pub fn name(&self) -> String {
        match &self.kind {
            PrincipalKind::Root => "admin".into(),
            PrincipalKind::Service(t) => format!("token:{}:{}", t.id, t.name),
            PrincipalKind::User { user, token: None } => user.actor_name(),
            PrincipalKind::User {
                user,
                token: Some(t),
            } => format!("{} via token:{}", user.actor_name(), t.id),
        }
    }

    /// The signed-in person, if the caller is one (directly or through a
    /// personal token).
    pub fn person(&self) -> Option<&User> {
        match &self.kind {
            PrincipalKind::User { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Whether this is the instance's administrator (the bootstrap token,
    /// or a user marked administrator acting without a lesser cap).
    pub fn is_root(&self) -> bool {
        self.grants.everywhere() == Permissions::all()
    }

    /// The actor for writes in organization `org_id`.
    pub fn actor(&self, org_id: i64) -> Actor {
        let mut a = Actor::new(self.name()).in_org(org_id);
        a.request_id = self.request_id.clone();
        a
    }

    /// Whether the caller holds anything in `org`: who does not gets 404
    /// for it, as if it did not exist.
    pub fn sees(&self, org: &Organization) -> bool {
        self.grants.in_org(org.id)
    }

    /// Checks that the caller may `p` at `at` (`what` names the scope in
    /// the error): 404 for a caller with nothing in the organization
    /// (`org` is its key), 403 when the permission is missing there.
    ///
    /// ```
    /// use bunting_origin::api::auth::Principal;
    /// use bunting_origin::store::{Grant, Grants, Permission, Role, Scope};
    /// let staging = Scope::Environment { org: 7, project: 1, environment: 2 };
    /// let production = Scope::Environment { org: 7, project: 1, environment: 3 };
    /// let mut editor = Principal::root(None);
    /// editor.grants = Grants::of(vec![Grant { scope: staging, permissions: Role::Editor.permissions() }]);
    /// assert!(editor.require(Permission::FlagsWrite, &staging, "acme", "environment staging").is_ok());
    /// assert_eq!(editor.require(Permission::FlagsWrite, &production, "acme", "environment production").unwrap_err().status, 403);
    /// assert_eq!(editor.require(Permission::Read, &Scope::Org { org: 8 }, "other", "organization other").unwrap_err().status, 404);
    /// ```
    pub fn require(
        &self,
        p: Permission,
        at: &Scope,
        org: &str,
        what: &str,
    ) -> Result<(), ApiError> {
        if !self.grants.in_org(at.org()) {
            return Err(ApiError::not_found(format!("organization {org}")));
        }
        if self.grants.allows(p, at) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {p} permission on {what}; {} does not have it there",
                self.name()
            )))
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
            return session_principal(parts, state, request_id).await;
        };
        if let Some(admin) = &state.config.admin_token
            && same_secret(raw, admin)
        {
            return Ok(Principal::root(request_id));
        }
        let Some(token) = state.store.authenticate(raw).await? else {
            return Err(ApiError::unauthorized(
                "unknown, expired or revoked API token",
            ));
        };
        match (token.kind, token.user_id) {
            (TokenKind::Personal, Some(user_id)) => {
                let user = state.store.user(user_id).await?;
                Principal::user(&state.store, user, Some(token), request_id).await
            }
            _ => Principal::service(&state.store, token, request_id).await,
        }
    }
}

/// The caller of a request without `Authorization`: the person of its
/// session cookie (401 without a live session), with the CSRF checks of
/// [`super::session::check_csrf`] (403).
async fn session_principal(
    parts: &Parts,
    state: &AppState,
    request_id: Option<String>,
) -> Result<Principal, ApiError> {
    let Some(sid) = session::cookie(&parts.headers, session::SESSION_COOKIE) else {
        return Err(ApiError::unauthorized(
            "send Authorization: Bearer <API token>, or sign in (GET /auth/login)",
        ));
    };
    let limits = state.config.auth.sessions;
    let Some(user) = state.store.session_user(sid, limits).await? else {
        return Err(ApiError::unauthorized(
            "the session has ended (signed out, idle too long or past its lifetime): sign in again",
        ));
    };
    session::check_csrf(&parts.method, &parts.headers, sid, &state.config.auth)?;
    Principal::user(&state.store, user, None, request_id).await
}
