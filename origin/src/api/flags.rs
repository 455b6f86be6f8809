//! Flags, their per-environment configurations (with the kill switch),
//! flag history, segments, layers and environment snapshots.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bunting_core::Snapshot;
use bunting_core::model::{Layer, Segment};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::if_match;
use super::org::Items;
use super::{ApiError, ApiResult, AppState, scope};
use crate::store::{
    AuditEntry, AuditQuery, ConfigSpec, FlagConfig, FlagFilter, FlagRecord, FlagSpec, LayerRecord,
    Role, SegmentRecord, StoreError,
};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    let p = "/orgs/{org}/projects/{project}";
    Router::new()
        .route(&format!("{p}/flags"), get(list_flags).post(create_flag))
        .route(
            &format!("{p}/flags/{{flag}}"),
            get(get_flag).put(replace_flag).delete(delete_flag),
        )
        .route(&format!("{p}/flags/{{flag}}/history"), get(flag_history))
        .route(
            &format!("{p}/flags/{{flag}}/environments/{{env}}"),
            get(get_config).put(replace_config),
        )
        .route(
            &format!("{p}/flags/{{flag}}/environments/{{env}}/toggle"),
            post(toggle),
        )
        .route(&format!("{p}/layers"), get(list_layers).post(create_layer))
        .route(
            &format!("{p}/layers/{{layer}}"),
            get(get_layer).put(replace_layer).delete(delete_layer),
        )
        .route(
            &format!("{p}/environments/{{env}}/segments"),
            get(list_segments).post(create_segment),
        )
        .route(
            &format!("{p}/environments/{{env}}/segments/{{segment}}"),
            get(get_segment).put(replace_segment).delete(delete_segment),
        )
        .route(
            &format!("{p}/environments/{{env}}/snapshot"),
            get(get_snapshot),
        )
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
}

/// A page of flags.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagPage {
    /// The flags, by key.
    pub items: Vec<FlagRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The flags of a project, filtered and paginated by key.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/flags", tag = "flags",
    params(("org" = String, Path), ("project" = String, Path), FlagListQuery),
    responses((status = 200, body = FlagPage)))]
pub async fn list_flags(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    q: Result<Query<FlagListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<FlagPage>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    let flag_type = q
        .flag_type
        .map(|t| {
            serde_json::from_value(serde_json::Value::String(t.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown flag type {t:?}")))
        })
        .transpose()?;
    let (items, next) = s
        .store
        .flags_page(
            pr.id,
            &FlagFilter {
                tag: q.tag,
                flag_type,
                query: q.q,
                after: q.after,
                limit: q.limit.unwrap_or(100),
            },
        )
        .await?;
    Ok(Json(FlagPage { items, next }))
}

/// Creates a flag (editor); it starts off in every environment.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/flags", tag = "flags", request_body = FlagSpec,
    params(("org" = String, Path), ("project" = String, Path)),
    responses((status = 201, body = FlagRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_flag(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    Body(spec): Body<FlagSpec>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let f = s.store.create_flag(&p.actor(o.id), pr.id, &spec).await?;
    s.notify_publish();
    Ok(tagged(StatusCode::CREATED, f.version, &f))
}

/// A flag's definition.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags",
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path)),
    responses((status = 200, body = FlagRecord)))]
pub async fn get_flag(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (_, _, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, f.version, &f))
}

/// Replaces a flag's definition (editor; `If-Match`). The key cannot change.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags", request_body = FlagSpec,
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = FlagRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_flag(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag)): Path<(String, String, String)>,
    headers: HeaderMap,
    Body(spec): Body<FlagSpec>,
) -> ApiResult<Response> {
    let (o, _, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Editor).await?;
    let expected = if_match(&headers)?;
    if spec.key != f.spec.key {
        return Err(ApiError::invalid(vec![crate::store::Problem::new(
            "key",
            format!("the key cannot change (it is {:?})", f.spec.key),
        )]));
    }
    let f = s
        .store
        .update_flag(&p.actor(o.id), f.id, expected, &spec)
        .await?;
    s.notify_publish();
    Ok(tagged(StatusCode::OK, f.version, &f))
}

