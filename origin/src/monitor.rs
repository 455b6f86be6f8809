//! The guardrail monitor: automatic rollback of running experiments.
//!
//! Every `interval` (default 60 s; `bunting serve --monitor-seconds`) it
//! aggregates each running experiment's guardrail metrics per arm
//! ([`Store::experiment_data`]) and feeds every treatment-vs-control pair to
//! a one-sided sequential harm test ([`bunting_analysis::sequential`],
//! mSPRT: always valid, so looking every minute does not inflate false
//! alarms beyond α). When a guardrail's harm beyond its tolerance is
//! significant, the monitor rolls the flag back as the guardrail says
//! ([`crate::rollback`]) as actor `auto-rollback` with the evidence
//! (metric, effect, interval, p-value), stops the experiment, wakes the
//! publisher and notifies the webhooks.
//!
//! The tests' state lives in memory: after a restart the monitor starts
//! fresh, which keeps its guarantee (each test is valid from its first
//! look).
//!
//! ```
//! let opts = bunting_origin::monitor::MonitorOptions::default();
//! assert_eq!(opts.interval.as_secs(), 60);
//! assert_eq!(opts.alpha, 0.05);
//! ```

use std::collections::HashMap;
use std::time::Duration;

use bunting_analysis::sequential::{
    ArmSummary, Decision, Direction, SequentialConfig, SequentialResult, SequentialTest,
};
use serde::Serialize;
use serde_json::json;

use crate::api::AppState;
use crate::rollback::{Evidence, roll_back};
use crate::store::aggregate::{AggregateOptions, ExperimentData, MetricAgg};
use crate::store::experiments::{ExperimentRecord, MetricSpec, RollbackAction};
use crate::store::{Actor, Result, StoreError};

/// How the monitor runs.
#[derive(Debug, Clone, Copy)]
pub struct MonitorOptions {
    /// Time between two rounds.
    pub interval: Duration,
    /// Level of every guardrail test.
    pub alpha: f64,
    /// Looks with fewer users in either arm are not tested.
    pub min_users_per_arm: u64,
}

impl Default for MonitorOptions {
    fn default() -> MonitorOptions {
        MonitorOptions {
            interval: Duration::from_secs(60),
            alpha: 0.05,
            min_users_per_arm: 100,
        }
    }
}

/// One guardrail's verdict for one treatment arm in a round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailCheck {
    /// Experiment key.
    pub experiment: String,
    /// Treatment variant.
    pub variant: String,
    /// Guardrail metric.
    pub metric: String,
    /// Index of the guardrail in the experiment.
    pub guardrail: usize,
    /// The sequential test's result at this look.
    pub result: SequentialResult,
    /// Whether this check rolled the flag back.
    pub rolled_back: bool,
}

/// Sequential tests per (experiment id, treatment variant, metric).
#[derive(Debug, Default)]
pub struct Monitor {
    options: MonitorOptions,
    tests: HashMap<(i64, String, String), SequentialTest>,
}

/// The per-user value's mean and variance of an arm, for the test.
fn summary(m: &MetricAgg) -> Option<ArmSummary> {
    ArmSummary::from_sums(m.n, m.sum, m.sum_sq).ok()
}

impl Monitor {
    /// A monitor with no looks yet.
    pub fn new(options: MonitorOptions) -> Monitor {
        Monitor {
            options,
            tests: HashMap::new(),
        }
    }

    /// One round over every running experiment with guardrails; returns
    /// every check made (for logs and tests).
    pub async fn round(&mut self, state: &AppState) -> Result<Vec<GuardrailCheck>> {
        let mut checks = Vec::new();
        for e in state.store.running_experiments().await? {
            if e.spec.guardrails.is_empty() {
                continue;
            }
            match self.check(state, &e).await {
                Ok(mut c) => checks.append(&mut c),
                Err(err) => {
                    tracing::error!(experiment = %e.spec.key, error = %err, "guardrail check failed")
                }
            }
        }
        // Forget the tests of experiments that are no longer running.
        let running: std::collections::HashSet<i64> = state
            .store
            .running_experiments()
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect();
        self.tests.retain(|(id, _, _), _| running.contains(id));
        Ok(checks)
    }

    async fn check(
        &mut self,
        state: &AppState,
        e: &ExperimentRecord,
    ) -> Result<Vec<GuardrailCheck>> {
        let env = state.store.environment(e.environment_id).await?;
        let mut metrics: Vec<MetricSpec> = Vec::new();
        for g in &e.spec.guardrails {
            metrics.push(
                state
                    .store
                    .metric_by_key(env.project_id, &g.metric)
                    .await?
                    .spec,
            );
        }
        let data = state
            .store
            .experiment_data(e, &metrics, &AggregateOptions::default())
            .await?;
        let mut checks = self.observe(e, &metrics, &data);
        if let Some(i) = checks
            .iter()
            .position(|c| c.result.decision == Decision::TreatmentWorse)
        {
            let action = e.spec.guardrails[checks[i].guardrail].action;
            self.trip(state, e, action, &checks[i]).await?;
            checks[i].rolled_back = true;
            checks.truncate(i + 1);
        }
        Ok(checks)
    }

