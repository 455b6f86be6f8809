//! The guardrail monitor on both backends: a regression injected into the
//! treatment is detected by the sequential harm test and rolled back (the
//! flag serves control, the experiment stops, the audit log carries the
//! evidence by actor `auto-rollback`, the webhook is told); without a
//! regression, repeated looks roll nothing back.

use bunting_core::Serve;
use bunting_core::model::WeightedVariant;
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::monitor::{Monitor, MonitorOptions};
use bunting_origin::store::experiments::{
    ExperimentSpec, ExperimentStatus, Guardrail, MetricSpec, RollbackAction,
};
use bunting_origin::store::{
    Actor, AuditQuery, ConfigSpec, Exposure, FlagSpec, MetricEvent, Store,
};
use serde_json::Value;

#[macro_use]
mod common;

both!(regression_is_rolled_back, no_regression_no_rollback);

struct Setup {
    state: AppState,
    experiment: i64,
    flag: i64,
    env: i64,
    start_ms: i64,
}

async fn setup(store: Store) -> Setup {
    let a = Actor::new("setup");
    let org = store.create_org(&a, "acme", "Acme").await.unwrap();
    let a = a.in_org(org.id);
    let p = store
        .create_project(&a, org.id, "web", "Web")
        .await
        .unwrap();
    let env = store
        .create_environment(&a, p.id, "production", "Production")
        .await
        .unwrap();
    let f = store
        .create_flag(&a, p.id, &FlagSpec::boolean("checkout"))
        .await
        .unwrap();
    let c = store.flag_config(f.id, env.id).await.unwrap();
    let split = Serve::Rollout(vec![
        WeightedVariant {
            variant: "on".into(),
            weight: 50.0,
        },
        WeightedVariant {
            variant: "off".into(),
            weight: 50.0,
        },
    ]);
    store
        .update_flag_config(
            &a,
            f.id,
            env.id,
            c.version,
            &ConfigSpec {
                enabled: true,
                rules: vec![],
                fallthrough: split,
                prerequisites: vec![],
            },
        )
        .await
        .unwrap();
    let mut errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    errors.higher_is_better = false;
    store.create_metric(&a, p.id, &errors).await.unwrap();
    store
        .create_metric(&a, p.id, &MetricSpec::conversion("purchased", "purchase"))
        .await
        .unwrap();
    let mut spec = ExperimentSpec::new("one-page", "checkout", "off", "purchased");
    spec.guardrails.push(Guardrail {
        metric: "checkout-errors".into(),
        tolerance: 0.0,
        action: RollbackAction::ServeControl,
    });
    let e = store.create_experiment(&a, env.id, &spec).await.unwrap();
    let e = store.start_experiment(&a, e.id, e.version).await.unwrap();
    let start_ms =
        bunting_origin::store::aggregate::timestamp_ms(e.started_at.as_deref().unwrap()).unwrap();
    Setup {
        state: AppState::new(store, ServeConfig::default()),
        experiment: e.id,
        flag: f.id,
        env: env.id,
        start_ms,
    }
}

/// `users` new users per arm (numbered from `from`), exposed after the
/// start; a user errs with probability `p_err[arm]` (deterministic:
/// every k-th user).
async fn traffic(s: &Setup, from: u64, users: u64, err_every: [u64; 2]) {
    let env = "acme/web/production".to_string();
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    for (arm, variant) in ["off", "on"].iter().enumerate() {
        for i in from..from + users {
            let user = format!("{variant}-{i}");
            let t = s.start_ms + 1000 + i as i64;
            exposures.push(Exposure {
                environment: env.clone(),
                id: format!("x-{user}"),
                flag_key: "checkout".into(),
                variant: variant.to_string(),
                user_key: user.clone(),
                time_ms: t,
                snapshot_version: Some(1),
                rule_id: None,
                reason: Some("SPLIT".into()),
                country: None,
                device_type: None,
                received_ms: t,
            });
            if err_every[arm] > 0 && i % err_every[arm] == 0 {
                events.push(MetricEvent {
                    environment: env.clone(),
                    id: format!("e-{user}"),
                    name: "checkout_error".into(),
                    user_key: user,
                    value: None,
                    time_ms: t + 10,
                    received_ms: t + 10,
                    properties: None,
                });
            }
        }
    }
    s.state.store.insert_exposures(&exposures).await.unwrap();
    s.state.store.insert_metric_events(&events).await.unwrap();
}

async fn regression_is_rolled_back(store: Store) {
    let s = setup(store).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    // Control errs 2% of the time, the treatment 10%: looks every 300 users.
    let mut tripped_at = None;
    for look in 0..10u64 {
        traffic(&s, look * 300, 300, [50, 10]).await;
        let checks = monitor.round(&s.state).await.unwrap();
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
    assert!(monitor.round(&s.state).await.unwrap().is_empty());
}

async fn no_regression_no_rollback(store: Store) {
    let s = setup(store).await;
    let mut monitor = Monitor::new(MonitorOptions::default());
    let mut looks = 0;
    for look in 0..10u64 {
        // Both arms err 5% of the time.
        traffic(&s, look * 300, 300, [20, 20]).await;
        let checks = monitor.round(&s.state).await.unwrap();
        assert!(checks.iter().all(|c| !c.rolled_back), "{checks:?}");
        looks += checks.len();
    }
    assert_eq!(looks, 10, "one check per look");
    let e = s.state.store.experiment(s.experiment).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Running);
}
