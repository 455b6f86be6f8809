//! Change management through the API: an environment's policy, its change
//! requests (open, review, apply, rebase, cancel, schedule), and the gate
//! every direct write to a protected environment passes ([`gate`]): it
//! opens a change request instead of going live (202), unless the caller
//! breaks glass with a reason (`Bunting-Bypass-Reason`), which the kill
//! switch may do and any other write only with `changes.bypass`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Required, schema::Object};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Principal, PrincipalKind};
use super::body::{Body, tagged};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{ChangePath, EnvPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::changes::MAX_APPROVALS;
use crate::store::{
    ChangeDiff, ChangeRequest, EnvChange, EnvPolicy, Environment, NewChangeRequest, Organization,
    Permission, Problem, Project,
};

/// The header that breaks glass, with the reason.
pub const BYPASS_HEADER: &str = "bunting-bypass-reason";

/// The routes of policies and change requests.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_policy, set_policy))
        .routes(routes!(list_changes, open_change))
        .routes(routes!(get_change))
        .routes(routes!(review_change))
        .routes(routes!(apply_change))
        .routes(routes!(rebase_change))
        .routes(routes!(cancel_change))
        .routes(routes!(schedule_change))
}

/// The caller's identity for change requests: `user:<email>` for a person
/// (however they authenticate), `token:<id>` for a service token, `admin`.
pub fn identity(caller: &Principal) -> String {
    match &caller.kind {
        PrincipalKind::Root => "admin".into(),
        PrincipalKind::Service(t) => format!("token:{}", t.id),
        PrincipalKind::User { user, .. } => user.actor_name(),
    }
}

/// The `Bunting-Bypass-Reason` header: a reason to break glass.
#[derive(Debug, Clone, Default)]
pub struct Bypass(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bypass {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Bypass, Infallible> {
        Ok(Bypass(
            parts
                .headers
                .get(BYPASS_HEADER)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        ))
    }
}

impl IntoParams for Bypass {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("Bunting-Bypass-Reason")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Break glass in an environment that needs approvals: apply at once, recording \
                     this reason in the audit log (the kill switch may; other writes need \
                     `changes.bypass`).",
                ))
                .schema(Some(Object::with_type(utoipa::openapi::Type::String)))
                .build(),
        ]
    }
}

/// Passes `change` through environment `env`'s policy. `None` when it
/// needs no approvals: the caller writes as usual. Otherwise the answer to
/// send: 202 with the change request opened by the caller, or — when the
/// caller breaks glass with a reason and may (`kill_switch`: the kill
/// switch's own emergency path) — the request applied at once and then
/// `bypassed()`, the answer the direct write would have given.
pub async fn gate(
    state: &AppState,
    caller: &Principal,
    (org, project, env): (&Organization, &Project, &Environment),
    change: EnvChange,
    (bypass, kill_switch): (&Bypass, bool),
    bypassed: impl AsyncFnOnce() -> ApiResult<Response>,
) -> ApiResult<Option<Response>> {
    if !state.store.policy(env.id).await?.protected() {
        return Ok(None);
    }
    let at = scope::of_env(env, project, org);
    if let Some(reason) = &bypass.0
        && !kill_switch
        && !caller.grants.allows(Permission::ChangesBypass, &at)
    {
        return Err(ApiError::forbidden(format!(
            "breaking glass needs the changes.bypass permission on environment {}/{}",
            project.key, env.key
        ))
        .logging("bypass refused", reason));
    }
    let title = format!("{} in {}", change.describe(), env.key);
    let new = NewChangeRequest {
        title,
        description: bypass.0.clone().unwrap_or_default(),
        changes: vec![change],
        apply_at: None,
    };
    let actor = caller.actor(org.id);
    let cr = state
        .store
        .open_change_request(&actor, &identity(caller), env.id, &new)
        .await?;
    if let Some(reason) = &bypass.0 {
        state
            .store
            .apply_change_request(&actor, cr.id, Some(reason))
            .await?;
        state.notify_publish();
        return bypassed().await.map(Some);
    }
    Ok(Some((StatusCode::ACCEPTED, Json(cr)).into_response()))
}

