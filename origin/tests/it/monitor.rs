//! The guardrail monitor on both backends: a regression injected into the
//! treatment is detected by the sequential harm test and rolled back (the
//! flag serves control, the experiment stops, the audit log carries the
//! evidence by actor `auto-rollback`, the webhook is told); without a
//! regression, repeated looks roll nothing back. A ratio guardrail
//! (errors per request) is tested on the ratio (delta method), not on the
//! numerator per user; two guardrails on one metric are two tests.
//! Origins sharing one PostgreSQL database monitor one at a time.

use bunting_core::Serve;
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::model::experiment::{ExperimentSpec, ExperimentStatus};
use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::monitor::{Monitor, MonitorOptions};
use bunting_origin::serve::monitor_services;
use bunting_origin::store::{Actor, AuditQuery, MetricEvent, Store};
use serde_json::{Value, json};

use crate::common;
use crate::common::traffic::{self, exposure};
use crate::common::world::{World, split};

both!(
    regression_is_rolled_back,
    no_regression_no_rollback,
    ratio_regression_is_rolled_back,
    null_ratio_is_not_rolled_back,
    two_guardrails_on_one_metric_act_independently
);

struct Setup {
    state: AppState,
    experiment: i64,
    flag: i64,
    env: i64,
    start_ms: i64,
}

async fn setup(store: Store) -> Setup {
    setup_with(
        store,
        vec![Guardrail {
            metric: "checkout-errors".into(),
            tolerance: 0.0,
            action: RollbackAction::ServeControl,
        }],
    )
    .await
}

