//! The guardrail monitor: automatic rollback of running experiments and
//! active guarded rollouts, and the health gate of scheduled ramps.
//!
//! Every `interval` (default 60 s; `bunting serve --monitor-seconds`) it
//! aggregates the guardrail metrics per arm of each running experiment
//! ([`Store::experiment_data`](crate::store::Store::experiment_data)) and
//! each active guarded rollout
//! ([`Store::scope_data`](crate::store::Store::scope_data), exposures from
//! the guard's start), on PostgreSQL incrementally (the previous round's
//! cached sums plus the users whose rows arrived since:
//! [`AggregateOptions::incremental`](crate::store::aggregate::AggregateOptions::incremental);
//! there an experiment's look is its results' own look, which the results
//! refresh and the results endpoint share, so a round pays for one
//! incremental look per experiment, not two), and feeds every treatment-vs-control pair to a one-sided sequential
//! harm test ([`bunting_analysis::sequential`], mSPRT: always valid, so
//! looking every minute does not inflate false alarms beyond α), one test
//! per guardrail and treatment arm: two guardrails on one metric (a tight
//! one that alerts, a looser one that rolls back) are two independent
//! tests. Each arm is summarised by
//! [`crate::results::guardrail_summary`] (the per-user mean, or a ratio
//! metric's delta-method moments), the same function behind the
//! guardrail tests of the experiment results. When a guardrail's harm
//! beyond its tolerance is significant, the monitor rolls the flag back as
//! the guardrail says ([`crate::rollback`]) as actor `auto-rollback` with
//! the evidence (metric, effect, interval, p-value), stops the experiment
//! or marks the guarded rollout rolled back, wakes the publisher and
//! notifies the webhooks. An `alert` guardrail records the evidence and
//! notifies once per test, and the watch goes on.
//!
//! For a guarded rollout the monitor also records its [`GuardHealth`]
//! ([`health`]) and, when the guard gates a ramp and is not healthy,
//! postpones the flag's next scheduled step that would take effect before
//! the next round plus [`MonitorOptions::ramp_lead`] (`bunting serve
//! --ramp-lead-seconds`) ([`hold_schedules`];
//! actor `ramp-guard`, audited as `holdRamp` on the flag configuration).
//!
//! The tests' state lives in memory: after a restart the monitor starts
//! fresh, which keeps its guarantee (each test is valid from its first
//! look). Origins sharing one PostgreSQL database monitor one at a time
//! ([`Monitor::round_if_leading`], [`crate::store::lead`]): the first to
//! take the turn keeps it while it runs, so each guardrail has one test
//! (not one per origin, each with its own mixing variance and looks,
//! whose false alarms would add up), one alert and one rollback. An
//! origin that takes the turn over starts its tests fresh, as after a
//! restart.
//!
//! ```
//! let opts = bunting_origin::monitor::MonitorOptions::default();
//! assert_eq!(opts.interval.as_secs(), 60);
//! assert_eq!(opts.alpha, 0.05);
//! assert_eq!(opts.ramp_lead.as_secs(), 60);
//! ```

mod policy;

pub use policy::{GuardrailCheck, HeldStep, Subject, SubjectKind, health, hold_schedules};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bunting_analysis::sequential::{Decision, Direction, SequentialConfig, SequentialTest};
use serde_json::json;
use tokio::sync::Notify;

use crate::model::experiment::ExperimentRecord;
use crate::model::guardrail::RollbackAction;
use crate::model::metric::MetricSpec;
use crate::model::rollout::{GuardHealth, GuardedRolloutRecord};
use crate::notify::Notifier;
use crate::results::guardrail_summary;
use crate::rollback::{Evidence, roll_back};
use crate::store::aggregate::{AggregateOptions, AnalysisScope, ExperimentData};
use crate::store::lead::{Lead, Task};
use crate::store::{Actor, Backend, Environment, FlagRecord, Project, Result, Store, StoreError};

