//! Organizations, projects and environments.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::IfMatch;
use super::paths::{EnvPath, OrgPath, ProjectPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{Environment, Organization, Permission, Project};

/// Body creating an organization, project or environment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamed {
    /// Key, unique in its parent: 1–64 characters of `A-Z a-z 0-9 - _ .`,
    /// not `.` or `..` (the edge's KV key holds all three of organization,
    /// project and environment).
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 64
    )]
    pub key: String,
    /// Display name.
    pub name: String,
}

/// Body renaming an entity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The new display name.
    pub name: String,
}

/// A list of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

/// The routes of organizations, projects and environments.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, rename_org, delete_org))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, rename_project, delete_project))
        .routes(routes!(list_envs, create_env))
        .routes(routes!(get_env, rename_env, delete_env))
}

/// Organizations the caller can see.
#[utoipa::path(get, path = "/orgs", tag = "organizations",
    responses((status = 200, body = Items<Organization>), (status = 401, body = super::error::ErrorBody)))]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Principal,
) -> ApiResult<Json<Items<Organization>>> {
    let items = state
        .store
        .orgs()
        .await?
        .into_iter()
        .filter(|org| caller.sees(org))
        .collect();
    Ok(Json(Items { items }))
}

/// Creates an organization (bootstrap administrator only).
#[utoipa::path(post, path = "/orgs", tag = "organizations", request_body = CreateNamed,
    responses((status = 201, body = Organization), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Principal,
    Body(body): Body<CreateNamed>,
) -> ApiResult<Response> {
    if !caller.is_root() {
        return Err(ApiError::forbidden(
            "only the bootstrap administrator creates organizations",
        ));
    }
    let mut actor = caller.actor(0);
    actor.org_id = None;
    let org = state
        .store
        .create_org(&actor, &body.key, &body.name)
        .await?;
    Ok(tagged(StatusCode::CREATED, org.version, &org))
}

/// An organization.
#[utoipa::path(get, path = "/orgs/{org}", tag = "organizations",
    params(OrgPath), responses((status = 200, body = Organization), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_org(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, org.version, &org))
}

/// Renames an organization (admin; `If-Match`).
#[utoipa::path(patch, path = "/orgs/{org}", tag = "organizations", request_body = Rename,
    params(OrgPath, IfMatch),
    responses((status = 200, body = Organization), (status = 412, body = super::error::ErrorBody), (status = 428, body = super::error::ErrorBody)))]
pub async fn rename_org(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    if_match: IfMatch,
    Body(body): Body<Rename>,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Permission::OrgWrite).await?;
    let expected = if_match.version()?;
    let org = state
        .store
        .rename_org(&caller.actor(org.id), org.id, expected, &body.name)
        .await?;
    Ok(tagged(StatusCode::OK, org.version, &org))
}

/// Deletes an organization and everything in it (admin; `If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}", tag = "organizations",
    params(OrgPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_org(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Permission::OrgWrite).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_org(&caller.actor(org.id), org.id, expected)
        .await?;
    state.notify_publish();
    Ok(no_content())
}

/// The projects of an organization.
#[utoipa::path(get, path = "/orgs/{org}/projects", tag = "projects",
    params(OrgPath), responses((status = 200, body = Items<Project>)))]
pub async fn list_projects(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
) -> ApiResult<Json<Items<Project>>> {
    let org = scope::org(&state, &caller, &path.org, Permission::Read).await?;
    let items = state
        .store
        .projects(org.id)
        .await?
        .into_iter()
        .filter(|p| {
            caller
                .grants
                .allows(Permission::Read, &scope::of_project(p, &org))
        })
        .collect();
    Ok(Json(Items { items }))
}

/// Creates a project (admin).
#[utoipa::path(post, path = "/orgs/{org}/projects", tag = "projects", request_body = CreateNamed,
    params(OrgPath), responses((status = 201, body = Project), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<OrgPath>,
    Body(body): Body<CreateNamed>,
) -> ApiResult<Response> {
    let org = scope::org(&state, &caller, &path.org, Permission::ProjectsWrite).await?;
    let project = state
        .store
        .create_project(&caller.actor(org.id), org.id, &body.key, &body.name)
        .await?;
    Ok(tagged(StatusCode::CREATED, project.version, &project))
}

/// A project.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}", tag = "projects",
    params(ProjectPath), responses((status = 200, body = Project)))]
pub async fn get_project(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
) -> ApiResult<Response> {
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, project.version, &project))
}

/// Renames a project (admin; `If-Match`).
#[utoipa::path(patch, path = "/orgs/{org}/projects/{project}", tag = "projects", request_body = Rename,
    params(ProjectPath, IfMatch),
    responses((status = 200, body = Project), (status = 412, body = super::error::ErrorBody)))]
pub async fn rename_project(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    if_match: IfMatch,
    Body(body): Body<Rename>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::ProjectsWrite).await?;
    let expected = if_match.version()?;
    let project = state
        .store
        .rename_project(&caller.actor(org.id), project.id, expected, &body.name)
        .await?;
    Ok(tagged(StatusCode::OK, project.version, &project))
}

/// Deletes a project and everything in it (admin; `If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}", tag = "projects",
    params(ProjectPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_project(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::ProjectsWrite).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_project(&caller.actor(org.id), project.id, expected)
        .await?;
    state.notify_publish();
    Ok(no_content())
}

/// The environments of a project.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments", tag = "environments",
    params(ProjectPath), responses((status = 200, body = Items<Environment>)))]
pub async fn list_envs(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
) -> ApiResult<Json<Items<Environment>>> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let items = state
        .store
        .environments(project.id)
        .await?
        .into_iter()
        .filter(|e| {
            caller
                .grants
                .allows(Permission::Read, &scope::of_env(e, &project, &org))
        })
        .collect();
    Ok(Json(Items { items }))
}

/// Creates an environment (publisher); every flag starts off in it.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments", tag = "environments",
    request_body = CreateNamed, params(ProjectPath),
    responses((status = 201, body = Environment), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_env(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    Body(body): Body<CreateNamed>,
) -> ApiResult<Response> {
    let (org, project) =
        scope::project(&state, &caller, &path, Permission::EnvironmentsWrite).await?;
    let env = state
        .store
        .create_environment(&caller.actor(org.id), project.id, &body.key, &body.name)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::CREATED, env.version, &env))
}

/// An environment.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    params(EnvPath), responses((status = 200, body = Environment)))]
pub async fn get_env(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Response> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, env.version, &env))
}

/// Renames an environment (publisher; `If-Match`).
#[utoipa::path(patch, path = "/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    request_body = Rename, params(EnvPath, IfMatch),
    responses((status = 200, body = Environment), (status = 412, body = super::error::ErrorBody)))]
pub async fn rename_env(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    if_match: IfMatch,
    Body(body): Body<Rename>,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::EnvironmentsWrite).await?;
    let expected = if_match.version()?;
    let env = state
        .store
        .rename_environment(&caller.actor(org.id), env.id, expected, &body.name)
        .await?;
    Ok(tagged(StatusCode::OK, env.version, &env))
}

/// Deletes an environment, its configurations and segments (publisher;
/// `If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    params(EnvPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_env(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::EnvironmentsWrite).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_environment(&caller.actor(org.id), env.id, expected)
        .await?;
    state.notify_publish();
    Ok(no_content())
}
