//! Organizations, projects and environments.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::if_match;
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{Environment, Organization, Project, Role};

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

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route(
            "/orgs/{org}",
            get(get_org).patch(rename_org).delete(delete_org),
        )
        .route(
            "/orgs/{org}/projects",
            get(list_projects).post(create_project),
        )
        .route(
            "/orgs/{org}/projects/{project}",
            get(get_project)
                .patch(rename_project)
                .delete(delete_project),
        )
        .route(
            "/orgs/{org}/projects/{project}/environments",
            get(list_envs).post(create_env),
        )
        .route(
            "/orgs/{org}/projects/{project}/environments/{env}",
            get(get_env).patch(rename_env).delete(delete_env),
        )
}

/// Organizations the caller can see.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations",
    responses((status = 200, body = Items<Organization>), (status = 401, body = super::error::ErrorBody)))]
pub async fn list_orgs(
    State(s): State<AppState>,
    p: Principal,
) -> ApiResult<Json<Items<Organization>>> {
    let items = s
        .store
        .orgs()
        .await?
        .into_iter()
        .filter(|o| p.allow(o, Role::Viewer).is_ok())
        .collect();
    Ok(Json(Items { items }))
}

/// Creates an organization (bootstrap administrator only).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", request_body = CreateNamed,
    responses((status = 201, body = Organization), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_org(
    State(s): State<AppState>,
    p: Principal,
    Body(b): Body<CreateNamed>,
) -> ApiResult<Response> {
    if !p.is_root() {
        return Err(ApiError::forbidden(
            "only the bootstrap administrator creates organizations",
        ));
    }
    let mut actor = p.actor(0);
    actor.org_id = None;
    let o = s.store.create_org(&actor, &b.key, &b.name).await?;
    Ok(tagged(StatusCode::CREATED, o.version, &o))
}

/// An organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "organizations",
    params(("org" = String, Path)), responses((status = 200, body = Organization), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_org(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    let o = scope::org(&s, &p, &org, Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, o.version, &o))
}

/// Renames an organization (admin; `If-Match`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}", tag = "organizations", request_body = Rename,
    params(("org" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = Organization), (status = 412, body = super::error::ErrorBody), (status = 428, body = super::error::ErrorBody)))]
pub async fn rename_org(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
    headers: HeaderMap,
    Body(b): Body<Rename>,
) -> ApiResult<Response> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    let expected = if_match(&headers)?;
    let o = s
        .store
        .rename_org(&p.actor(o.id), o.id, expected, &b.name)
        .await?;
    Ok(tagged(StatusCode::OK, o.version, &o))
}

/// Deletes an organization and everything in it (admin; `If-Match`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}", tag = "organizations",
    params(("org" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_org(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    let expected = if_match(&headers)?;
    s.store.delete_org(&p.actor(o.id), o.id, expected).await?;
    s.notify_publish();
    Ok(no_content())
}

/// The projects of an organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects", tag = "projects",
    params(("org" = String, Path)), responses((status = 200, body = Items<Project>)))]
pub async fn list_projects(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
) -> ApiResult<Json<Items<Project>>> {
    let o = scope::org(&s, &p, &org, Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.projects(o.id).await?,
    }))
}

/// Creates a project (admin).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects", tag = "projects", request_body = CreateNamed,
    params(("org" = String, Path)), responses((status = 201, body = Project), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_project(
    State(s): State<AppState>,
    p: Principal,
    Path(org): Path<String>,
    Body(b): Body<CreateNamed>,
) -> ApiResult<Response> {
    let o = scope::org(&s, &p, &org, Role::Admin).await?;
    let pr = s
        .store
        .create_project(&p.actor(o.id), o.id, &b.key, &b.name)
        .await?;
    Ok(tagged(StatusCode::CREATED, pr.version, &pr))
}

/// A project.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects",
    params(("org" = String, Path), ("project" = String, Path)), responses((status = 200, body = Project)))]
pub async fn get_project(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, pr.version, &pr))
}

/// Renames a project (admin; `If-Match`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects", request_body = Rename,
    params(("org" = String, Path), ("project" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = Project), (status = 412, body = super::error::ErrorBody)))]
pub async fn rename_project(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
    Body(b): Body<Rename>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Admin).await?;
    let expected = if_match(&headers)?;
    let pr = s
        .store
        .rename_project(&p.actor(o.id), pr.id, expected, &b.name)
        .await?;
    Ok(tagged(StatusCode::OK, pr.version, &pr))
}

/// Deletes a project and everything in it (admin; `If-Match`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}", tag = "projects",
    params(("org" = String, Path), ("project" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_project(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Admin).await?;
    let expected = if_match(&headers)?;
    s.store
        .delete_project(&p.actor(o.id), pr.id, expected)
        .await?;
    s.notify_publish();
    Ok(no_content())
}

/// The environments of a project.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments", tag = "environments",
    params(("org" = String, Path), ("project" = String, Path)), responses((status = 200, body = Items<Environment>)))]
pub async fn list_envs(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Items<Environment>>> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.environments(pr.id).await?,
    }))
}

/// Creates an environment (publisher); every flag starts off in it.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments", tag = "environments",
    request_body = CreateNamed, params(("org" = String, Path), ("project" = String, Path)),
    responses((status = 201, body = Environment), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_env(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    Body(b): Body<CreateNamed>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Publisher).await?;
    let e = s
        .store
        .create_environment(&p.actor(o.id), pr.id, &b.key, &b.name)
        .await?;
    s.notify_publish();
    Ok(tagged(StatusCode::CREATED, e.version, &e))
}

/// An environment.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Environment)))]
pub async fn get_env(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, e.version, &e))
}

/// Renames an environment (publisher; `If-Match`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    request_body = Rename,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = Environment), (status = 412, body = super::error::ErrorBody)))]
pub async fn rename_env(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    headers: HeaderMap,
    Body(b): Body<Rename>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Publisher).await?;
    let expected = if_match(&headers)?;
    let e = s
        .store
        .rename_environment(&p.actor(o.id), e.id, expected, &b.name)
        .await?;
    Ok(tagged(StatusCode::OK, e.version, &e))
}

/// Deletes an environment, its configurations and segments (publisher;
/// `If-Match`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}", tag = "environments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_env(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Publisher).await?;
    let expected = if_match(&headers)?;
    s.store
        .delete_environment(&p.actor(o.id), e.id, expected)
        .await?;
    s.notify_publish();
    Ok(no_content())
}