/// What the monitor reads and acts on, handed over by whoever runs it
/// (`bunting serve`, a test): it needs no more of the HTTP layer than this.
#[derive(Clone)]
pub struct Services {
    /// Where experiments, guarded rollouts and their aggregates are read,
    /// and where rollbacks, stops and held ramp steps are written.
    pub store: Store,
    /// Tells webhooks about rollbacks and held ramp steps.
    pub notifier: Notifier,
    /// Wakes the publisher after the monitor committed a change, so it
    /// reaches the edge without waiting for the publisher's next poll.
    pub publish_wakeup: Arc<Notify>,
}

impl Services {
    fn notify_publish(&self) {
        self.publish_wakeup.notify_one();
    }

    /// Queues webhook event `event_type` for organization `org_id`'s
    /// subscriptions (the outbox); a failure is logged, never fails the
    /// action it reports.
    async fn emit(&self, org_id: i64, event_type: &str, data: serde_json::Value) {
        if let Err(e) = self.store.emit_event(org_id, event_type, data).await {
            tracing::warn!(event_type, error = %e, "queueing a webhook event failed");
        }
    }
}

/// How the monitor runs.
#[derive(Debug, Clone, Copy)]
pub struct MonitorOptions {
    /// Time between two rounds.
    pub interval: Duration,
    /// Level of every guardrail test.
    pub alpha: f64,
    /// Looks with fewer users in either arm are not tested (a guarded
    /// rollout's `minUsersPerArm` overrides it).
    pub min_users_per_arm: u64,
    /// Publication margin of ramp holds: a gated ramp's next step is held
    /// when it would take effect before the next round plus this lead
    /// (default 60 s, Cloudflare KV's propagation bound), and is then
    /// postponed to one lead beyond that horizon.
    pub ramp_lead: Duration,
}

impl Default for MonitorOptions {
    fn default() -> MonitorOptions {
        MonitorOptions {
            interval: Duration::from_secs(60),
            alpha: 0.05,
            min_users_per_arm: 100,
            ramp_lead: Duration::from_secs(60),
        }
    }
}

/// A sequential test's identity: one per guardrail (by its index, so two
/// guardrails on one metric are two tests) and treatment arm; a new start,
/// control, variant or metric at that index begins a new test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TestKey {
    kind: SubjectKind,
    id: i64,
    started_at: Option<String>,
    control: String,
    variant: String,
    guardrail: usize,
    metric: String,
}

impl TestKey {
    fn of(s: &Subject, variant: &str, guardrail: usize) -> TestKey {
        TestKey {
            kind: s.kind,
            id: s.id,
            started_at: s.started_at.clone(),
            control: s.control.clone(),
            variant: variant.to_string(),
            guardrail,
            metric: s.guardrails[guardrail].metric.clone(),
        }
    }
}

/// A running test and whether its `alert` was sent.
#[derive(Debug)]
struct Watch {
    test: SequentialTest,
    alerted: bool,
}

/// Sequential tests per (subject, start, control, treatment variant,
/// guardrail).
#[derive(Debug, Default)]
pub struct Monitor {
    options: MonitorOptions,
    tests: HashMap<TestKey, Watch>,
    /// This origin's turn at monitoring, kept across rounds
    /// ([`Monitor::round_if_leading`]). Only ever reached through
    /// `&mut self` (`get_mut`, no locking): the mutex makes the monitor
    /// `Sync`, which a transaction is not, so its rounds can be spawned.
    lead: tokio::sync::Mutex<Option<Lead>>,
}

