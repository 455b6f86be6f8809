//! The guardrail monitor: automatic rollback of running experiments and
//! active guarded rollouts, and the health gate of scheduled ramps.
//!
//! Every `interval` (default 60 s; `bunting serve --monitor-seconds`) it
//! aggregates the guardrail metrics per arm of each running experiment
//! ([`Store::experiment_data`](crate::store::Store::experiment_data)) and
//! each active guarded rollout
//! ([`Store::scope_data`](crate::store::Store::scope_data), exposures from
//! the guard's start) and feeds every treatment-vs-control pair to a
//! one-sided sequential harm test ([`bunting_analysis::sequential`], mSPRT:
//! always valid, so looking every minute does not inflate false alarms
//! beyond α), one test per guardrail and treatment arm: two guardrails on
//! one metric (a tight one that alerts, a looser one that rolls back) are
//! two independent tests. Each arm is summarised by
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
//! look).
//!
//! ```
//! let opts = bunting_origin::monitor::MonitorOptions::default();
//! assert_eq!(opts.interval.as_secs(), 60);
//! assert_eq!(opts.alpha, 0.05);
//! assert_eq!(opts.ramp_lead.as_secs(), 60);
//! ```

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bunting_analysis::sequential::{
    Decision, Direction, SequentialConfig, SequentialResult, SequentialTest,
};
use bunting_core::Serve;
use bunting_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde::Serialize;
use serde_json::json;

use crate::api::AppState;
use crate::model::experiment::ExperimentRecord;
use crate::model::guardrail::{Guardrail, RollbackAction};
use crate::model::metric::MetricSpec;
use crate::model::rollout::{GuardHealth, GuardedRolloutRecord, GuardrailState};
use crate::results::guardrail_summary;
use crate::rollback::{Evidence, roll_back};
use crate::store::aggregate::{AggregateOptions, AnalysisScope, ExperimentData};
use crate::store::{Actor, ConfigSpec, Environment, FlagRecord, Project, Result, StoreError};

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

/// What the monitor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectKind {
    /// A running experiment with guardrails.
    Experiment,
    /// An active guarded rollout.
    GuardedRollout,
}

impl SubjectKind {
    /// The name used in evidence and webhooks: `experiment` or
    /// `guardedRollout`.
    ///
    /// ```
    /// use bunting_origin::monitor::SubjectKind;
    /// assert_eq!(SubjectKind::GuardedRollout.as_str(), "guardedRollout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Experiment => "experiment",
            SubjectKind::GuardedRollout => "guardedRollout",
        }
    }
}

/// The part of an experiment or a guarded rollout the harm tests read.
///
/// ```
/// use bunting_origin::monitor::{Subject, SubjectKind};
/// use bunting_origin::model::rollout::{GuardStatus, GuardedRolloutRecord, GuardedRolloutSpec};
/// let g = GuardedRolloutRecord {
///     id: 7, environment_id: 1, flag_id: 3, spec: GuardedRolloutSpec::new("checkout", "off"),
///     status: GuardStatus::Active, started_at: Some("2026-11-25T00:00:00.000000Z".into()),
///     stopped_at: None, checked_at: None, health: None, held_until: None, version: 1,
/// };
/// let s = Subject::from(&g);
/// assert_eq!((s.kind, s.id, s.key.as_str(), s.control.as_str()), (SubjectKind::GuardedRollout, 7, "checkout", "off"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    /// Experiment or guarded rollout.
    pub kind: SubjectKind,
    /// Its row id.
    pub id: i64,
    /// The experiment's key, or the guarded rollout's flag key.
    pub key: String,
    /// Its version when read.
    pub version: i64,
    /// When it started: a new start begins new tests.
    pub started_at: Option<String>,
    /// The control variant.
    pub control: String,
    /// Its guardrails.
    pub guardrails: Vec<Guardrail>,
    /// Overrides [`MonitorOptions::min_users_per_arm`].
    pub min_users_per_arm: Option<u64>,
}

impl From<&ExperimentRecord> for Subject {
    fn from(e: &ExperimentRecord) -> Subject {
        Subject {
            kind: SubjectKind::Experiment,
            id: e.id,
            key: e.spec.key.clone(),
            version: e.version,
            started_at: e.started_at.clone(),
            control: e.spec.control.clone(),
            guardrails: e.spec.guardrails.clone(),
            min_users_per_arm: None,
        }
    }
}