/// Deletes a flag and its configurations (editor; `If-Match`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}", tag = "flags",
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_flag(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Editor).await?;
    let expected = if_match(&headers)?;
    s.store.delete_flag(&p.actor(o.id), f.id, expected).await?;
    s.notify_publish();
    Ok(no_content())
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
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}/history", tag = "flags",
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), PageQuery),
    responses((status = 200, body = AuditEntries)))]
pub async fn flag_history(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag)): Path<(String, String, String)>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<AuditEntries>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (o, _, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Viewer).await?;
    let page = s
        .store
        .audit_log(&AuditQuery {
            entity_types: vec!["flag".into(), "flagConfig".into()],
            entity_id: Some(f.id),
            org_id: Some(o.id),
            after_seq: q.after.unwrap_or(0),
            limit: q.limit.unwrap_or(100),
            ..AuditQuery::default()
        })
        .await?;
    Ok(Json(AuditEntries {
        items: page.entries,
        next: page.next,
    }))
}

/// A flag's configuration in an environment.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", tag = "flags",
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = FlagConfig)))]
pub async fn get_config(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag, env)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, pr, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Viewer).await?;
    let e = s.store.environment_by_key(pr.id, &env).await?;
    let c = s.store.flag_config(f.id, e.id).await?;
    Ok(tagged(StatusCode::OK, c.version, &c))
}

/// Replaces a flag's configuration in an environment: on/off, rules,
/// fallthrough, prerequisites (editor; `If-Match`). Every problem answers
/// 422, rule-language errors with line and column.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", tag = "flags",
    request_body = ConfigSpec,
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), ("env" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = FlagConfig), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_config(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag, env)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(spec): Body<ConfigSpec>,
) -> ApiResult<Response> {
    let (o, pr, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Editor).await?;
    let e = s.store.environment_by_key(pr.id, &env).await?;
    let expected = if_match(&headers)?;
    let c = s
        .store
        .update_flag_config(&p.actor(o.id), f.id, e.id, expected, &spec)
        .await?;
    s.notify_publish();
    Ok(tagged(StatusCode::OK, c.version, &c))
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
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}/toggle", tag = "flags",
    request_body = Toggle,
    params(("org" = String, Path), ("project" = String, Path), ("flag" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = FlagConfig)))]
pub async fn toggle(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, flag, env)): Path<(String, String, String, String)>,
    Body(t): Body<Toggle>,
) -> ApiResult<Response> {
    let (o, pr, f) = scope::flag(&s, &p, (&org, &project, &flag), Role::Editor).await?;
    let e = s.store.environment_by_key(pr.id, &env).await?;
    let actor = p.actor(o.id);
    // Read-modify-write of the one field; retried when a concurrent edit
    // of the other fields wins the race.
    for _ in 0..5 {
        let c = s.store.flag_config(f.id, e.id).await?;
        if c.spec.enabled == t.enabled {
            return Ok(tagged(StatusCode::OK, c.version, &c));
        }
        let spec = ConfigSpec {
            enabled: t.enabled,
            ..c.spec
        };
        match s
            .store
            .update_flag_config(&actor, f.id, e.id, c.version, &spec)
            .await
        {
            Ok(c) => {
                s.notify_publish();
                return Ok(tagged(StatusCode::OK, c.version, &c));
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
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/layers", tag = "layers",
    params(("org" = String, Path), ("project" = String, Path)), responses((status = 200, body = Items<LayerRecord>)))]
pub async fn list_layers(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Items<LayerRecord>>> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.layers(pr.id).await?,
    }))
}

