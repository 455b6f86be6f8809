//! Event ingestion (`POST /api/v1/events`) through the router in process,
//! on SQLite and PostgreSQL: the ingest secret, 202
//! with counts, deduplication of retried batches, all-or-nothing
//! validation (422 with the event's index), size limits, 429 when the queue
//! is full without losing accepted batches, the edge's exact payloads,
//! server SDK keys sending their own environment's events (only those), and
//! overlapping batches written in one transaction keeping the per-user
//! rollup equal to its recomputation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::ingest::{Ingest, IngestOptions};
use bunting_origin::model::experiment::ExperimentSpec;
use bunting_origin::model::metric::MetricSpec;
use bunting_origin::store::aggregate::AggregateOptions;
use bunting_origin::store::events::rollup;
use bunting_origin::store::{Actor, Backend, FlagSpec, SdkKeyKind, Store};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};
use crate::common::world::World;

both!(
    secret_is_required,
    stores_exposures_and_events,
    retried_batches_are_deduplicated,
    invalid_batches_store_nothing,
    size_limits,
    overload_answers_429_and_loses_nothing,
    concurrent_batches_are_all_stored,
    edge_payloads_exactly,
    unknown_environments_are_refused,
    deleted_tenants_events_are_not_inherited,
    server_keys_send_their_environments_events,
    server_keys_cannot_send_other_environments_events,
    client_and_stopped_keys_are_refused,
    server_keys_work_without_an_ingest_secret,
    grouped_overlapping_batches_keep_the_rollup_exact,
);

const SECRET: &str = "ingest-secret-0123456789abcdef";
const ENV: &str = "acme/web/production";

/// The origin with ingestion configured, called in process.
struct Api {
    app: TestApp,
    state: AppState,
}

impl Api {
    async fn start(store: Store, secret: Option<&str>, options: IngestOptions) -> Api {
        world(&store).await;
        let mut state = AppState::new(
            store.clone(),
            ServeConfig {
                ingest_secret: secret.map(str::to_string),
                ..ServeConfig::default()
            },
        );
        state.ingest = Ingest::new(store, state.metrics.clone(), options);
        Api {
            app: TestApp::new(state.clone()),
            state,
        }
    }

    /// POSTs `body` with `Authorization: Bearer <token>` (if any):
    /// (status, Retry-After, JSON body).
    async fn post_raw(
        &self,
        token: Option<&str>,
        body: String,
    ) -> (StatusCode, Option<String>, Value) {
        let app = match token {
            Some(t) => self.app.as_token(t),
            None => self.app.clone(),
        };
        let r = app
            .request(Method::POST, "/events")
            .header("content-type", "application/json")
            .header("content-length", body.len());
        let reply = app.send(r.body(Body::from(body)).unwrap()).await;
        let retry = reply.header("retry-after");
        (reply.status, retry, reply.body)
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let (s, _, b) = self.post_raw(Some(SECRET), body.to_string()).await;
        (s, b)
    }

