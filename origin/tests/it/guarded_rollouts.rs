//! Guarded rollouts through the API, on SQLite and PostgreSQL: CRUD with
//! ETag/If-Match (412/428), 422 with every problem (unknown flag or metric,
//! control not a variant, no guardrail, a duplicate metric, a bad
//! tolerance, a ramp gated by an alert-only guardrail, a minimum below 2,
//! a changed flag), one per flag (409), status changes, deletion only when
//! not active, the audit trail; and the Alertmanager endpoint using the
//! guarded rollout's action and control on a flag without an experiment.

use axum::http::{Method, StatusCode};
use bunting_core::Serve;
use bunting_origin::model::metric::MetricSpec;
use bunting_origin::store::{Actor, AuditQuery, FlagSpec, Store};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};
use crate::common::world::{World, split};

both!(
    crud_validation_and_lifecycle,
    alert_uses_the_guards_action,
    metric_in_use_by_a_guard
);

const G: &str = "/orgs/acme/projects/web/environments/production/guarded-rollouts";

/// acme/web/production with flags `checkout` (boolean) and `search`
/// (string: a, b, c; off variant a), both serving a 50/50 rollout, and
/// metrics `errors` (lower is better) and `purchased`.
async fn seed(store: &Store) -> i64 {
    let w = World::acme_by(store, Actor::new("setup")).await;
    let a = &w.actor;
    let mut search = FlagSpec::boolean("search");
    search.flag_type = bunting_core::FlagType::String;
    search.variants = ["a", "b", "c"]
        .iter()
        .map(|v| (v.to_string(), json!(v)))
        .collect();
    search.off_variant = "a".into();
    let checkout = w.flag(store, "checkout").await;
    w.serve(store, checkout, split(&[("on", 50.0), ("off", 50.0)]))
        .await;
    let search = store.create_flag(a, w.project, &search).await.unwrap();
    w.serve(store, search.id, split(&[("c", 50.0), ("b", 50.0)]))
        .await;
    let mut errors = MetricSpec::conversion("errors", "checkout_error");
    errors.higher_is_better = false;
    w.metric(store, &errors).await;
    w.metric(store, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    w.env
}

fn guard_body() -> Value {
    json!({
        "flag": "checkout", "control": "off", "minUsersPerArm": 200, "gateRamp": true,
        "guardrails": [{"metric": "errors", "tolerance": 0.001, "action": "rolloutToZero"}],
    })
}

async fn crud_validation_and_lifecycle(store: Store) {
    seed(&store).await;
    let api = TestApp::root(store.clone());
    let item = format!("{G}/checkout");

    // Every problem at once, 422 with a JSON body.
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            G,
            Some(json!({
                "flag": "checkout", "control": "maybe", "minUsersPerArm": 1, "gateRamp": true,
                "guardrails": [
                    {"metric": "nope"},
                    {"metric": "errors", "tolerance": -1.0, "action": "alert"},
                    {"metric": "errors"},
                    // Another guardrail on the same metric is fine; an
                    // exact repeat is not.
                    {"metric": "errors", "tolerance": 0.0, "action": "serveControl"},
                ],
            })),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert!(b["error"]["code"].as_str().is_some(), "{b}");
    assert_eq!(
        problems(&b),
        [
            "control",
            "guardrails[0].metric",
            "guardrails[1].tolerance",
            "guardrails[1].action",
            "guardrails[3]",
            "minUsersPerArm",
        ]
    );
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            G,
            Some(json!({"flag": "ghost", "control": "off", "guardrails": []})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problems(&b), ["flag", "guardrails"]);
    // Unknown fields are refused too.
    let mut extra = guard_body();
    extra["allocation"] = json!({});
    let (s, _, b) = api.call_if_match(Method::POST, G, Some(extra), None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

    // Create: active, started, with an ETag.
    let (s, etag, b) = api
        .call_if_match(Method::POST, G, Some(guard_body()), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(b["status"], "active");
    assert_eq!(b["flag"], "checkout");
    assert_eq!(b["gateRamp"], true);
    assert_eq!(b["minUsersPerArm"], 200);
    assert!(b["startedAt"].is_string(), "{b}");
    assert_eq!(b["health"], Value::Null);
    // One per flag and environment.
    let (s, _, b) = api
        .call_if_match(Method::POST, G, Some(guard_body()), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // Read, list.
    let (s, etag, b) = api.call_if_match(Method::GET, &item, None, None).await;
    assert_eq!((s, etag.as_deref()), (StatusCode::OK, Some("\"1\"")), "{b}");
    assert_eq!(b["guardrails"][0]["action"], "rolloutToZero");
    let (_, _, list) = api.call_if_match(Method::GET, G, None, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let (s, _, _) = api
        .call_if_match(Method::GET, &format!("{G}/search"), None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Replace: If-Match required (428), current (412 when stale).
    let mut changed = guard_body();
    changed["description"] = json!("ramp of the one-page checkout");
    changed["guardrails"][0]["tolerance"] = json!(0.002);
    let (s, _, b) = api
        .call_if_match(Method::PUT, &item, Some(changed.clone()), None)
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_REQUIRED, "{b}");
    let (s, _, b) = api
        .call_if_match(Method::PUT, &item, Some(changed.clone()), Some("\"7\""))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{b}");
    let (s, etag, b) = api
        .call_if_match(Method::PUT, &item, Some(changed.clone()), Some("\"1\""))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(b["guardrails"][0]["tolerance"], 0.002);
    assert_eq!(b["description"], "ramp of the one-page checkout");
    // The flag cannot change.
    let mut moved = changed.clone();
    moved["flag"] = json!("search");
    moved["control"] = json!("a");
    let (s, _, b) = api
        .call_if_match(Method::PUT, &item, Some(moved), Some("\"2\""))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(problems(&b), ["flag"]);

    // An active guard cannot be deleted; the monitor's status cannot be
    // set by hand; the same status twice is refused.
    let (s, _, b) = api
        .call_if_match(Method::DELETE, &item, None, Some("\"2\""))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let status = format!("{item}/status");
    for (to, code) in [("rolledBack", 422), ("active", 422)] {
        let (s, _, b) = api
            .call_if_match(
                Method::POST,
                &status,
                Some(json!({"status": to})),
                Some("\"2\""),
            )
            .await;
        assert_eq!(s.as_u16(), code, "{to}: {b}");
    }
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            &status,
            Some(json!({"status": "disabled"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_REQUIRED, "{b}");
    let (s, etag, b) = api
        .call_if_match(
            Method::POST,
            &status,
            Some(json!({"status": "disabled"})),
            Some("\"2\""),
        )
        .await;
    assert_eq!((s, etag.as_deref()), (StatusCode::OK, Some("\"3\"")), "{b}");
    assert_eq!(b["status"], "disabled");
    assert!(b["stoppedAt"].is_string(), "{b}");
    let first_start = b["startedAt"].clone();
    // Re-armed: a new start.
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            &status,
            Some(json!({"status": "active"})),
            Some("\"3\""),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["stoppedAt"], Value::Null);
    assert_ne!(b["startedAt"], first_start);
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            &status,
            Some(json!({"status": "completed"})),
            Some("\"4\""),
        )
        .await;
    assert_eq!((s, &b["status"]), (StatusCode::OK, &json!("completed")));

    // Deleted (stale tag first).
    let (s, _, _) = api
        .call_if_match(Method::DELETE, &item, None, Some("\"4\""))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    let (s, _, _) = api
        .call_if_match(Method::DELETE, &item, None, Some("\"5\""))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = api.call_if_match(Method::GET, &item, None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Every change is audited, in order.
    let log = store
        .audit_log(&AuditQuery {
            entity_type: Some("guardedRollout".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = log
        .entries
        .iter()
        .map(|e| (e.action.as_str(), e.entity_key.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("create", "checkout/production"),
            ("update", "checkout/production"),
            ("disable", "checkout/production"),
            ("activate", "checkout/production"),
            ("complete", "checkout/production"),
            ("delete", "checkout/production"),
        ]
    );
    assert!(log.entries.iter().all(|e| e.actor == "admin"), "{log:?}");
    assert!(store.verify_audit().await.unwrap().is_ok());
}

async fn alert_uses_the_guards_action(store: Store) {
    let env = seed(&store).await;
    let api = TestApp::root(store.clone());
    // `search` has no experiment, only a guarded rollout away from `b`.
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            G,
            Some(json!({
                "flag": "search", "control": "b",
                "guardrails": [{"metric": "errors", "action": "rolloutToZero"}],
            })),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _, out) = api
        .call_if_match(
            Method::POST,
            "/orgs/acme/alerts/alertmanager",
            Some(json!({"version": "4", "status": "firing", "alerts": [{
                "status": "firing",
                "labels": {"alertname": "SearchErrors", "bunting_project": "web",
                           "bunting_environment": "production", "bunting_flag": "search"},
            }]})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["rollbacks"][0]["action"], "rolloutToZero", "{out}");
    assert_eq!(out["rollbacks"][0]["changed"], true, "{out}");
    // The rollout went to the guard's control, not the flag's off variant.
    let f = store
        .flag_by_key(store.environment(env).await.unwrap().project_id, "search")
        .await
        .unwrap();
    let c = store.flag_config(f.id, env).await.unwrap();
    assert_eq!(c.spec.fallthrough, Serve::Variant("b".into()));
    let log = store
        .audit_log(&AuditQuery {
            entity_type: Some("flagConfig".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let rb = log.entries.iter().find(|e| e.action == "rollback").unwrap();
    let after: Value = serde_json::from_str(rb.after.as_deref().unwrap()).unwrap();
    assert_eq!(after["evidence"]["source"], "alert");
    assert_eq!(after["evidence"]["details"]["guardedRollout"], "search");
    assert_eq!(after["evidence"]["details"]["experiment"], Value::Null);
}

async fn metric_in_use_by_a_guard(store: Store) {
    seed(&store).await;
    let api = TestApp::root(store.clone());
    let item = format!("{G}/checkout");
    let metric = "/orgs/acme/projects/web/metrics/errors";
    let (s, _, b) = api
        .call_if_match(Method::POST, G, Some(guard_body()), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let delete = |tag: String| {
        let api = &api;
        async move {
            api.call_if_match(Method::DELETE, metric, None, Some(&tag))
                .await
        }
    };
    let (_, mtag, _) = api.call_if_match(Method::GET, metric, None, None).await;
    let mtag = mtag.unwrap();

    // Active: refused with 409 `in_use`, naming the guard.
    let (s, _, b) = delete(mtag.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "in_use", "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("metric \"errors\"")
            && message.contains("active guarded rollout \"checkout\" in production"),
        "{b}"
    );
    assert_eq!(problems(&b), ["metric"]);

    // Disabled, it may be re-armed: still refused.
    let (_, tag, _) = api.call_if_match(Method::GET, &item, None, None).await;
    let (s, tag, b) = api
        .call_if_match(
            Method::POST,
            &format!("{item}/status"),
            Some(json!({"status": "disabled"})),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, b) = delete(mtag.clone()).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled guarded rollout \"checkout\""),
        "{b}"
    );

    // The guard deleted, the metric goes.
    let (s, _, b) = api
        .call_if_match(Method::DELETE, &item, None, tag.as_deref())
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _, b) = delete(mtag).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _, _) = api.call_if_match(Method::GET, metric, None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
