//! GitOps through the API: a project as a definition file
//! (`docs/flags.md`), the plan of applying a file to it, and the apply.
//!
//! - `GET …/definitions` exports the project (JSON, or YAML with
//!   `?format=yaml` or `Accept: application/yaml`), with the project's base
//!   as its `ETag`.
//! - `POST …/definitions/plan?prune=` answers what applying the file in the
//!   body (YAML or JSON, by `Content-Type`) would create, update and delete:
//!   a [`Plan`] of typed changes (see [`crate::store::plan`]).
//! - `PUT …/definitions?prune=&expectedBase=` applies it in one
//!   transaction, each entity audited as its own endpoint audits it;
//!   `expectedBase` (a plan's `base`) refuses with 412 when the project
//!   changed since that plan.
//!
//! A file with problems answers 422 naming every one at its `line:column`
//! (`path`) with its flag, segment or layer (`entity`), as `bunting
//! validate` prints them.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bunting_defs::Syntax;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::changes;
use super::paths::ProjectPath;
use super::{ApiError, ApiResult, AppState, scope};
use crate::export::{ExportError, export};
use crate::store::plan::{Change, ChangeKind, ChangeOp, Plan, ProjectState, file_problem};
use crate::store::{ChangeRequest, EnvChange, FlagSpec, NewChangeRequest, Permission, Problem};

/// The routes of a project's definitions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_definitions, apply_definitions))
        .routes(routes!(plan_definitions))
}

/// How to write the exported file.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `yaml`; `Accept: application/yaml` also asks for
    /// YAML.
    pub format: Option<String>,
}

/// Whether a plan deletes what the file no longer holds.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// Delete the flags, layers and segments (of the file's environments)
    /// the file does not hold; environments are never deleted.
    #[serde(default)]
    pub prune: bool,
}

/// How to apply a file.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ApplyQuery {
    /// Delete the flags, layers and segments (of the file's environments)
    /// the file does not hold; environments are never deleted.
    #[serde(default)]
    pub prune: bool,
    /// Apply only if the project is still in this state: a plan's `base`
    /// (or the `ETag` of `GET …/definitions`, without quotes). Otherwise 412.
    pub expected_base: Option<String>,
}

/// A query string that does not parse: 400 with axum's reason.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The media types of YAML.
const YAML_TYPES: [&str; 4] = [
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

/// The project as a definition file (viewer), with `ETag: "<base>"`, the
/// fingerprint a plan of it reports. 422 when the project cannot be written
/// as a file (no environment; a segment missing from some environments).
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/definitions", tag = "definitions",
    params(ProjectPath, ExportQuery),
    responses((status = 200, description = "the definition file, as JSON or YAML",
            content((Object = "application/json"), (String = "application/yaml"))),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn get_definitions(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    headers: HeaderMap,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = query(q)?;
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let yaml = match q.format.as_deref() {
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',').any(|m| {
                    m.split(';')
                        .next()
                        .is_some_and(|m| YAML_TYPES.contains(&m.trim()))
                })
            }),
        Some("json") => false,
        Some("yaml") => true,
        Some(other) => {
            return Err(ApiError::invalid(vec![Problem::new(
                "format",
                format!("{other:?} is not a definition-file format (json or yaml)"),
            )]));
        }
    };
    let base = state.store.project_state(project.id).await?.base();
    let doc = export(&state.store, project.id)
        .await
        .map_err(|e| match e {
            ExportError::Store(e) => e.into(),
            e @ (ExportError::NoEnvironments { .. } | ExportError::Segment { .. }) => {
                ApiError::invalid(vec![Problem::new("project", e.to_string())])
            }
            e @ ExportError::Changed(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            e @ ExportError::RoundTrip { .. } => ApiError::internal(e),
        })?;
    let (text, media) = if yaml {
        (doc.to_yaml(), "application/yaml; charset=utf-8")
    } else {
        (doc.to_json(), "application/json")
    };
    let mut r = text.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{base}\"")) {
        r.headers_mut().insert(header::ETAG, tag);
    }
    Ok(r)
}