impl From<&GuardedRolloutRecord> for Subject {
    fn from(g: &GuardedRolloutRecord) -> Subject {
        Subject {
            kind: SubjectKind::GuardedRollout,
            id: g.id,
            key: g.spec.flag.clone(),
            version: g.version,
            started_at: g.started_at.clone(),
            control: g.spec.control.clone(),
            guardrails: g.spec.guardrails.clone(),
            min_users_per_arm: g.spec.min_users_per_arm,
        }
    }
}

/// One guardrail's verdict for one treatment arm in a round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailCheck {
    /// Experiment or guarded rollout.
    pub kind: SubjectKind,
    /// The experiment's key, or the guarded rollout's flag key.
    pub subject: String,
    /// Treatment variant.
    pub variant: String,
    /// Guardrail metric.
    pub metric: String,
    /// Index of the guardrail in its subject.
    pub guardrail: usize,
    /// The guardrail's action.
    pub action: RollbackAction,
    /// The sequential test's result at this look.
    pub result: SequentialResult,
    /// Whether this check rolled the flag back (an action other than
    /// `alert`).
    pub rolled_back: bool,
    /// Whether this check sent the alert of an `alert` guardrail (once per
    /// test: later looks that still find harm do not repeat it).
    pub alerted: bool,
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
}

/// Where a subject lives.
struct Place {
    env: Environment,
    project: Project,
    flag: FlagRecord,
}

/// One step postponed by [`hold_schedules`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldStep {
    /// Where the schedule is served: `fallthrough` or `rules[i]`.
    pub serve: String,
    /// Index of the postponed step (it and every later step moved).
    pub step: usize,
    /// Steps moved.
    pub steps_moved: usize,
    /// The step's time before.
    pub from: String,
    /// Its time now.
    pub to: String,
    /// The shift applied to it and every later step (ms).
    pub shift_ms: i64,
}

/// Postpones the scheduled ramps of `config` (the fallthrough and every
/// rule serving a [`Serve::Schedule`]) whose next step (the first after
/// `now_ms`) would take effect before `horizon_ms`: that step moves to
/// `target_ms` and every later step by the same shift, which keeps the
/// spacing of the steps. Steps already in effect stay. `None` when no
/// schedule needs holding.
///
/// ```
/// use bunting_core::Serve;
/// use bunting_core::model::{Schedule, ScheduleStep};
/// use bunting_origin::monitor::hold_schedules;
/// use bunting_origin::store::ConfigSpec;
/// let step = |at: &str, percentage| ScheduleStep { at: at.into(), percentage };
/// let ramp = ConfigSpec {
///     enabled: true, rules: vec![], prerequisites: vec![],
///     fallthrough: Serve::Schedule(Schedule { variant: "on".into(), otherwise: "off".into(), steps: vec![
///         step("1970-01-01T00:00:10Z", 10.0), step("1970-01-01T00:01:40Z", 50.0), step("1970-01-01T00:03:20Z", 100.0),
///     ]}),
/// };
/// // At t = 60 s the next step (100 s) is due before the horizon (150 s): moved to 210 s.
/// let (held, moved) = hold_schedules(&ramp, 60_000, 150_000, 210_000).unwrap();
/// let Serve::Schedule(s) = &held.fallthrough else { unreachable!() };
/// assert_eq!(s.steps[0].at, "1970-01-01T00:00:10Z"); // in effect: untouched
/// assert_eq!(s.steps[1].at, "1970-01-01T00:03:30Z");
/// assert_eq!(s.steps[2].at, "1970-01-01T00:05:10Z"); // same spacing
/// assert_eq!(moved[0].shift_ms, 110_000);
/// // A step beyond the horizon needs no hold.
/// assert!(hold_schedules(&ramp, 60_000, 90_000, 150_000).is_none());
/// ```
pub fn hold_schedules(
    config: &ConfigSpec,
    now_ms: i64,
    horizon_ms: i64,
    target_ms: i64,
) -> Option<(ConfigSpec, Vec<HeldStep>)> {
    let mut c = config.clone();
    let mut held = Vec::new();
    let mut hold = |serve: &mut Serve, name: String| {
        let Serve::Schedule(s) = serve else {
            return;
        };
        let Some(times) = s
            .steps
            .iter()
            .map(|st| parse_rfc3339_ms(&st.at))
            .collect::<Option<Vec<i64>>>()
        else {
            return;
        };
        let Some(i) = times.iter().position(|&t| t > now_ms) else {
            return; // the ramp is complete
        };
        if times[i] >= horizon_ms || target_ms <= times[i] {
            return;
        }
        let shift = target_ms - times[i];
        let moved: Option<Vec<String>> = times[i..]
            .iter()
            .map(|t| format_rfc3339_ms(t + shift))
            .collect();
        let Some(moved) = moved else {
            return;
        };
        let from = s.steps[i].at.clone();
        for (st, at) in s.steps[i..].iter_mut().zip(moved) {
            st.at = at;
        }
        held.push(HeldStep {
            serve: name,
            step: i,
            steps_moved: s.steps.len() - i,
            from,
            to: s.steps[i].at.clone(),
            shift_ms: shift,
        });
    };
    for (i, r) in c.rules.iter_mut().enumerate() {
        hold(&mut r.serve, format!("rules[{i}]"));
    }
    hold(&mut c.fallthrough, "fallthrough".into());
    (!held.is_empty()).then_some((c, held))
}

