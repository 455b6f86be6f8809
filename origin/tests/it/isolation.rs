//! Tenant isolation of writes, through the API: what one organization may
//! store is bounded (413 naming the offender, nothing stored), and one
//! organization's write in progress does not hold another organization's
//! writes (PostgreSQL: a write holds its own rows, and the shared audit
//! chain only to append and commit).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use bunting_core::model::Segment;
use bunting_origin::store::Store;
use bunting_origin::store::limits::{MAX_FLAG_BYTES, MAX_SEGMENT_BYTES, MAX_SNAPSHOT_BYTES};
use bunting_origin::store::{Actor, StoreError};
use serde_json::{Value, json};

use crate::common;
use crate::common::app::TestApp;
use crate::common::world::World;

both!(oversized_configurations_are_refused, snapshots_are_bounded);

/// Organization `org` with project `web`, environment `production` and
/// a boolean flag `checkout`.
async fn tenant(api: &TestApp, org: &str) {
    api.made("/orgs", json!({"key": org, "name": org}), 201)
        .await;
    let p = format!("/orgs/{org}/projects");
    api.made(&p, json!({"key": "web", "name": "Web"}), 201)
        .await;
    api.made(
        &format!("{p}/web/environments"),
        json!({"key": "production", "name": "Production"}),
        201,
    )
    .await;
    api.made(
        &format!("{p}/web/flags"),
        json!({"key": "checkout", "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
        201,
    )
    .await;
}

/// Sets `org`'s `checkout` flag on or off with its kill switch.
async fn toggle(api: &TestApp, org: &str, enabled: bool) -> (StatusCode, Value) {
    let (s, _, b) = api
        .call_if_match(
            Method::POST,
            &format!("/orgs/{org}/projects/web/flags/checkout/environments/production/toggle"),
            Some(json!({"enabled": enabled})),
            None,
        )
        .await;
    (s, b)
}

/// A rule whose condition is `bytes` long: `user.id in [...]`.
fn rule(id: &str, bytes: usize) -> Value {
    let mut ids = Vec::new();
    let mut len = 0;
    while len < bytes {
        let s = format!("\"user-{:08}\"", ids.len());
        len += s.len() + 2;
        ids.push(s);
    }
    json!({"id": id, "condition": format!("user.id in [{}]", ids.join(", ")),
           "serve": {"variant": "on"}})
}

async fn oversized_configurations_are_refused(store: Store) {
    let api = TestApp::root(store);
    tenant(&api, "acme").await;
    let cfg = "/orgs/acme/projects/web/flags/checkout/environments/production";
    let (s, tag, before) = api.call_if_match(Method::GET, cfg, None, None).await;
    assert_eq!(s, StatusCode::OK);

    // One flag over its bound: 413, the flag named, nothing stored.
    let big = json!({"enabled": true, "rules": [rule("vip", MAX_FLAG_BYTES + 1024)],
                     "fallthrough": {"variant": "off"}});
    let (s, _, b) = api
        .call_if_match(Method::PUT, cfg, Some(big), tag.as_deref())
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["error"]["code"], "too_large");
    let p = &b["error"]["problems"][0];
    assert_eq!(p["entity"], "checkout", "{b}");
    assert_eq!(p["path"], "production: flag", "{b}");
    assert!(
        p["message"].as_str().unwrap().contains("at most 256.0 KiB"),
        "{b}"
    );
    assert_eq!(
        api.call_if_match(Method::GET, cfg, None, None).await.2,
        before
    );

    // The kill switch of an organization at its bound still works.
    assert_eq!(toggle(&api, "acme", false).await.0, StatusCode::OK);
}

/// Segments each within their bound, together over the snapshot's: the
/// write that crosses it is refused (the store's error, which the API
/// answers 413 like the flag's above), the ones before stay.
async fn snapshots_are_bounded(store: Store) {
    let w = World::acme_by(&store, Actor::new("test")).await;
    let (a, env) = (&w.actor, w.env);
    // About 0.9 MiB of JSON each.
    let keys = |s: usize| -> Vec<String> {
        (0..MAX_SEGMENT_BYTES * 9 / 10 / 20)
            .map(|i| format!("user-{s:02}-{i:08}"))
            .collect()
    };
    let mut stored = 0;
    let problems = loop {
        let segment = Segment {
            key: format!("s{stored}"),
            included: keys(stored),
            excluded: Vec::new(),
            condition: None,
            description: None,
        };
        match store.create_segment(a, env, &segment).await {
            Ok(_) => stored += 1,
            Err(StoreError::TooLarge(problems)) => break problems,
            Err(e) => panic!("{e}"),
        }
        assert!(stored <= 5, "never refused");
    };
    assert_eq!(stored, MAX_SNAPSHOT_BYTES / (MAX_SEGMENT_BYTES * 9 / 10));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "production: snapshot");
    assert!(
        problems[0].message.contains("at most 4096.0 KiB"),
        "{problems:?}"
    );
    assert_eq!(store.segments(env).await.unwrap().len(), stored);
}

/// While one organization's write is in progress (held here inside the
/// database by a trigger that sleeps while it updates acme's flag), another
/// organization's kill switch goes through at once, and the first write
/// still completes. Before writes took the shared audit chain's lock only to
/// append, `globex`'s toggle waited for `acme`'s whole write.
#[tokio::test]
async fn a_slow_write_does_not_hold_other_organizations() {
    let (store, _guard) = common::postgres().await;
    let api = TestApp::root(store.clone());
    tenant(&api, "acme").await;
    tenant(&api, "globex").await;
    let acme = store
        .environment_ids(&["acme/web/production".into()])
        .await
        .unwrap()["acme/web/production"];
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION slow_acme() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$; \
         CREATE TRIGGER slow_acme BEFORE UPDATE ON flag_configs FOR EACH ROW \
         WHEN (NEW.environment_id = {acme}) EXECUTE FUNCTION slow_acme();"
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let slow = {
        let api = api.clone();
        tokio::spawn(async move { toggle(&api, "acme", true).await })
    };
    // acme's write is inside its trigger by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if slow.is_finished() {
        panic!(
            "acme's write did not wait in its trigger: {:?}",
            slow.await.unwrap()
        );
    }
    let (s, b) = toggle(&api, "globex", true).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        !slow.is_finished(),
        "globex's write waited for acme's to finish"
    );
    let (s, b) = slow.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(store.verify_audit().await.unwrap().is_ok());
}
