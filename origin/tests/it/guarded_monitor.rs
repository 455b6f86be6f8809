//! The guardrail monitor on guarded rollouts (no experiment), on both
//! backends: a regression in the rollout's treatment arm is rolled back
//! (the schedule goes to its `otherwise` variant, the guard is marked
//! rolled back, the audit log carries the evidence by `auto-rollback`, the
//! webhook is told); without a regression nothing is rolled back and the
//! guard is healthy; a guard gating a ramp holds the due step while it is
//! not healthy (the step and every later one move by the same shift,
//! audited as `holdRamp` by `ramp-guard` in the flag's history, visible as
//! `heldUntil`) and leaves the schedule alone while healthy; a guard that
//! cannot be checked (its metric gone) holds the ramp too. Two guardrails
//! on one metric are two tests: the tighter one acts, with its own action.

use bunting_core::Serve;
use bunting_core::model::{Schedule, ScheduleStep};
use bunting_core::time::{format_rfc3339_ms, parse_rfc3339_ms};
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
use bunting_origin::model::metric::MetricSpec;
use bunting_origin::model::rollout::{GuardStatus, GuardedRolloutSpec};
use bunting_origin::monitor::{Monitor, MonitorOptions, SubjectKind};
use bunting_origin::notify::Notifier;
use bunting_origin::serve::monitor_services;
use bunting_origin::store::{Actor, AuditEntry, AuditQuery, Store, StoreError};
use serde_json::Value;

use crate::common::world::World;
use crate::common::{traffic, webhook};

both!(
    regression_is_rolled_back,
    no_regression_no_rollback,
    unhealthy_guard_holds_the_due_step,
    healthy_guard_leaves_the_ramp_alone,
    failing_check_holds_the_ramp,
    two_guardrails_on_one_metric_the_tighter_acts
);

