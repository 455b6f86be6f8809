//! Resolving the keys of a path (`/orgs/{org}/projects/{project}/…`) to
//! rows, checking the caller's role in the organization on the way.

use super::auth::Principal;
use super::{ApiResult, AppState};
use crate::store::{Environment, FlagRecord, Organization, Project, Role};

/// The organization `org`, if the caller may act in it with `role`.
pub async fn org(s: &AppState, p: &Principal, org: &str, role: Role) -> ApiResult<Organization> {
    let o = s.store.org_by_key(org).await?;
    p.allow(&o, role)?;
    Ok(o)
}

/// The project `project` of `org`, checking `role`.
pub async fn project(
    s: &AppState,
    p: &Principal,
    (o, project): (&str, &str),
    role: Role,
) -> ApiResult<(Organization, Project)> {
    let o = org(s, p, o, role).await?;
    let pr = s.store.project_by_key(o.id, project).await?;
    Ok((o, pr))
}

/// The environment `env` of `org/project`, checking `role`.
pub async fn env(
    s: &AppState,
    p: &Principal,
    (o, pr, env): (&str, &str, &str),
    role: Role,
) -> ApiResult<(Organization, Project, Environment)> {
    let (o, pr) = project(s, p, (o, pr), role).await?;
    let e = s.store.environment_by_key(pr.id, env).await?;
    Ok((o, pr, e))
}

/// The flag `flag` of `org/project`, checking `role`.
pub async fn flag(
    s: &AppState,
    p: &Principal,
    (o, pr, flag): (&str, &str, &str),
    role: Role,
) -> ApiResult<(Organization, Project, FlagRecord)> {
    let (o, pr) = project(s, p, (o, pr), role).await?;
    let f = s.store.flag_by_key(pr.id, flag).await?;
    Ok((o, pr, f))
}
