//! Resolving the keys of a path (`/orgs/{org}/projects/{project}/…`) to
//! rows, checking the caller's permission at the entity's scope on the way.
//!
//! Each function takes the path structs of [`super::paths`] that name its
//! entity: [`project()`] any path in a project, [`env()`] any path in an
//! environment. Lookups go from the organization down, so the first key
//! that names nothing is the one the 404 reports; a caller with nothing
//! in the organization gets 404 for the organization itself.

use super::auth::Principal;
use super::paths::{InEnvironment, InProject};
use super::{ApiResult, AppState};
use crate::store::{
    Environment, FlagRecord, Organization, Permission, Permissions, Problem, Project, Scope,
};

/// The organization `org`, if the caller may `p` in all of it.
pub async fn org(
    state: &AppState,
    caller: &Principal,
    org: &str,
    p: Permission,
) -> ApiResult<Organization> {
    let found = state.store.org_by_key(org).await?;
    caller.require(
        p,
        &Scope::Org { org: found.id },
        org,
        &format!("organization {org}"),
    )?;
    Ok(found)
}

/// The organization `org`, if the caller may `p` on all of it: held at the
/// organization's scope itself, not only inside it (the organization's
/// audit log, members and roles are not for a caller limited to one
/// project or environment).
pub async fn org_wide(
    state: &AppState,
    caller: &Principal,
    org: &str,
    p: Permission,
) -> ApiResult<Organization> {
    let found = visible_org(state, caller, org).await?;
    let at = Scope::Org { org: found.id };
    if !caller.grants.allows_all(Permissions::of(&[p]), &at) {
        return Err(super::ApiError::forbidden(format!(
            "this needs the {p} permission on all of organization {org}; {} does not have it there",
            caller.name()
        )));
    }
    Ok(found)
}

/// The organization `org`, if the caller holds anything in it (the
/// permission is then checked further down).
async fn visible_org(state: &AppState, caller: &Principal, org: &str) -> ApiResult<Organization> {
    let found = state.store.org_by_key(org).await?;
    if !caller.sees(&found) {
        return Err(super::ApiError::not_found(format!("organization {org}")));
    }
    Ok(found)
}

/// The scope of `project`.
pub fn of_project(project: &Project, org: &Organization) -> Scope {
    Scope::Project {
        org: org.id,
        project: project.id,
    }
}

/// The scope of `env`.
pub fn of_env(env: &Environment, project: &Project, org: &Organization) -> Scope {
    Scope::Environment {
        org: org.id,
        project: project.id,
        environment: env.id,
    }
}

/// The organization and project of `path`, if the caller may `p` in the
/// project.
pub async fn project(
    state: &AppState,
    caller: &Principal,
    path: &impl InProject,
    p: Permission,
) -> ApiResult<(Organization, Project)> {
    let org = visible_org(state, caller, path.org()).await?;
    let project = state.store.project_by_key(org.id, path.project()).await?;
    caller.require(
        p,
        &of_project(&project, &org),
        &org.key,
        &format!("project {}", project.key),
    )?;
    Ok((org, project))
}

/// The organization, project and environment of `path`, if the caller may
/// `p` in the environment.
pub async fn env(
    state: &AppState,
    caller: &Principal,
    path: &impl InEnvironment,
    p: Permission,
) -> ApiResult<(Organization, Project, Environment)> {
    let org = visible_org(state, caller, path.org()).await?;
    let project = state.store.project_by_key(org.id, path.project()).await?;
    let env = state
        .store
        .environment_by_key(project.id, path.env())
        .await?;
    caller.require(
        p,
        &of_env(&env, &project, &org),
        &org.key,
        &format!("environment {}/{}", project.key, env.key),
    )?;
    Ok((org, project, env))
}

/// The flag `flag` of the project of `path`, if the caller may `p` in the
/// project.
pub async fn flag(
    state: &AppState,
    caller: &Principal,
    path: &impl InProject,
    flag: &str,
    p: Permission,
) -> ApiResult<(Organization, Project, FlagRecord)> {
    let (org, project) = project(state, caller, path, p).await?;
    let flag = state.store.flag_by_key(project.id, flag).await?;
    Ok((org, project, flag))
}

/// The flag `flag` and the environment of `path` (a flag's configuration
/// in one environment), if the caller may `p` in the environment.
pub async fn flag_in_env(
    state: &AppState,
    caller: &Principal,
    path: &impl InEnvironment,
    flag: &str,
    p: Permission,
) -> ApiResult<(Organization, Project, Environment, FlagRecord)> {
    let (org, project, env) = env(state, caller, path, p).await?;
    let flag = state.store.flag_by_key(project.id, flag).await?;
    Ok((org, project, env, flag))
}

/// The scope a request body names inside organization `org`: all of it,
/// `project`, or `environment` of `project` (an environment needs its
/// project). Unknown keys are problems at `project` / `environment`.
pub async fn named(
    state: &AppState,
    org: &Organization,
    project: Option<&str>,
    environment: Option<&str>,
) -> Result<Scope, Vec<Problem>> {
    let Some(project_key) = project else {
        return match environment {
            Some(_) => Err(vec![Problem::new(
                "environment",
                "an environment scope also names its project",
            )]),
            None => Ok(Scope::Org { org: org.id }),
        };
    };
    let project = state
        .store
        .project_by_key(org.id, project_key)
        .await
        .map_err(|_| {
            vec![Problem::new(
                "project",
                format!("no project {project_key:?}"),
            )]
        })?;
    let Some(env_key) = environment else {
        return Ok(of_project(&project, org));
    };
    let env = state
        .store
        .environment_by_key(project.id, env_key)
        .await
        .map_err(|_| {
            vec![Problem::new(
                "environment",
                format!("no environment {env_key:?} in project {project_key:?}"),
            )]
        })?;
    Ok(of_env(&env, &project, org))
}