/// What applying the definition file of the body would create, update and
/// delete (viewer: nothing changes). The body is YAML (`Content-Type:
/// application/yaml`) or JSON (`application/json`); a file with problems
/// answers 422 with each at its `line:column`.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/definitions/plan", tag = "definitions",
    params(ProjectPath, PlanQuery),
    request_body(description = "a definition file (docs/flags.md)",
        content((Object = "application/json"), (String = "application/yaml"))),
    responses((status = 200, body = Plan),
        (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn plan_definitions(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    q: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let q = query(q)?;
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let desired = read_file(&headers, &body)?;
    let plan = state
        .store
        .plan_definitions(project.id, &desired, q.prune)
        .await?;
    Ok(axum::Json(plan).into_response())
}

/// Applies the definition file of the body (editor) in one transaction:
/// creates and updates what differs, with `prune` deletes what the file no
/// longer holds, audits each entity as its own endpoint does and publishes.
/// Answers the plan it applied (no changes: nothing was written). With
/// `expectedBase`, 412 when the project is no longer in that state.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/definitions", tag = "definitions",
    params(ProjectPath, ApplyQuery),
    request_body(description = "a definition file (docs/flags.md)",
        content((Object = "application/json"), (String = "application/yaml"))),
    responses((status = 200, body = Applied),
        (status = 412, description = "the project is no longer at `expectedBase`: the body names the current base (`currentEtag`)", body = super::error::ErrorBody),
        (status = 409, description = "the file changes project-wide what an environment that needs approvals serves (a flag's variants, a deletion)", body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody),
        (status = 415, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn apply_definitions(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    q: Result<Query<ApplyQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let q = query(q)?;
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let desired = read_file(&headers, &body)?;
    let actor = caller.actor(org.id);
    let protected = changes::protected_envs(&state, &project).await?;
    if protected.is_empty() {
        let plan = state
            .store
            .apply_definitions(
                &actor,
                project.id,
                &desired,
                q.prune,
                q.expected_base.as_deref(),
            )
            .await?;
        if !plan.changes.is_empty() {
            state.notify_publish();
        }
        return Ok(axum::Json(Applied {
            plan,
            change_requests: Vec::new(),
        })
        .into_response());
    }
    // Protected environments' configurations and segments wait in a
    // change request each; the rest goes live now, on the base planned.
    let plan = state
        .store
        .plan_definitions(project.id, &desired, q.prune)
        .await?;
    let held = |c: &Change| {
        protected
            .iter()
            .any(|e| EnvChange::of_plan(c, &e.key).is_some())
    };
    let direct: Vec<Change> = plan.changes.iter().filter(|c| !held(c)).cloned().collect();
    // Project-wide changes to what protected environments serve cannot
    // wait in a change request: refused, as through their own endpoints
    // without breaking glass.
    let refused: Vec<String> = direct
        .iter()
        .filter(|c| alters_serving(c))
        .map(|c| format!("{} {}", c.kind.as_str(), c.target()))
        .collect();
    if !refused.is_empty() {
        let names: Vec<&str> = protected.iter().map(|e| e.key.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "protected_environment",
            format!(
                "{} would change what environment(s) {} serve, which need approvals, and a change \
                 request cannot hold project-wide changes: make them through their endpoints with \
                 Bunting-Bypass-Reason (changes.bypass), then apply again",
                refused.join(", "),
                names.join(", ")
            ),
        ));
    }
    let expected = q.expected_base.as_deref().unwrap_or(&plan.base);
    state
        .store
        .apply_changes(&actor, project.id, Some(expected), &direct)
        .await?;
    if !direct.is_empty() {
        state.notify_publish();
    }
    let mut change_requests = Vec::new();
    for env in &protected {
        let changes: Vec<EnvChange> = plan
            .changes
            .iter()
            .filter_map(|c| EnvChange::of_plan(c, &env.key))
            .collect();
        if changes.is_empty() {
            continue;
        }
        let new = NewChangeRequest {
            title: format!("apply definitions to {}/{}", project.key, env.key),
            description: format!(
                "Held by the environment's approval policy when {} applied a definition file (base {}).",
                caller.name(),
                plan.base
            ),
            changes,
            apply_at: None,
        };
        change_requests.push(
            state
                .store
                .open_change_request(&actor, &changes::identity(&caller), env.id, &new)
                .await?,
        );
    }
    Ok(axum::Json(Applied {
        plan,
        change_requests,
    })
    .into_response())
}

/// Whether `c` changes what every environment serves: a flag deleted or
/// served differently, a layer changed or deleted (creating either serves
/// nothing new: a new flag is off).
fn alters_serving(c: &Change) -> bool {
    let spec = |v: &Option<serde_json::Value>| {
        v.clone()
            .and_then(|v| serde_json::from_value::<FlagSpec>(v).ok())
    };
    match (c.kind, c.op) {
        (ChangeKind::Flag, ChangeOp::Delete) | (ChangeKind::Layer, ChangeOp::Delete) => true,
        (ChangeKind::Layer, ChangeOp::Update) => true,
        (ChangeKind::Flag, ChangeOp::Update) => match (spec(&c.before), spec(&c.after)) {
            (Some(a), Some(b)) => !a.serves_like(&b),
            _ => true,
        },
        _ => false,
    }
}

/// What an apply did: the plan, and the change requests it opened for the
/// environments whose policy holds changes for approval (their flag
/// configurations and segments are not live until those are applied).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// The plan applied.
    #[serde(flatten)]
    pub plan: Plan,
    /// Change requests opened instead of writing to protected
    /// environments.
    pub change_requests: Vec<ChangeRequest>,
}

/// The definition file of a request: YAML or JSON by `Content-Type`,
/// loaded and checked (422 with every problem at its position).
fn read_file(headers: &HeaderMap, body: &[u8]) -> ApiResult<ProjectState> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let syntax = match media.as_deref() {
        Some(m) if YAML_TYPES.contains(&m) => Syntax::Yaml,
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) =>
        {
            Syntax::Json
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the definition file as Content-Type: application/yaml or application/json",
            ));
        }
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("the definition file is not UTF-8: {e}")))?;
    if text.contains('\0') {
        return Err(ApiError::invalid(vec![Problem::new(
            "body",
            "the definition file contains a NUL character, which the store cannot hold",
        )]));
    }
    let file = bunting_defs::load(text, syntax)
        .map_err(|d| ApiError::invalid(d.iter().map(file_problem).collect()))?;
    ProjectState::from_file(&file).map_err(ApiError::invalid)
}
