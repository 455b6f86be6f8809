//! The origin's domain types and their validation: metrics, experiments,
//! guardrails and guarded rollouts, with the [`Problem`]s a definition can
//! have. No I/O: the store ([`crate::store`]) persists these types, the
//! results ([`crate::results`]) and the monitor ([`crate::monitor`]) read
//! them.
//!
//! ```
//! use bunting_origin::model::metric::{MetricKind, MetricSpec};
//! let mut ratio = MetricSpec::conversion("revenue-per-visit", "purchase");
//! ratio.kind = MetricKind::Ratio;
//! assert_eq!(ratio.problems()[0].path, "denominatorEvent");
//! ```

use std::collections::BTreeMap;

pub mod experiment;
pub mod guardrail;
pub(crate) mod key;
pub mod metric;
mod problem;
pub mod rollout;
pub mod webhook;

pub use problem::{Problem, SnapshotLocation};

/// What validating an experiment or a guarded rollout needs to know of its
/// flag.
#[derive(Debug, Clone, Copy)]
pub struct FlagFacts<'a> {
    /// The flag's variants: name → value.
    pub variants: &'a BTreeMap<String, serde_json::Value>,
    /// The key of the mutual-exclusion layer the flag is in, if any.
    pub layer: Option<&'a str>,
}
