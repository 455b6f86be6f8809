//! The monitor's pure policy: what it watches ([`Subject`]), what a round
//! reports ([`GuardrailCheck`]), which ramp steps to hold before the next
//! round ([`hold_schedules`]) and the health of a guarded rollout's
//! guardrails from a summary ([`health`]). No store, no clock, no I/O: the
//! loop in the parent module reads, calls these, and acts.

use bunting_analysis::sequential::{Decision, SequentialResult};
use bunting_core::Serve;
use bunting_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use serde::Serialize;

use crate::model::experiment::ExperimentRecord;
use crate::model::guardrail::{Guardrail, RollbackAction};
use crate::model::rollout::{GuardHealth, GuardedRolloutRecord, GuardrailState};
use crate::store::ConfigSpec;
use crate::store::aggregate::ExperimentData;

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
    /// Overrides [`MonitorOptions::min_users_per_arm`](super::MonitorOptions::min_users_per_arm).
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
/// waits for evidence. `checks` are this round's (of [`Monitor::observe_subject`](super::Monitor::observe_subject)).
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
