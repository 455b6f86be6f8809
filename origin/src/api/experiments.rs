//! Metrics (per project), experiments (per environment) with their
//! lifecycle, and experiment results.
//!
//! Roles are those of flags: viewers read (results included), editors
//! write. Every versioned entity is served with `ETag`; replacing, deleting
//! and every lifecycle transition (`start`, `stop`, `decide`) need
//! `If-Match`. None of these writes changes what the edge serves, so none
//! wakes the publisher.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::if_match;
use super::org::Items;
use super::{ApiError, ApiResult, AppState, scope};
use crate::results::{self, ExperimentResults};
use crate::store::experiments::{
    Decision, ExperimentRecord, ExperimentSpec, MetricRecord, MetricSpec,
};
use crate::store::{Environment, Organization, Problem, Project, Role, StoreError};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    let p = "/orgs/{org}/projects/{project}";
    let x = "/orgs/{org}/projects/{project}/environments/{env}/experiments";
    Router::new()
        .route(
            &format!("{p}/metrics"),
            get(list_metrics).post(create_metric),
        )
        .route(
            &format!("{p}/metrics/{{metric}}"),
            get(get_metric).put(replace_metric).delete(delete_metric),
        )
        .route(x, get(list_experiments).post(create_experiment))
        .route(
            &format!("{x}/{{experiment}}"),
            get(get_experiment)
                .put(replace_experiment)
                .delete(delete_experiment),
        )
        .route(&format!("{x}/{{experiment}}/start"), post(start_experiment))
        .route(&format!("{x}/{{experiment}}/stop"), post(stop_experiment))
        .route(
            &format!("{x}/{{experiment}}/decide"),
            post(decide_experiment),
        )
        .route(
            &format!("{x}/{{experiment}}/results"),
            get(experiment_results),
        )
}

/// The metrics of a project, by key.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/metrics", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = Items<MetricRecord>)))]
pub async fn list_metrics(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
) -> ApiResult<Json<Items<MetricRecord>>> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.metrics(pr.id).await?,
    }))
}

/// Creates a metric (editor): conversion, mean, sum or ratio of an event
/// within an attribution window after exposure.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/metrics", tag = "experiments",
    request_body = MetricSpec, params(("org" = String, Path), ("project" = String, Path)),
    responses((status = 201, body = MetricRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_metric(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project)): Path<(String, String)>,
    Body(spec): Body<MetricSpec>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let m = s.store.create_metric(&p.actor(o.id), pr.id, &spec).await?;
    Ok(tagged(StatusCode::CREATED, m.version, &m))
}

/// A metric.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("metric" = String, Path)),
    responses((status = 200, body = MetricRecord)))]
pub async fn get_metric(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, metric)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (_, pr) = scope::project(&s, &p, (&org, &project), Role::Viewer).await?;
    let m = s.store.metric_by_key(pr.id, &metric).await?;
    Ok(tagged(StatusCode::OK, m.version, &m))
}

/// Replaces a metric's definition (editor; `If-Match`); the key cannot
/// change.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    request_body = MetricSpec,
    params(("org" = String, Path), ("project" = String, Path), ("metric" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = MetricRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_metric(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, metric)): Path<(String, String, String)>,
    headers: HeaderMap,
    Body(spec): Body<MetricSpec>,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let m = s.store.metric_by_key(pr.id, &metric).await?;
    let expected = if_match(&headers)?;
    let m = s
        .store
        .update_metric(&p.actor(o.id), m.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, m.version, &m))
}

/// Deletes a metric (editor; `If-Match`); refused with 409 `in_use` while
/// an experiment or a guarded rollout of the project uses it (any
/// status): the message names every user, and `problems` lists them one
/// by one (path `metric`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("metric" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 409, body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_metric(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, metric)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, pr) = scope::project(&s, &p, (&org, &project), Role::Editor).await?;
    let m = s.store.metric_by_key(pr.id, &metric).await?;
    let expected = if_match(&headers)?;
    match s.store.delete_metric(&p.actor(o.id), m.id, expected).await {
        Ok(()) => Ok(no_content()),
        // The store's only `Invalid` on delete: the metric is in use.
        Err(StoreError::Invalid(problems)) => {
            let users = s.store.metric_users(pr.id, &metric).await?;
            let names: Vec<String> = users.iter().map(ToString::to_string).collect();
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                "in_use",
                format!(
                    "metric {metric:?} is in use and cannot be deleted: it is used by {}; delete \
                     them or remove the metric from them first",
                    names.join(", ")
                ),
            );
            e.problems = problems;
            Err(e)
        }
        Err(e) => Err(e.into()),
    }
}

/// The experiment `key` of `org/project/env`, checking `role`.
async fn experiment(
    s: &AppState,
    p: &Principal,
    (o, pr, env, key): (&str, &str, &str, &str),
    role: Role,
) -> ApiResult<(Organization, Project, Environment, ExperimentRecord)> {
    let (o, pr, e) = scope::env(s, p, (o, pr, env), role).await?;
    let x = s.store.experiment_by_key(e.id, key).await?;
    Ok((o, pr, e, x))
}