/// The environments of `project` whose policy needs approvals.
pub async fn protected_envs(state: &AppState, project: &Project) -> ApiResult<Vec<Environment>> {
    let mut out = Vec::new();
    for env in state.store.environments(project.id).await? {
        if state.store.policy(env.id).await?.protected() {
            out.push(env);
        }
    }
    Ok(out)
}

/// Guards a project-wide write that changes what every environment serves
/// (`what`: a flag's definition or its deletion), which a change request
/// cannot hold: refused (409 `protected_environment`) while an
/// environment of the project needs approvals, unless the caller breaks
/// glass — a reason in `Bunting-Bypass-Reason` and `changes.bypass` in each
/// such environment. Answers the reason to put on the write's actor
/// ([`crate::store::Actor::bypass`]), which records it per environment.
pub async fn guard_project_write(
    state: &AppState,
    caller: &Principal,
    (org, project): (&Organization, &Project),
    what: &str,
    bypass: &Bypass,
) -> ApiResult<Option<String>> {
    let protected = protected_envs(state, project).await?;
    if protected.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = protected.iter().map(|e| e.key.as_str()).collect();
    let Some(reason) = &bypass.0 else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "protected_environment",
            format!(
                "{what} changes what environment(s) {} serve, which need approvals; a change request \
                 cannot hold it: break glass (Bunting-Bypass-Reason, with changes.bypass) or change \
                 the environments' flag configurations through change requests instead",
                names.join(", ")
            ),
        ));
    };
    for env in &protected {
        caller.require(
            Permission::ChangesBypass,
            &scope::of_env(env, project, org),
            &org.key,
            &format!("environment {}/{}", project.key, env.key),
        )?;
    }
    Ok(Some(reason.clone()))
}

/// An environment's policy.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/policy", tag = "changes",
    params(EnvPath), responses((status = 200, body = EnvPolicy)))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<EnvPolicy>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(state.store.policy(env.id).await?))
}

/// Sets an environment's policy (`environments.write`): how many
/// approvals a change needs and who may approve. Roles and teams must
/// exist.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/environments/{env}/policy", tag = "changes",
    request_body = EnvPolicy, params(EnvPath),
    responses((status = 200, body = EnvPolicy), (status = 422, body = super::error::ErrorBody)))]
pub async fn set_policy(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    Body(policy): Body<EnvPolicy>,
) -> ApiResult<Json<EnvPolicy>> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::EnvironmentsWrite).await?;
    let mut problems = Vec::new();
    if policy.required_approvals > MAX_APPROVALS {
        problems.push(Problem::new(
            "requiredApprovals",
            format!(
                "{} is out of range: 0 to {MAX_APPROVALS}",
                policy.required_approvals
            ),
        ));
    }
    for (i, role) in policy.approver_roles.iter().enumerate() {
        if state.store.role_permissions(org.id, role).await?.is_none() {
            problems.push(Problem::new(
                format!("approverRoles[{i}]"),
                format!("no role {role:?} in this organization"),
            ));
        }
    }
    for (i, team) in policy.approver_teams.iter().enumerate() {
        if state.store.team_by_key(org.id, team).await.is_err() {
            problems.push(Problem::new(
                format!("approverTeams[{i}]"),
                format!("no team {team:?} in this organization"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    Ok(Json(
        state
            .store
            .set_policy(&caller.actor(org.id), env.id, &policy)
            .await?,
    ))
}

/// The change requests of an environment, newest first.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests", tag = "changes",
    params(EnvPath), responses((status = 200, body = Items<ChangeRequest>)))]
pub async fn list_changes(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Items<ChangeRequest>>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.change_requests(env.id).await?,
    }))
}

/// Opens a change request (`flags.write`): one or more changes to flag
/// configurations and segments, applied together once approved (or at
/// `applyAt`). In an environment without a policy it is approved at once:
/// a scheduled change.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests", tag = "changes",
    request_body = NewChangeRequest, params(EnvPath),
    responses((status = 201, body = ChangeRequest), (status = 422, body = super::error::ErrorBody)))]
