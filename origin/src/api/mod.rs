//! The origin's HTTP API, on axum: a versioned JSON REST API under
//! `/api/v1`, its OpenAPI 3.1 document at `/api/v1/openapi.json`, and the
//! operational endpoints `/healthz`, `/readyz` and `/metrics`.
//!
//! Every `/api/v1` endpoint except the OpenAPI document and event ingestion
//! (which takes the ingest secret) needs `Authorization: Bearer <token>`;
//! see [`auth`] for the roles. Every response carries `X-Request-Id` (the
//! client's, or a new one), which the audit log records with each change.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::api::{AppState, ServeConfig, router};
//! use bunting_origin::store::Store;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let app = router(AppState::new(store, ServeConfig::default()));
//! # let _ = app;
//! # });
//! ```

pub mod access;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod body;
pub mod changes;
pub mod definitions;
pub mod error;
pub mod etag;
pub mod events;
pub mod experiments;
pub mod flags;
pub mod me;
pub mod observe;
pub mod openapi;
mod ops;
pub mod org;
pub mod paths;
pub mod people;
pub mod publish;
pub mod request_id;
pub mod rollouts;
pub mod scope;
pub mod session;
pub mod signin;
pub mod text;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderName;
use axum::middleware;
use axum::routing::get;
use tower_http::request_id::PropagateRequestIdLayer;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ApiResult};

use crate::metrics::Metrics;
use crate::store::Store;

/// The request-id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the API is configured with.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// The bootstrap administrator token (raw). It may create organizations
    /// and act in every organization; keep it secret, use it to make
    /// organization tokens.
    pub admin_token: Option<String>,
    /// The secret the edge (and other producers) send as
    /// `Authorization: Bearer <secret>` to `POST /api/v1/events`.
    pub ingest_secret: Option<String>,
    /// The operator's credential for `GET /metrics` (a Prometheus scraper's
    /// bearer token). The metrics name every tenant's environments, so they
    /// are not public: `/metrics` takes this token or the administrator
    /// token, and answers 401 to anything else.
    pub metrics_token: Option<String>,
    /// How people sign in: the identity provider, sessions, bootstrap
    /// sign-in links.
    pub auth: session::AuthConfig,
    /// Where the web console's files come from (`--console-dir`, else the
    /// copy embedded in the binary).
    pub console: crate::console::ConsoleSource,
}

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Configuration.
    pub config: Arc<ServeConfig>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the publisher after a committed change (the publisher also
    /// polls, so a missed wake-up only delays).
    pub publish_wakeup: Arc<tokio::sync::Notify>,
    /// The publish loop, when this process runs one (started with
    /// `PublishOptions { wakeup: state.publish_wakeup.clone(), .. }`): the
    /// publication status lists its targets even before they publish.
    pub publish: Option<crate::publish::PublishHandle>,
    /// The event ingestion pipeline of `POST /api/v1/events` (its writers
    /// start with the first batch). Replace it to change its options:
    /// `state.ingest = Ingest::new(state.store.clone(), state.metrics.clone(), options)`.
    pub ingest: crate::ingest::Ingest,
    /// Webhook notifications (rollbacks).
    pub notifier: crate::notify::Notifier,
    /// The identity provider's client (discovery and keys cached), when
    /// `config.auth.oidc` names one.
    pub oidc: Option<Arc<crate::oidc::OidcClient>>,
}

impl AppState {
    /// State over `store` with fresh metrics.
    pub fn new(store: Store, config: ServeConfig) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let ingest = crate::ingest::Ingest::new(
            store.clone(),
            metrics.clone(),
            crate::ingest::IngestOptions::default(),
        );
        let oidc = config.auth.oidc.clone().map(crate::oidc::OidcClient::new);
        AppState {
            store,
            oidc,
            config: Arc::new(config),
            metrics,
            ingest,
            publish_wakeup: Arc::new(tokio::sync::Notify::new()),
            publish: None,
            notifier: crate::notify::Notifier::new(Vec::new()),
        }
    }

    /// Tells the publisher that a change was committed.
    pub fn notify_publish(&self) {
        self.publish_wakeup.notify_one();
    }
}

/// Where the versioned API lives.
const API_PREFIX: &str = "/api/v1";

/// Every documented route of the API, relative to [`API_PREFIX`]. Each
/// module's `routes()` registers its handlers with `routes!`, which takes
/// the path and method from the handler's `#[utoipa::path]`: adding an
/// endpoint is its handler plus its name in its module's `routes()`, and
/// the OpenAPI document ([`openapi`]) is built from this same router.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(org::routes())
        .merge(flags::routes())
        .merge(access::routes())
        .merge(tokens::routes())
        .merge(people::routes())
        .merge(me::routes())
        .merge(changes::routes())
        .merge(audit::routes())
        .merge(publish::routes())
        .merge(events::routes())
        .merge(experiments::routes())
        .merge(alerts::routes())
        .merge(rollouts::routes())
        .merge(definitions::routes())
        .merge(webhooks::routes())
}

/// The whole application: API, OpenAPI document, health, metrics and the
/// web console ([`crate::console`]).
pub fn router(state: AppState) -> Router {
    let api = Router::from(routes()).route("/openapi.json", get(openapi::serve));
    // Errors of the API are JSON; the console's pages (its 503 page) are not.
    let api = Router::new()
        .nest(API_PREFIX, api)
        .merge(ops::routes())
        .merge(signin::routes())
        .layer(middleware::map_response(error::json_errors));
    Router::new()
        .merge(api)
        .merge(crate::console::routes())
        .fallback(fallback)
        .layer(middleware::from_fn(text::uri))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::record,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// A request no route took: the console's (a deep link of the
/// application), else the JSON 404.
async fn fallback(
    axum::extract::State(state): axum::extract::State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match crate::console::fallback(&state, &method, uri.path(), &headers).await {
        Some(response) => response,
        None => ApiError::not_found("route").into_response(),
    }
}