    /// One look at an experiment's aggregated data: updates the sequential
    /// test of every guardrail × treatment arm and returns their results
    /// (pure: no rollback happens here). `metrics` are the guardrails'
    /// definitions, in the order of `e.spec.guardrails`.
    pub fn observe(
        &mut self,
        e: &ExperimentRecord,
        metrics: &[MetricSpec],
        data: &ExperimentData,
    ) -> Vec<GuardrailCheck> {
        let mut checks = Vec::new();
        let Some(control) = data.arms.iter().find(|a| a.variant == e.spec.control) else {
            return checks;
        };
        for (gi, (g, metric)) in e.spec.guardrails.iter().zip(metrics).enumerate() {
            let Some(c) = control.metrics.get(&g.metric).and_then(summary) else {
                continue;
            };
            for arm in data.arms.iter().filter(|a| a.variant != e.spec.control) {
                let Some(t) = arm.metrics.get(&g.metric).and_then(summary) else {
                    continue;
                };
                let direction = if metric.higher_is_better {
                    Direction::HigherIsBetter
                } else {
                    Direction::LowerIsBetter
                };
                let key = (e.id, arm.variant.clone(), g.metric.clone());
                let test = match self.tests.entry(key) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        let mut config = SequentialConfig::harm(g.tolerance, direction);
                        config.alpha = self.options.alpha;
                        config.min_samples_per_arm = self.options.min_users_per_arm.max(2);
                        match SequentialTest::new(config) {
                            Ok(t) => v.insert(t),
                            Err(err) => {
                                tracing::error!(error = %err, "guardrail configuration");
                                continue;
                            }
                        }
                    }
                };
                match test.update(&c, &t) {
                    Ok(result) => checks.push(GuardrailCheck {
                        experiment: e.spec.key.clone(),
                        variant: arm.variant.clone(),
                        metric: g.metric.clone(),
                        guardrail: gi,
                        result,
                        rolled_back: false,
                    }),
                    Err(err) => {
                        tracing::warn!(experiment = %e.spec.key, error = %err, "guardrail look skipped")
                    }
                }
            }
        }
        checks
    }

    /// Rolls back, stops the experiment, publishes and notifies.
    async fn trip(
        &self,
        state: &AppState,
        e: &ExperimentRecord,
        action: RollbackAction,
        check: &GuardrailCheck,
    ) -> Result<()> {
        let env = state.store.environment(e.environment_id).await?;
        let project = state.store.project(env.project_id).await?;
        let flag = state.store.flag_by_key(project.id, &e.spec.flag).await?;
        let actor = Actor::new("auto-rollback").in_org(project.org_id);
        let r = &check.result;
        let evidence = Evidence {
            source: "guardrail".into(),
            metric: Some(check.metric.clone()),
            effect: r.estimate,
            interval: r.interval.map(|i| {
                (
                    i.lower.unwrap_or(f64::NEG_INFINITY),
                    i.upper.unwrap_or(f64::INFINITY),
                )
            }),
            p_value: Some(r.p_value),
            details: json!({
                "experiment": e.spec.key,
                "variant": check.variant,
                "look": r.look,
                "alpha": self.options.alpha,
                "method": "mSPRT one-sided harm test",
            }),
        };
        let out = roll_back(
            &state.store,
            &actor,
            (flag.id, env.id),
            action,
            &e.spec.control,
            &evidence,
        )
        .await?;
        match state.store.stop_experiment(&actor, e.id, e.version).await {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
        tracing::warn!(
            experiment = %e.spec.key, metric = %check.metric, variant = %check.variant,
            p_value = r.p_value, action = ?action, "guardrail tripped: rolled back"
        );
        if out.changed {
            state.notify_publish();
        }
        state.notifier.send(json!({
            "type": "rollback",
            "flag": format!("{}/{}", project.key, flag.spec.key),
            "environment": env.key,
            "action": action,
            "changed": out.changed,
            "actor": "auto-rollback",
            "evidence": evidence,
        }));
        Ok(())
    }
}

/// Runs rounds every `options.interval` until the returned handle is
/// aborted (the task holds no state that needs a graceful stop).
pub fn spawn(state: AppState, options: MonitorOptions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut monitor = Monitor::new(options);
        let mut tick = tokio::time::interval(options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match monitor.round(&state).await {
                Ok(checks) => {
                    for c in checks.iter().filter(|c| c.rolled_back) {
                        tracing::info!(check = ?c, "auto-rollback");
                    }
                }
                Err(e) => tracing::error!(error = %e, "guardrail round failed"),
            }
        }
    })
}
