//! Experiments: a flag's variants compared on metrics in one environment,
//! with a lifecycle `draft` → `running` → `stopped` → `decided`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::guardrail::{Guardrail, repeated_guardrails};
use super::key::check_key;
use super::{FlagFacts, Problem};

/// An experiment definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Key, unique in the environment: 1–200 characters of
    /// `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        pattern = "^(?!\\.\\.?$)[A-Za-z0-9._-]+$",
        min_length = 1,
        max_length = 200
    )]
    pub key: String,
    /// The flag whose variants are the arms.
    pub flag: String,
    /// The control variant.
    pub control: String,
    /// The hypothesis.
    #[serde(default)]
    pub hypothesis: Option<String>,
    /// Planned allocation: variant → weight (any positive scale); the
    /// sample-ratio-mismatch check compares against it. Empty: equal.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub allocation: BTreeMap<String, f64>,
    /// The mutual-exclusion layer (the flag's).
    #[serde(default)]
    pub layer: Option<String>,
    /// The primary metric.
    pub primary_metric: String,
    /// Secondary metrics.
    #[serde(default)]
    pub secondary_metrics: Vec<String>,
    /// Guardrails. A metric may carry several with different tolerances
    /// or actions (each is its own test, e.g. a tight one that alerts and
    /// a looser one that rolls back); an exact repeat is refused.
    #[serde(default)]
    pub guardrails: Vec<Guardrail>,
    /// Planned start (RFC 3339), informative.
    #[serde(default)]
    pub start_at: Option<String>,
    /// Planned stop (RFC 3339), informative.
    #[serde(default)]
    pub stop_at: Option<String>,
}

impl ExperimentSpec {
    /// An experiment on `flag` with `control` and `primary_metric`, equal
    /// allocation.
    pub fn new(key: &str, flag: &str, control: &str, primary_metric: &str) -> ExperimentSpec {
        ExperimentSpec {
            key: key.into(),
            flag: flag.into(),
            control: control.into(),
            hypothesis: None,
            allocation: BTreeMap::new(),
            layer: None,
            primary_metric: primary_metric.into(),
            secondary_metrics: Vec::new(),
            guardrails: Vec::new(),
            start_at: None,
            stop_at: None,
        }
    }
}

/// Where an experiment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExperimentStatus {
    /// Being defined; editable.
    Draft,
    /// Collecting data.
    Running,
    /// No longer collecting; awaiting a decision.
    Stopped,
    /// A decision is recorded.
    Decided,
}

impl ExperimentStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentStatus::Draft => "draft",
            ExperimentStatus::Running => "running",
            ExperimentStatus::Stopped => "stopped",
            ExperimentStatus::Decided => "decided",
        }
    }

    /// The status named `s` ([`ExperimentStatus::as_str`]), if any.
    ///
    /// ```
    /// use bunting_origin::model::experiment::ExperimentStatus;
    /// assert_eq!(ExperimentStatus::parse("running"), Some(ExperimentStatus::Running));
    /// assert_eq!(ExperimentStatus::parse("paused"), None);
    /// ```
    pub fn parse(s: &str) -> Option<ExperimentStatus> {
        Some(match s {
            "draft" => ExperimentStatus::Draft,
            "running" => ExperimentStatus::Running,
            "stopped" => ExperimentStatus::Stopped,
            "decided" => ExperimentStatus::Decided,
            _ => return None,
        })
    }
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    /// The variant chosen to ship.
    pub variant: String,
    /// Why.
    #[serde(default)]
    pub rationale: Option<String>,
    /// Who decided (set by the store).
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When (set by the store).
    #[serde(default)]
    pub decided_at: Option<String>,
}

/// A stored experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The definition.
    #[serde(flatten)]
    pub spec: ExperimentSpec,
    /// Lifecycle state.
    pub status: ExperimentStatus,
    /// When it started running.
    pub started_at: Option<String>,
    /// When it stopped.
    pub stopped_at: Option<String>,
    /// The decision, once decided.
    pub decision: Option<Decision>,
    /// Optimistic-concurrency version.
    pub version: i64,
}

