//! Flags, their per-environment configurations (with the kill switch),
//! flag history, segments, layers and environment snapshots.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use bunting_core::Snapshot;
use bunting_core::model::{Layer, Segment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::changes::{self, Bypass};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{ConfigPath, EnvPath, FlagPath, LayerPath, ProjectPath, SegmentPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{
    AuditEntry, AuditQuery, ChangeRequest, ConfigSpec, EnvChange, FlagConfig, FlagFilter,
    FlagRecord, FlagSpec, FlagSummary, LayerRecord, Permission, SegmentRecord, StoreError,
};

/// The routes of flags, their configurations, layers, segments and
/// snapshots.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flags, create_flag))
        .routes(routes!(get_flag, replace_flag, delete_flag))
        .routes(routes!(archive_flag))
        .routes(routes!(restore_flag))
        .routes(routes!(flag_history))
        .routes(routes!(get_config, replace_config))
        .routes(routes!(toggle))
        .routes(routes!(list_layers, create_layer))
        .routes(routes!(get_layer, replace_layer, delete_layer))
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(get_segment, replace_segment, delete_segment))
        .routes(routes!(get_snapshot))
}

/// Filters and paging of the flag list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlagListQuery {
    /// Only flags with this tag.
    pub tag: Option<String>,
    /// Only flags of this type (`boolean`, `string`, `number`, `json`).
    #[serde(rename = "type")]
    pub flag_type: Option<String>,
    /// Only flags whose key or description contains this (any case).
    pub q: Option<String>,
    /// The previous page's `next`.
    pub after: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
    /// `true`: archived flags only; `false` (default): served flags only.
    pub archived: Option<bool>,
}

/// A page of flags.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagPage {
    /// The flags, by key, each with its state in every environment and its
    /// last change.
    pub items: Vec<FlagSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The flags of a project, filtered and paginated by key; each with its
/// state in every environment of the project (`environments`) and its last
/// change (`updatedAt`, `updatedBy`). Archived flags are listed only with
/// `archived=true`, which lists only them.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/flags", tag = "flags",
    params(ProjectPath, FlagListQuery),
    responses((status = 200, body = FlagPage)))]
pub async fn list_flags(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    query: Result<Query<FlagListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<FlagPage>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let flag_type = query
        .flag_type
        .map(|t| {
            serde_json::from_value(serde_json::Value::String(t.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown flag type {t:?}")))
        })
        .transpose()?;
    let (items, next) = state
        .store
        .flags_page(
            project.id,
            &FlagFilter {
                tag: query.tag,
                flag_type,
                query: query.q,
                after: query.after,
                limit: query.limit.unwrap_or(100),
                archived: query.archived.unwrap_or(false),
            },
        )
        .await?;
    let items = state.store.flag_summaries(&items).await?;
    Ok(Json(FlagPage { items, next }))
}

/// Creates a flag (editor); it starts off in every environment.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/flags", tag = "flags", request_body = FlagSpec,
    params(ProjectPath),
    responses((status = 201, body = FlagRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    Body(spec): Body<FlagSpec>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let flag = state
        .store
        .create_flag(&caller.actor(org.id), project.id, &spec)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::CREATED, flag.version, &flag))
}

/// A flag's definition.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags",
    params(FlagPath),
    responses((status = 200, body = FlagRecord)))]
pub async fn get_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
) -> ApiResult<Response> {
    let (_, _, flag) = scope::flag(&state, &caller, &path, &path.flag, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, flag.version, &flag))
}

/// Replaces a flag's definition (editor; `If-Match`). The key cannot change.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags", request_body = FlagSpec,
    params(FlagPath, IfMatch, Bypass),
    responses((status = 200, body = FlagRecord), (status = 409, description = "the flag is archived, or the change alters what an environment that needs approvals serves: break glass", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
    if_match: IfMatch,
    bypass: Bypass,
    Body(spec): Body<FlagSpec>,
) -> ApiResult<Response> {
    let (org, project, flag) =
        scope::flag(&state, &caller, &path, &path.flag, Permission::FlagsWrite).await?;
    served(&flag)?;
    let expected = if_match.version()?;
    if spec.key != flag.spec.key {
        return Err(ApiError::invalid(vec![crate::store::Problem::new(
            "key",
            format!("the key cannot change (it is {:?})", flag.spec.key),
        )]));
    }
    let mut actor = caller.actor(org.id);
    if !spec.serves_like(&flag.spec) {
        actor.bypass = changes::guard_project_write(
            &state,
            &caller,
            (&org, &project),
            &format!("flag {}'s definition", flag.spec.key),
            &bypass,
        )
        .await?;
    }
    let flag = state
        .store
        .update_flag(&actor, flag.id, expected, &spec)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::OK, flag.version, &flag))
}