/// The experiment `one-page` on `checkout` (50/50, control `off`) with
/// `guardrails`; metrics `checkout-errors` (conversion of
/// `checkout_error`, lower is better), `purchased`, and `error-rate`
/// (ratio of `error` values over `request` values, lower is better).
async fn setup_with(store: Store, guardrails: Vec<Guardrail>) -> Setup {
    let w = World::acme_by(&store, Actor::new("setup")).await;
    let a = &w.actor;
    let f = w.flag(&store, "checkout").await;
    w.serve(&store, f, split(&[("on", 50.0), ("off", 50.0)]))
        .await;
    let mut errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    errors.higher_is_better = false;
    w.metric(&store, &errors).await;
    w.metric(&store, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    let mut rate = MetricSpec::conversion("error-rate", "error");
    rate.kind = MetricKind::Ratio;
    rate.denominator_event = Some("request".into());
    rate.higher_is_better = false;
    w.metric(&store, &rate).await;
    let mut spec = ExperimentSpec::new("one-page", "checkout", "off", "purchased");
    spec.guardrails = guardrails;
    let e = store.create_experiment(a, w.env, &spec).await.unwrap();
    let e = store.start_experiment(a, e.id, e.version).await.unwrap();
    let start_ms =
        bunting_origin::store::aggregate::timestamp_ms(e.started_at.as_deref().unwrap()).unwrap();
    Setup {
        state: AppState::new(store, ServeConfig::default()),
        experiment: e.id,
        flag: f,
        env: w.env,
        start_ms,
    }
}

/// `users` new users per arm (numbered from `from`), exposed after the
/// start; a user errs with probability `p_err[arm]` (deterministic:
/// every k-th user).
async fn traffic(s: &Setup, from: u64, users: u64, err_every: [u64; 2]) {
    traffic::traffic(
        &s.state.store,
        s.env,
        s.start_ms + 1000,
        from,
        users,
        err_every,
    )
    .await;
}

/// An event `name` of `user` worth `value` at `t` in environment `env_id`.
fn event(env_id: i64, user: &str, name: &str, value: f64, t: i64) -> MetricEvent {
    MetricEvent {
        env_id,
        id: format!("{name}-{user}"),
        name: name.into(),
        user_key: user.to_string(),
        value: Some(value),
        time_ms: t,
        received_ms: t,
        properties: None,
    }
}

/// `users` new users per arm (from `from`) for the ratio metric: in arm
/// `off` (control) and `on`, every user sends `requests[arm]` requests
/// (one `request` event of that value) and every 5th user has
/// `errors[arm]` errors (one `error` event).
async fn ratio_traffic(s: &Setup, from: u64, users: u64, requests: [f64; 2], errors: [f64; 2]) {
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    for (arm, variant) in ["off", "on"].iter().enumerate() {
        for i in from..from + users {
            let user = format!("{variant}-{i}");
            let t = s.start_ms + 1000 + i as i64;
            exposures.push(exposure(s.env, &user, variant, t));
            events.push(event(s.env, &user, "request", requests[arm], t + 10));
            if i % 5 == 0 {
                events.push(event(s.env, &user, "error", errors[arm], t + 20));
            }
        }
    }
    s.state.store.insert_exposures(&exposures).await.unwrap();
    s.state.store.insert_metric_events(&events).await.unwrap();
}

fn ratio_guardrail() -> Vec<Guardrail> {
    vec![Guardrail {
        metric: "error-rate".into(),
        tolerance: 0.0,
        action: RollbackAction::ServeControl,
    }]
}

async fn ratio_regression_is_rolled_back(store: Store) {
    let s = setup_with(store, ratio_guardrail()).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    // The treatment's users make 2 requests instead of 10 with the same
    // errors per user (0.2): errors per request go from 2% to 10%. The
    // numerator per user does not move, the ratio does.
    let mut tripped = None;
    for look in 0..10u64 {
        ratio_traffic(&s, look * 300, 300, [10.0, 2.0], [1.0, 1.0]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        assert_eq!(checks.len(), 1, "{checks:?}");
        if checks[0].rolled_back {
            tripped = Some(checks[0].clone());
            break;
        }
    }
    let check = tripped.expect("the ratio regression is detected within 3,000 users per arm");
    // The effect is the difference of the ratios: 0.10 − 0.02.
    let effect = check.result.estimate.unwrap();
    assert!((effect - 0.08).abs() < 1e-9, "{check:?}");
    let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    assert_eq!(c.spec.fallthrough, Serve::Variant("off".into()));
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Stopped);
    let log = s
        .state
        .store
        .audit_log(&AuditQuery {
            actor: Some("auto-rollback".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let rollback = log.entries.iter().find(|e| e.action == "rollback").unwrap();
    let after: Value = serde_json::from_str(rollback.after.as_deref().unwrap()).unwrap();
    let ev = &after["evidence"];
    assert_eq!(ev["metric"], "error-rate");
    assert!((ev["effect"].as_f64().unwrap() - 0.08).abs() < 1e-9, "{ev}");
    // The results page shows the same test on the same ratio arms. The
    // test's exposures are stamped up to seconds after the start, later
    // than the stop this fast test triggers: read the results as they
    // stood while running.
    let mut running = e.clone();
    running.stopped_at = None;
    let (metrics, data) = s
        .state
        .store
        .results_data(e_project(&s).await, &running)
        .await
        .unwrap();
    let results = bunting_origin::results::assemble(&bunting_origin::results::Input {
        experiment: &running,
        metrics: &metrics,
        data: &data,
    });
    let m = results
        .metrics
        .iter()
        .find(|m| m.key == "error-rate")
        .unwrap();
    let cmp = m.arms[1].comparison.as_ref().unwrap();
    let g = &cmp.guardrails[0];
    assert_eq!((g.guardrail, g.tolerance), (0, 0.0));
    let seq = g.sequential.as_ref().unwrap();
    assert_eq!(seq.decision, "treatmentWorse");
    assert!(
        (seq.absolute.unwrap().estimate - 0.08).abs() < 1e-9,
        "{seq:?}"
    );
    assert!((cmp.absolute.estimate - 0.08).abs() < 1e-9);
}

/// The project of `s`'s experiment.
async fn e_project(s: &Setup) -> i64 {
    s.state.store.environment(s.env).await.unwrap().project_id
}

async fn null_ratio_is_not_rolled_back(store: Store) {
    let s = setup_with(store, ratio_guardrail()).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    // The treatment's users make twice the requests and twice the errors:
    // errors per user double, errors per request stay at 4%. A test of the
    // numerator per user would roll back; the ratio's test must not.
    let mut looks = 0;
    for look in 0..10u64 {
        ratio_traffic(&s, look * 300, 300, [5.0, 10.0], [1.0, 2.0]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        for c in &checks {
            assert!(!c.rolled_back, "{c:?}");
            assert!(c.result.estimate.unwrap().abs() < 1e-9, "{c:?}");
        }
        looks += checks.len();
    }
    assert_eq!(looks, 10, "one check per look");
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Running);
}

async fn two_guardrails_on_one_metric_act_independently(store: Store) {
    // On the same metric: a tight guardrail (any harm) that only alerts,
    // and a looser one (harm beyond 0.04) that serves control.
    let s = setup_with(
        store,
        vec![
            Guardrail {
                metric: "checkout-errors".into(),
                tolerance: 0.0,
                action: RollbackAction::Alert,
            },
            Guardrail {
                metric: "checkout-errors".into(),
                tolerance: 0.04,
                action: RollbackAction::ServeControl,
            },
        ],
    )
    .await;
    let before = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    let mut monitor = Monitor::new(MonitorOptions::default());
    let (mut alerted_at, mut rolled_back_at) = (None, None);
    // Control errs 2% of the time, the treatment 10% (harm 0.08).
    for look in 0..40u64 {
        traffic(&s, look * 100, 100, [50, 10]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        for c in &checks {
            assert_eq!(c.action, s_action(c.guardrail), "{c:?}");
            if c.alerted {
                assert!(alerted_at.is_none(), "alerted twice: {checks:?}");
                assert_eq!(c.guardrail, 0);
                alerted_at = Some(look);
            }
            if c.rolled_back {
                assert_eq!(c.guardrail, 1);
                rolled_back_at = Some(look);
            }
        }
        if alerted_at.is_some() && rolled_back_at.is_none() {
            // The alert changed nothing: still serving the split, still
            // running, still watched by both tests.
            let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
            assert_eq!(c.spec, before.spec);
            let e = s.state.store.experiment(s.experiment).await.unwrap();
            assert_eq!(e.status, ExperimentStatus::Running);
            assert_eq!(checks.len(), 2, "{checks:?}");
        }
        if rolled_back_at.is_some() {
            break;
        }
    }
    let (alerted_at, rolled_back_at) = (alerted_at.unwrap(), rolled_back_at.unwrap());
    println!("alert at look {alerted_at}, rollback at look {rolled_back_at}");
    assert!(
        alerted_at < rolled_back_at,
        "the tighter guardrail acts first"
    );
    let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    assert_eq!(c.spec.fallthrough, Serve::Variant("off".into()));
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Stopped);
    // Two `rollback` entries: the alert's (no change) and the rollback's,
    // each with its own guardrail and tolerance.
    let log = s
        .state
        .store
        .audit_log(&AuditQuery {
            actor: Some("auto-rollback".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mut evidence: Vec<Value> = log
        .entries
        .iter()
        .filter(|e| e.action == "rollback")
        .map(|e| serde_json::from_str::<Value>(e.after.as_deref().unwrap()).unwrap())
        .map(|a| a["evidence"]["details"].clone())
        .collect();
    evidence.sort_by_key(|d| d["guardrail"].as_u64());
    assert_eq!(evidence.len(), 2, "{evidence:?}");
    assert_eq!(
        (&evidence[0]["guardrail"], &evidence[0]["tolerance"]),
        (&json!(0), &json!(0.0))
    );
    assert_eq!(
        (&evidence[1]["guardrail"], &evidence[1]["tolerance"]),
        (&json!(1), &json!(0.04))
    );
}

/// The actions of [`two_guardrails_on_one_metric_act_independently`].
fn s_action(guardrail: usize) -> RollbackAction {
    [RollbackAction::Alert, RollbackAction::ServeControl][guardrail]
}

async fn regression_is_rolled_back(store: Store) {
    let s = setup(store).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    // Control errs 2% of the time, the treatment 10%: looks every 300 users.
    let mut tripped_at = None;
    for look in 0..10u64 {
        traffic(&s, look * 300, 300, [50, 10]).await;
        let checks = monitor.round(&monitor_services(&s.state)).await.unwrap();
        if checks.iter().any(|c| c.rolled_back) {
            tripped_at = Some((look + 1) * 300);
            break;
        }
    }
    let users = tripped_at.expect("the regression is detected within 3,000 users per arm");
    println!("guardrail tripped after {users} users per arm");
    // The flag serves control to everybody, the experiment stopped.
    let c = s.state.store.flag_config(s.flag, s.env).await.unwrap();
    assert_eq!(c.spec.fallthrough, Serve::Variant("off".into()));
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Stopped);
    // The evidence is in the audit log, by auto-rollback.
    let log = s
        .state
        .store
        .audit_log(&AuditQuery {
            actor: Some("auto-rollback".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["update", "rollback", "stop"]);
    let after: Value = serde_json::from_str(log.entries[1].after.as_deref().unwrap()).unwrap();
    let ev = &after["evidence"];
    assert_eq!(ev["source"], "guardrail");
    assert_eq!(ev["metric"], "checkout-errors");
    assert!(ev["effect"].as_f64().unwrap() > 0.0, "{ev}");
    assert!(ev["pValue"].as_f64().unwrap() <= 0.05, "{ev}");
    assert!(s.state.store.verify_audit().await.unwrap().is_ok());
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
    let s = setup(store).await;
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
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Running);
}

/// Origins sharing one PostgreSQL database monitor one at a time: the
/// first to take the turn keeps it across rounds while the other looks at
/// nothing; when it goes away (its connection's transaction rolled back),
/// the other takes over and watches the same guardrail.
#[tokio::test]
async fn origins_of_one_database_monitor_one_at_a_time() {
    let (url, _guard) = common::postgres_schema().await;
    let (a, b) = (
        Store::open(&url).await.unwrap(),
        Store::open(&url).await.unwrap(),
    );
    let s = setup(a).await;
    let other = AppState::new(b, ServeConfig::default());
    let mut first = Monitor::new(MonitorOptions::default());
    let mut second = Monitor::new(MonitorOptions::default());
    for look in 0..3u64 {
        traffic(&s, look * 300, 300, [20, 20]).await;
        let checks = first
            .round_if_leading(&monitor_services(&s.state))
            .await
            .unwrap()
            .expect("the first origin keeps the turn");
        assert_eq!(checks.len(), 1, "one check per look: {checks:?}");
        let skipped = second
            .round_if_leading(&monitor_services(&other))
            .await
            .unwrap();
        assert!(skipped.is_none(), "{skipped:?}");
    }
    drop(first);
    let mut took = None;
    for _ in 0..100 {
        took = second
            .round_if_leading(&monitor_services(&other))
            .await
            .unwrap();
        if took.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let checks = took.expect("the other origin took the turn within 2 s");
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert!(checks.iter().all(|c| !c.rolled_back), "{checks:?}");
}
