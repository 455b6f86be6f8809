//! Rollbacks triggered by an external alert (Alertmanager webhook payload)
//! through the API, on both backends: the configured action per flag, the
//! evidence in the audit log, the webhook notification, all-or-nothing
//! validation, roles.

use axum::http::Method;
use bunting_core::Serve;
use bunting_core::model::{Schedule, ScheduleStep};
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::model::experiment::ExperimentSpec;
use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
use bunting_origin::model::metric::MetricSpec;
use bunting_origin::notify::Notifier;
use bunting_origin::store::{Actor, AuditQuery, Role, Store};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};
use crate::common::webhook;
use crate::common::world::{World, split};

both!(alert_rolls_back_with_evidence, bad_alerts_change_nothing);

const ROOT: &str = "root";

struct Setup {
    app: TestApp,
    editor: String,
    viewer: String,
    hooks: webhook::Received,
    store: Store,
    flags: (i64, i64, i64),
}

async fn world(store: Store) -> Setup {
    let (hook_url, hooks) = webhook::receiver().await;

    let w = World::acme_by(&store, Actor::new("setup")).await;
    let (a, org) = (&w.actor, w.org);
    // checkout: a 50/50 experiment; search: a scheduled ramp; banner: on.
    let mut ids = Vec::new();
    for (key, serve) in [
        ("checkout", split(&[("on", 50.0), ("off", 50.0)])),
        (
            "search",
            Serve::Schedule(Schedule {
                variant: "on".into(),
                otherwise: "off".into(),
                steps: vec![ScheduleStep {
                    at: "2026-01-01T00:00:00Z".into(),
                    percentage: 20.0,
                }],
            }),
        ),
        ("banner", Serve::Variant("on".into())),
    ] {
        let f = w.flag(&store, key).await;
        w.serve(&store, f, serve).await;
        ids.push(f);
    }
    w.metric(&store, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    let mut spec = ExperimentSpec::new("checkout-test", "checkout", "off", "purchased");
    spec.guardrails.push(Guardrail {
        metric: "purchased".into(),
        tolerance: 0.0,
        action: RollbackAction::RolloutToZero,
    });
    let e = store.create_experiment(a, w.env, &spec).await.unwrap();
    store.start_experiment(a, e.id, e.version).await.unwrap();
    let (_, editor) = store
        .create_token(a, org, "ops", Role::Editor)
        .await
        .unwrap();
    let (_, viewer) = store
        .create_token(a, org, "view", Role::Viewer)
        .await
        .unwrap();

    let mut state = AppState::new(
        store.clone(),
        ServeConfig {
            admin_token: Some(ROOT.into()),
            ..ServeConfig::default()
        },
    );
    state.notifier = Notifier::new(vec![hook_url]);
    Setup {
        app: TestApp::new(state),
        editor,
        viewer,
        hooks,
        store,
        flags: (ids[0], ids[1], ids[2]),
    }
}

fn alert(status: &str, flag: &str, action: Option<&str>) -> Value {
    let mut labels = json!({
        "alertname": "CheckoutErrors", "bunting_project": "web",
        "bunting_environment": "production", "bunting_flag": flag,
    });
    if let Some(a) = action {
        labels["bunting_action"] = json!(a);
    }
    json!({"status": status, "labels": labels, "annotations": {"summary": "5xx rate above 2%"},
           "startsAt": "2026-11-25T12:00:00Z", "fingerprint": "abc"})
}

async fn send(w: &Setup, token: &str, alerts: Vec<Value>) -> (u16, Value) {
    let body = json!({"version": "4", "status": "firing", "receiver": "bunting", "alerts": alerts});
    let r = w
        .app
        .as_token(token)
        .call_with(
            Method::POST,
            "/orgs/acme/alerts/alertmanager",
            Some(&body),
            &[],
        )
        .await;
    (r.status.as_u16(), r.body)
}

async fn fallthrough(w: &Setup, flag: i64) -> (bool, Serve) {
    let env = w.store.org_by_key("acme").await.unwrap();
    let p = w.store.project_by_key(env.id, "web").await.unwrap();
    let e = w
        .store
        .environment_by_key(p.id, "production")
        .await
        .unwrap();
    let c = w.store.flag_config(flag, e.id).await.unwrap();
    (c.spec.enabled, c.spec.fallthrough)
}

async fn alert_rolls_back_with_evidence(store: Store) {
    let w = world(store).await;
    let (checkout, search, banner) = w.flags;
    let (s, out) = send(
        &w,
        &w.editor,
        vec![
            alert("firing", "checkout", None),
            alert("firing", "search", None),
            alert("firing", "banner", Some("disableFlag")),
            alert("resolved", "banner", None),
        ],
    )
    .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(out["resolved"], 1);
    let actions: Vec<(&str, &str, bool)> = out["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["flag"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
                r["changed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("web/checkout", "rolloutToZero", true), // the experiment's guardrail action
            ("web/search", "serveControl", true),    // default; control = off variant
            ("web/banner", "disableFlag", true),
        ]
    );
    assert_eq!(
        fallthrough(&w, checkout).await,
        (true, Serve::Variant("off".into()))
    );
    assert_eq!(
        fallthrough(&w, search).await,
        (true, Serve::Variant("off".into()))
    );
    assert!(!fallthrough(&w, banner).await.0);
    // The snapshot serves control.
    let env_id = {
        let o = w.store.org_by_key("acme").await.unwrap();
        let p = w.store.project_by_key(o.id, "web").await.unwrap();
        w.store
            .environment_by_key(p.id, "production")
            .await
            .unwrap()
            .id
    };
    let snap = w.store.snapshot(env_id).await.unwrap();
    let engine = bunting_core::Engine::from_snapshot(&snap).unwrap();
    let ctx = json!({"targetingKey": "u-1"});
    assert_eq!(
        engine.evaluate("checkout", &ctx, 0).variant.as_deref(),
        Some("off")
    );

    // Evidence in the audit log, by the token that sent the alert.
    let log = w
        .store
        .audit_log(&AuditQuery {
            entity_type: Some("flagConfig".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let rb: Vec<_> = log
        .entries
        .iter()
        .filter(|e| e.action == "rollback")
        .collect();
    assert_eq!(rb.len(), 3);
    let after: Value = serde_json::from_str(rb[0].after.as_deref().unwrap()).unwrap();
    assert_eq!(after["evidence"]["source"], "alert");
    assert_eq!(after["evidence"]["details"]["alertname"], "CheckoutErrors");
    assert_eq!(after["evidence"]["details"]["experiment"], "checkout-test");
    assert!(rb[0].actor.starts_with("token:"));
    assert!(w.store.verify_audit().await.unwrap().is_ok());

    // The webhook hears about each rollback.
    for _ in 0..500 {
        if w.hooks.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let hooks = w.hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    assert!(
        hooks
            .iter()
            .all(|h| h["type"] == "rollback" && h["organization"] == "acme")
    );

    // The same alert again changes nothing more.
    let (s, out) = send(&w, &w.editor, vec![alert("firing", "checkout", None)]).await;
    assert_eq!(
        (s, &out["rollbacks"][0]["changed"]),
        (200, &json!(false)),
        "{out}"
    );
}

async fn bad_alerts_change_nothing(store: Store) {
    let w = world(store).await;
    let before = w.store.verify_audit().await.unwrap().entries;
    // One good alert and three bad ones: 422 listing the bad, nothing done.
    let mut no_labels = alert("firing", "checkout", None);
    no_labels["labels"] = json!({"alertname": "X"});
    let (s, out) = send(
        &w,
        &w.editor,
        vec![
            alert("firing", "checkout", None),
            no_labels,
            alert("firing", "nope", None),
            alert("firing", "banner", Some("explode")),
        ],
    )
    .await;
    assert_eq!(s, 422, "{out}");
    let paths = problems(&out);
    assert_eq!(
        paths,
        [
            "alerts[1].labels",
            "alerts[2].labels",
            "alerts[3].labels.bunting_action"
        ]
    );
    assert_eq!(w.store.verify_audit().await.unwrap().entries, before);
    // A viewer cannot roll back.
    let (s, _) = send(&w, &w.viewer, vec![alert("firing", "checkout", None)]).await;
    assert_eq!(s, 403);
    assert_eq!(w.store.verify_audit().await.unwrap().entries, before);
}
