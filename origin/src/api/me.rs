//! `GET /api/v1/me`: who the caller is and what it may do where, for the
//! console (and for anyone wondering what a token can do). A signed-in
//! browser also gets its session's CSRF token here.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Principal, PrincipalKind};
use super::session::{SESSION_COOKIE, cookie};
use super::{ApiResult, AppState};
use crate::store::sessions::csrf_token;
use crate::store::{Scope, Store};

/// The routes of the caller's own description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

/// What kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallerKind {
    /// A person: signed in, or through a personal token.
    User,
    /// A service token.
    Service,
    /// The bootstrap administrator token of the configuration.
    Admin,
}

/// Permissions held at one scope, named by keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopedGrant {
    /// The organization's key.
    pub org: String,
    /// The project's key, when the grant is narrower than the organization.
    pub project: Option<String>,
    /// The environment's key, when the grant is one environment.
    pub environment: Option<String>,
    /// The permissions held there (and in everything under it).
    pub permissions: Vec<&'static str>,
}

/// The caller of `GET /api/v1/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// What kind of caller.
    pub kind: CallerKind,
    /// The name the audit log records for it (`user:alice@example.com`,
    /// `user:… via token:7`, `token:7:ci`, `admin`).
    pub name: String,
    /// The person's e-mail (people only).
    pub email: Option<String>,
    /// The person's display name (people only).
    pub display_name: Option<String>,
    /// Whether the caller acts as the instance's administrator (every
    /// permission in every organization).
    pub is_admin: bool,
    /// Whether the caller is authenticated by a browser session.
    pub session: bool,
    /// The session's CSRF token, to send as `X-CSRF-Token` with every
    /// `POST`, `PUT`, `PATCH` and `DELETE` of the browser (sessions only).
    pub csrf_token: Option<String>,
    /// Permissions held in every organization (the instance's
    /// administrator: all of them).
    pub everywhere: Vec<&'static str>,
    /// Permissions held at each scope, by keys.
    pub grants: Vec<ScopedGrant>,
}

/// Keys of `scope`; `None` when a part of it no longer exists.
async fn keys(store: &Store, scope: &Scope) -> Option<(String, Option<String>, Option<String>)> {
    let org = store.org(scope.org()).await.ok()?.key;
    Some(match *scope {
        Scope::Org { .. } => (org, None, None),
        Scope::Project { project, .. } => (org, Some(store.project(project).await.ok()?.key), None),
        Scope::Environment {
            project,
            environment,
            ..
        } => (
            org,
            Some(store.project(project).await.ok()?.key),
            Some(store.environment(environment).await.ok()?.key),
        ),
    })
}

/// The caller: kind, audit name, e-mail, whether it is the instance's
/// administrator, its grants by organization, project and environment
/// key, and (for a browser session) the CSRF token its writes need.
#[utoipa::path(get, path = "/me", tag = "access",
    responses((status = 200, body = Me)))]
pub async fn me(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
) -> ApiResult<Json<Me>> {
    let (kind, user, session) = match &caller.kind {
        PrincipalKind::Root => (CallerKind::Admin, None, false),
        PrincipalKind::Service(_) => (CallerKind::Service, None, false),
        PrincipalKind::User { user, token } => (CallerKind::User, Some(user), token.is_none()),
    };
    let csrf = session
        .then(|| cookie(&headers, SESSION_COOKIE).map(csrf_token))
        .flatten();
    let mut grants = Vec::new();
    for g in caller.grants.list() {
        if let Some((org, project, environment)) = keys(&state.store, &g.scope).await {
            grants.push(ScopedGrant {
                org,
                project,
                environment,
                permissions: g.permissions.names(),
            });
        }
    }
    grants.sort_by(|a, b| {
        (&a.org, &a.project, &a.environment).cmp(&(&b.org, &b.project, &b.environment))
    });
    Ok(Json(Me {
        kind,
        name: caller.name(),
        email: user.map(|u| u.email.clone()),
        display_name: user.map(|u| u.name.clone()),
        is_admin: caller.is_root(),
        session,
        csrf_token: csrf,
        everywhere: caller.grants.everywhere().names(),
        grants,
    }))
}
