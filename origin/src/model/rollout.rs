//! Guarded rollouts: a flag in an environment watched by guardrail
//! metrics without an experiment. See [`crate::store::rollouts`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::guardrail::{Guardrail, RollbackAction, repeated_guardrails};
use super::{FlagFacts, Problem};

/// A guarded rollout's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuardedRolloutSpec {
    /// The flag (a key of the project); one guarded rollout per flag and
    /// environment.
    pub flag: String,
    /// The variant the rollout moves users away from: the baseline every
    /// other variant served is compared with (for a schedule, usually its
    /// `otherwise`).
    pub control: String,
    /// Guardrails (at least one): metric, harm tolerance, rollback action.
    /// A metric may carry several guardrails with different tolerances or
    /// actions (each is its own test), but not the same one twice.
    pub guardrails: Vec<Guardrail>,
    /// Users needed in both arms before a look counts toward health and
    /// before the harm test runs (default: the monitor's, 100). At least 2.
    #[serde(default)]
    pub min_users_per_arm: Option<u64>,
    /// Whether the guardrails gate the flag's scheduled ramp in this
    /// environment: the next step is postponed while they are not healthy.
    #[serde(default)]
    pub gate_ramp: bool,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

impl GuardedRolloutSpec {
    /// A guarded rollout of `flag` away from `control`, without guardrails
    /// yet (add at least one), not gating a ramp.
    ///
    /// ```
    /// let s = bunting_origin::model::rollout::GuardedRolloutSpec::new("checkout", "off");
    /// assert!(s.guardrails.is_empty() && !s.gate_ramp);
    /// ```
    pub fn new(flag: &str, control: &str) -> GuardedRolloutSpec {
        GuardedRolloutSpec {
            flag: flag.into(),
            control: control.into(),
            guardrails: Vec::new(),
            min_users_per_arm: None,
            gate_ramp: false,
            description: None,
        }
    }
}

/// Where a guarded rollout is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum GuardStatus {
    /// Watched by the monitor.
    Active,
    /// A guardrail tripped and the flag was rolled back (set by the
    /// monitor only).
    RolledBack,
    /// Done: the rollout finished; no longer watched.
    Completed,
    /// Paused by a person; not watched.
    Disabled,
}

impl GuardStatus {
    /// Its name.
    ///
    /// ```
    /// use bunting_origin::model::rollout::GuardStatus;
    /// assert_eq!(GuardStatus::RolledBack.as_str(), "rolledBack");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            GuardStatus::Active => "active",
            GuardStatus::RolledBack => "rolledBack",
            GuardStatus::Completed => "completed",
            GuardStatus::Disabled => "disabled",
        }
    }

    /// The status named `s` ([`GuardStatus::as_str`]), if any.
    pub fn parse(s: &str) -> Option<GuardStatus> {
        Some(match s {
            "active" => GuardStatus::Active,
            "rolledBack" => GuardStatus::RolledBack,
            "completed" => GuardStatus::Completed,
            "disabled" => GuardStatus::Disabled,
            _ => return None,
        })
    }
}

/// One guardrail × treatment arm at the monitor's latest look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailState {
    /// Index of the guardrail in the guarded rollout's `guardrails` (two
    /// guardrails may watch one metric with different tolerances).
    #[serde(default)]
    pub guardrail: usize,
    /// The guardrail's tolerance.
    #[serde(default)]
    pub tolerance: f64,
    /// The guardrail metric.
    pub metric: String,
    /// The treatment variant.
    pub variant: String,
    /// Users in the control arm.
    pub control_users: u64,
    /// Users in the treatment arm.
    pub treatment_users: u64,
    /// Estimated effect, treatment − control, in the metric's unit.
    pub estimate: Option<f64>,
    /// Always-valid one-sided p-value of the harm test.
    pub p_value: Option<f64>,
    /// Lower end of the always-valid interval of the effect.
    pub lower: Option<f64>,
    /// Looks the harm test has taken since the monitor (re)started.
    pub looks: u32,
    /// Whether the harm test rejected (significant harm beyond tolerance).
    pub significant: bool,
}

/// The monitor's verdict on a guarded rollout at its latest round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardHealth {
    /// Healthy: at least one treatment arm is exposed and, for every
    /// guardrail and treatment arm, the harm test looked at ≥
    /// `minUsersPerArm` users in both arms and does not find significant
    /// harm. A ramp gated by the guard advances only while healthy.
    pub healthy: bool,
    /// Why not healthy (empty when healthy).
    pub reasons: Vec<String>,
    /// The minimum users per arm applied.
    pub min_users_per_arm: u64,
    /// Per guardrail and treatment arm.
    pub guardrails: Vec<GuardrailState>,
}

/// A stored guarded rollout.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardedRolloutRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The flag's row id.
    pub flag_id: i64,
    /// The definition (`flag` is the flag's current key).
    #[serde(flatten)]
    pub spec: GuardedRolloutSpec,
    /// Lifecycle state.
    pub status: GuardStatus,
    /// When it last became active: exposures count from then on.
    pub started_at: Option<String>,
    /// When it last stopped being active.
    pub stopped_at: Option<String>,
    /// When the monitor last checked it.
    pub checked_at: Option<String>,
    /// The monitor's latest verdict.
    pub health: Option<GuardHealth>,
    /// When the ramp step the monitor last postponed takes effect now.
    pub held_until: Option<String>,
    /// Optimistic-concurrency version (definition and status only).
    pub version: i64,
}

impl GuardedRolloutSpec {
    /// Every problem of this definition in a project where `flag` is what
    /// its flag is (`None`: the project has no such flag) and `metrics` are
    /// the keys of the project's metrics.
    pub fn problems(&self, flag: Option<FlagFacts<'_>>, metrics: &[String]) -> Vec<Problem> {
        let spec = self;
        let mut p = Vec::new();
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
            }
        }
        if spec.guardrails.is_empty() {
            p.push(Problem::new(
                "guardrails",
                "a guarded rollout needs at least one guardrail",
            ));
        }
        for (i, g) in spec.guardrails.iter().enumerate() {
            if !metrics.contains(&g.metric) {
                p.push(Problem::new(
                    format!("guardrails[{i}].metric"),
                    format!("{:?} is not a metric of the project", g.metric),
                ));
            }
            if !g.tolerance.is_finite() || g.tolerance < 0.0 {
                p.push(Problem::new(
                    format!("guardrails[{i}].tolerance"),
                    "a tolerance is a number ≥ 0",
                ));
            }
            if spec.gate_ramp && g.action == RollbackAction::Alert {
                p.push(Problem::new(
                    format!("guardrails[{i}].action"),
                    "a guardrail gating a ramp must roll back (serveControl, rolloutToZero or \
                 disableFlag): after an alert the ramp would advance unwatched",
                ));
            }
        }
        p.extend(repeated_guardrails(&spec.guardrails));
        if spec.min_users_per_arm.is_some_and(|n| n < 2) {
            p.push(Problem::new("minUsersPerArm", "at least 2 users per arm"));
        }
        p
    }
}