impl ExperimentSpec {
    /// The keys of the metrics it reads, each once: the primary metric,
    /// the secondary metrics, then the guardrail metrics.
    ///
    /// ```
    /// use bunting_origin::model::experiment::ExperimentSpec;
    /// let mut x = ExperimentSpec::new("t", "checkout", "off", "purchased");
    /// x.secondary_metrics = vec!["revenue".into(), "purchased".into()];
    /// assert_eq!(x.metric_keys(), ["purchased", "revenue"]);
    /// ```
    pub fn metric_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        let all = std::iter::once(&self.primary_metric)
            .chain(&self.secondary_metrics)
            .chain(self.guardrails.iter().map(|g| &g.metric));
        for k in all {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// Every problem of this definition in a project where `flag` is what
    /// its flag is (`None`: the project has no such flag) and `metrics` are
    /// the keys of the project's metrics.
    pub fn problems(&self, flag: Option<FlagFacts<'_>>, metrics: &[String]) -> Vec<Problem> {
        let spec = self;
        let mut p = Vec::new();
        check_key(&mut p, &spec.key);
        match flag {
            None => p.push(Problem::new(
                "flag",
                format!("{:?} is not a flag of the project", spec.flag),
            )),
            Some(f) => {
                if !f.variants.contains_key(&spec.control) {
                    p.push(Problem::new(
                        "control",
                        format!("{:?} is not a variant of {}", spec.control, spec.flag),
                    ));
                }
                for (v, w) in &spec.allocation {
                    if !f.variants.contains_key(v) {
                        p.push(Problem::new(
                            format!("allocation.{v}"),
                            format!("{v:?} is not a variant of {}", spec.flag),
                        ));
                    }
                    if !w.is_finite() || *w < 0.0 {
                        p.push(Problem::new(
                            format!("allocation.{v}"),
                            "a weight is a number ≥ 0",
                        ));
                    }
                }
                let total: f64 = spec.allocation.values().sum();
                if !spec.allocation.is_empty()
                    && spec.allocation.values().all(|w| w.is_finite() && *w >= 0.0)
                    && (!total.is_finite() || total <= 0.0)
                {
                    // Shares are weight / total: neither may be 0 or overflow.
                    p.push(Problem::new(
                        "allocation",
                        format!(
                            "the weights sum to {total}: the sum must be a positive finite number"
                        ),
                    ));
                }
                if !spec.allocation.is_empty() && !spec.allocation.contains_key(&spec.control) {
                    p.push(Problem::new(
                        "allocation",
                        "the allocation must include the control",
                    ));
                }
                if spec.layer.is_some() && f.layer != spec.layer.as_deref() {
                    p.push(Problem::new(
                        "layer",
                        format!("the flag {} is not in layer {:?}", spec.flag, spec.layer),
                    ));
                }
            }
        }
        let mut named: Vec<(String, &str)> = vec![("primaryMetric".into(), &spec.primary_metric)];
        for (i, m) in spec.secondary_metrics.iter().enumerate() {
            named.push((format!("secondaryMetrics[{i}]"), m));
        }
        for (i, g) in spec.guardrails.iter().enumerate() {
            named.push((format!("guardrails[{i}].metric"), &g.metric));
        }
        for (path, m) in named {
            if !metrics.iter().any(|k| k == m) {
                p.push(Problem::new(
                    path,
                    format!("{m:?} is not a metric of the project"),
                ));
            }
        }
        for (i, g) in spec.guardrails.iter().enumerate() {
            if !g.tolerance.is_finite() || g.tolerance < 0.0 {
                p.push(Problem::new(
                    format!("guardrails[{i}].tolerance"),
                    "a tolerance is a number ≥ 0",
                ));
            }
        }
        p.extend(repeated_guardrails(&spec.guardrails));
        p
    }
}

impl ExperimentRecord {
    /// The problems of replacing this experiment's definition by `spec`:
    /// its key is fixed; a running experiment keeps its flag, control,
    /// allocation, layer and primary metric (what its data mean); stopped
    /// and decided experiments are read-only.
    pub fn change_problems(&self, spec: &ExperimentSpec) -> Vec<Problem> {
        let mut problems = Vec::new();
        if spec.key != self.spec.key {
            problems.push(Problem::new("key", "an experiment's key cannot change"));
        }
        match self.status {
            ExperimentStatus::Draft => {}
            ExperimentStatus::Running => {
                let b = &self.spec;
                if spec.flag != b.flag
                    || spec.control != b.control
                    || spec.allocation != b.allocation
                    || spec.primary_metric != b.primary_metric
                    || spec.layer != b.layer
                {
                    problems.push(Problem::new(
                        "status",
                        "a running experiment keeps its flag, control, allocation, layer and primary metric",
                    ));
                }
            }
            s => problems.push(Problem::new(
                "status",
                format!("a {} experiment cannot change", s.as_str()),
            )),
        }
        problems
    }
}