/// Deletes a flag and its configurations (editor; `If-Match`).
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags",
    params(FlagPath, IfMatch, Bypass),
    responses((status = 204), (status = 409, description = "an environment of the project needs approvals: break glass", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
    if_match: IfMatch,
    bypass: Bypass,
) -> ApiResult<Response> {
    let (org, project, flag) =
        scope::flag(&state, &caller, &path, &path.flag, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let mut actor = caller.actor(org.id);
    actor.bypass = changes::guard_project_write(
        &state,
        &caller,
        (&org, &project),
        &format!("deleting flag {}", flag.spec.key),
        &bypass,
    )
    .await?;
    state.store.delete_flag(&actor, flag.id, expected).await?;
    state.notify_publish();
    Ok(no_content())
}

/// Archives a flag (editor; `If-Match`): every environment's snapshot
/// leaves it out (the edge answers it as a missing flag), the list hides it
/// and it cannot change until restored. Refused (409 `prerequisite`) while
/// a served flag names it as a prerequisite; archiving an archived flag
/// answers it unchanged.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/flags/{flag}/archive", tag = "flags",
    params(FlagPath, IfMatch, Bypass),
    responses((status = 200, body = FlagRecord), (status = 409, description = "a served flag names it as a prerequisite, or an environment of the project needs approvals: break glass", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn archive_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
    if_match: IfMatch,
    bypass: Bypass,
) -> ApiResult<Response> {
    set_archived(state, caller, path, if_match, bypass, true).await
}

/// Restores an archived flag as it was (editor; `If-Match`): served again
/// in every environment. Refused (409 `prerequisite`) while its
/// prerequisites name archived flags; restoring a served flag answers it
/// unchanged.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/flags/{flag}/restore", tag = "flags",
    params(FlagPath, IfMatch, Bypass),
    responses((status = 200, body = FlagRecord), (status = 409, description = "its prerequisites name archived flags, or an environment of the project needs approvals: break glass", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn restore_flag(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
    if_match: IfMatch,
    bypass: Bypass,
) -> ApiResult<Response> {
    set_archived(state, caller, path, if_match, bypass, false).await
}

/// Archives or restores: a project-wide change of what is served, which a
/// protected environment's change request cannot hold (as deleting).
async fn set_archived(
    state: AppState,
    caller: Principal,
    path: FlagPath,
    if_match: IfMatch,
    bypass: Bypass,
    archived: bool,
) -> ApiResult<Response> {
    let (org, project, flag) =
        scope::flag(&state, &caller, &path, &path.flag, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let mut actor = caller.actor(org.id);
    if flag.archived != archived {
        let what = if archived { "archiving" } else { "restoring" };
        actor.bypass = changes::guard_project_write(
            &state,
            &caller,
            (&org, &project),
            &format!("{what} flag {}", flag.spec.key),
            &bypass,
        )
        .await?;
    }
    let flag = if archived {
        state.store.archive_flag(&actor, flag.id, expected).await?
    } else {
        state.store.restore_flag(&actor, flag.id, expected).await?
    };
    state.notify_publish();
    Ok(tagged(StatusCode::OK, flag.version, &flag))
}

/// Refuses a change to an archived flag (409 `archived`) before it can
/// become a change request.
fn served(flag: &FlagRecord) -> ApiResult<()> {
    if flag.archived {
        return Err(StoreError::Archived {
            key: flag.spec.key.clone(),
        }
        .into());
    }
    Ok(())
}

/// Paging of a history or audit query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries after this sequence number (the previous page's `next`).
    pub after: Option<i64>,
    /// Page size, 1–1000 (default 100).
    pub limit: Option<u32>,
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntries {
    /// The entries, oldest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// A flag's history: every change to its definition and configurations,
/// with before/after, actor, time and request id.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/flags/{flag}/history", tag = "flags",
    params(FlagPath, PageQuery),
    responses((status = 200, body = AuditEntries)))]
pub async fn flag_history(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<FlagPath>,
    paging: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditEntries>> {
    let Query(paging) = paging.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (org, _, flag) = scope::flag(&state, &caller, &path, &path.flag, Permission::Read).await?;
    let page = state
        .store
        .audit_log(&AuditQuery {
            entity_types: vec!["flag".into(), "flagConfig".into()],
            entity_id: Some(flag.id),
            org_id: Some(org.id),
            after_seq: paging.after.unwrap_or(0),
            limit: paging.limit.unwrap_or(100),
            ..AuditQuery::default()
        })
        .await?;
    Ok(Json(AuditEntries {
        items: page.entries,
        next: page.next,
    }))
}

/// A flag's configuration in an environment.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", tag = "flags",
    params(ConfigPath),
    responses((status = 200, body = FlagConfig)))]
pub async fn get_config(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ConfigPath>,
) -> ApiResult<Response> {
    let (_, _, env, flag) =
        scope::flag_in_env(&state, &caller, &path, &path.flag, Permission::Read).await?;
    let config = state.store.flag_config(flag.id, env.id).await?;
    Ok(tagged(StatusCode::OK, config.version, &config))
}

/// Replaces a flag's configuration in an environment: on/off, rules,
/// fallthrough, prerequisites (editor; `If-Match`). Every problem answers
/// 422, rule-language errors with line and column.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", tag = "flags",
    request_body = ConfigSpec,
    params(ConfigPath, IfMatch, Bypass),
    responses((status = 200, body = FlagConfig), (status = 202, description = "the environment needs approvals: a change request was opened instead", body = ChangeRequest), (status = 409, description = "the flag is archived", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_config(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ConfigPath>,
    if_match: IfMatch,
    bypass: Bypass,
    Body(spec): Body<ConfigSpec>,
) -> ApiResult<Response> {
    let (org, project, env, flag) =
        scope::flag_in_env(&state, &caller, &path, &path.flag, Permission::FlagsWrite).await?;
    served(&flag)?;
    let expected = if_match.version()?;
    let change = EnvChange::FlagConfig {
        flag: flag.spec.key.clone(),
        config: spec.clone(),
        base_version: Some(expected),
    };
    let bypassed = async || {
        let config = state.store.flag_config(flag.id, env.id).await?;
        Ok(tagged(StatusCode::OK, config.version, &config))
    };
    if let Some(answer) = changes::gate(
        &state,
        &caller,
        (&org, &project, &env),
        change,
        (&bypass, false),
        bypassed,
    )
    .await?
    {
        return Ok(answer);
    }
    let config = state
        .store
        .update_flag_config(&caller.actor(org.id), flag.id, env.id, expected, &spec)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::OK, config.version, &config))
}

/// Body of the kill switch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    /// `false` turns the flag off (it serves its `offVariant`), `true` on.
    pub enabled: bool,
}

/// The kill switch: turns a flag on or off in an environment at once,
/// whatever else changed meanwhile (editor; no `If-Match`).
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}/toggle", tag = "flags",
    request_body = Toggle,
    params(ConfigPath, Bypass),
    responses((status = 200, body = FlagConfig), (status = 202, description = "the environment needs approvals: a change request was opened instead", body = ChangeRequest), (status = 409, description = "the flag is archived", body = super::error::ErrorBody)))]
