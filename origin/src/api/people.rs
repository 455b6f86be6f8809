//! Who may do what in an organization: custom roles, teams and role
//! bindings. Reading them needs `read`; changing them `members.manage` at
//! the organization — and nobody grants (or defines a role with) a
//! permission they do not hold themselves at that scope.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{BindingPath, OrgPath, RolePath, TeamPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{
    Binding, Organization, Permission, Permissions, Problem, RoleRecord, RoleSpec, Scope, Subject,
    Team, TeamSpec,
};

/// The routes of roles, teams and bindings.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(list_bindings, create_binding))
        .routes(routes!(delete_binding))
}

/// The organization of `org`, if the caller manages its members.
async fn managed(state: &AppState, caller: &Principal, org: &str) -> ApiResult<Organization> {
    scope::org(state, caller, org, Permission::MembersManage).await
}

/// 403 unless the caller holds every permission of `wanted` at `at`.
fn no_escalation(caller: &Principal, wanted: Permissions, at: &Scope) -> ApiResult<()> {
    if caller.grants.allows_all(wanted, at) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{} cannot grant permissions it does not hold there ({})",
            caller.name(),
            wanted.names().join(", ")
        )))
    }
}

/// The roles of an organization: the built-in ones, then its custom roles.
#[utoipa::path(get, path = "/orgs/{org}/roles", tag = "people",
    params(OrgPath), responses((status = 200, body = Items<RoleRecord>)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<RoleRecord>>> {
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.roles(org.id).await?,
    }))
}

/// Makes a custom role: a named set of permissions.
#[utoipa::path(post, path = "/orgs/{org}/roles", tag = "people", request_body = RoleSpec,
    params(OrgPath), responses((status = 201, body = RoleRecord), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(spec): Body<RoleSpec>,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    no_escalation(
        &caller,
        Permissions::of(&spec.permissions),
        &Scope::Org { org: org.id },
    )?;
    let role = state
        .store
        .create_role(&caller.actor(org.id), org.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, role.version, &role))
}

/// A role (built-in or custom).
#[utoipa::path(get, path = "/orgs/{org}/roles/{role}", tag = "people",
    params(RolePath), responses((status = 200, body = RoleRecord)))]
pub async fn get_role(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolePath>,
) -> ApiResult<Response> {
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    let role = state.store.role_by_key(org.id, &path.role).await?;
    Ok(tagged(StatusCode::OK, role.version, &role))
}

/// The custom role of `path` (a built-in role cannot change: 422).
async fn custom(state: &AppState, org: &Organization, key: &str) -> ApiResult<RoleRecord> {
    let role = state.store.role_by_key(org.id, key).await?;
    if role.built_in {
        return Err(ApiError::invalid(vec![Problem::new(
            "role",
            format!("{key:?} is a built-in role; it cannot change"),
        )]));
    }
    Ok(role)
}

/// Replaces a custom role (`If-Match`); its key stays. Whoever holds it
/// gets the new permissions at once.
#[utoipa::path(put, path = "/orgs/{org}/roles/{role}", tag = "people", request_body = RoleSpec,
    params(RolePath, IfMatch), responses((status = 200, body = RoleRecord),
        (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update_role(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolePath>,
    if_match: IfMatch,
    Body(spec): Body<RoleSpec>,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    let role = custom(&state, &org, &path.role).await?;
    no_escalation(
        &caller,
        Permissions::of(&spec.permissions),
        &Scope::Org { org: org.id },
    )?;
    let expected = if_match.version()?;
    let role = state
        .store
        .update_role(&caller.actor(org.id), role.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, role.version, &role))
}

/// Deletes a custom role (`If-Match`); refused (422) while a binding or a
/// live token uses it.
#[utoipa::path(delete, path = "/orgs/{org}/roles/{role}", tag = "people",
    params(RolePath, IfMatch), responses((status = 204), (status = 412, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<RolePath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    let role = custom(&state, &org, &path.role).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_role(&caller.actor(org.id), org.id, role.id, expected)
        .await?;
    Ok(no_content())
}

/// The teams of an organization.
#[utoipa::path(get, path = "/orgs/{org}/teams", tag = "people",
    params(OrgPath), responses((status = 200, body = Items<Team>)))]
pub async fn list_teams(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<Team>>> {
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.teams(org.id).await?,
    }))
}

/// Makes a team: members by e-mail and/or an identity-provider group.
#[utoipa::path(post, path = "/orgs/{org}/teams", tag = "people", request_body = TeamSpec,
    params(OrgPath), responses((status = 201, body = Team), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn create_team(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(spec): Body<TeamSpec>,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    let team = state
        .store
        .create_team(&caller.actor(org.id), org.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, team.version, &team))
}