struct Setup {
    state: AppState,
    hooks: webhook::Received,
    guard: i64,
    flag: i64,
    env: i64,
    start_ms: i64,
    /// The schedule's step times (ms) as configured.
    steps: Vec<i64>,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A 3-step ramp of `checkout` (on vs otherwise off): 10% an hour ago,
/// then 50% at `next_in_ms` from now, 100% 10 minutes after that; guarded
/// on `checkout-errors` (lower is better) by a guard with control `off`.
async fn setup(store: Store, next_in_ms: i64, gate_ramp: bool) -> Setup {
    let (hook_url, hooks) = webhook::receiver().await;

    let w = World::acme_by(&store, Actor::new("setup")).await;
    let a = &w.actor;
    let f = w.flag(&store, "checkout").await;
    let now = now_ms();
    let steps = vec![
        now - 3_600_000,
        now + next_in_ms,
        now + next_in_ms + 600_000,
    ];
    let ramp = Serve::Schedule(Schedule {
        variant: "on".into(),
        otherwise: "off".into(),
        steps: steps
            .iter()
            .zip([10.0, 50.0, 100.0])
            .map(|(t, percentage)| ScheduleStep {
                at: format_rfc3339_ms(*t).unwrap(),
                percentage,
            })
            .collect(),
    });
    w.serve(&store, f, ramp).await;
    let mut errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    errors.higher_is_better = false;
    w.metric(&store, &errors).await;
    let mut spec = GuardedRolloutSpec::new("checkout", "off");
    spec.gate_ramp = gate_ramp;
    spec.guardrails.push(Guardrail {
        metric: "checkout-errors".into(),
        tolerance: 0.0,
        action: RollbackAction::RolloutToZero,
    });
    let g = store.create_guarded_rollout(a, w.env, &spec).await.unwrap();
    let start_ms = parse_rfc3339_ms(g.started_at.as_deref().unwrap()).unwrap();
    let mut state = AppState::new(store, ServeConfig::default());
    state.notifier = Notifier::new(vec![hook_url]);
    Setup {
        state,
        hooks,
        guard: g.id,
        flag: f,
        env: w.env,
        start_ms,
        steps,
    }
}

/// `users` new users per arm (numbered from `from`), exposed by the split
/// after the guard's start; every `err_every[arm]`-th user errs (0: none).
async fn traffic(s: &Setup, from: u64, users: u64, err_every: [u64; 2]) {
    traffic::traffic(
        &s.state.store,
        s.env,
        s.start_ms + 1,
        from,
        users,
        err_every,
    )
    .await;
}

async fn log_by(store: &Store, actor: &str) -> Vec<AuditEntry> {
    store
        .audit_log(&AuditQuery {
            actor: Some(actor.into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .entries
}

/// The configured schedule's step times (ms).
async fn step_times(s: &Setup) -> Vec<i64> {
    let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    let Serve::Schedule(sch) = c.spec.fallthrough else {
        panic!("not a schedule: {:?}", c.spec.fallthrough)
    };
    sch.steps
        .iter()
        .map(|st| parse_rfc3339_ms(&st.at).unwrap())
        .collect()
}

async fn regression_is_rolled_back(store: Store) {
    // The next step is far away: no hold in the way.
    let s = setup(store, 3_600_000, true).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    // Control errs 2% of the time, the treatment 10%: looks every 300 users.
    let mut tripped_at = None;
    for look in 0..10u64 {
        traffic(&s, look * 300, 300, [50, 10]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        assert!(
            checks.iter().all(|c| c.kind == SubjectKind::GuardedRollout
                && c.subject == "checkout"
                && c.variant == "on"),
            "{checks:?}"
        );
        if checks.iter().any(|c| c.rolled_back) {
            tripped_at = Some((look + 1) * 300);
            break;
        }
    }
    let users = tripped_at.expect("the regression is detected within 3,000 users per arm");
    println!("guardrail tripped after {users} users per arm");
    // rolloutToZero: the schedule serves its `otherwise` to everybody.
    let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    assert_eq!(c.spec.fallthrough, Serve::Variant("off".into()));
    assert!(c.spec.enabled);
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    assert_eq!(g.status, GuardStatus::RolledBack);
    assert!(g.stopped_at.is_some());
    // The health that tripped it stays visible.
    let h = g.health.expect("health recorded");
    assert!(!h.healthy);
    assert!(h.guardrails.iter().any(|x| x.significant), "{h:?}");
    // Config update, rollback with evidence, guard rolled back: all by
    // auto-rollback; no ramp hold.
    let log = log_by(&s.state.store, "auto-rollback").await;
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.entity_type.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("update", "flagConfig"),
            ("rollback", "flagConfig"),
            ("rollback", "guardedRollout")
        ]
    );
    let after: Value = serde_json::from_str(log[1].after.as_deref().unwrap()).unwrap();
    let ev = &after["evidence"];
    assert_eq!(ev["source"], "guardrail");
    assert_eq!(ev["metric"], "checkout-errors");
    assert!(ev["effect"].as_f64().unwrap() > 0.0, "{ev}");
    assert!(ev["interval"][0].as_f64().unwrap() > 0.0, "{ev}");
    assert!(ev["pValue"].as_f64().unwrap() <= 0.05, "{ev}");
    assert_eq!(ev["details"]["guardedRollout"], "checkout");
    assert_eq!(ev["details"]["control"], "off");
    assert_eq!(ev["details"]["variant"], "on");
    assert!(log_by(&s.state.store, "ramp-guard").await.is_empty());
    assert!(s.state.store.verify_audit().await.unwrap().is_ok());
    // The webhook hears about it.
    for _ in 0..500 {
        if !s.hooks.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hooks = s.hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["type"], "rollback");
    assert_eq!(hooks[0]["action"], "rolloutToZero");
    assert_eq!(hooks[0]["flag"], "web/checkout");
    // Nothing more to watch.
    assert!(
        monitor
            .round(&monitor_services(&s.state))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn no_regression_no_rollback(store: Store) {
    let s = setup(store, 3_600_000, false).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    let mut looks = 0;
    for look in 0..10u64 {
        // Both arms err 5% of the time.
        traffic(&s, look * 300, 300, [20, 20]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        assert!(checks.iter().all(|c| !c.rolled_back), "{checks:?}");
        looks += checks.len();
    }
    assert_eq!(looks, 10, "one check per look");
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    assert_eq!(g.status, GuardStatus::Active);
    assert!(g.checked_at.is_some());
    let h = g.health.unwrap();
    assert!(h.healthy, "{h:?}");
    assert_eq!(h.guardrails.len(), 1);
    assert_eq!(
        (
            h.guardrails[0].control_users,
            h.guardrails[0].treatment_users
        ),
        (3000, 3000)
    );
    assert_eq!(h.guardrails[0].looks, 10);
    assert_eq!(step_times(&s).await, s.steps, "the ramp is untouched");
    assert!(log_by(&s.state.store, "auto-rollback").await.is_empty());
}

async fn unhealthy_guard_holds_the_due_step(store: Store) {
    // The 50% step is due in 30 s: before the next round (60 s) plus the
    // lead (60 s). Only 50 users per arm so far: not healthy (minimum 100).
    let s = setup(store, 30_000, true).await;
    traffic(&s, 0, 50, [20, 20]).await;
    let options = MonitorOptions::default();
    let mut monitor = Monitor::new(options);
    let before = now_ms();
    let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
    let after = now_ms();
    assert!(checks.iter().all(|c| !c.rolled_back), "{checks:?}");

    // The due step moved to one lead beyond the horizon (now + interval +
    // 2 leads), the later one by the same shift; the step in effect stays.
    let moved = step_times(&s).await;
    let reach = (options.interval + 2 * options.ramp_lead).as_millis() as i64;
    assert_eq!(moved[0], s.steps[0]);
    assert!(
        moved[1] >= before + reach && moved[1] <= after + reach,
        "{moved:?} vs {:?}",
        s.steps
    );
    assert_eq!(moved[2] - moved[1], s.steps[2] - s.steps[1], "spacing kept");

    // Visible on the guard.
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    assert_eq!(g.status, GuardStatus::Active);
    assert_eq!(
        g.held_until
            .as_deref()
            .map(|t| parse_rfc3339_ms(t).unwrap()),
        Some(moved[1])
    );
    let h = g.health.unwrap();
    assert!(!h.healthy);
    assert!(
        h.reasons.iter().any(|r| r.contains("50 users")),
        "{:?}",
        h.reasons
    );

    // Audited by ramp-guard, with the reason and the guard's state, in the
    // flag's history.
    let history = s
        .state
        .store
        .audit_log(&AuditQuery {
            entity_types: vec!["flag".into(), "flagConfig".into()],
            entity_id: Some(s.flag),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .entries;
    let held: Vec<&AuditEntry> = history.iter().filter(|e| e.actor == "ramp-guard").collect();
    let actions: Vec<&str> = held.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["update", "holdRamp"]);
    let entry: Value = serde_json::from_str(held[1].after.as_deref().unwrap()).unwrap();
    let d = &entry["details"];
    assert_eq!(d["reason"], "guardrails not healthy");
    assert_eq!(d["guardedRollout"], "checkout");
    assert_eq!(d["health"]["healthy"], false);
    assert_eq!(d["held"][0]["serve"], "fallthrough");
    assert_eq!(d["held"][0]["step"], 1);
    assert_eq!(d["held"][0]["stepsMoved"], 2);
    assert_eq!(
        d["held"][0]["shiftMs"].as_i64().unwrap(),
        moved[1] - s.steps[1]
    );
    assert_eq!(entry["heldUntil"], g.held_until.unwrap().as_str());
    // The snapshot the edge gets holds the new times.
    let snap = s.state.store.snapshot(s.env).await.unwrap();
    assert!(bunting_core::Engine::from_snapshot(&snap).is_ok());
    assert!(s.state.store.verify_audit().await.unwrap().is_ok());

    // The next round: the held step is beyond the horizon again, so no
    // new hold.
    monitor.round(&monitor_services(&s.state)).await.unwrap();
    assert_eq!(step_times(&s).await, moved);
    assert_eq!(log_by(&s.state.store, "ramp-guard").await.len(), 2);
}

async fn healthy_guard_leaves_the_ramp_alone(store: Store) {
    // The same due step, but 300 users per arm with equal error rates:
    // healthy, so the edge advances by time.
    let s = setup(store, 30_000, true).await;
    traffic(&s, 0, 300, [20, 20]).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert!(!checks[0].rolled_back);
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    let h = g.health.unwrap();
    assert!(h.healthy, "{h:?}");
    assert!(h.reasons.is_empty());
    assert_eq!(g.held_until, None);
    assert_eq!(step_times(&s).await, s.steps, "the schedule is untouched");
    assert!(log_by(&s.state.store, "ramp-guard").await.is_empty());
}

async fn failing_check_holds_the_ramp(store: Store) {
    // Healthy data, but the guardrail's metric is deleted: the check fails,
    // which is not healthy (fail closed), so the due step is held.
    let s = setup(store, 30_000, true).await;
    traffic(&s, 0, 300, [20, 20]).await;
    let env = s.state.store.environment(s.env).await.unwrap();
    let m = s
        .state
        .store
        .metric_by_key(env.project_id, "checkout-errors")
        .await
        .unwrap();
    // The store refuses to delete a metric a guard uses...
    let err = s
        .state
        .store
        .delete_metric(&Actor::new("someone"), m.id, m.version)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid(p) if p[0].message.contains("active guarded rollout \"checkout\"")),
        "{err}"
    );
    // ...so remove it underneath (as a database restored without it).
    sqlx::query("DELETE FROM metrics WHERE id = $1")
        .bind(m.id)
        .execute(s.state.store.pool())
        .await
        .unwrap();
    let mut monitor = Monitor::new(MonitorOptions::default());
    let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
    assert!(checks.is_empty(), "{checks:?}");
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    let h = g.health.unwrap();
    assert!(!h.healthy);
    assert!(h.reasons[0].starts_with("the check failed"), "{h:?}");
    let moved = step_times(&s).await;
    assert!(moved[1] > s.steps[1], "{moved:?} vs {:?}", s.steps);
    assert_eq!(moved[2] - moved[1], s.steps[2] - s.steps[1]);
    assert_eq!(g.status, GuardStatus::Active);
}

async fn two_guardrails_on_one_metric_the_tighter_acts(store: Store) {
    // Two guardrails on `checkout-errors`: first a loose one (harm beyond
    // 0.04) that turns the flag off, then a tight one (any harm) that
    // sends the rollout to 0%. Each is its own test: the tight one trips
    // first, with its own action, although it is listed second.
    let s = setup(store, 3_600_000, false).await;
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    let mut spec = g.spec.clone();
    spec.guardrails = vec![
        Guardrail {
            metric: "checkout-errors".into(),
            tolerance: 0.04,
            action: RollbackAction::DisableFlag,
        },
        Guardrail {
            metric: "checkout-errors".into(),
            tolerance: 0.0,
            action: RollbackAction::RolloutToZero,
        },
    ];
    s.state
        .store
        .update_guarded_rollout(&Actor::new("ana"), g.id, g.version, &spec)
        .await
        .unwrap();
    let mut monitor = Monitor::new(MonitorOptions::default());
    let mut tripped = None;
    for look in 0..20u64 {
        // Control errs 2% of the time, the treatment 10% (harm 0.08).
        traffic(&s, look * 100, 100, [50, 10]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        if let Some(c) = checks.iter().find(|c| c.rolled_back) {
            tripped = Some(c.clone());
            break;
        }
        // Until then, both tests look at every round.
        if look > 0 {
            let guardrails: Vec<usize> = checks.iter().map(|c| c.guardrail).collect();
            assert_eq!(guardrails, [0, 1], "{checks:?}");
        }
    }
    let c = tripped.expect("the regression is detected within 2,000 users per arm");
    assert_eq!((c.guardrail, c.action), (1, RollbackAction::RolloutToZero));
    // rolloutToZero, not disableFlag: the flag stays on, serving `off`.
    let config = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    assert!(config.spec.enabled);
    assert_eq!(config.spec.fallthrough, Serve::Variant("off".into()));
    let g = s.state.store.guarded_rollout(s.guard).await.unwrap();
    assert_eq!(g.status, GuardStatus::RolledBack);
    // The health lists each guardrail with its tolerance: the tight one
    // significant, the loose one not (yet).
    let h = g.health.unwrap();
    let states: Vec<(usize, f64, bool)> = h
        .guardrails
        .iter()
        .map(|x| (x.guardrail, x.tolerance, x.significant))
        .collect();
    assert_eq!(states, [(0, 0.04, false), (1, 0.0, true)], "{h:?}");
    let log = log_by(&s.state.store, "auto-rollback").await;
    let rollback = log.iter().find(|e| e.action == "rollback").unwrap();
    let after: Value = serde_json::from_str(rollback.after.as_deref().unwrap()).unwrap();
    assert_eq!(after["evidence"]["details"]["guardrail"], 1);
    assert_eq!(after["evidence"]["details"]["tolerance"], 0.0);
}