pub async fn toggle(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ConfigPath>,
    bypass: Bypass,
    Body(toggle): Body<Toggle>,
) -> ApiResult<Response> {
    let (org, project, env, flag) =
        scope::flag_in_env(&state, &caller, &path, &path.flag, Permission::Killswitch).await?;
    served(&flag)?;
    let current = state.store.flag_config(flag.id, env.id).await?;
    if current.spec.enabled != toggle.enabled {
        let change = EnvChange::FlagConfig {
            flag: flag.spec.key.clone(),
            config: ConfigSpec {
                enabled: toggle.enabled,
                ..current.spec.clone()
            },
            base_version: Some(current.version),
        };
        let bypassed = async || {
            let config = state.store.flag_config(flag.id, env.id).await?;
            Ok(tagged(StatusCode::OK, config.version, &config))
        };
        if let Some(answer) = changes::gate(
            &state,
            &caller,
            (&org, &project, &env),
            change,
            (&bypass, true),
            bypassed,
        )
        .await?
        {
            return Ok(answer);
        }
    }
    let actor = caller.actor(org.id);
    // Read-modify-write of the one field; retried when a concurrent edit
    // of the other fields wins the race.
    for _ in 0..5 {
        let config = state.store.flag_config(flag.id, env.id).await?;
        if config.spec.enabled == toggle.enabled {
            return Ok(tagged(StatusCode::OK, config.version, &config));
        }
        let spec = ConfigSpec {
            enabled: toggle.enabled,
            ..config.spec
        };
        match state
            .store
            .update_flag_config(&actor, flag.id, env.id, config.version, &spec)
            .await
        {
            Ok(config) => {
                state.notify_publish();
                return Ok(tagged(StatusCode::OK, config.version, &config));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "busy",
        "the configuration kept changing; try again",
    ))
}

/// The layers of a project.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/layers", tag = "layers",
    params(ProjectPath), responses((status = 200, body = Items<LayerRecord>)))]