pub async fn open_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    Body(new): Body<NewChangeRequest>,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let cr = state
        .store
        .open_change_request(&caller.actor(org.id), &identity(&caller), env.id, &new)
        .await?;
    Ok(tagged(StatusCode::CREATED, cr.version, &cr))
}

/// A change request with its diff against what is live now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    /// The request.
    #[serde(flatten)]
    pub request: ChangeRequest,
    /// Each change next to what is live.
    pub diff: Vec<ChangeDiff>,
    /// Approvals the environment's policy asks for.
    pub required_approvals: u32,
}

/// The change request of `path` in its environment, checking `p`.
async fn change(
    state: &AppState,
    caller: &Principal,
    path: &ChangePath,
    p: Permission,
) -> ApiResult<(Organization, Project, Environment, ChangeRequest)> {
    let (org, project, env) = scope::env(state, caller, path, p).await?;
    let cr = state.store.change_request(path.id).await?;
    if cr.environment_id != env.id {
        return Err(ApiError::not_found(format!("change request {}", path.id)));
    }
    Ok((org, project, env, cr))
}

async fn view(state: &AppState, request: ChangeRequest) -> ApiResult<Response> {
    let diff = state.store.change_diff(&request).await?;
    let required_approvals = state
        .store
        .policy(request.environment_id)
        .await?
        .required_approvals;
    let version = request.version;
    Ok(tagged(
        StatusCode::OK,
        version,
        &ChangeView {
            request,
            diff,
            required_approvals,
        },
    ))
}

/// A change request, with its diff against what is live.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}", tag = "changes",
    params(ChangePath), responses((status = 200, body = ChangeView)))]
pub async fn get_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
) -> ApiResult<Response> {
    let (_, _, _, cr) = change(&state, &caller, &path, Permission::Read).await?;
    view(&state, cr).await
}

/// A review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewReview {
    /// `approve`, `reject` or `comment`.
    pub verdict: Verdict,
    /// What the reviewer says.
    #[serde(default)]
    pub comment: String,
}

/// A review's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Approves.
    Approve,
    /// Rejects.
    Reject,
    /// Only comments.
    Comment,
}

/// Reviews a change request. Approving and rejecting need
/// `changes.approve` on the environment and, when the policy names
/// approvers, one of its roles (held at least) or teams; an author never
/// reviews their own request. Anyone who reads it may comment.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/reviews", tag = "changes",
    request_body = NewReview, params(ChangePath),
    responses((status = 200, body = ChangeRequest), (status = 422, body = super::error::ErrorBody)))]
pub async fn review_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
    Body(review): Body<NewReview>,
) -> ApiResult<Json<ChangeRequest>> {
    let (org, project, env, cr) = change(&state, &caller, &path, Permission::Read).await?;
    let actor = caller.actor(org.id);
    let who = identity(&caller);
    if review.verdict == Verdict::Comment {
        return Ok(Json(
            state
                .store
                .comment(&actor, &who, cr.id, &review.comment)
                .await?,
        ));
    }
    let at = scope::of_env(&env, &project, &org);
    caller.require(
        Permission::ChangesApprove,
        &at,
        &org.key,
        &format!("environment {}/{}", project.key, env.key),
    )?;
    let policy = state.store.policy(env.id).await?;
    if !policy.approver_roles.is_empty() || !policy.approver_teams.is_empty() {
        let mut ok = false;
        for role in &policy.approver_roles {
            if let Some(perms) = state.store.role_permissions(org.id, role).await? {
                ok |= caller.grants.allows_all(perms, &at);
            }
        }
        if let Some(user) = caller.person() {
            let mine = state.store.teams_of(user).await?;
            for team in &policy.approver_teams {
                if let Ok(t) = state.store.team_by_key(org.id, team).await {
                    ok |= mine.contains(&t.id);
                }
            }
        }
        if !ok {
            return Err(ApiError::forbidden(format!(
                "environment {} takes approvals from roles {:?} and teams {:?}; {} is in none",
                env.key,
                policy.approver_roles,
                policy.approver_teams,
                caller.name()
            )));
        }
    }
    Ok(Json(
        state
            .store
            .review(
                &actor,
                &who,
                cr.id,
                review.verdict == Verdict::Approve,
                &review.comment,
            )
            .await?,
    ))
}