    /// A batch POSTed on a task of its own: (status, body).
    fn spawn_post(&self, body: Value) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let app = self.app.as_token(SECRET);
        tokio::spawn(async move {
            let r = app
                .call_with(Method::POST, "/events", Some(&body), &[])
                .await;
            (r.status, r.body)
        })
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.state.metrics.render();
        let line = format!("bunting_{name}_total ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }
}

/// Organization `acme`, project `web`, environments `production` and
/// `staging` (once per store): events are stored only for environments that
/// exist.
async fn world(store: &Store) {
    if !store
        .environment_ids(&[ENV.into()])
        .await
        .unwrap()
        .is_empty()
    {
        return;
    }
    let w = World::acme_by(store, Actor::new("test")).await;
    store
        .create_environment(&w.actor, w.project, "staging", "staging")
        .await
        .unwrap();
}

/// The id of the environment the edge names `name`.
async fn id(store: &Store, name: &str) -> i64 {
    store.environment_ids(&[name.into()]).await.unwrap()[name]
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// An exposure as the edge serializes it (`edge-worker/src/exposure.rs`).
fn exposure(i: usize, t: i64) -> Value {
    json!({"flag": "checkout", "variant": if i.is_multiple_of(2) { "a" } else { "b" },
           "bucketingKeyHash": format!("{i:032x}"), "environment": ENV,
           "snapshotVersion": 3, "time": t})
}

fn exposures(range: std::ops::Range<usize>, t: i64) -> Value {
    json!({"kind": "exposures", "exposures": range.map(|i| exposure(i, t)).collect::<Vec<_>>()})
}

/// A metric event as the edge forwards it (`edge-worker/src/events.rs`).
fn events(range: std::ops::Range<usize>, t: i64) -> Value {
    let list: Vec<Value> = range
        .map(|i| {
            json!({"name": "purchase", "targetingKeyHash": format!("{i:032x}"),
                   "value": i as f64 + 0.5, "timestamp": t, "receivedAt": t, "id": format!("o-{i}")})
        })
        .collect();
    json!({"kind": "events", "environment": ENV, "events": list})
}

/// Holds the database so that writers cannot commit until dropped.
enum Block {
    Sqlite(#[allow(dead_code)] sqlx::pool::PoolConnection<sqlx::Any>),
    Postgres(sqlx::Transaction<'static, sqlx::Any>),
}

async fn block_writers(store: &Store) -> Block {
    match store.backend() {
        // The in-memory database has one connection: take it.
        Backend::Sqlite => Block::Sqlite(store.pool().acquire().await.unwrap()),
        Backend::Postgres => {
            let mut tx = store.pool().begin().await.unwrap();
            sqlx::query("LOCK TABLE exposures IN EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            Block::Postgres(tx)
        }
    }
}

async fn unblock(b: Block) {
    match b {
        Block::Sqlite(c) => drop(c),
        Block::Postgres(tx) => tx.rollback().await.unwrap(),
    }
}

async fn wait_queued(ingest: &Ingest, n: usize) {
    for _ in 0..1500 {
        if ingest.queued() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("queued {} events, expected {n}", ingest.queued());
}

async fn secret_is_required(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let body = exposures(0..2, now_ms()).to_string();
    let (s, _, b) = api.post_raw(None, body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (s, _, _) = api.post_raw(Some("wrong-secret"), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = api.post_raw(Some(&SECRET[..10]), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        0
    );
    let (s, _, _) = api.post_raw(Some(SECRET), body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED);

    // No secret configured: ingestion is off.
    let off = Api::start(store.clone(), None, IngestOptions::default()).await;
    let (s, _, b) = off.post_raw(Some(SECRET), body).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["error"]["code"], "unavailable");
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        2
    );
}

async fn stores_exposures_and_events(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let (s, b) = api.post(&exposures(0..50, t)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b, json!({"accepted": 50, "duplicates": 0}));
    let (s, b) = api.post(&events(0..20, t - 1000)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b, json!({"accepted": 20, "duplicates": 0}));
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        50
    );
    assert_eq!(
        store
            .count_metric_events(id(&store, ENV).await)
            .await
            .unwrap(),
        20
    );
    assert_eq!(
        store
            .count_exposures(id(&store, "acme/web/staging").await)
            .await
            .unwrap(),
        0
    );

    let stored = store.exposures_of(id(&store, ENV).await).await.unwrap();
    let e = stored
        .iter()
        .find(|e| e.user_key == format!("{:032x}", 1))
        .unwrap();
    assert_eq!(
        (e.flag_key.as_str(), e.variant.as_str(), e.time_ms),
        ("checkout", "b", t)
    );
    assert_eq!(e.snapshot_version, Some(3));
    assert_eq!(e.id.len(), 32, "a derived id");
    let m = store.metric_events_of(id(&store, ENV).await).await.unwrap();
    let o7 = m.iter().find(|m| m.id == "o-7").unwrap();
    assert_eq!(
        (o7.name.as_str(), o7.value, o7.time_ms, o7.received_ms),
        ("purchase", Some(7.5), t - 1000, t - 1000)
    );
    assert_eq!(o7.user_key, format!("{:032x}", 7));
    assert_eq!(api.metric("events_accepted"), 70);
    assert_eq!(api.metric("events_duplicate"), 0);

    // Other producers may add properties and leave out ids.
    let body = json!({"kind": "events", "environment": ENV, "events": [
        {"name": "signup", "targetingKeyHash": "u-1", "timestamp": t, "properties": {"plan": "pro"}}]});
    let (s, b) = api.post(&body).await;
    assert_eq!((s, &b["accepted"]), (StatusCode::ACCEPTED, &json!(1)));
    let (_, again) = api.post(&body).await;
    assert_eq!(again, json!({"accepted": 0, "duplicates": 1}));
    let m = store.metric_events_of(id(&store, ENV).await).await.unwrap();
    let signup = m.iter().find(|m| m.name == "signup").unwrap();
    assert_eq!(signup.properties.as_deref(), Some(r#"{"plan":"pro"}"#));
    assert_eq!(signup.value, None);
}

async fn retried_batches_are_deduplicated(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let batch = exposures(0..30, t);
    assert_eq!(
        api.post(&batch).await.1,
        json!({"accepted": 30, "duplicates": 0})
    );
    assert_eq!(
        api.post(&batch).await.1,
        json!({"accepted": 0, "duplicates": 30})
    );
    // Overlapping: 20 known, 10 new.
    assert_eq!(
        api.post(&exposures(10..40, t)).await.1,
        json!({"accepted": 10, "duplicates": 20})
    );
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        40
    );

    let ev = events(0..5, t);
    api.post(&ev).await;
    assert_eq!(
        api.post(&ev).await.1,
        json!({"accepted": 0, "duplicates": 5})
    );
    assert_eq!(
        store
            .count_metric_events(id(&store, ENV).await)
            .await
            .unwrap(),
        5
    );
    // The same client id in another environment is another event.
    let mut other = ev.clone();
    other["environment"] = json!("acme/web/staging");
    assert_eq!(
        api.post(&other).await.1,
        json!({"accepted": 5, "duplicates": 0})
    );
    assert_eq!(api.metric("events_accepted"), 40 + 5 + 5);
    assert_eq!(api.metric("events_duplicate"), 30 + 20 + 5);
}

async fn invalid_batches_store_nothing(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let mut batch = exposures(0..4, t);
    batch["exposures"][2]["time"] = json!(t + 2 * 24 * 3600 * 1000); // 2 days ahead
    batch["exposures"][3]["flag"] = json!("");
    let (s, b) = api.post(&batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid");
    let paths = problems(&b);
    assert_eq!(paths, ["exposures[2].time", "exposures[3].flag"]);
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        0
    );
    assert_eq!(api.metric("events_invalid"), 2);

    // A wrong type names the event too.
    let mut batch = events(0..3, t);
    batch["events"][1]["value"] = json!("12");
    let (s, b) = api.post(&batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["error"]["problems"][0]["path"], "events[1]");
    // Too old, a bad name, an unknown kind.
    let mut batch = events(0..2, t);
    batch["events"][0]["timestamp"] = json!(t - 31 * 24 * 3600 * 1000);
    batch["events"][1]["name"] = json!("add to cart");
    let (s, b) = api.post(&batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["error"]["problems"][0]["path"], "events[0].timestamp");
    assert_eq!(b["error"]["problems"][1]["path"], "events[1].name");
    let (s, b) = api.post(&json!({"kind": "clicks", "clicks": []})).await;
    assert_eq!(
        (s, &b["error"]["problems"][0]["path"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("kind"))
    );
    assert_eq!(
        store
            .count_metric_events(id(&store, ENV).await)
            .await
            .unwrap(),
        0
    );

    // Not JSON, not declared as JSON.
    let (s, _, b) = api.post_raw(Some(SECRET), "{\"kind\": ".into()).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    let app = api.app.as_token(SECRET);
    let body = exposures(0..1, t).to_string();
    let r = app
        .request(Method::POST, "/events")
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap();
    assert_eq!(app.send(r).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn size_limits(store: Store) {
    let options = IngestOptions {
        max_batch_events: 100,
        ..IngestOptions::default()
    };
    let api = Api::start(store.clone(), Some(SECRET), options).await;
    let t = now_ms();
    let (s, b) = api.post(&exposures(0..101, t)).await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_large"))
    );
    let (s, _) = api.post(&exposures(0..100, t)).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    // Over 10 MiB of body.
    let big = format!(
        r#"{{"kind": "events", "environment": "{ENV}", "pad": "{}"}}"#,
        "x".repeat(11 * 1024 * 1024)
    );
    let (s, _, b) = api.post_raw(Some(SECRET), big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        100
    );
}

async fn overload_answers_429_and_loses_nothing(store: Store) {
    let options = IngestOptions {
        queue_events: 10,
        ..IngestOptions::default()
    };
    let api = Api::start(store.clone(), Some(SECRET), options).await;
    let t = now_ms();
    let block = block_writers(&store).await;
    // 6 events wait for the blocked writer...
    let first = api.spawn_post(exposures(0..6, t));
    wait_queued(&api.state.ingest, 6).await;
    // ...so 6 more do not fit: refused at once, not dropped later.
    let (s, retry, b) = api
        .post_raw(Some(SECRET), exposures(6..12, t).to_string())
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(b["error"]["code"], "overloaded");
    assert_eq!(api.metric("events_throttled"), 6);
    // 4 still fit.
    let second = api.spawn_post(exposures(12..16, t));
    wait_queued(&api.state.ingest, 10).await;
    assert!(!first.is_finished(), "answered before it was stored");
    unblock(block).await;
    let (s, b) = first.await.unwrap();
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 6, "duplicates": 0})
        )
    );
    let (s, b) = second.await.unwrap();
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 4, "duplicates": 0})
        )
    );
    wait_queued(&api.state.ingest, 0).await;
    // The refused batch, retried, is stored; nothing accepted was lost.
    let (s, b) = api.post(&exposures(6..12, t)).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 6, "duplicates": 0})
        )
    );
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        16
    );
    assert_eq!(api.metric("events_accepted"), 16);
}

