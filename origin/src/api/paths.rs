//! The path parameters of the API, one struct per kind of resource.
//!
//! Each struct is both the `Path` extractor of its handlers and, through
//! [`IntoParams`], their documented parameters: a handler says
//! `params(FlagPath)` once instead of listing `org`, `project` and `flag`.
//! Fields are in the order of the path. They carry no doc comments on
//! purpose: those would become parameter descriptions in the OpenAPI
//! document, whose parameters are described by their names alone.
//!
//! [`InProject`] and [`InEnvironment`] give [`super::scope`] the keys it
//! resolves, whatever the rest of the path is.
//!
//! ```
//! use bunting_origin::api::paths::{InEnvironment, InProject, SegmentPath};
//! let path: SegmentPath = serde_json::from_value(serde_json::json!(
//!     {"org": "acme", "project": "web", "env": "production", "segment": "beta"}
//! )).unwrap();
//! assert_eq!((path.org(), path.project(), path.env()), ("acme", "web", "production"));
//! ```

use serde::Deserialize;
use utoipa::IntoParams;

/// A path in a project: `/orgs/{org}/projects/{project}/…`.
pub trait InProject {
    /// The organization's key.
    fn org(&self) -> &str;
    /// The project's key, unique in the organization.
    fn project(&self) -> &str;
}

/// A path in an environment: `/orgs/{org}/projects/{project}/environments/{env}/…`.
pub trait InEnvironment: InProject {
    /// The environment's key, unique in the project.
    fn env(&self) -> &str;
}

/// `/orgs/{org}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrgPath {
    pub(crate) org: String,
}

/// `/orgs/{org}/tokens/{id}`: an API token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    pub(crate) org: String,
    pub(crate) id: i64,
}

/// `/orgs/{org}/roles/{role}`: a role (built-in or custom).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RolePath {
    pub(crate) org: String,
    pub(crate) role: String,
}

/// `/orgs/{org}/teams/{team}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamPath {
    pub(crate) org: String,
    pub(crate) team: String,
}

/// `/orgs/{org}/bindings/{id}`: a role binding.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BindingPath {
    pub(crate) org: String,
    pub(crate) id: i64,
}

/// `/orgs/{org}/webhooks/{id}`: a webhook subscription.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    pub(crate) org: String,
    pub(crate) id: i64,
}

/// `/orgs/{org}/webhooks/{id}/deliveries/{delivery}`: a message of a
/// subscription, by its `webhook-id`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    pub(crate) org: String,
    pub(crate) id: i64,
    pub(crate) delivery: String,
}

/// `/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChangePath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
    pub(crate) id: i64,
}

/// `/orgs/{org}/projects/{project}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    pub(crate) org: String,
    pub(crate) project: String,
}

/// `/orgs/{org}/projects/{project}/flags/{flag}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FlagPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) flag: String,
}

/// `/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}`: a
/// flag's configuration in an environment.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConfigPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) flag: String,
    pub(crate) env: String,
}

/// `/orgs/{org}/projects/{project}/layers/{layer}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LayerPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) layer: String,
}

/// `/orgs/{org}/projects/{project}/metrics/{metric}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MetricPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) metric: String,
}

/// `/orgs/{org}/projects/{project}/environments/{env}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EnvPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
}

/// `/orgs/{org}/projects/{project}/environments/{env}/sdk-keys/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SdkKeyPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
    pub(crate) id: i64,
}

/// `/orgs/{org}/projects/{project}/environments/{env}/segments/{segment}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SegmentPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
    pub(crate) segment: String,
}

/// `/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ExperimentPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
    pub(crate) experiment: String,
}

/// `/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}`:
/// the guarded rollout of a flag.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RolloutPath {
    pub(crate) org: String,
    pub(crate) project: String,
    pub(crate) env: String,
    pub(crate) flag: String,
}

/// Implements [`InProject`] (and with `env`, [`InEnvironment`]) for paths
/// with those fields.
macro_rules! keys {
    (project: $($path:ty),+) => {$(
        impl InProject for $path {
            fn org(&self) -> &str {
                &self.org
            }
            fn project(&self) -> &str {
                &self.project
            }
        }
    )+};
    (env: $($path:ty),+) => {$(
        impl InEnvironment for $path {
            fn env(&self) -> &str {
                &self.env
            }
        }
    )+};
}

keys!(project: ProjectPath, FlagPath, ConfigPath, LayerPath, MetricPath, EnvPath, SdkKeyPath,
    SegmentPath, ExperimentPath, RolloutPath, ChangePath);
keys!(env: EnvPath, ConfigPath, ChangePath, SdkKeyPath, SegmentPath, ExperimentPath, RolloutPath);
