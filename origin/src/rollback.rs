//! Rolling a flag back: what each [`RollbackAction`] does to a flag's
//! configuration in an environment (pure), and applying it through the
//! store with the evidence in the audit log (actor `auto-rollback` for the
//! monitor, the alert's sender for external alerts).
//!
//! ```
//! use bunting_core::Serve;
//! use bunting_origin::rollback::apply;
//! use bunting_origin::store::ConfigSpec;
//! use bunting_origin::model::guardrail::RollbackAction;
//! let on = ConfigSpec { enabled: true, rules: vec![], fallthrough: Serve::Variant("new".into()), prerequisites: vec![] };
//! let back = apply(RollbackAction::ServeControl, &on, "old").unwrap();
//! assert_eq!(back.fallthrough, Serve::Variant("old".into()));
//! assert!(!apply(RollbackAction::DisableFlag, &on, "old").unwrap().enabled);
//! assert!(apply(RollbackAction::Alert, &on, "old").is_none());
//! ```

use bunting_core::Serve;
use serde::Serialize;
use serde_json::Value;

use crate::model::guardrail::RollbackAction;
use crate::store::{Actor, ConfigSpec, FlagConfig, Result, Store};

/// The configuration after `action`, or `None` when the action changes
/// nothing about serving ([`RollbackAction::Alert`]). `control` is the
/// variant to fall back to (the experiment's control, or the flag's off
/// variant).
pub fn apply(action: RollbackAction, config: &ConfigSpec, control: &str) -> Option<ConfigSpec> {
    let mut c = config.clone();
    match action {
        RollbackAction::Alert => return None,
        RollbackAction::DisableFlag => c.enabled = false,
        RollbackAction::ServeControl => {
            for r in &mut c.rules {
                r.serve = Serve::Variant(control.to_string());
            }
            c.fallthrough = Serve::Variant(control.to_string());
        }
        RollbackAction::RolloutToZero => {
            let zero = |s: &Serve| match s {
                Serve::Schedule(sch) => Serve::Variant(sch.otherwise.clone()),
                Serve::Rollout(_) => Serve::Variant(control.to_string()),
                v @ Serve::Variant(_) => v.clone(),
            };
            for r in &mut c.rules {
                r.serve = zero(&r.serve);
            }
            c.fallthrough = zero(&c.fallthrough);
        }
    }
    Some(c)
}

/// Why a rollback happened, recorded in the audit log and sent to webhooks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `guardrail` (the monitor) or `alert` (an external alert).
    pub source: String,
    /// The metric that regressed, if known.
    pub metric: Option<String>,
    /// The estimated effect (treatment − control) in the metric's unit.
    pub effect: Option<f64>,
    /// Its confidence interval.
    pub interval: Option<(f64, f64)>,
    /// The always-valid p-value.
    pub p_value: Option<f64>,
    /// Anything else (the alert's labels and annotations, the experiment).
    pub details: Value,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOutcome {
    /// The action.
    pub action: RollbackAction,
    /// The configuration now served (unchanged for `alert`).
    pub config: FlagConfig,
    /// Whether serving changed (false for `alert`, or when it was already
    /// rolled back).
    pub changed: bool,
}

/// Applies `action` to flag `flag_id` in environment `env_id` now, whatever
/// its version (like the kill switch), and appends the evidence to the
/// audit log (`rollback` entry on the flag configuration) in the same
/// transaction.
pub async fn roll_back(
    store: &Store,
    actor: &Actor,
    (flag_id, env_id): (i64, i64),
    action: RollbackAction,
    control: &str,
    evidence: &Evidence,
) -> Result<RollbackOutcome> {
    for _ in 0..5 {
        let current = store.flag_config(flag_id, env_id).await?;
        let next = apply(action, &current.spec, control).filter(|n| *n != current.spec);
        match store
            .rollback_flag_config(
                actor,
                (flag_id, env_id),
                current.version,
                next.as_ref(),
                evidence,
            )
            .await
        {
            Ok(config) => {
                return Ok(RollbackOutcome {
                    action,
                    changed: config.version != current.version,
                    config,
                });
            }
            Err(crate::store::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(crate::store::StoreError::Conflict { current: 0 })
}

#[cfg(test)]
mod tests {
    use bunting_core::model::{Rule, Schedule, ScheduleStep, WeightedVariant};

    use super::*;

    fn config() -> ConfigSpec {
        let rollout = Serve::Rollout(vec![
            WeightedVariant {
                variant: "b".into(),
                weight: 30.0,
            },
            WeightedVariant {
                variant: "a".into(),
                weight: 70.0,
            },
        ]);
        ConfigSpec {
            enabled: true,
            rules: vec![
                Rule {
                    id: Some("staff".into()),
                    description: None,
                    condition: "staff == true".into(),
                    serve: Serve::Variant("b".into()),
                },
                Rule {
                    id: Some("eu".into()),
                    description: None,
                    condition: "country == \"DE\"".into(),
                    serve: rollout,
                },
            ],
            fallthrough: Serve::Schedule(Schedule {
                variant: "b".into(),
                otherwise: "a".into(),
                steps: vec![ScheduleStep {
                    at: "2026-01-01T00:00:00Z".into(),
                    percentage: 10.0,
                }],
            }),
            prerequisites: vec![],
        }
    }

    #[test]
    fn rollout_to_zero_keeps_fixed_targeting() {
        let c = apply(RollbackAction::RolloutToZero, &config(), "a").unwrap();
        // A fixed rule stays; percentages go to the control / `otherwise`.
        assert_eq!(c.rules[0].serve, Serve::Variant("b".into()));
        assert_eq!(c.rules[1].serve, Serve::Variant("a".into()));
        assert_eq!(c.fallthrough, Serve::Variant("a".into()));
        assert!(c.enabled);
    }

    #[test]
    fn serve_control_serves_it_everywhere() {
        let c = apply(RollbackAction::ServeControl, &config(), "a").unwrap();
        assert!(
            c.rules
                .iter()
                .all(|r| r.serve == Serve::Variant("a".into()))
        );
        assert_eq!(c.fallthrough, Serve::Variant("a".into()));
        // The conditions stay for a later roll forward.
        assert_eq!(c.rules[1].condition, "country == \"DE\"");
    }

    #[test]
    fn disable_only_flips_the_switch() {
        let c = apply(RollbackAction::DisableFlag, &config(), "a").unwrap();
        assert!(!c.enabled);
        assert_eq!(c.rules, config().rules);
    }
}
