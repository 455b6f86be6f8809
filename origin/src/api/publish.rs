//! Publication status of an environment:
//! `GET /api/v1/orgs/{org}/projects/{project}/environments/{env}/publish`.
//!
//! ```json
//! {"environment": "acme/web/production", "snapshotVersion": 12,
//!  "changedAt": "2026-11-25T10:00:00.000000Z", "pendingSince": null,
//!  "targets": [{"target": "cloudflare", "publishedVersion": 12,
//!               "publishedAt": "2026-11-25T10:00:00.410000Z", "attempts": 0,
//!               "lastError": null, "lastErrorPermanent": false,
//!               "lastAttemptAt": "2026-11-25T10:00:00.410000Z",
//!               "lagSeconds": 0.0}]}
//! ```
//!
//! `targets` lists the running publish loop's targets (and any other
//! target that has published the environment); `lagSeconds` is the age of
//! the oldest change the target does not have yet, 0 when it is current.
//! `lastErrorPermanent` says that the target cannot store the snapshot
//! (e.g. a key longer than its KV allows): it is not retried until the
//! environment changes (see [`crate::publish`]).

use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Principal;
use super::paths::EnvPath;
use super::scope;
use super::{ApiResult, AppState};
use crate::store::{Permission, PublishStatus};

/// The publication routes (merged under `/api/v1`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use bunting_origin::api::{AppState, ServeConfig, publish};
/// use bunting_origin::store::Store;
/// let state = AppState::new(Store::open("sqlite::memory:").await.unwrap(), ServeConfig::default());
/// let (router, doc) = publish::routes().split_for_parts();
/// assert!(doc.paths.paths.contains_key("/orgs/{org}/projects/{project}/environments/{env}/publish"));
/// let _app: axum::Router = router.with_state(state);
/// # });
/// ```
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The publication state of one environment (viewer).
#[utoipa::path(get, path = "/orgs/{org}/projects/{project}/environments/{env}/publish", tag = "publishing",
    params(EnvPath),
    responses((status = 200, body = PublishStatus), (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    caller: Principal,
    Path(path): Path<EnvPath>,
) -> ApiResult<Json<PublishStatus>> {
    // AUTH: viewer is enough (wired through the shared path resolver).
    let (_, _, env) = scope::env(&state, &caller, &path, Permission::Read).await?;
    let mut status = state.store.publish_status(env.id).await?;
    if let Some(handle) = &state.publish {
        for target in handle.targets() {
            if !status.targets.iter().any(|t| &t.target == target) {
                let pending = status.target(target);
                status.targets.push(pending);
            }
        }
        status.targets.sort_by(|a, b| a.target.cmp(&b.target));
        for t in &mut status.targets {
            t.last_error_permanent = handle.permanent_error(env.id, &t.target).is_some();
        }
    }
    Ok(Json(status))
}
