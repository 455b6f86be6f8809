//! API tokens of an organization: service tokens (a role at a scope, made
//! by those who manage tokens) and personal tokens (made by a signed-in
//! person for themself, acting as them).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::Body;
use super::org::Items;
use super::paths::{OrgPath, TokenPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{
    MAX_TOKEN_DAYS, NewToken, Organization, Permission, Problem, Scope, TokenKind, TokenRecord,
};

/// The routes of API tokens.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Body creating an API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. `ci` or `alice's laptop`.
    pub name: String,
    /// `service` (the default; needs `tokens.manage`) or `personal` (a
    /// signed-in person's own token).
    #[serde(default = "service")]
    pub kind: TokenKind,
    /// A role of the organization (built-in or custom). A service token's
    /// grant; a personal token's cap on its user's rights (default
    /// `admin`: no cap beyond the user's own).
    #[serde(default)]
    pub role: Option<String>,
    /// Limits a service token to this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Limits a service token to this environment of `project`.
    #[serde(default)]
    pub environment: Option<String>,
    /// Days until the token stops working (1–730); none: it never expires.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 730)]
    pub expires_in_days: Option<u32>,
}

fn service() -> TokenKind {
    TokenKind::Service
}

/// A new secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created<T> {
    /// The stored record.
    #[serde(flatten)]
    pub record: T,
    /// The secret. It is not stored and cannot be shown again.
    pub secret: String,
}

/// Whether `caller` may see and revoke `token`: who manages tokens, or the
/// person whose personal token it is.
fn owns(caller: &Principal, org: &Organization, token: &TokenRecord) -> bool {
    caller
        .grants
        .allows(Permission::TokensManage, &Scope::Org { org: org.id })
        || caller.person().is_some_and(|u| token.user_id == Some(u.id))
}

/// The API tokens of an organization, revoked and expired ones included:
/// all of them for who holds `tokens.manage`, else the caller's own
/// personal tokens.
#[utoipa::path(get, path = "/orgs/{org}/tokens", tag = "access",
    params(OrgPath), responses((status = 200, body = Items<TokenRecord>),
        (status = 403, description = "the caller neither manages tokens nor is a person", body = super::error::ErrorBody)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<TokenRecord>>> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    if caller.person().is_none() {
        caller.require(
            Permission::TokensManage,
            &Scope::Org { org: org.id },
            &org.key,
            &format!("organization {}", org.key),
        )?;
    }
    let items = state
        .store
        .tokens(org.id)
        .await?
        .into_iter()
        .filter(|t| owns(&caller, &org, t))
        .collect();
    Ok(Json(Items { items }))
}

/// Makes an API token; the answer holds its secret, once. A service token
/// needs `tokens.manage` in the organization, and its role's permissions
/// held by the caller at the token's scope (nobody mints more than they
/// have). A personal token is made by a signed-in person for themself.
#[utoipa::path(post, path = "/orgs/{org}/tokens", tag = "access", request_body = CreateToken,
    params(OrgPath), responses((status = 201, body = Created<TokenRecord>),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(body): Body<CreateToken>,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    let role = body.role.clone().unwrap_or_else(|| match body.kind {
        TokenKind::Personal => "admin".into(),
        TokenKind::Service => String::new(),
    });
    let mut problems = Vec::new();
    if role.is_empty() {
        problems.push(Problem::new("role", "a service token needs a role"));
    }
    if let Some(d) = body.expires_in_days
        && !(1..=MAX_TOKEN_DAYS).contains(&d)
    {
        problems.push(Problem::new(
            "expiresInDays",
            format!("{d} is out of range: a token lives 1 to {MAX_TOKEN_DAYS} days"),
        ));
    }
    let scope = match body.kind {
        TokenKind::Personal => {
            if body.project.is_some() || body.environment.is_some() {
                problems.push(Problem::new(
                    "project",
                    "a personal token acts as its user everywhere in the organization; use a role to cap it",
                ));
            }
            Scope::Org { org: org.id }
        }
        TokenKind::Service => match scope::named(
            &state,
            &org,
            body.project.as_deref(),
            body.environment.as_deref(),
        )
        .await
        {
            Ok(s) => s,
            Err(p) => {
                problems.extend(p);
                Scope::Org { org: org.id }
            }
        },
    };
    let user_id = caller.person().map(|u| u.id);
    match body.kind {
        TokenKind::Service => caller.require(
            Permission::TokensManage,
            &Scope::Org { org: org.id },
            &org.key,
            &format!("organization {}", org.key),
        )?,
        TokenKind::Personal if user_id.is_none() => {
            return Err(ApiError::forbidden(
                "a personal token is made by a signed-in person (or their personal token) for themself",
            ));
        }
        TokenKind::Personal => {}
    }
    if !role.is_empty() {
        match state.store.role_permissions(org.id, &role).await? {
            None => problems.push(Problem::new(
                "role",
                format!("no role {role:?} in this organization"),
            )),
            Some(wanted)
                if body.kind == TokenKind::Service && !caller.grants.allows_all(wanted, &scope) =>
            {
                return Err(ApiError::forbidden(format!(
                    "role {role} grants more than {} holds at the token's scope",
                    caller.name()
                )));
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let new = NewToken {
        name: body.name,
        kind: body.kind,
        role,
        scope,
        user_id,
        expires_in_days: body.expires_in_days,
    };
    let (record, secret) = state.store.make_token(&caller.actor(org.id), &new).await?;
    Ok((StatusCode::CREATED, Json(Created { record, secret })).into_response())
}

/// Revokes an API token (who manages tokens, or the owner of a personal
/// token); it stops working at once. Revoking a revoked token answers 200
/// with it unchanged and writes no audit entry.
#[utoipa::path(delete, path = "/orgs/{org}/tokens/{id}", tag = "access",
    params(TokenPath), responses((status = 200, body = TokenRecord)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<TokenPath>,
) -> ApiResult<Json<TokenRecord>> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    let token = state.store.token(path.id).await?;
    if token.org_id != org.id {
        return Err(ApiError::not_found(format!("token {}", path.id)));
    }
    if !owns(&caller, &org, &token) {
        caller.require(
            Permission::TokensManage,
            &Scope::Org { org: org.id },
            &org.key,
            &format!("organization {}", org.key),
        )?;
    }
    Ok(Json(
        state
            .store
            .revoke_token(&caller.actor(org.id), path.id)
            .await?,
    ))
}
