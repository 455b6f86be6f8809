//! Metrics (per project), experiments (per environment) with their
//! lifecycle, and experiment results.
//!
//! Roles are those of flags: viewers read (results included), editors
//! write. Every versioned entity is served with `ETag`; replacing, deleting
//! and every lifecycle transition (`start`, `stop`, `decide`) need
//! `If-Match`. None of these writes changes what the edge serves, so none
//! wakes the publisher.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::body::{Body, no_content, tagged};
use super::etag::IfMatch;
use super::org::Items;
use super::paths::{EnvPath, ExperimentPath, MetricPath, ProjectPath};
use super::{ApiError, ApiResult, AppState, scope};
use crate::model::experiment::{Decision, ExperimentRecord, ExperimentSpec};
use crate::model::metric::{MetricRecord, MetricSpec};
use crate::results::{self, ExperimentResults};
use crate::store::{Environment, Organization, Permission, Problem, Project, StoreError};

/// The routes of metrics, experiments and their results.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_metrics, create_metric))
        .routes(routes!(get_metric, replace_metric, delete_metric))
        .routes(routes!(list_experiments, create_experiment))
        .routes(routes!(
            get_experiment,
            replace_experiment,
            delete_experiment
        ))
        .routes(routes!(start_experiment))
        .routes(routes!(stop_experiment))
        .routes(routes!(decide_experiment))
        .routes(routes!(experiment_results))
}

/// The metrics of a project, by key.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/metrics", tag = "experiments",
    params(ProjectPath),
    responses((status = 200, body = Items<MetricRecord>)))]
pub async fn list_metrics(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
) -> ApiResult<Json<Items<MetricRecord>>> {
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.metrics(project.id).await?,
    }))
}

/// Creates a metric (editor): conversion, mean, sum or ratio of an event
/// within an attribution window after exposure.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/metrics", tag = "experiments",
    request_body = MetricSpec, params(ProjectPath),
    responses((status = 201, body = MetricRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_metric(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ProjectPath>,
    Body(spec): Body<MetricSpec>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let metric = state
        .store
        .create_metric(&caller.actor(org.id), project.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, metric.version, &metric))
}

/// A metric.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    params(MetricPath),
    responses((status = 200, body = MetricRecord)))]
pub async fn get_metric(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<MetricPath>,
) -> ApiResult<Response> {
    let (_, project) = scope::project(&state, &caller, &path, Permission::Read).await?;
    let metric = state.store.metric_by_key(project.id, &path.metric).await?;
    Ok(tagged(StatusCode::OK, metric.version, &metric))
}

/// Replaces a metric's definition (editor; `If-Match`); the key cannot
/// change.
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    request_body = MetricSpec,
    params(MetricPath, IfMatch),
    responses((status = 200, body = MetricRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_metric(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<MetricPath>,
    if_match: IfMatch,
    Body(spec): Body<MetricSpec>,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let metric = state.store.metric_by_key(project.id, &path.metric).await?;
    let expected = if_match.version()?;
    let metric = state
        .store
        .update_metric(&caller.actor(org.id), metric.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, metric.version, &metric))
}

/// Deletes a metric (editor; `If-Match`); refused with 409 `in_use` while
/// an experiment or a guarded rollout of the project uses it (any
/// status): the message names every user, and `problems` lists them one
/// by one (path `metric`).
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/metrics/{metric}", tag = "experiments",
    params(MetricPath, IfMatch),
    responses((status = 204), (status = 409, body = super::error::ErrorBody), (status = 412, body = super::error::ErrorBody)))]
pub async fn delete_metric(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<MetricPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, project) = scope::project(&state, &caller, &path, Permission::FlagsWrite).await?;
    let metric = state.store.metric_by_key(project.id, &path.metric).await?;
    let expected = if_match.version()?;
    match state
        .store
        .delete_metric(&caller.actor(org.id), metric.id, expected)
        .await
    {
        Ok(()) => Ok(no_content()),
        // The store's only `Invalid` on delete: the metric is in use.
        Err(StoreError::Invalid(problems)) => {
            let users = state.store.metric_users(project.id, &path.metric).await?;
            let names: Vec<String> = users.iter().map(ToString::to_string).collect();
            let mut e = ApiError::new(
                StatusCode::CONFLICT,
                "in_use",
                format!(
                    "metric {:?} is in use and cannot be deleted: it is used by {}; delete \
                     them or remove the metric from them first",
                    path.metric,
                    names.join(", ")
                ),
            );
            e.problems = problems;
            Err(e)
        }
        Err(e) => Err(e.into()),
    }
}

/// The experiment of `path`, checking `role`.
async fn experiment(
    state: &AppState,
    caller: &Principal,
    path: &ExperimentPath,
    p: Permission,
) -> ApiResult<(Organization, Project, Environment, ExperimentRecord)> {
    let (org, project, env) = scope::env(state, caller, path, p).await?;
    let experiment = state
        .store
        .experiment_by_key(env.id, &path.experiment)
        .await?;
    Ok((org, project, env, experiment))
}

/// The experiments of an environment, by key.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments", tag = "experiments",
    params(EnvPath),
    responses((status = 200, body = Items<ExperimentRecord>)))]