/// A guarded rollout's health after a look (pure): healthy when at least
/// one variant other than the control has exposed users and, for every
/// guardrail and every such treatment arm, both arms have at least
/// `min_users` users, the harm test looked at them this round, and it does
/// not find significant harm. Not enough data is not healthy: a gated ramp
/// waits for evidence. `checks` are this round's (of [`Monitor::observe_subject`]).
///
/// ```
/// use bunting_origin::monitor::{Subject, SubjectKind, health};
/// use bunting_origin::store::aggregate::{ArmData, ExperimentData};
/// let s = Subject {
///     kind: SubjectKind::GuardedRollout, id: 1, key: "checkout".into(), version: 1,
///     started_at: None, control: "off".into(), guardrails: vec![], min_users_per_arm: None,
/// };
/// let data = ExperimentData {
///     environment: "acme/web/production".into(), multi_arm_users: 0, series: vec![],
///     from_ms: None, until_ms: None,
///     arms: vec![ArmData { variant: "off".into(), users: 500, metrics: Default::default() }],
/// };
/// let h = health(&s, &data, &[], 100);
/// assert!(!h.healthy);
/// assert!(h.reasons[0].contains("no user exposed"), "{:?}", h.reasons);
/// ```
pub fn health(
    s: &Subject,
    data: &ExperimentData,
    checks: &[GuardrailCheck],
    min_users: u64,
) -> GuardHealth {
    let mut reasons = Vec::new();
    let control_users = data
        .arms
        .iter()
        .find(|a| a.variant == s.control)
        .map_or(0, |a| a.users);
    let treatments: Vec<_> = data
        .arms
        .iter()
        .filter(|a| a.variant != s.control && a.users > 0)
        .collect();
    if treatments.is_empty() {
        reasons.push(format!(
            "no user exposed to a variant other than the control {:?} yet",
            s.control
        ));
    }
    if control_users < min_users {
        reasons.push(format!(
            "control {:?} has {control_users} users (fewer than {min_users})",
            s.control
        ));
    }
    for t in &treatments {
        if t.users < min_users {
            reasons.push(format!(
                "variant {:?} has {} users (fewer than {min_users})",
                t.variant, t.users
            ));
        }
    }
    let mut states = Vec::new();
    for (gi, g) in s.guardrails.iter().enumerate() {
        for t in &treatments {
            let Some(c) = checks
                .iter()
                .find(|c| c.guardrail == gi && c.variant == t.variant)
            else {
                reasons.push(format!(
                    "{} (tolerance {}) on {:?}: no look this round (no data)",
                    g.metric, g.tolerance, t.variant
                ));
                continue;
            };
            let r = &c.result;
            let significant = r.decision == Decision::TreatmentWorse;
            if significant {
                reasons.push(format!(
                    "{} on {:?}: significant harm beyond tolerance {} (p = {:.4})",
                    g.metric, t.variant, g.tolerance, r.p_value
                ));
            }
            states.push(GuardrailState {
                guardrail: gi,
                tolerance: g.tolerance,
                metric: g.metric.clone(),
                variant: t.variant.clone(),
                control_users,
                treatment_users: t.users,
                estimate: r.estimate,
                p_value: Some(r.p_value),
                lower: r.interval.and_then(|i| i.lower),
                looks: r.look,
                significant,
            });
        }
    }
    GuardHealth {
        healthy: reasons.is_empty(),
        reasons,
        min_users_per_arm: min_users,
        guardrails: states,
    }
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
        }
    }

    /// One round over every running experiment with guardrails and every
    /// active guarded rollout; returns every check made (for logs and
    /// tests).
    pub async fn round(&mut self, state: &AppState) -> Result<Vec<GuardrailCheck>> {
        let mut checks = Vec::new();
        let mut watched: HashSet<(SubjectKind, i64, Option<String>)> = HashSet::new();
        for e in state.store.running_experiments().await? {
            if e.spec.guardrails.is_empty() {
                continue;
            }
            let s = Subject::from(&e);
            match self.check_experiment(state, &e, &s).await {
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
        for g in state.store.active_guarded_rollouts().await? {
            let s = Subject::from(&g);
            match self.check_guard(state, &g, &s).await {
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
    async fn place(&self, state: &AppState, env_id: i64, flag: &str) -> Result<Place> {
        let env = state.store.environment(env_id).await?;
        let project = state.store.project(env.project_id).await?;
        let flag = state.store.flag_by_key(project.id, flag).await?;
        Ok(Place { env, project, flag })
    }

    /// One look at `s` over `scope`: the checks, the data, and whether a
    /// guardrail tripped (then the flag is rolled back).
    async fn look(
        &mut self,
        state: &AppState,
        s: &Subject,
        place: &Place,
        scope: &AnalysisScope,
    ) -> Result<(Vec<GuardrailCheck>, ExperimentData)> {
        let mut metrics: Vec<MetricSpec> = Vec::new();
        for g in &s.guardrails {
            metrics.push(
                state
                    .store
                    .metric_by_key(place.project.id, &g.metric)
                    .await?
                    .spec,
            );
        }
        let data = state
            .store
            .scope_data(scope, &metrics, &AggregateOptions::default())
            .await?;
        let checks = self.observe_subject(s, &metrics, &data);
        Ok((checks, data))
    }

    /// Acts on this round's checks that found harm, in guardrail order:
    /// an `alert` guardrail alerts once per test and the watch goes on;
    /// the first guardrail with another action rolls back, is marked, and
    /// the later checks are dropped. Returns whether it rolled back.
    async fn act_on_harm(
        &mut self,
        state: &AppState,
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
                self.trip(state, s, place, &checks[i]).await?;
                checks[i].alerted = true;
                if let Some(w) = self.tests.get_mut(&key) {
                    w.alerted = true;
                }
                continue;
            }
            self.trip(state, s, place, &checks[i]).await?;
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
        state: &AppState,
        e: &ExperimentRecord,
        s: &Subject,
    ) -> Result<(Vec<GuardrailCheck>, bool)> {
        let place = self.place(state, e.environment_id, &e.spec.flag).await?;
        let (mut checks, _) = self.look(state, s, &place, &AnalysisScope::from(e)).await?;
        let tripped = self.act_on_harm(state, s, &place, &mut checks).await?;
        Ok((checks, tripped))
    }

    async fn check_guard(
        &mut self,
        state: &AppState,
        g: &GuardedRolloutRecord,
        s: &Subject,
    ) -> Result<(Vec<GuardrailCheck>, bool)> {
        let place = self.place(state, g.environment_id, &g.spec.flag).await?;
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
        let (mut checks, data) = match self.look(state, s, &place, &scope).await {
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
                state
                    .store
                    .record_guard_health(g.id, g.started_at.as_deref(), &h)
                    .await?;
                if g.spec.gate_ramp {
                    self.hold_ramp(state, g, &place, &h).await?;
                }
                return Err(err);
            }
        };
        let h = health(s, &data, &checks, min_users);
        state
            .store
            .record_guard_health(g.id, g.started_at.as_deref(), &h)
            .await?;
        let tripped = self.act_on_harm(state, s, &place, &mut checks).await?;
        if !tripped && g.spec.gate_ramp && !h.healthy {
            self.hold_ramp(state, g, &place, &h).await?;
        }
        Ok((checks, tripped))
    }

    /// Postpones the flag's next ramp step when it is due before the next
    /// round plus the lead (see [`hold_schedules`]).
    async fn hold_ramp(
        &self,
        state: &AppState,
        g: &GuardedRolloutRecord,
        place: &Place,
        h: &GuardHealth,
    ) -> Result<()> {
        let now = now_ms();
        let interval = self.options.interval.as_millis() as i64;
        let lead = self.options.ramp_lead.as_millis() as i64;
        let horizon = now + interval + lead;
        let target = horizon + lead;
        let config = state.store.flag_config(place.flag.id, place.env.id).await?;
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
        match state
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
        state.notify_publish();
        state.notifier.send(json!({
            "type": "rampHold",
            "flag": format!("{}/{}", place.project.key, place.flag.spec.key),
            "environment": place.env.key,
            "actor": "ramp-guard",
            "heldUntil": until,
            "details": details,
        }));
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
        state: &AppState,
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
            &state.store,
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
                match state.store.stop_experiment(&actor, s.id, s.version).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            SubjectKind::GuardedRollout => {
                state
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