/// Where a subject lives.
struct Place {
    env: Environment,
    project: Project,
    flag: FlagRecord,
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Monitor {
    /// A monitor with no looks yet.
    pub fn new(options: MonitorOptions) -> Monitor {
        Monitor {
            options,
            tests: HashMap::new(),
            lead: tokio::sync::Mutex::new(None),
        }
    }

    /// [`Monitor::round`] if this origin monitors, else nothing (`None`):
    /// of the origins sharing one database, the one that takes the turn
    /// ([`Task::GuardrailMonitor`]) keeps it for as long as it runs. A
    /// monitor that takes the turn (first, or again after losing its
    /// connection) forgets its tests: another origin may have watched in
    /// between, and a fresh test is valid from its first look.
    pub async fn round_if_leading(
        &mut self,
        services: &Services,
    ) -> Result<Option<Vec<GuardrailCheck>>> {
        let held = self.lead.get_mut();
        if let Some(lead) = held
            && !lead.held().await
        {
            *held = None;
        }
        if held.is_none() {
            let Some(lead) = services.store.lead(Task::GuardrailMonitor).await? else {
                return Ok(None);
            };
            *held = Some(lead);
            self.tests.clear();
        }
        self.round(services).await.map(Some)
    }

    /// One round over every running experiment with guardrails and every
    /// active guarded rollout; returns every check made (for logs and
    /// tests).
    pub async fn round(&mut self, services: &Services) -> Result<Vec<GuardrailCheck>> {
        let mut checks = Vec::new();
        let mut watched: HashSet<(SubjectKind, i64, Option<String>)> = HashSet::new();
        for e in services.store.running_experiments().await? {
            if e.spec.guardrails.is_empty() {
                continue;
            }
            let s = Subject::from(&e);
            match self.check_experiment(services, &e, &s).await {
                Ok((mut c, tripped)) => {
                    if !tripped {
                        watched.insert((s.kind, s.id, s.started_at.clone()));
                    }
                    checks.append(&mut c);
                }
                Err(err) => {
                    watched.insert((s.kind, s.id, s.started_at.clone()));
                    tracing::error!(experiment = %e.spec.key, error = %err, "guardrail check failed")
                }
            }
        }
        for g in services.store.active_guarded_rollouts().await? {
            let s = Subject::from(&g);
            match self.check_guard(services, &g, &s).await {
                Ok((mut c, tripped)) => {
                    if !tripped {
                        watched.insert((s.kind, s.id, s.started_at.clone()));
                    }
                    checks.append(&mut c);
                }
                Err(err) => {
                    watched.insert((s.kind, s.id, s.started_at.clone()));
                    tracing::error!(flag = %g.spec.flag, error = %err, "guarded rollout check failed")
                }
            }
        }
        // Forget the tests of what is no longer watched.
        self.tests
            .retain(|k, _| watched.contains(&(k.kind, k.id, k.started_at.clone())));
        Ok(checks)
    }

    /// Where subject `s` of environment `env_id` on flag `flag` lives.
    async fn place(&self, services: &Services, env_id: i64, flag: &str) -> Result<Place> {
        let env = services.store.environment(env_id).await?;
        let project = services.store.project(env.project_id).await?;
        let flag = services.store.flag_by_key(project.id, flag).await?;
        Ok(Place { env, project, flag })
    }

    /// One look at `s` over `scope`: the checks, the data, and whether a
    /// guardrail tripped (then the flag is rolled back).
    async fn look(
        &mut self,
        services: &Services,
        s: &Subject,
        place: &Place,
        scope: &AnalysisScope,
    ) -> Result<(Vec<GuardrailCheck>, ExperimentData)> {
        let metrics = self.guardrail_metrics(services, s, place).await?;
        // Incremental on PostgreSQL: each round updates the cached sums of
        // the previous one with the users whose rows arrived since, so a
        // round costs the changes, not the subject's size (the cache is
        // keyed by the look's configuration, never shared between
        // different scopes, windows or metrics: `store::results_cache`).
        let options = AggregateOptions {
            incremental: true,
            ..AggregateOptions::default()
        };
        let data = services.store.scope_data(scope, &metrics, &options).await?;
        let checks = self.observe_subject(s, &metrics, &data);
        Ok((checks, data))
    }

    /// The metric of each of `s`'s guardrails, in guardrail order.
    async fn guardrail_metrics(
        &self,
        services: &Services,
        s: &Subject,
        place: &Place,
    ) -> Result<Vec<MetricSpec>> {
        let mut metrics = Vec::with_capacity(s.guardrails.len());
        for g in &s.guardrails {
            metrics.push(
                services
                    .store
                    .metric_by_key(place.project.id, &g.metric)
                    .await?
                    .spec,
            );
        }
        Ok(metrics)
    }

    /// One look at experiment `e` (subject `s`) through its results' own
    /// look ([`Store::results_data`](crate::store::Store::results_data):
    /// every metric of the experiment, guardrails among them, and the
    /// daily series), the one that `bunting serve`'s results refresh
    /// (`crate::refresh`) and the results endpoint take: on PostgreSQL they
    /// share one cached state, so a round costs one incremental look, not
    /// one for the monitor and another for the refresh. The guardrail
    /// metrics' sums do not depend on the other metrics of the look.
    async fn look_at_results(
        &mut self,
        services: &Services,
        s: &Subject,
        place: &Place,
        e: &ExperimentRecord,
    ) -> Result<Vec<GuardrailCheck>> {
        let metrics = self.guardrail_metrics(services, s, place).await?;
        let (_, data) = services.store.results_data(place.project.id, e).await?;
        Ok(self.observe_subject(s, &metrics, &data))
    }

    /// Acts on this round's checks that found harm, in guardrail order:
    /// an `alert` guardrail alerts once per test and the watch goes on;
    /// the first guardrail with another action rolls back, is marked, and
    /// the later checks are dropped. Returns whether it rolled back.
    async fn act_on_harm(
        &mut self,
        services: &Services,
        s: &Subject,
        place: &Place,
        checks: &mut Vec<GuardrailCheck>,
    ) -> Result<bool> {
        for i in 0..checks.len() {
            if checks[i].result.decision != Decision::TreatmentWorse {
                continue;
            }
            if checks[i].action == RollbackAction::Alert {
                let key = TestKey::of(s, &checks[i].variant, checks[i].guardrail);
                if self.tests.get(&key).is_none_or(|w| w.alerted) {
                    continue;
                }
                self.trip(services, s, place, &checks[i]).await?;
                checks[i].alerted = true;
                if let Some(w) = self.tests.get_mut(&key) {
                    w.alerted = true;
                }
                continue;
            }
            self.trip(services, s, place, &checks[i]).await?;
            checks[i].rolled_back = true;
            checks.truncate(i + 1);
            self.tests
                .retain(|k, _| !(k.kind == s.kind && k.id == s.id));
            return Ok(true);
        }
        Ok(false)
    }

    async fn check_experiment(
        &mut self,
        services: &Services,
        e: &ExperimentRecord,
        s: &Subject,
    ) -> Result<(Vec<GuardrailCheck>, bool)> {
        let place = self.place(services, e.environment_id, &e.spec.flag).await?;
        // On SQLite every look aggregates in full (there is no cached
        // state to share), so the monitor reads only the guardrails there.
        let mut checks = match services.store.backend() {
            Backend::Postgres => self.look_at_results(services, s, &place, e).await?,
            Backend::Sqlite => {
                self.look(services, s, &place, &AnalysisScope::from(e))
                    .await?
                    .0
            }
        };
        let tripped = self.act_on_harm(services, s, &place, &mut checks).await?;
        Ok((checks, tripped))
    }

    async fn check_guard(
        &mut self,
        services: &Services,
        g: &GuardedRolloutRecord,
        s: &Subject,
    ) -> Result<(Vec<GuardrailCheck>, bool)> {
        let place = self.place(services, g.environment_id, &g.spec.flag).await?;
        let scope = AnalysisScope {
            environment_id: g.environment_id,
            flag: g.spec.flag.clone(),
            control: g.spec.control.clone(),
            variants: Vec::new(),
            primary_metric: None,
            started_at: g.started_at.clone(),
            stopped_at: None,
        };
        let min_users = self.min_users(s);
        let (mut checks, data) = match self.look(services, s, &place, &scope).await {
            Ok(v) => v,
            Err(err) => {
                // Fail closed: a guard that cannot be checked is not
                // healthy, so a gated ramp waits.
                let h = GuardHealth {
                    healthy: false,
                    reasons: vec![format!("the check failed: {err}")],
                    min_users_per_arm: min_users,
                    guardrails: Vec::new(),
                };
                services
                    .store
                    .record_guard_health(g.id, g.started_at.as_deref(), &h)
                    .await?;
                if g.spec.gate_ramp {
                    self.hold_ramp(services, g, &place, &h).await?;
                }
                return Err(err);
            }
        };
        let h = health(s, &data, &checks, min_users);
        services
            .store
            .record_guard_health(g.id, g.started_at.as_deref(), &h)
            .await?;
        let tripped = self.act_on_harm(services, s, &place, &mut checks).await?;
        if !tripped && g.spec.gate_ramp && !h.healthy {
            self.hold_ramp(services, g, &place, &h).await?;
        }
        Ok((checks, tripped))
    }

    /// Postpones the flag's next ramp step when it is due before the next
    /// round plus the lead (see [`hold_schedules`]).
    async fn hold_ramp(
        &self,
        services: &Services,
        g: &GuardedRolloutRecord,
        place: &Place,
        h: &GuardHealth,
    ) -> Result<()> {
        let now = now_ms();
        let interval = self.options.interval.as_millis() as i64;
        let lead = self.options.ramp_lead.as_millis() as i64;
        let horizon = now + interval + lead;
        let target = horizon + lead;
        let config = services
            .store
            .flag_config(place.flag.id, place.env.id)
            .await?;
        let Some((next, held)) = hold_schedules(&config.spec, now, horizon, target) else {
            return Ok(());
        };
        let until = held.iter().map(|h| h.to.clone()).max().unwrap_or_default();
        let details = json!({
            "reason": "guardrails not healthy",
            "guardedRollout": g.spec.flag,
            "health": h,
            "held": held,
            "rule": "the next step due before the next round plus the lead moves to one lead beyond; later steps shift with it",
            "intervalMs": interval,
            "leadMs": lead,
        });
        let actor = Actor::new("ramp-guard").in_org(place.project.org_id);
        match services
            .store
            .hold_ramp(
                &actor,
                (g.id, place.flag.id, place.env.id),
                (config.version, &next),
                &until,
                &details,
            )
            .await
        {
            Ok(_) => {}
            // Edited meanwhile: the next round looks again.
            Err(StoreError::Conflict { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        tracing::warn!(flag = %g.spec.flag, held_until = %until, reasons = ?h.reasons, "ramp held: guardrails not healthy");
        services.notify_publish();
        let event = json!({
            "type": "rampHold",
            "flag": format!("{}/{}", place.project.key, place.flag.spec.key),
            "environment": place.env.key,
            "actor": "ramp-guard",
            "heldUntil": until,
            "details": details,
        });
        services.notifier.send(event.clone());
        services.emit(place.project.org_id, "rampHold", event).await;
        Ok(())
    }

    fn min_users(&self, s: &Subject) -> u64 {
        s.min_users_per_arm
            .unwrap_or(self.options.min_users_per_arm)
            .max(2)
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
        self.observe_subject(&Subject::from(e), metrics, data)
    }

    /// [`Monitor::observe`] for any [`Subject`] (an experiment or a
    /// guarded rollout). `metrics` are in the order of `s.guardrails`.
    pub fn observe_subject(
        &mut self,
        s: &Subject,
        metrics: &[MetricSpec],
        data: &ExperimentData,
    ) -> Vec<GuardrailCheck> {
        let mut checks = Vec::new();
        let Some(control) = data.arms.iter().find(|a| a.variant == s.control) else {
            return checks;
        };
        let min_users = self.min_users(s);
        for (gi, (g, metric)) in s.guardrails.iter().zip(metrics).enumerate() {
            let Some(c) = control
                .metrics
                .get(&g.metric)
                .and_then(|a| guardrail_summary(metric.kind, a))
            else {
                continue;
            };
            let direction = if metric.higher_is_better {
                Direction::HigherIsBetter
            } else {
                Direction::LowerIsBetter
            };
            let mut config = SequentialConfig::harm(g.tolerance, direction);
            config.alpha = self.options.alpha;
            config.min_samples_per_arm = min_users;
            for arm in data.arms.iter().filter(|a| a.variant != s.control) {
                let Some(t) = arm
                    .metrics
                    .get(&g.metric)
                    .and_then(|a| guardrail_summary(metric.kind, a))
                else {
                    continue;
                };
                let key = TestKey::of(s, &arm.variant, gi);
                // A changed guardrail (tolerance, minimum) starts a new
                // test, valid from its first look.
                if self
                    .tests
                    .get(&key)
                    .is_some_and(|w| *w.test.config() != config)
                {
                    self.tests.remove(&key);
                }
                let watch = match self.tests.entry(key) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        match SequentialTest::new(config) {
                            Ok(test) => v.insert(Watch {
                                test,
                                alerted: false,
                            }),
                            Err(err) => {
                                tracing::error!(error = %err, "guardrail configuration");
                                continue;
                            }
                        }
                    }
                };
                match watch.test.update(&c, &t) {
                    Ok(result) => checks.push(GuardrailCheck {
                        kind: s.kind,
                        subject: s.key.clone(),
                        variant: arm.variant.clone(),
                        metric: g.metric.clone(),
                        guardrail: gi,
                        action: g.action,
                        result,
                        rolled_back: false,
                        alerted: false,
                    }),
                    Err(err) => {
                        tracing::warn!(subject = %s.key, error = %err, "guardrail look skipped")
                    }
                }
            }
        }
        checks
    }

    /// Applies the guardrail's action: rolls back (audited with the
    /// evidence), stops the experiment or marks the guarded rollout rolled
    /// back, publishes and notifies. An `alert` guardrail only records the
    /// evidence (a `rollback` audit entry that changes nothing) and
    /// notifies: the experiment or guard stays watched.
    async fn trip(
        &self,
        services: &Services,
        s: &Subject,
        place: &Place,
        check: &GuardrailCheck,
    ) -> Result<()> {
        let action = s.guardrails[check.guardrail].action;
        let Place { env, project, flag } = place;
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
                s.kind.as_str(): s.key,
                "control": s.control,
                "variant": check.variant,
                "guardrail": check.guardrail,
                "tolerance": s.guardrails[check.guardrail].tolerance,
                "look": r.look,
                "alpha": self.options.alpha,
                "method": "mSPRT one-sided harm test",
            }),
        };
        let out = roll_back(
            &services.store,
            &actor,
            (flag.id, env.id),
            action,
            &s.control,
            &evidence,
        )
        .await?;
        match s.kind {
            _ if action == RollbackAction::Alert => {}
            SubjectKind::Experiment => {
                match services
                    .store
                    .stop_experiment(&actor, s.id, s.version)
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            SubjectKind::GuardedRollout => {
                services
                    .store
                    .mark_guarded_rollout_rolled_back(&actor, s.id)
                    .await?;
            }
        }
        tracing::warn!(
            subject = %s.key, kind = s.kind.as_str(), metric = %check.metric, variant = %check.variant,
            p_value = r.p_value, action = ?action, "guardrail tripped"
        );
        if out.changed {
            services.notify_publish();
        }
        let event = json!({
            "type": "rollback",
            "flag": format!("{}/{}", project.key, flag.spec.key),
            "environment": env.key,
            "action": action,
            "changed": out.changed,
            "actor": "auto-rollback",
            "evidence": evidence,
        });
        services.notifier.send(event.clone());
        services.emit(project.org_id, "rollback", event).await;
        Ok(())
    }
}

/// Runs rounds every `options.interval` until the returned handle is
/// aborted (the task holds no state that needs a graceful stop).
pub fn spawn(services: Services, options: MonitorOptions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut monitor = Monitor::new(options);
        let mut tick = tokio::time::interval(options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match monitor.round_if_leading(&services).await {
                Ok(None) => tracing::debug!("another origin monitors the guardrails"),
                Ok(Some(checks)) => {
                    for c in checks.iter().filter(|c| c.rolled_back) {
                        tracing::info!(check = ?c, "auto-rollback");
                    }
                }
                Err(e) => tracing::error!(error = %e, "guardrail round failed"),
            }
        }
    })
}
