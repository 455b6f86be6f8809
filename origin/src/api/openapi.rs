//! The OpenAPI 3.1 document of the API, generated from the handlers'
//! annotations (utoipa) and served at `/api/v1/openapi.json`. A checked-in
//! copy (`docs/openapi.json`) is compared with it in CI.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{access, alerts, audit, events, experiments, flags, org, publish, rollouts};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's OpenAPI document.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = bunting_origin::api::openapi::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/api/v1/orgs/{org}/projects/{project}/flags"));
/// ```
#[derive(OpenApi)]
#[openapi(
    info(title = "bunting origin API", description = "Feature flags: organizations, projects, environments, flags, segments, layers, tokens, SDK keys, audit log, publishing, event ingestion, metrics, experiments and their results, guarded rollouts, rollbacks. Every endpoint but event ingestion and this document needs `Authorization: Bearer <token>`."),
    modifiers(&Bearer),
    security(("token" = [])),
    paths(
        org::list_orgs, org::create_org, org::get_org, org::rename_org, org::delete_org,
        org::list_projects, org::create_project, org::get_project, org::rename_project, org::delete_project,
        org::list_envs, org::create_env, org::get_env, org::rename_env, org::delete_env,
        flags::list_flags, flags::create_flag, flags::get_flag, flags::replace_flag, flags::delete_flag,
        flags::flag_history, flags::get_config, flags::replace_config, flags::toggle,
        flags::list_layers, flags::create_layer, flags::get_layer, flags::replace_layer, flags::delete_layer,
        flags::list_segments, flags::create_segment, flags::get_segment, flags::replace_segment, flags::delete_segment,
        flags::get_snapshot,
        access::list_tokens, access::create_token, access::revoke_token,
        access::list_keys, access::create_key, access::rotate_key, access::revoke_key,
        audit::list, audit::export, audit::verify,
        publish::status,
        events::ingest,
        experiments::list_metrics, experiments::create_metric, experiments::get_metric,
        experiments::replace_metric, experiments::delete_metric,
        experiments::list_experiments, experiments::create_experiment, experiments::get_experiment,
        experiments::replace_experiment, experiments::delete_experiment,
        experiments::start_experiment, experiments::stop_experiment, experiments::decide_experiment,
        experiments::experiment_results,
        alerts::alertmanager,
        rollouts::list_guarded_rollouts, rollouts::create_guarded_rollout, rollouts::get_guarded_rollout,
        rollouts::replace_guarded_rollout, rollouts::delete_guarded_rollout, rollouts::set_status,
    ),
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