pub async fn list_layers(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
) -> ApiResult<Json<Items<LayerRecord>>> {
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.layers(project.id).await?,
    }))
}

/// Creates a mutual-exclusion layer (editor): `{"key", "salt"?, "bucketBy"?}`.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/layers", tag = "layers",
    request_body = Object, params(ProjectPath),
    responses((status = 201, body = LayerRecord), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_layer(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    Body(layer): Body<Layer>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let layer = state
        .store
        .create_layer(&caller.actor(org.id), project.id, &layer)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::CREATED, layer.version, &layer))
}

/// A layer.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    params(LayerPath),
    responses((status = 200, body = LayerRecord)))]
pub async fn get_layer(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<LayerPath>,
) -> ApiResult<Response> {
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let layer = state.store.layer_by_key(project.id, &path.layer).await?;
    Ok(tagged(StatusCode::OK, layer.version, &layer))
}

/// Replaces a layer's salt and bucketing attribute (editor; `If-Match`);
/// the key cannot change. A new salt reshuffles the layer's slots, so in a
/// project with an environment that needs approvals a change needs glass,
/// as a flag's definition does.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    request_body = Object,
    params(LayerPath, IfMatch, Bypass),
    responses((status = 200, body = LayerRecord), (status = 409, description = "an environment of the project needs approvals: break glass", body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_layer(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<LayerPath>,
    if_match: IfMatch,
    bypass: Bypass,
    Body(body): Body<Layer>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let layer = state.store.layer_by_key(project.id, &path.layer).await?;
    let expected = if_match.version()?;
    let mut actor = caller.actor(org.id);
    if body != layer.layer {
        actor.bypass = changes::guard_project_write(
            &state,
            &caller,
            (&org, &project),
            &format!("layer {}'s salt or bucketing", layer.layer.key),
            &bypass,
        )
        .await?;
    }
    let layer = state
        .store
        .update_layer(&actor, layer.id, expected, &body)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::OK, layer.version, &layer))
}

/// Deletes a layer (editor; `If-Match`); refused (422) while a flag uses it.
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    params(LayerPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_layer(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<LayerPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let layer = state.store.layer_by_key(project.id, &path.layer).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_layer(&caller.actor(org.id), layer.id, expected)
        .await?;
    state.notify_publish();
    Ok(no_content())
}

/// The segments of an environment.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/segments", tag = "segments",
    params(EnvPath),
    responses((status = 200, body = Items<SegmentRecord>)))]
pub async fn list_segments(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Items<SegmentRecord>>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.segments(env.id).await?,
    }))
}