/// Creates a mutual-exclusion layer (editor): `{"key", "salt"?, "bucketBy"?}`.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/layers", tag = "layers",
    request_body = Object, params(("org" = String, Path), ("project" = String, Path)),
    responses((status = 201, body = LayerRecord), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_layer(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    Body(layer): Body<Layer>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let l = s.store.create_layer(&p.actor(o.id), pr.id, &layer).await?;
    s.notify_publish();
    Ok(tagged(StatusCode::CREATED, l.version, &l))
}

/// A layer.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    params(("org" = String, Path), ("project" = String, Path), ("layer" = String, Path)),
    responses((status = 200, body = LayerRecord)))]
pub async fn get_layer(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, layer)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    let l = s.store.layer_by_key(pr.id, &layer).await?;
    Ok(tagged(StatusCode::OK, l.version, &l))
}

/// Replaces a layer's salt and bucketing attribute (editor; `If-Match`);
/// the key cannot change. A new salt reshuffles the layer's slots.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    request_body = Object,
    params(("org" = String, Path), ("project" = String, Path), ("layer" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = LayerRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_layer(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, layer)): Path<(String, String, String)>,
    headers: HeaderMap,
    Body(body): Body<Layer>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let l = s.store.layer_by_key(pr.id, &layer).await?;
    let expected = if_match(&headers)?;
    let l = s
        .store
        .update_layer(&p.actor(o.id), l.id, expected, &body)
        .await?;
    s.notify_publish();
    Ok(tagged(StatusCode::OK, l.version, &l))
}

/// Deletes a layer (editor; `If-Match`); refused (422) while a flag uses it.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/layers/{layer}", tag = "layers",
    params(("org" = String, Path), ("project" = String, Path), ("layer" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_layer(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, layer)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let l = s.store.layer_by_key(pr.id, &layer).await?;
    let expected = if_match(&headers)?;
    s.store.delete_layer(&p.actor(o.id), l.id, expected).await?;
    s.notify_publish();
    Ok(no_content())
}

/// The segments of an environment.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments", tag = "segments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Items<SegmentRecord>)))]
pub async fn list_segments(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Items<SegmentRecord>>> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.segments(e.id).await?,
    }))
}

/// Creates a segment (editor): `{"key", "included"?, "excluded"?, "if"?, "description"?}`.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments", tag = "segments",
    request_body = Object, params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 201, body = SegmentRecord), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_segment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    Body(seg): Body<Segment>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Editor).await?;
    let r = s.store.create_segment(&p.actor(o.id), e.id, &seg).await?;
    s.notify_publish();
    Ok(tagged(StatusCode::CREATED, r.version, &r))
}

/// A segment.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("segment" = String, Path)),
    responses((status = 200, body = SegmentRecord)))]
pub async fn get_segment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, segment)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    let r = s.store.segment_by_key(e.id, &segment).await?;
    Ok(tagged(StatusCode::OK, r.version, &r))
}

/// Replaces a segment (editor; `If-Match`).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    request_body = Object,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("segment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = SegmentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_segment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, segment)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(seg): Body<Segment>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Editor).await?;
    let r = s.store.segment_by_key(e.id, &segment).await?;
    let expected = if_match(&headers)?;
    if seg.key != segment {
        return Err(ApiError::invalid(vec![crate::store::Problem::new(
            "key",
            format!("the key cannot change (it is {segment:?})"),
        )]));
    }
    let r = s
        .store
        .update_segment(&p.actor(o.id), r.id, expected, &seg)
        .await?;
    s.notify_publish();
    Ok(tagged(StatusCode::OK, r.version, &r))
}

/// Deletes a segment (editor; `If-Match`); refused (422) while a flag uses it.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}", tag = "segments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("segment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_segment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, segment)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Editor).await?;
    let r = s.store.segment_by_key(e.id, &segment).await?;
    let expected = if_match(&headers)?;
    s.store
        .delete_segment(&p.actor(o.id), r.id, expected)
        .await?;
    s.notify_publish();
    Ok(no_content())
}

/// The environment's current sealed snapshot: exactly what the edge loads.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/snapshot", tag = "environments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Object)))]
pub async fn get_snapshot(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Snapshot>> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(Json(s.store.snapshot(e.id).await?))
}
