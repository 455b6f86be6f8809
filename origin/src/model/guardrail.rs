//! Guardrails: metrics an experiment or a guarded rollout must not harm,
//! and what to do when they do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Problem;

/// What a guardrail does when it trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RollbackAction {
    /// Serve the control variant to everybody (every rule and the
    /// fallthrough serve it; targeting is kept for later).
    ServeControl,
    /// Percentage rollouts go to 0%: a schedule serves its `otherwise`
    /// variant to everybody, a weighted rollout the control.
    RolloutToZero,
    /// Turn the flag off (it serves its off variant).
    DisableFlag,
    /// Only alert.
    Alert,
}

/// A guardrail: a metric that must not get worse by more than `tolerance`
/// (absolute, in the metric's unit; its harmful direction is the metric's
/// `higherIsBetter` reversed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Guardrail {
    /// The metric key.
    pub metric: String,
    /// Tolerated harm (≥ 0).
    #[serde(default)]
    pub tolerance: f64,
    /// What to do when it trips (default: serve control).
    #[serde(default = "serve_control")]
    pub action: RollbackAction,
}

fn serve_control() -> RollbackAction {
    RollbackAction::ServeControl
}

/// The problems of `guardrails` (of an experiment or a guarded rollout)
/// that repeat an earlier guardrail exactly (same metric, tolerance and
/// action). Several guardrails on one metric are fine when they differ in
/// tolerance or action: each is its own test (e.g. a tight one that alerts
/// and a looser one that rolls back).
///
/// ```
/// use bunting_origin::model::guardrail::{Guardrail, RollbackAction, repeated_guardrails};
/// let g = |tolerance, action| Guardrail { metric: "errors".into(), tolerance, action };
/// let two = [g(0.0, RollbackAction::Alert), g(0.01, RollbackAction::ServeControl)];
/// assert!(repeated_guardrails(&two).is_empty());
/// let again = [g(0.0, RollbackAction::Alert), g(0.0, RollbackAction::Alert)];
/// let p = repeated_guardrails(&again);
/// assert_eq!(p[0].path, "guardrails[1]");
/// ```
pub fn repeated_guardrails(guardrails: &[Guardrail]) -> Vec<Problem> {
    guardrails
        .iter()
        .enumerate()
        .filter_map(|(i, g)| {
            let first = guardrails[..i].iter().position(|o| o == g)?;
            Some(Problem::new(
                format!("guardrails[{i}]"),
                format!(
                    "repeats guardrails[{first}] ({:?}, tolerance {}, {}): give it another \
                     tolerance or action, or remove it",
                    g.metric,
                    g.tolerance,
                    serde_json::to_value(g.action).unwrap_or_default()
                ),
            ))
        })
        .collect()
}