/// Body of applying a change request.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyChange {
    /// Break glass: apply without the approvals the policy asks for
    /// (`changes.bypass`), recording this reason in the audit log.
    #[serde(default)]
    pub bypass_reason: Option<String>,
}

/// Applies an approved change request (`flags.write`): re-checks that
/// every change's base is still live (409 `stale_base` otherwise: rebase
/// it), then commits, audits and publishes exactly as a direct write.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/apply", tag = "changes",
    request_body = ApplyChange, params(ChangePath),
    responses((status = 200, body = ChangeRequest), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn apply_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
    Body(body): Body<ApplyChange>,
) -> ApiResult<Json<ChangeRequest>> {
    let (org, project, env, cr) = change(&state, &caller, &path, Permission::FlagsWrite).await?;
    let reason = body.bypass_reason.filter(|r| !r.trim().is_empty());
    if reason.is_some() {
        caller.require(
            Permission::ChangesBypass,
            &scope::of_env(&env, &project, &org),
            &org.key,
            &format!("environment {}/{}", project.key, env.key),
        )?;
    }
    let applied = state
        .store
        .apply_change_request(&caller.actor(org.id), cr.id, reason.as_deref())
        .await?;
    state.notify_publish();
    Ok(Json(applied))
}

/// Rebases a change request onto what is live now (`flags.write`); its
/// approvals no longer count.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/rebase", tag = "changes",
    params(ChangePath), responses((status = 200, body = ChangeRequest), (status = 422, body = super::error::ErrorBody)))]
pub async fn rebase_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
) -> ApiResult<Json<ChangeRequest>> {
    let (org, _, _, cr) = change(&state, &caller, &path, Permission::FlagsWrite).await?;
    Ok(Json(
        state
            .store
            .rebase_change_request(&caller.actor(org.id), cr.id)
            .await?,
    ))
}

/// Cancels a change request (its author, or `flags.write`).
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/cancel", tag = "changes",
    params(ChangePath), responses((status = 200, body = ChangeRequest), (status = 422, body = super::error::ErrorBody)))]
pub async fn cancel_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
) -> ApiResult<Json<ChangeRequest>> {
    let (org, project, env, cr) = change(&state, &caller, &path, Permission::Read).await?;
    if cr.author != identity(&caller) {
        caller.require(
            Permission::FlagsWrite,
            &scope::of_env(&env, &project, &org),
            &org.key,
            &format!("environment {}/{}", project.key, env.key),
        )?;
    }
    Ok(Json(
        state
            .store
            .cancel_change_request(&caller.actor(org.id), cr.id)
            .await?,
    ))
}

/// Body scheduling a change request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleChange {
    /// When it applies by itself once approved (RFC 3339); null: not
    /// scheduled.
    pub apply_at: Option<String>,
}

/// Schedules a change request (`flags.write`; `If-Match`): once approved
/// it applies by itself at `applyAt`, exactly once even with several
/// origins; a failure is reported on the request (`failed`, `error`).
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/schedule", tag = "changes",
    request_body = ScheduleChange, params(ChangePath, IfMatch),
    responses((status = 200, body = ChangeRequest), (status = 412, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn schedule_change(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ChangePath>,
    if_match: IfMatch,
    Body(body): Body<ScheduleChange>,
) -> ApiResult<Response> {
    let (org, _, _, cr) = change(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let cr = state
        .store
        .schedule_change_request(
            &caller.actor(org.id),
            cr.id,
            expected,
            body.apply_at.as_deref(),
        )
        .await?;
    Ok(tagged(StatusCode::OK, cr.version, &cr))
}
