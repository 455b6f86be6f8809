//! Resolving the keys of a path (`/orgs/{org}/projects/{project}/…`) to
//! rows, checking the caller's role in the organization on the way.
//!
//! Each function takes the path structs of [`super::paths`] that name its
//! entity: [`project()`] any path in a project, [`env()`] any path in an
//! environment. Lookups go from the organization down, so the first key
//! that names nothing is the one the 404 reports.

use super::auth::Principal;
use super::paths::{InEnvironment, InProject};
use super::{ApiResult, AppState};
use crate::store::{Environment, FlagRecord, Organization, Project, Role};

/// The organization `org`, if the caller may act in it with `role`.
pub async fn org(
    state: &AppState,
    caller: &Principal,
    org: &str,
    role: Role,
) -> ApiResult<Organization> {
    let org = state.store.org_by_key(org).await?;
    caller.allow(&org, role)?;
    Ok(org)
}

/// The organization and project of `path`, checking `role`.
pub async fn project(
    state: &AppState,
    caller: &Principal,
    path: &impl InProject,
    role: Role,
) -> ApiResult<(Organization, Project)> {
    let org = org(state, caller, path.org(), role).await?;
    let project = state.store.project_by_key(org.id, path.project()).await?;
    Ok((org, project))
}

/// The organization, project and environment of `path`, checking `role`.
pub async fn env(
    state: &AppState,
    caller: &Principal,
    path: &impl InEnvironment,
    role: Role,
) -> ApiResult<(Organization, Project, Environment)> {
    let (org, project) = project(state, caller, path, role).await?;
    let env = state
        .store
        .environment_by_key(project.id, path.env())
        .await?;
    Ok((org, project, env))
}

/// The flag `flag` of the project of `path`, checking `role`.
pub async fn flag(
    state: &AppState,
    caller: &Principal,
    path: &impl InProject,
    flag: &str,
    role: Role,
) -> ApiResult<(Organization, Project, FlagRecord)> {
    let (org, project) = project(state, caller, path, role).await?;
    let flag = state.store.flag_by_key(project.id, flag).await?;
    Ok((org, project, flag))
}