async fn concurrent_batches_are_all_stored(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let mut tasks = Vec::new();
    for c in 0..16_usize {
        let body = if c.is_multiple_of(2) {
            exposures(c * 100..c * 100 + 100, t)
        } else {
            events(c * 100..c * 100 + 100, t)
        };
        tasks.push(api.spawn_post(body));
    }
    for task in tasks {
        let (s, b) = task.await.unwrap();
        assert_eq!(
            (s, b),
            (
                StatusCode::ACCEPTED,
                json!({"accepted": 100, "duplicates": 0})
            )
        );
    }
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        800
    );
    assert_eq!(
        store
            .count_metric_events(id(&store, ENV).await)
            .await
            .unwrap(),
        800
    );
}

/// Bodies of the edge's shape (`exposures_payload`, `events_payload` of
/// `edge-worker/src/ingest.rs`: camelCase, optional fields omitted), with
/// keys in alphabetical order as the edge wrote them before `bunting-wire`;
/// `wire/tests/data/` holds the current bytes, checked on both sides.
async fn edge_payloads_exactly(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let h1 = "5c0f3a2e9d8b7c6a5f4e3d2c1b0a9988";
    let h2 = "0123456789abcdef0123456789abcdef";
    let exposures = format!(
        r#"{{"exposures":[{{"bucketingKeyHash":"{h1}","country":"DE","deviceType":"mobile","environment":"acme/web/production","flag":"checkout","ruleId":"eu-ramp","snapshotVersion":7,"time":{t},"variant":"b"}},{{"bucketingKeyHash":"{h2}","environment":"acme/web/production","flag":"checkout","snapshotVersion":7,"time":{t},"variant":"a"}}],"kind":"exposures"}}"#
    );
    let (s, _, b) = api.post_raw(Some(SECRET), exposures.clone()).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 2, "duplicates": 0})
        )
    );
    // The edge retries a failed batch as is.
    let (_, _, b) = api.post_raw(Some(SECRET), exposures).await;
    assert_eq!(b, json!({"accepted": 0, "duplicates": 2}));
    let stored = store.exposures_of(id(&store, ENV).await).await.unwrap();
    let de = stored.iter().find(|e| e.user_key == h1).unwrap();
    assert_eq!(de.rule_id.as_deref(), Some("eu-ramp"));
    assert_eq!(de.country.as_deref(), Some("DE"));
    assert_eq!(de.device_type.as_deref(), Some("mobile"));
    assert_eq!(de.snapshot_version, Some(7));
    let plain = stored.iter().find(|e| e.user_key == h2).unwrap();
    assert_eq!(
        (plain.rule_id.as_deref(), plain.country.as_deref()),
        (None, None)
    );

    let events = format!(
        r#"{{"environment":"acme/web/production","events":[{{"id":"o-1","name":"purchase","receivedAt":{r},"targetingKeyHash":"{h1}","timestamp":{t},"value":12.5}},{{"id":"s-1","name":"signup","receivedAt":{r},"targetingKeyHash":"{h2}","timestamp":{r}}}],"kind":"events"}}"#,
        r = t + 120
    );
    let (s, _, b) = api.post_raw(Some(SECRET), events).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 2, "duplicates": 0})
        )
    );
    let m = store.metric_events_of(id(&store, ENV).await).await.unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].id.as_str(), m[0].value, m[0].time_ms, m[0].received_ms),
        ("o-1", Some(12.5), t, t + 120)
    );
    assert_eq!((m[1].id.as_str(), m[1].value), ("s-1", None));
    assert_eq!(m[0].user_key, h1);
}