/// The experiments of an environment, by key.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Items<ExperimentRecord>)))]
pub async fn list_experiments(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Items<ExperimentRecord>>> {
    let (_, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Viewer).await?;
    Ok(Json(Items {
        items: s.store.experiments(e.id).await?,
    }))
}

/// Creates an experiment in `draft` (editor): a flag whose variants are the
/// arms, the control, the planned allocation, the primary, secondary and
/// guardrail metrics. Every problem answers 422.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments", tag = "experiments",
    request_body = ExperimentSpec, params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path)),
    responses((status = 201, body = ExperimentRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env)): Path<(String, String, String)>,
    Body(spec): Body<ExperimentSpec>,
) -> ApiResult<Response> {
    let (o, _, e) = scope::env(&s, &p, (&org, &project, &env), Role::Editor).await?;
    let x = s
        .store
        .create_experiment(&p.actor(o.id), e.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, x.version, &x))
}

/// An experiment: definition, status, start and stop times, decision.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path)),
    responses((status = 200, body = ExperimentRecord)))]
pub async fn get_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (_, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Viewer).await?;
    Ok(tagged(StatusCode::OK, x.version, &x))
}

/// Replaces an experiment's definition (editor; `If-Match`). A running
/// experiment keeps its flag, control, allocation, layer and primary
/// metric; stopped and decided ones are read-only (422).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    request_body = ExperimentSpec,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(spec): Body<ExperimentSpec>,
) -> ApiResult<Response> {
    let (o, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let x = s
        .store
        .update_experiment(&p.actor(o.id), x.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, x.version, &x))
}

/// Deletes an experiment (editor; `If-Match`); a running one must be
/// stopped first (422). Its exposures and metric events stay.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Editor).await?;
    let expected = if_match(&headers)?;
    s.store
        .delete_experiment(&p.actor(o.id), x.id, expected)
        .await?;
    Ok(no_content())
}

/// Starts an experiment: `draft` → `running` (editor; `If-Match`; no body).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/start", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn start_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let x = s
        .store
        .start_experiment(&p.actor(o.id), x.id, expected)
        .await?;
    Ok(tagged(StatusCode::OK, x.version, &x))
}

/// Stops an experiment: `running` → `stopped` (editor; `If-Match`; no body).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/stop", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn stop_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (o, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let x = s
        .store
        .stop_experiment(&p.actor(o.id), x.id, expected)
        .await?;
    Ok(tagged(StatusCode::OK, x.version, &x))
}

/// Records a decision: `running` or `stopped` → `decided` (editor;
/// `If-Match`). The variant must be an arm; `decidedBy` and `decidedAt` are
/// set by the server.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/decide", tag = "experiments",
    request_body = Decision,
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ("If-Match" = String, Header)),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn decide_experiment(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    Body(decision): Body<Decision>,
) -> ApiResult<Response> {
    let (o, _, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Editor).await?;
    let expected = if_match(&headers)?;
    let x = s
        .store
        .decide_experiment(&p.actor(o.id), x.id, expected, &decision)
        .await?;
    Ok(tagged(StatusCode::OK, x.version, &x))
}

/// Options of the results endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// `json` (default) or `csv` (one row per metric and arm);
    /// `Accept: text/csv` also asks for CSV.
    pub format: Option<String>,
}

/// An experiment's results: users per arm, per metric and arm the value,
/// variance, absolute and relative lift over control with intervals, the
/// fixed-horizon p-value (Holm-adjusted with more than two arms), the
/// sequential (always-valid) p-value and confidence sequence, the chance to
/// beat control and expected loss, the CUPED-adjusted lift when pre-exposure
/// data exist, the sample-ratio-mismatch check (`untrustworthy: true` and a
/// warning when p < 0.001), users exposed to several arms, and the daily
/// cumulative lift of the primary metric (viewer). `?format=csv` or
/// `Accept: text/csv` answers CSV, one row per metric and arm.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/results", tag = "experiments",
    params(("org" = String, Path), ("project" = String, Path), ("env" = String, Path), ("experiment" = String, Path), ResultsQuery),
    responses((status = 200, description = "the results as JSON, or as CSV (one row per metric and arm)",
            content((ExperimentResults = "application/json"), (String = "text/csv"))),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn experiment_results(
    State(s): State<AppState>,
    p: Principal,
    Path((org, project, env, key)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    q: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let accepts_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|m| m.split(';').next().is_some_and(|m| m.trim() == "text/csv"))
        });
    let csv = match q.format.as_deref() {
        None => accepts_csv,
        Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(vec![Problem::new(
                "format",
                format!("{other:?} is not a results format (json or csv)"),
            )]));
        }
    };
    let (_, pr, _, x) = experiment(&s, &p, (&org, &project, &env, &key), Role::Viewer).await?;
    let r = results::load(&s.store, pr.id, &x).await?;
    if csv {
        let mut resp = results::to_csv(&r).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        Ok(resp)
    } else {
        Ok(Json::<ExperimentResults>(r).into_response())
    }
}
