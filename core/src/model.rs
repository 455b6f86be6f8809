//! The flag model: the serde types of a snapshot as the origin publishes it.
//!
//! These types are plain data. [`crate::Engine`] validates and compiles them;
//! nothing here evaluates anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The snapshot schema version this build of the engine reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The context attribute used for bucketing when a flag names none.
pub const DEFAULT_BUCKET_BY: &str = "targetingKey";

/// The versioned document the origin publishes and every host loads.
///
/// ```
/// use bunting_core::Snapshot;
/// let snapshot: Snapshot = serde_json::from_str(r#"{
///   "schemaVersion": 1, "environment": "production", "version": 7,
///   "generatedAt": "2026-11-25T10:00:00Z",
///   "flags": [{"key": "dark-mode", "type": "boolean",
///              "variants": {"on": true, "off": false},
///              "offVariant": "off", "fallthrough": {"variant": "on"}}]
/// }"#).unwrap();
/// assert_eq!(snapshot.flags[0].key, "dark-mode");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    /// Schema version of this document; must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The environment this snapshot configures (e.g. `production`).
    pub environment: String,
    /// Monotonic version number, increased by every publish.
    pub version: u64,
    /// When the origin generated this snapshot (RFC 3339).
    pub generated_at: String,
    /// The flags, in display order.
    #[serde(default)]
    pub flags: Vec<Flag>,
    /// Reusable named conditions shared by the flags of this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// Experiment layers: mutually exclusive traffic splits shared by flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
    /// Integrity checksum, `sha256:<hex>` over the canonical form of every
    /// other field (see [`crate::snapshot::checksum`]). Optional in hand-written
    /// documents; always verified when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// The JSON type of a flag's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` / `false`.
    Boolean,
    /// A JSON string.
    String,
    /// A JSON number (integer or floating point).
    Number,
    /// A JSON object (structured configuration).
    Object,
}

impl FlagType {
    /// Every type, in the order of its number in the binary forms
    /// ([`crate::compact`], [`crate::packed`]).
    pub const ALL: [FlagType; 4] = [
        FlagType::Boolean,
        FlagType::String,
        FlagType::Number,
        FlagType::Object,
    ];

    /// Whether `value` has this type.
    ///
    /// ```
    /// use bunting_core::FlagType;
    /// assert!(FlagType::Number.admits(&serde_json::json!(1.5)));
    /// assert!(!FlagType::Boolean.admits(&serde_json::json!("true")));
    /// ```
    pub fn admits(self, value: &Value) -> bool {
        match self {
            FlagType::Boolean => value.is_boolean(),
            FlagType::String => value.is_string(),
            FlagType::Number => value.is_number(),
            FlagType::Object => value.is_object(),
        }
    }

    /// The lowercase name used in snapshots and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }
}

/// One feature flag's configuration in one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Flag {
    /// Unique key within the environment.
    pub key: String,
    /// Type of every variant value.
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    /// Named variants and their values.
    pub variants: BTreeMap<String, Value>,
    /// `false` is the kill switch: every evaluation serves `offVariant`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Variant served when the flag is off, a prerequisite fails, or a user
    /// falls outside the flag's layer range.
    pub off_variant: String,
    /// Targeting rules, tried in order; the first whose condition holds serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What to serve when no rule matches.
    pub fallthrough: Serve,
    /// Flags that must evaluate to a given variant for this one to be on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<Prerequisite>,
    /// Bucketing salt; defaults to the flag key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Context attribute (dotted path) to bucket by; defaults to `targetingKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    /// Membership in an experiment layer (mutually exclusive traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerSlot>,
    /// Available to client-side SDKs: client SDK keys see only flags with
    /// `clientSide: true` (server keys see every flag). Default `false`, and
    /// left out when `false`, so snapshots written before the field existed
    /// load, and keep their checksums, unchanged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub client_side: bool,
    /// Descriptive metadata, returned with every evaluation.
    #[serde(default)]
    pub metadata: FlagMetadata,
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_false(b: &bool) -> bool {
    !*b
}

/// Human metadata of a flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagMetadata {
    /// What the flag is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who owns it (team or person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A targeting rule: a condition in the rule language and what to serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier reported as `ruleId`; defaults to `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Optional human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Condition in the rule language (see `docs/rules.md`).
    pub condition: String,
    /// What a matching context is served.
    pub serve: Serve,
}

/// What a rule or the fallthrough serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Serve {
    /// One variant for everybody: `{"variant": "on"}`.
    Variant(String),
    /// A weighted split: `{"rollout": [{"variant": "a", "weight": 50}, …]}`.
    Rollout(Vec<WeightedVariant>),
    /// A percentage that ramps over time: `{"schedule": {…}}`.
    Schedule(Schedule),
}

/// One arm of a weighted rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedVariant {
    /// Variant name.
    pub variant: String,
    /// Share of users in percent, at most three decimals (0.001% granularity).
    /// The weights of a rollout sum to 100.
    pub weight: f64,
}

/// A gradual rollout whose percentage follows a timetable, evaluated against
/// the evaluation time, so a ramp needs no republish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedule {
    /// Variant served to the users inside the current percentage.
    pub variant: String,
    /// Variant served to everybody else.
    pub otherwise: String,
    /// Steps in strictly increasing time order. Before the first step the
    /// percentage is 0.
    pub steps: Vec<ScheduleStep>,
}

/// From `at` on, `percentage` percent of users get the schedule's variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleStep {
    /// RFC 3339 time the step takes effect.
    pub at: String,
    /// Percentage of users (0–100, at most three decimals).
    pub percentage: f64,
}

/// Prerequisite: flag `flag` must evaluate to `variant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisite {
    /// Key of the prerequisite flag.
    pub flag: String,
    /// Variant it must serve.
    pub variant: String,
}

/// A reusable named condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    /// Unique key, referenced as `segment("key")` in conditions.
    pub key: String,
    /// Targeting keys always in the segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included: Vec<String>,
    /// Targeting keys never in the segment (wins over everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<String>,
    /// Condition matching further members; may not reference segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Optional human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An experiment layer: flags in one layer own disjoint ranges of the layer's
/// buckets, so a user is in at most one of their experiments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Layer {
    /// Unique key.
    pub key: String,
    /// Bucketing salt; defaults to the layer key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// Context attribute to bucket by; defaults to `targetingKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
}

/// A flag's share of a layer: `[start, end)` in percent of the layer's buckets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerSlot {
    /// Layer key.
    pub key: String,
    /// Inclusive lower bound, percent.
    pub start: f64,
    /// Exclusive upper bound, percent.
    pub end: f64,
}