/// Creates a segment (editor): `{"key", "included"?, "excluded"?, "if"?, "description"?}`.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/segments", tag = "segments",
    request_body = Object, params(EnvPath, Bypass),
    responses((status = 201, body = SegmentRecord), (status = 202, description = "the environment needs approvals: a change request was opened instead", body = ChangeRequest), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_segment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    bypass: Bypass,
    Body(segment): Body<Segment>,
) -> ApiResult<Response> {
    let (org, project, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let change = EnvChange::Segment {
        segment: segment.clone(),
        base_version: Some(0),
    };
    let bypassed = async || {
        let made = state.store.segment_by_key(env.id, &segment.key).await?;
        Ok(tagged(StatusCode::CREATED, made.version, &made))
    };
    if let Some(answer) = changes::gate(
        &state,
        &caller,
        (&org, &project, &env),
        change,
        (&bypass, false),
        bypassed,
    )
    .await?
    {
        return Ok(answer);
    }
    let segment = state
        .store
        .create_segment(&caller.actor(org.id), env.id, &segment)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::CREATED, segment.version, &segment))
}

/// A segment.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    params(SegmentPath),
    responses((status = 200, body = SegmentRecord)))]
pub async fn get_segment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<SegmentPath>,
) -> ApiResult<Response> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    let segment = state.store.segment_by_key(env.id, &path.segment).await?;
    Ok(tagged(StatusCode::OK, segment.version, &segment))
}

/// Replaces a segment (editor; `If-Match`).
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    request_body = Object,
    params(SegmentPath, IfMatch, Bypass),
    responses((status = 200, body = SegmentRecord), (status = 202, description = "the environment needs approvals: a change request was opened instead", body = ChangeRequest), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_segment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<SegmentPath>,
    if_match: IfMatch,
    bypass: Bypass,
    Body(body): Body<Segment>,
) -> ApiResult<Response> {
    let (org, project, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let segment = state.store.segment_by_key(env.id, &path.segment).await?;
    let expected = if_match.version()?;
    if body.key != path.segment {
        return Err(ApiError::invalid(vec![crate::store::Problem::new(
            "key",
            format!("the key cannot change (it is {:?})", path.segment),
        )]));
    }
    let change = EnvChange::Segment {
        segment: body.clone(),
        base_version: Some(expected),
    };
    let bypassed = async || {
        let now = state.store.segment_by_key(env.id, &path.segment).await?;
        Ok(tagged(StatusCode::OK, now.version, &now))
    };
    if let Some(answer) = changes::gate(
        &state,
        &caller,
        (&org, &project, &env),
        change,
        (&bypass, false),
        bypassed,
    )
    .await?
    {
        return Ok(answer);
    }
    let segment = state
        .store
        .update_segment(&caller.actor(org.id), segment.id, expected, &body)
        .await?;
    state.notify_publish();
    Ok(tagged(StatusCode::OK, segment.version, &segment))
}

/// Deletes a segment (editor; `If-Match`); refused (422) while a flag uses it.
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    params(SegmentPath, IfMatch, Bypass),
    responses((status = 204), (status = 202, description = "the environment needs approvals: a change request was opened instead", body = ChangeRequest), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_segment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<SegmentPath>,
    if_match: IfMatch,
    bypass: Bypass,
) -> ApiResult<Response> {
    let (org, project, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let segment = state.store.segment_by_key(env.id, &path.segment).await?;
    let expected = if_match.version()?;
    let change = EnvChange::DeleteSegment {
        key: path.segment.clone(),
        base_version: Some(expected),
    };
    let bypassed = async || Ok(no_content());
    if let Some(answer) = changes::gate(
        &state,
        &caller,
        (&org, &project, &env),
        change,
        (&bypass, false),
        bypassed,
    )
    .await?
    {
        return Ok(answer);
    }
    state
        .store
        .delete_segment(&caller.actor(org.id), segment.id, expected)
        .await?;
    state.notify_publish();
    Ok(no_content())
}

/// The environment's current sealed snapshot: exactly what the edge loads.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/snapshot", tag = "environments",
    params(EnvPath),
    responses((status = 200, body = Object)))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Snapshot>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(state.store.snapshot(env.id).await?))
}