/// Events name their environment; one that does not exist stores nothing
/// and is named in the 422.
async fn unknown_environments_are_refused(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let mut batch = exposures(0..3, t);
    batch["exposures"][1]["environment"] = json!("acme/web/nowhere");
    batch["exposures"][2]["environment"] = json!("production");
    let (s, b) = api.post(&batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let paths = problems(&b);
    assert_eq!(
        paths,
        ["exposures[1].environment", "exposures[2].environment"]
    );
    assert!(
        b["error"]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("acme/web/nowhere"),
        "{b}"
    );
    assert_eq!(
        store.count_exposures(id(&store, ENV).await).await.unwrap(),
        0
    );

    let mut batch = events(0..2, t);
    batch["environment"] = json!("globex/web/production");
    let (s, b) = api.post(&batch).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["problems"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["error"]["problems"][0]["path"], "environment");
    assert_eq!(api.metric("events_invalid"), 2 + 1);
}

/// A deleted organization's events are keyed by its environments' ids:
/// a new organization created with the same keys starts with none of them
/// (its experiments count no old user), and the purge removes the old rows.
async fn deleted_tenants_events_are_not_inherited(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    assert_eq!(
        api.post(&exposures(0..30, t - 5_000)).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        api.post(&events(0..10, t - 5_000)).await.0,
        StatusCode::ACCEPTED
    );
    let old = id(&store, ENV).await;
    assert_eq!(store.count_exposures(old).await.unwrap(), 30);

    let a = Actor::new("test");
    let org = store.orgs().await.unwrap().remove(0);
    store.delete_org(&a, org.id, org.version).await.unwrap();
    world(&store).await;
    let new = id(&store, ENV).await;
    assert_ne!(new, old, "ids are never reused");
    let p = store
        .projects(store.orgs().await.unwrap()[0].id)
        .await
        .unwrap()[0]
        .id;
    store
        .create_flag(&a, p, &FlagSpec::boolean("checkout"))
        .await
        .unwrap();
    let purchased = MetricSpec::conversion("purchased", "purchase");
    store.create_metric(&a, p, &purchased).await.unwrap();
    let e = store
        .create_experiment(
            &a,
            new,
            &ExperimentSpec::new("t", "checkout", "off", "purchased"),
        )
        .await
        .unwrap();
    let data = store
        .experiment_data(
            &e,
            std::slice::from_ref(&purchased),
            &AggregateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        data.arms.iter().map(|a| a.users).sum::<u64>(),
        0,
        "{data:?}"
    );
    assert_eq!(store.count_exposures(new).await.unwrap(), 0);
    assert_eq!(store.count_metric_events(new).await.unwrap(), 0);

    // New events are the new environment's own.
    let (s, b) = api.post(&exposures(100..104, now_ms())).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let data = store
        .experiment_data(&e, &[purchased], &AggregateOptions::default())
        .await
        .unwrap();
    assert_eq!(data.arms.iter().map(|a| a.users).sum::<u64>(), 4);

    // The purge removes what the old environment left (rollup included),
    // and nothing of the new one.
    let purged = store.purge_orphaned_events(0).await.unwrap();
    assert!(purged >= 30 + 10, "purged {purged}");
    assert_eq!(store.count_exposures(old).await.unwrap(), 0);
    assert_eq!(store.count_metric_events(old).await.unwrap(), 0);
    assert!(store.exposure_users_of(old).await.unwrap().is_empty());
    assert_eq!(store.count_exposures(new).await.unwrap(), 4);
    assert_eq!(store.purge_orphaned_events(0).await.unwrap(), 0);
}

/// A new SDK key of `kind` for environment `name` (`org/project/env`):
/// (id, raw key).
async fn sdk_key(store: &Store, name: &str, kind: SdkKeyKind) -> (i64, String) {
    let (key, raw) = store
        .create_sdk_key(&Actor::new("test"), id(store, name).await, kind, "host")
        .await
        .unwrap();
    (key.id, raw)
}

/// The paths of a 403's problems.
fn refused_paths(b: &Value) -> Vec<String> {
    assert_eq!(b["error"]["code"], "forbidden", "{b}");
    problems(b)
}

/// The stored exposures and metric events of environment `name`.
async fn stored(store: &Store, name: &str) -> (i64, i64) {
    let env = id(store, name).await;
    (
        store.count_exposures(env).await.unwrap(),
        store.count_metric_events(env).await.unwrap(),
    )
}

async fn server_keys_send_their_environments_events(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let (_, raw) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    let t = now_ms();
    let (s, _, b) = api
        .post_raw(Some(&raw), exposures(0..5, t).to_string())
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b, json!({"accepted": 5, "duplicates": 0}));
    let (s, _, b) = api.post_raw(Some(&raw), events(0..3, t).to_string()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(stored(&store, ENV).await, (5, 3));
    // The same exposures through the edge are the same events.
    let (s, b) = api.post(&exposures(0..5, t)).await;
    assert_eq!(
        (s, b),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 0, "duplicates": 5})
        )
    );
    // The ingest secret still sends any environment's events.
    let mut staging = events(0..2, t);
    staging["environment"] = json!("acme/web/staging");
    assert_eq!(api.post(&staging).await.0, StatusCode::ACCEPTED);
    // Invalid batches are still 422 with their paths.
    let mut bad = exposures(0..2, t);
    bad["exposures"][1]["time"] = json!("soon");
    let (s, _, b) = api.post_raw(Some(&raw), bad.to_string()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

async fn server_keys_cannot_send_other_environments_events(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let (_, acme) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    // Another tenant, with an environment of the same keys below it.
    let a = Actor::new("test");
    let globex = store.create_org(&a, "globex", "Globex").await.unwrap();
    let p = store
        .create_project(&a.clone().in_org(globex.id), globex.id, "web", "Web")
        .await
        .unwrap();
    store
        .create_environment(&a.in_org(globex.id), p.id, "production", "Production")
        .await
        .unwrap();
    const GLOBEX: &str = "globex/web/production";
    let (_, globex_key) = sdk_key(&store, GLOBEX, SdkKeyKind::Server).await;
    let t = now_ms();

    // One exposure of another environment refuses the whole batch.
    let mut mixed = exposures(0..5, t);
    mixed["exposures"][1]["environment"] = json!("acme/web/staging");
    mixed["exposures"][3]["environment"] = json!(GLOBEX);
    let (s, _, b) = api.post_raw(Some(&acme), mixed.to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(
        refused_paths(&b),
        ["exposures[1].environment", "exposures[3].environment"]
    );
    // Metric events name their environment once.
    let mut other = events(0..2, t);
    other["environment"] = json!(GLOBEX);
    let (s, _, b) = api.post_raw(Some(&acme), other.to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(refused_paths(&b), ["environment"]);
    // Nor the other way round: globex's key cannot write acme's events.
    let (s, _, b) = api
        .post_raw(Some(&globex_key), exposures(0..2, t).to_string())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(refused_paths(&b).len(), 2);
    let (s, _, _) = api
        .post_raw(Some(&globex_key), events(0..2, t).to_string())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // An environment that does not exist is just another environment.
    let mut nowhere = events(0..1, t);
    nowhere["environment"] = json!("acme/web/nowhere");
    let (s, _, _) = api.post_raw(Some(&acme), nowhere.to_string()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    assert_eq!(stored(&store, ENV).await, (0, 0));
    assert_eq!(stored(&store, "acme/web/staging").await, (0, 0));
    assert_eq!(stored(&store, GLOBEX).await, (0, 0));
    // Each key sends its own.
    let mut own = exposures(0..2, t);
    own["exposures"][0]["environment"] = json!(GLOBEX);
    own["exposures"][1]["environment"] = json!(GLOBEX);
    let (s, _, b) = api.post_raw(Some(&globex_key), own.to_string()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(stored(&store, GLOBEX).await, (2, 0));
    assert_eq!(stored(&store, ENV).await, (0, 0));

    // A deleted tenant's key stops working, even when a new tenant takes
    // the same keys.
    store
        .delete_org(&Actor::new("test"), globex.id, globex.version)
        .await
        .unwrap();
    let again = store
        .create_org(&Actor::new("test"), "globex", "Globex")
        .await
        .unwrap();
    let p = store
        .create_project(&Actor::new("test").in_org(again.id), again.id, "web", "Web")
        .await
        .unwrap();
    store
        .create_environment(
            &Actor::new("test").in_org(again.id),
            p.id,
            "production",
            "Production",
        )
        .await
        .unwrap();
    let (s, _, b) = api.post_raw(Some(&globex_key), own.to_string()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(stored(&store, GLOBEX).await, (0, 0));
}

async fn client_and_stopped_keys_are_refused(store: Store) {
    let api = Api::start(store.clone(), Some(SECRET), IngestOptions::default()).await;
    let t = now_ms();
    let body = exposures(0..2, t).to_string();
    let (_, client) = sdk_key(&store, ENV, SdkKeyKind::Client).await;
    let (s, _, b) = api.post_raw(Some(&client), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");

    let (revoked_id, revoked) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    assert_eq!(
        api.post_raw(Some(&revoked), body.clone()).await.0,
        StatusCode::ACCEPTED
    );
    let a = Actor::new("test");
    store.revoke_sdk_key(&a, revoked_id).await.unwrap();
    let (s, _, b) = api.post_raw(Some(&revoked), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "unauthorized");

    // A rotated key works during its grace period, not after it.
    let (graced_id, graced) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    let (_, successor) = store.rotate_sdk_key(&a, graced_id, 3600).await.unwrap();
    for key in [&graced, &successor] {
        assert_eq!(
            api.post_raw(Some(key), body.clone()).await.0,
            StatusCode::ACCEPTED
        );
    }
    let (stopped_id, stopped) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    store.rotate_sdk_key(&a, stopped_id, 0).await.unwrap();
    let (s, _, _) = api.post_raw(Some(&stopped), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Unknown keys and almost-keys.
    let (s, _, _) = api
        .post_raw(Some(&graced[..graced.len() - 1]), body.clone())
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = api.post_raw(Some("bnt_server_unknown"), body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&store, ENV).await, (2, 0));
}

async fn server_keys_work_without_an_ingest_secret(store: Store) {
    let api = Api::start(store.clone(), None, IngestOptions::default()).await;
    let (_, raw) = sdk_key(&store, ENV, SdkKeyKind::Server).await;
    let (_, client) = sdk_key(&store, ENV, SdkKeyKind::Client).await;
    let body = exposures(0..3, now_ms()).to_string();
    let (s, _, b) = api.post_raw(Some(&raw), body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, _, _) = api.post_raw(Some(&client), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Anything else is refused as before: ingestion from the edge is off.
    for token in [None, Some(SECRET), Some("bnt_server_unknown")] {
        let (s, _, b) = api.post_raw(token, body.clone()).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    }
    assert_eq!(stored(&store, ENV).await, (3, 0));
}

/// Overlapping exposure batches (retried exposures, duplicates within one
/// group, earlier exposures and new variants for known users, ties at the
/// same millisecond) queued behind a blocked writer, so that the writer
/// stores several in one transaction: each answer counts what was new
/// before it, and the rollup equals the one recomputed from every stored
/// exposure (and a rebuild).
async fn grouped_overlapping_batches_keep_the_rollup_exact(store: Store) {
    let options = IngestOptions {
        writers: 1,
        ..IngestOptions::default()
    };
    let api = Api::start(store.clone(), Some(SECRET), options).await;
    let t = now_ms();
    let x = |u: usize, variant: &str, time: i64| {
        json!({"flag": if u.is_multiple_of(7) { "search" } else { "checkout" }, "variant": variant,
               "bucketingKeyHash": format!("{u:032x}"), "environment": ENV,
               "snapshotVersion": 3, "time": time})
    };
    let ab = |u: usize| if u.is_multiple_of(2) { "a" } else { "b" };
    let a: Vec<Value> = (0..200_usize).map(|u| x(u, ab(u), t)).collect();
    let b: Vec<Value> = (100..300_usize)
        .map(|u| {
            let v = if u.is_multiple_of(3) { "c" } else { ab(u) };
            x(
                u,
                v,
                if u.is_multiple_of(5) {
                    t - 1_000
                } else {
                    t + 1_000
                },
            )
        })
        .chain(a[150..200].iter().cloned())
        .collect();
    let c: Vec<Value> = b[150..200]
        .iter()
        .cloned()
        .chain((0..50_usize).map(|u| x(u, "a", t)))
        .collect();
    let bodies = [a, b, c];
    // What each answer must count: exposures not stored before it.
    let mut seen = std::collections::HashSet::new();
    let expected: Vec<Value> = bodies
        .iter()
        .map(|list| {
            let new = list.iter().filter(|e| seen.insert(e.to_string())).count();
            json!({"accepted": new, "duplicates": list.len() - new})
        })
        .collect();
    let block = block_writers(&store).await;
    let mut tasks = Vec::new();
    let mut queued = 0;
    for list in &bodies {
        tasks.push(api.spawn_post(json!({"kind": "exposures", "exposures": list})));
        queued += list.len();
        wait_queued(&api.state.ingest, queued).await;
    }
    unblock(block).await;
    for (task, want) in tasks.into_iter().zip(expected) {
        assert_eq!(task.await.unwrap(), (StatusCode::ACCEPTED, want));
    }
    let env = id(&store, ENV).await;
    let stored = store.exposures_of(env).await.unwrap();
    assert_eq!(stored.len(), seen.len());
    let users = store.exposure_users_of(env).await.unwrap();
    assert_eq!(users, rollup(&stored));
    // Several arms, and earlier exposures that replaced the first variant.
    assert!(users.iter().filter(|u| u.vmin != u.vmax).count() > 40);
    assert!(users.iter().filter(|u| u.first_ms < t).count() > 10);
    store.rebuild_exposure_users().await.unwrap();
    assert_eq!(store.exposure_users_of(env).await.unwrap(), users);
}