pub async fn list_experiments(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<Items<ExperimentRecord>>> {
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    Ok(Json(Items {
        items: state.store.experiments(env.id).await?,
    }))
}

/// Creates an experiment in `draft` (editor): a flag whose variants are the
/// arms, the control, the planned allocation, the primary, secondary and
/// guardrail metrics. Every problem answers 422.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments", tag = "experiments",
    request_body = ExperimentSpec, params(EnvPath),
    responses((status = 201, body = ExperimentRecord), (status = 409, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
    Body(spec): Body<ExperimentSpec>,
) -> ApiResult<Response> {
    let (org, _, env) = scope::env(&state, &caller, &path, Permission::FlagsWrite).await?;
    let experiment = state
        .store
        .create_experiment(&caller.actor(org.id), env.id, &spec)
        .await?;
    Ok(tagged(StatusCode::CREATED, experiment.version, &experiment))
}

/// An experiment: definition, status, start and stop times, decision.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    params(ExperimentPath),
    responses((status = 200, body = ExperimentRecord)))]
pub async fn get_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
) -> ApiResult<Response> {
    let (_, _, _, experiment) = experiment(&state, &caller, &path, Permission::Read).await?;
    Ok(tagged(StatusCode::OK, experiment.version, &experiment))
}

/// Replaces an experiment's definition (editor; `If-Match`). A running
/// experiment keeps its flag, control, allocation, layer and primary
/// metric; stopped and decided ones are read-only (422).
#[utoipa::path(put, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    request_body = ExperimentSpec,
    params(ExperimentPath, IfMatch),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn replace_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    if_match: IfMatch,
    Body(spec): Body<ExperimentSpec>,
) -> ApiResult<Response> {
    let (org, _, _, experiment) =
        experiment(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let experiment = state
        .store
        .update_experiment(&caller.actor(org.id), experiment.id, expected, &spec)
        .await?;
    Ok(tagged(StatusCode::OK, experiment.version, &experiment))
}

/// Deletes an experiment (editor; `If-Match`); a running one must be
/// stopped first (422). Its exposures and metric events stay.
#[utoipa::path(delete, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", tag = "experiments",
    params(ExperimentPath, IfMatch),
    responses((status = 204), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn delete_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, _, _, experiment) =
        experiment(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    state
        .store
        .delete_experiment(&caller.actor(org.id), experiment.id, expected)
        .await?;
    Ok(no_content())
}

/// Starts an experiment: `draft` → `running` (editor; `If-Match`; no body).
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/start", tag = "experiments",
    params(ExperimentPath, IfMatch),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn start_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, _, _, experiment) =
        experiment(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let experiment = state
        .store
        .start_experiment(&caller.actor(org.id), experiment.id, expected)
        .await?;
    Ok(tagged(StatusCode::OK, experiment.version, &experiment))
}

/// Stops an experiment: `running` → `stopped` (editor; `If-Match`; no body).
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/stop", tag = "experiments",
    params(ExperimentPath, IfMatch),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn stop_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    if_match: IfMatch,
) -> ApiResult<Response> {
    let (org, _, _, experiment) =
        experiment(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let experiment = state
        .store
        .stop_experiment(&caller.actor(org.id), experiment.id, expected)
        .await?;
    Ok(tagged(StatusCode::OK, experiment.version, &experiment))
}

/// Records a decision: `running` or `stopped` → `decided` (editor;
/// `If-Match`). The variant must be an arm; `decidedBy` and `decidedAt` are
/// set by the server.
#[utoipa::path(post, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/decide", tag = "experiments",
    request_body = Decision,
    params(ExperimentPath, IfMatch),
    responses((status = 200, body = ExperimentRecord), (status = 412, body = super::error::ErrorBody), (status = 422, body = super::error::ErrorBody)))]
pub async fn decide_experiment(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    if_match: IfMatch,
    Body(decision): Body<Decision>,
) -> ApiResult<Response> {
    let (org, _, _, experiment) =
        experiment(&state, &caller, &path, Permission::FlagsWrite).await?;
    let expected = if_match.version()?;
    let experiment = state
        .store
        .decide_experiment(&caller.actor(org.id), experiment.id, expected, &decision)
        .await?;
    Ok(tagged(StatusCode::OK, experiment.version, &experiment))
}

/// Options of the results endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// `json` (default), `csv` (one row per metric and arm) or `table`
    /// (the text `bunting experiment results` prints); `Accept: text/csv`
    /// also asks for CSV.
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
/// `Accept: text/csv` answers CSV, one row per metric and arm;
/// `?format=table` the plain-text table of `bunting experiment results`.
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/results", tag = "experiments",
    params(ExperimentPath, ResultsQuery),
    responses((status = 200, description = "the results as JSON, as CSV (one row per metric and arm) or as a text table",
            content((ExperimentResults = "application/json"), (String = "text/csv"), (String = "text/plain"))),
        (status = 422, body = super::error::ErrorBody)))]
pub async fn experiment_results(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<ExperimentPath>,
    headers: HeaderMap,
    query: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let accepts_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|m| m.split(';').next().is_some_and(|m| m.trim() == "text/csv"))
        });
    let (csv, table) = match query.format.as_deref() {
        None => (accepts_csv, false),
        Some("json") => (false, false),
        Some("csv") => (true, false),
        Some("table") => (false, true),
        Some(other) => {
            return Err(ApiError::invalid(vec![Problem::new(
                "format",
                format!("{other:?} is not a results format (json, csv or table)"),
            )]));
        }
    };
    let (_, project, _, experiment) = experiment(&state, &caller, &path, Permission::Read).await?;
    let (metrics, data) = state.store.results_data(project.id, &experiment).await?;
    let report = results::assemble(&results::Input {
        experiment: &experiment,
        metrics: &metrics,
        data: &data,
    });
    if table {
        let mut response = results::to_table(&report).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Ok(response)
    } else if csv {
        let mut response = results::to_csv(&report).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        Ok(response)
    } else {
        Ok(Json::<ExperimentResults>(report).into_response())
    }
}