/// A team.
#[utoipa::path(get, path = "/orgs/{org}/teams/{team}", tag = "people",
    params(TeamPath), responses((status = 200, body = Team)))]
pub async fn get_team(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<TeamPath>,
) -> ApiResult<Response> {
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    let team = state.store.team_by_key(org.id, &path.team).await?;
    Ok(tagged(StatusCode::OK, team.version, &team))
}

/// Replaces a team (`If-Match`): name, group and members; the key stays.
#[utoipa::path(put, path = "/orgs/{org}/teams/{team}", tag = "people", request_body = TeamSpec,
    params(TeamPath, IfMatch), responses((status = 200, body = Team),
        (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn update_team(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<TeamPath>,
    if_match: IfMatch,
    Body(spec): Body<TeamSpec>,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    let team = state.store.team_by_key(org.id, &path.team).await?;
    let expected = if_match.version()?;
    let team = state
        .store
        .update_team(&caller.actor(org.id), team.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, team.version, &team))
}

/// Deletes a team and the roles bound to it (`If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}/teams/{team}", tag = "people",
    params(TeamPath, IfMatch), responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_team(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<TeamPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let org = managed(&state, &caller, &path.org).await?;
    let team = state.store.team_by_key(org.id, &path.team).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_team(&caller.actor(org.id), team.id, expected)
        .await?;
    Ok(no_content())
}

/// Body granting a role: to exactly one of `user` or `team`, at the
/// organization, a project, or an environment of a project.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBinding {
    /// A person, by e-mail (known or not yet: matched at first sign-in).
    #[serde(default)]
    pub user: Option<String>,
    /// A team of the organization, by key.
    #[serde(default)]
    pub team: Option<String>,
    /// A role of the organization (built-in or custom).
    pub role: String,
    /// Limits the grant to this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Limits the grant to this environment of `project`.
    #[serde(default)]
    pub environment: Option<String>,
}

/// The role bindings of an organization.
#[utoipa::path(get, path = "/orgs/{org}/bindings", tag = "people",
    params(OrgPath), responses((status = 200, body = Items<Binding>)))]
pub async fn list_bindings(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<Binding>>> {
    let org = scope::org_wide(&state, &caller, &path.org, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.bindings(org.id).await?,
    }))
}

/// Grants a role to a user or a team at a scope. The caller must hold
/// every permission of the role at that scope.
#[utoipa::path(post, path = "/orgs/{org}/bindings", tag = "people", request_body = CreateBinding,
    params(OrgPath), responses((status = 201, body = Binding), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_binding(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(body): Body<CreateBinding>,
) -> ApiResult<(StatusCode, Json<Binding>)> {
    let org = managed(&state, &caller, &path.org).await?;
    let mut problems = Vec::new();
    let subject = match (&body.user, &body.team) {
        (Some(u), None) => Some(Subject::User(u.clone())),
        (None, Some(t)) => Some(Subject::Team(t.clone())),
        _ => {
            problems.push(Problem::new("user", "name exactly one of user or team"));
            None
        }
    };
    let scope = match scope::named(
        &state,
        &org,
        body.project.as_deref(),
        body.environment.as_deref(),
    )
    .await
    {
        Ok(s) => Some(s),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let wanted = state.store.role_permissions(org.id, &body.role).await?;
    if wanted.is_none() {
        problems.push(Problem::new(
            "role",
            format!("no role {:?} in this organization", body.role),
        ));
    }
    let (Some(subject), Some(scope), Some(wanted)) = (subject, scope, wanted) else {
        return Err(ApiError::invalid(problems));
    };
    no_escalation(&caller, wanted, &scope)?;
    let binding = state
        .store
        .create_binding(&caller.actor(org.id), org.id, &subject, &body.role, scope)
        .await?;
    Ok((StatusCode::CREATED, Json(binding)))
}

/// Removes a role binding; it stops granting at once.
#[utoipa::path(delete, path = "/orgs/{org}/bindings/{id}", tag = "people",
    params(BindingPath), responses((status = 200, body = Binding)))]
pub async fn delete_binding(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<BindingPath>,
) -> ApiResult<Json<Binding>> {
    let org = managed(&state, &caller, &path.org).await?;
    Ok(Json(
        state
            .store
            .delete_binding(&caller.actor(org.id), org.id, path.id)
            .await?,
    ))
}
