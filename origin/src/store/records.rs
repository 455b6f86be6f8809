//! The stored entities.

use std::collections::BTreeMap;

use bunting_core::model::{LayerSlot, Prerequisite, Rule, Segment};
use bunting_core::{FlagType, Serve};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// An organization, the top of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Organization {
    /// Row id.
    pub id: i64,
    /// Unique key (see `CreateNamed`).
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 64
    )]
    pub key: String,
    /// Display name.
    pub name: String,
    /// Optimistic-concurrency version, 1 on create, +1 per update.
    pub version: i64,
}

/// A project of an organization; flags and layers belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// Row id.
    pub id: i64,
    /// The organization.
    pub org_id: i64,
    /// Key, unique in the organization (see `CreateNamed`).
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 64
    )]
    pub key: String,
    /// Display name.
    pub name: String,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// An environment of a project (`production`, `staging`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Row id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// Key, unique in the project (see `CreateNamed`); the snapshot's
    /// `environment` is `org/project/key`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 64
    )]
    pub key: String,
    /// Display name.
    pub name: String,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// The snapshot version: +1 on every change to what the environment
    /// serves (its flags, configurations, segments, layers).
    pub snapshot_version: i64,
}

/// A project's flag definition: what is shared by every environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagSpec {
    /// Key, unique in the project: 1–200 characters of
    /// `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 200
    )]
    pub key: String,
    /// Value type: `boolean`, `string`, `number` or `json`.
    #[schema(value_type = String, example = "boolean")]
    pub flag_type: FlagType,
    /// Variant name → value.
    #[schema(value_type = Object)]
    pub variants: BTreeMap<String, Value>,
    /// Served when the flag is off.
    pub off_variant: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Bucketing salt (defaults to the key in the engine).
    #[serde(default)]
    pub salt: Option<String>,
    /// Bucketing attribute.
    #[serde(default)]
    pub bucket_by: Option<String>,
    /// Mutual-exclusion layer slot: `{"key": layer, "start": b, "end": e}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub layer: Option<LayerSlot>,
    /// Available to client-side SDKs: client SDK keys evaluate only flags
    /// with `clientSide: true` (server keys evaluate every flag). Default
    /// `false`; sent only when true, so that other flags read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_side: bool,
}

impl FlagSpec {
    /// Whether `other` serves what this serves: the same type, variants,
    /// off variant, bucketing, layer slot and client-side availability
    /// (description, owner and tags aside).
    ///
    /// ```
    /// use bunting_origin::store::FlagSpec;
    /// let a = FlagSpec::boolean("beta");
    /// let mut b = a.clone();
    /// b.description = Some("docs".into());
    /// assert!(a.serves_like(&b));
    /// b.off_variant = "on".into();
    /// assert!(!a.serves_like(&b));
    /// ```
    pub fn serves_like(&self, other: &FlagSpec) -> bool {
        self.flag_type == other.flag_type
            && self.variants == other.variants
            && self.off_variant == other.off_variant
            && self.salt == other.salt
            && self.bucket_by == other.bucket_by
            && self.layer == other.layer
            && self.client_side == other.client_side
    }

    /// A boolean flag with variants `on`/`off`, off by default.
    ///
    /// ```
    /// let f = bunting_origin::store::FlagSpec::boolean("dark-mode");
    /// assert_eq!(f.off_variant, "off");
    /// ```
    pub fn boolean(key: &str) -> FlagSpec {
        FlagSpec {
            key: key.into(),
            flag_type: FlagType::Boolean,
            variants: BTreeMap::from([
                ("on".into(), Value::Bool(true)),
                ("off".into(), Value::Bool(false)),
            ]),
            off_variant: "off".into(),
            description: None,
            owner: None,
            tags: Vec::new(),
            salt: None,
            bucket_by: None,
            layer: None,
            client_side: false,
        }
    }
}

/// A stored flag.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagRecord {
    /// Row id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: FlagSpec,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// Archived: left out of every snapshot (the edge answers it as a
    /// missing flag) and of the flag list (unless `?archived=true`), and
    /// unchangeable until restored. Sent only when true, so that a served
    /// flag reads as before (a client's read-modify-write of the
    /// definition strips `id`, `projectId` and `version`, as ever).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(default = false)]
    pub archived: bool,
}

/// A flag's per-environment configuration, as in LaunchDarkly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigSpec {
    /// Kill switch: off serves `offVariant`.
    pub enabled: bool,
    /// Targeting rules, first match wins (docs/rules.md).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub rules: Vec<Rule>,
    /// Served when no rule matches: `{"variant": v}` or a rollout.
    #[schema(value_type = Object)]
    pub fallthrough: Serve,
    /// Flags that must serve a variant first.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub prerequisites: Vec<Prerequisite>,
}

/// A stored flag configuration.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlagConfig {
    /// The flag.
    pub flag_id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The configuration.
    #[serde(flatten)]
    pub spec: ConfigSpec,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// A stored segment of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The segment as the engine sees it.
    #[schema(value_type = Object)]
    pub segment: Segment,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// A stored mutual-exclusion layer of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerRecord {
    /// Row id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The layer as the engine sees it.
    #[schema(value_type = Object)]
    pub layer: bunting_core::model::Layer,
    /// Optimistic-concurrency version.
    pub version: i64,
}

/// Who is writing, for the audit log.
///
/// ```
/// let who = bunting_origin::store::Actor::new("ana@example.com").request("req-1");
/// assert_eq!(who.request_id.as_deref(), Some("req-1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// User or token name.
    pub name: String,
    /// The request id, if the write comes from an API request.
    pub request_id: Option<String>,
    /// The organization whose data the write changes (recorded with each
    /// audit entry so that organizations see only their own entries).
    pub org_id: Option<i64>,
    /// Break glass: the reason this write may change environments whose
    /// policy needs approvals. Each such environment it touches gets a
    /// `bypass` audit entry with the reason (and a `breakGlass` event) in
    /// the write's own transaction.
    pub bypass: Option<String>,
}

impl Actor {
    /// An actor without a request id.
    pub fn new(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            request_id: None,
            org_id: None,
            bypass: None,
        }
    }

    /// The same actor with a request id.
    pub fn request(mut self, id: impl Into<String>) -> Actor {
        self.request_id = Some(id.into());
        self
    }

    /// The same actor acting in organization `org_id`.
    pub fn in_org(mut self, org_id: i64) -> Actor {
        self.org_id = Some(org_id);
        self
    }
}
