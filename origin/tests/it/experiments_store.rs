//! Metrics and experiments in the store, on both backends: validation with
//! every problem, the lifecycle, what a running experiment may change,
//! audit entries.

use bunting_origin::model::experiment::{Decision, ExperimentSpec, ExperimentStatus};
use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::store::{Actor, AuditQuery, Store, StoreError};

use crate::common::world::World;

both!(
    metrics_validate,
    lifecycle,
    running_experiments_keep_their_design
);

fn ana() -> Actor {
    Actor::new("ana")
}

/// Project with flag `checkout` (on/off) and metrics `purchased`, `revenue`;
/// returns (project, production env).
async fn setup(s: &Store) -> (i64, i64) {
    let w = World::acme(s).await;
    w.flag(s, "checkout").await;
    w.metric(s, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    let mut revenue = MetricSpec::conversion("revenue", "purchase");
    revenue.kind = MetricKind::Mean;
    revenue.cap = Some(1000.0);
    w.metric(s, &revenue).await;
    (w.project, w.env)
}

fn problems(e: StoreError) -> Vec<String> {
    match e {
        StoreError::Invalid(p) => p.into_iter().map(|p| p.path).collect(),
        other => panic!("expected Invalid, got {other}"),
    }
}

async fn metrics_validate(s: Store) {
    let (p, env) = setup(&s).await;
    let mut bad = MetricSpec::conversion("Bad key", "has space");
    bad.kind = MetricKind::Ratio;
    bad.window_seconds = Some(0);
    let paths = problems(s.create_metric(&ana(), p, &bad).await.unwrap_err());
    assert_eq!(paths, ["key", "event", "denominatorEvent", "windowSeconds"]);
    // An experiment with every kind of mistake reports each.
    let mut e = ExperimentSpec::new("x", "checkout", "maybe", "nope");
    e.allocation.insert("sideways".into(), -1.0);
    e.guardrails.push(Guardrail {
        metric: "revenue".into(),
        tolerance: -1.0,
        action: RollbackAction::ServeControl,
    });
    let paths = problems(s.create_experiment(&ana(), env, &e).await.unwrap_err());
    assert_eq!(
        paths,
        [
            "control",
            "allocation.sideways",
            "allocation.sideways",
            "allocation",
            "primaryMetric",
            "guardrails[0].tolerance"
        ]
    );
    // A metric in use cannot go.
    let e = s
        .create_experiment(
            &ana(),
            env,
            &ExperimentSpec::new("t", "checkout", "off", "purchased"),
        )
        .await
        .unwrap();
    let m = s.metric_by_key(p, "purchased").await.unwrap();
    let paths = problems(s.delete_metric(&ana(), m.id, m.version).await.unwrap_err());
    assert_eq!(paths, ["metric"]);
    s.delete_experiment(&ana(), e.id, e.version).await.unwrap();
    s.delete_metric(&ana(), m.id, m.version).await.unwrap();
}

async fn lifecycle(s: Store) {
    let (_, env) = setup(&s).await;
    let e = s
        .create_experiment(
            &ana(),
            env,
            &ExperimentSpec::new("t", "checkout", "off", "purchased"),
        )
        .await
        .unwrap();
    assert_eq!((e.status, e.version), (ExperimentStatus::Draft, 1));
    // Draft cannot be decided or stopped.
    assert!(s.stop_experiment(&ana(), e.id, 1).await.is_err());
    let e = s.start_experiment(&ana(), e.id, 1).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Running);
    assert!(e.started_at.is_some());
    // Stale version: conflict. Deleting a running experiment: refused.
    assert!(matches!(
        s.stop_experiment(&ana(), e.id, 1).await,
        Err(StoreError::Conflict { current: 2 })
    ));
    assert_eq!(
        problems(s.delete_experiment(&ana(), e.id, 2).await.unwrap_err()),
        ["status"]
    );
    let e = s.stop_experiment(&ana(), e.id, 2).await.unwrap();
    assert!(e.stopped_at.is_some());
    let bad = Decision {
        variant: "maybe".into(),
        rationale: None,
        decided_by: None,
        decided_at: None,
    };
    assert_eq!(
        problems(
            s.decide_experiment(&ana(), e.id, 3, &bad)
                .await
                .unwrap_err()
        ),
        ["variant"]
    );
    let ship = Decision {
        variant: "on".into(),
        rationale: Some("+3% purchases".into()),
        decided_by: None,
        decided_at: None,
    };
    let e = s.decide_experiment(&ana(), e.id, 3, &ship).await.unwrap();
    assert_eq!(e.status, ExperimentStatus::Decided);
    let d = e.decision.unwrap();
    assert_eq!(
        (d.variant.as_str(), d.decided_by.as_deref()),
        ("on", Some("ana"))
    );
    // Every step is in the audit log.
    let log = s
        .audit_log(&AuditQuery {
            entity_type: Some("experiment".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "start", "stop", "decide"]);
    assert!(s.verify_audit().await.unwrap().is_ok());
}

async fn running_experiments_keep_their_design(s: Store) {
    let (_, env) = setup(&s).await;
    let spec = ExperimentSpec::new("t", "checkout", "off", "purchased");
    let e = s.create_experiment(&ana(), env, &spec).await.unwrap();
    let e = s.start_experiment(&ana(), e.id, e.version).await.unwrap();
    assert_eq!(s.running_experiments().await.unwrap().len(), 1);
    let mut changed = spec.clone();
    changed.primary_metric = "revenue".into();
    assert_eq!(
        problems(
            s.update_experiment(&ana(), e.id, e.version, &changed)
                .await
                .unwrap_err()
        ),
        ["status"]
    );
    let mut ok = spec.clone();
    ok.hypothesis = Some("one page converts better".into());
    ok.guardrails.push(Guardrail {
        metric: "revenue".into(),
        tolerance: 0.5,
        action: RollbackAction::DisableFlag,
    });
    let e = s
        .update_experiment(&ana(), e.id, e.version, &ok)
        .await
        .unwrap();
    assert_eq!(e.spec.guardrails.len(), 1);
    let e = s.stop_experiment(&ana(), e.id, e.version).await.unwrap();
    assert_eq!(
        problems(
            s.update_experiment(&ana(), e.id, e.version, &ok)
                .await
                .unwrap_err()
        ),
        ["status"]
    );
}
