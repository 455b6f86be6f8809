//! Webhook subscriptions through the API and their delivery by the loop of
//! `bunting serve`, on SQLite and PostgreSQL, to a real receiver on
//! 127.0.0.1 that checks every message with the official
//! `standardwebhooks` crate (signature and timestamp) and refuses a
//! `webhook-id` it has accepted before (replay): signed events for audited
//! changes, filters, retries with the attempts in the delivery log, failure
//! after the last attempt and manual redelivery, secret rotation, forged
//! and replayed requests, the Slack format, restarts, tenant isolation,
//! bad input, and two loops sharing a database.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use bunting_origin::metrics::Metrics;
use bunting_origin::publish::{self, BoxFuture, PublishError, Publisher};
use bunting_origin::store::Store;
use bunting_origin::webhooks::sign::{Verdict, sign, verify};
use bunting_origin::webhooks::{self, DeliveryHandle, DeliveryOptions};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};
use crate::common::docs::{sh, shell_blocks};
use crate::common::world::World;

both!(
    flag_change_delivers_a_signed_event,
    filters_select_what_each_subscription_gets,
    failing_receiver_is_retried_until_delivered,
    failed_after_the_last_attempt_then_redelivered,
    rotated_secret_signs_beside_the_old_one_during_grace,
    forged_unsigned_and_replayed_requests_are_refused,
    slack_format_sends_a_text_message,
    pending_messages_survive_a_restart,
    one_organizations_events_never_reach_another,
    bad_subscriptions_are_refused_naming_every_problem,
    two_loops_on_one_database_deliver_each_message_once,
    rollbacks_and_publish_failures_are_events,
);

const HOOKS: &str = "/orgs/acme/webhooks";
const FLAGS: &str = "/orgs/acme/projects/web/flags";

/// A message the receiver accepted.
#[derive(Debug, Clone)]
struct Message {
    id: String,
    timestamp: String,
    signature: String,
    raw: Vec<u8>,
    body: Value,
}

/// What the receiver knows and saw.
#[derive(Default)]
struct Seen {
    /// The secret it verifies with.
    secret: String,
    /// Answer 503 to this many requests first (before any check).
    fail_first: usize,
    requests: usize,
    accepted: Vec<Message>,
    /// (status, reason) of every refused request.
    refused: Vec<(u16, String)>,
    /// Ids of messages received again after they were accepted:
    /// acknowledged, not processed again.
    duplicates: Vec<String>,
    ids: HashSet<String>,
}

/// A webhook receiver on 127.0.0.1: verifies as a receiver should.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let seen = state.clone();
                async move { receive(&seen, &headers, &body) }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Receiver { url, seen }
    }

    fn knows(&self, secret: &str) {
        self.seen.lock().unwrap().secret = secret.to_string();
    }

    fn fail_first(&self, n: usize) {
        self.seen.lock().unwrap().fail_first = n;
    }

    fn accepted(&self) -> Vec<Message> {
        self.seen.lock().unwrap().accepted.clone()
    }

    fn refused(&self) -> Vec<(u16, String)> {
        self.seen.lock().unwrap().refused.clone()
    }

    fn duplicates(&self) -> Vec<String> {
        self.seen.lock().unwrap().duplicates.clone()
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().requests
    }

    /// POSTs `body` with `headers` to the receiver as an attacker would.
    async fn post_raw(&self, headers: &[(&str, String)], body: &[u8]) -> u16 {
        let mut r = reqwest::Client::new().post(&self.url).body(body.to_vec());
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.send().await.unwrap().status().as_u16()
    }
}

/// The receiver's check: the signature and timestamp by the official
/// `standardwebhooks` crate, then the message id against those accepted
/// (a repeated id is acknowledged and not processed again).
fn receive(seen: &Mutex<Seen>, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let mut s = seen.lock().unwrap();
    s.requests += 1;
    if s.requests <= s.fail_first {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let verifier = standardwebhooks::Webhook::new(&s.secret).unwrap();
    if let Err(e) = verifier.verify(body, headers) {
        s.refused.push((401, e.to_string()));
        return StatusCode::UNAUTHORIZED;
    }
    let header = |n: &str| headers[n].to_str().unwrap().to_string();
    let id = header("webhook-id");
    if !s.ids.insert(id.clone()) {
        // A retry after a lost answer, or a replay: acknowledged, so the
        // sender stops, and not acted on again.
        s.duplicates.push(id);
        return StatusCode::OK;
    }
    s.accepted.push(Message {
        id,
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        raw: body.to_vec(),
        body: serde_json::from_slice(body).unwrap(),
    });
    StatusCode::NO_CONTENT
}

/// Fast retries for tests: 3 attempts, 30–100 ms apart.
fn options() -> DeliveryOptions {
    DeliveryOptions {
        poll_interval: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(60),
        max_backoff: Duration::from_millis(200),
        ..DeliveryOptions::default()
    }
}

fn deliver(store: &Store, metrics: &Arc<Metrics>) -> DeliveryHandle {
    webhooks::spawn(store.clone(), metrics.clone(), options())
}

/// `acme/web/production`, the API as the bootstrap administrator.
async fn setup(store: &Store) -> TestApp {
    World::acme(store).await;
    TestApp::root(store.clone())
}

/// Subscribes `url` to `events` in organization `org`: (id, secret).
async fn subscribe(api: &TestApp, org: &str, url: &str, events: &[&str]) -> (i64, String) {
    subscribe_with(api, org, json!({"url": url, "events": events})).await
}

async fn subscribe_with(api: &TestApp, org: &str, body: Value) -> (i64, String) {
    let b = api.made(&format!("/orgs/{org}/webhooks"), body, 201).await;
    (
        b["id"].as_i64().unwrap(),
        b["secret"].as_str().unwrap().to_string(),
    )
}

async fn make_flag(api: &TestApp, org: &str, key: &str) {
    api.made(
        &format!("/orgs/{org}/projects/web/flags"),
        json!({"key": key, "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
        201,
    )
    .await;
}

/// The delivery log of subscription `id` of `org`.
async fn log(api: &TestApp, org: &str, id: i64) -> Vec<Value> {
    let (s, _, b) = api
        .get(&format!("/orgs/{org}/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

fn types(log: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = log
        .iter()
        .map(|d| d["eventType"].as_str().unwrap().to_string())
        .collect();
    t.sort();
    t
}

/// The HTTP status (or error) of each attempt of delivery `d`.
fn attempts(d: &Value) -> Vec<Value> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect()
}

async fn flag_change_delivers_a_signed_event(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&api, "acme", &receiver.url, &["flag.*"]).await;
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    receiver.knows(&secret);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "dark-mode").await;
    until!("the flag.create message", receiver.accepted().len() == 1);
    let m = &receiver.accepted()[0];
    assert_eq!(m.body["type"], "flag.create");
    let data = &m.body["data"];
    assert_eq!(data["organization"], "acme");
    assert_eq!(data["actor"], "admin");
    assert_eq!(data["entityType"], "flag");
    assert_eq!(data["entityKey"], "dark-mode");
    assert_eq!(data["after"]["key"], "dark-mode");
    assert!(data["seq"].as_i64().unwrap() > 0 && data["before"].is_null());
    assert!(m.id.starts_with("msg_"));
    // The documented verifier agrees with the official one.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(
        verify(&secret, &m.id, &m.timestamp, &m.signature, &m.raw, now),
        Verdict::Valid
    );
    // The same entry is in the audit log.
    let (_, _, audit) = api.get("/orgs/acme/audit?entityType=flag").await;
    assert_eq!(audit["items"][0]["seq"], data["seq"]);
    until!("the attempt recorded", {
        let l = log(&api, "acme", id).await;
        l[0]["status"] == "delivered"
    });
    let l = log(&api, "acme", id).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0]["id"], m.id.as_str());
    assert_eq!(attempts(&l[0]), [json!(204)]);
    assert_eq!(l[0]["event"], m.body);
    assert!(
        metrics
            .render()
            .contains("bunting_webhook_deliveries_total{outcome=\"delivered\"} 1")
    );
    loop_.shutdown().await;
}

async fn filters_select_what_each_subscription_gets(store: Store) {
    let api = setup(&store).await;
    let url = "https://hooks.example.com/x";
    let (configs, _) = subscribe(&api, "acme", url, &["flagConfig.*"]).await;
    let (some, _) = subscribe(&api, "acme", url, &["segment.delete", "rollback"]).await;
    let (all, _) = subscribe(&api, "acme", url, &["*"]).await;
    let (off, _) = subscribe_with(
        &api,
        "acme",
        json!({"url": url, "events": ["*"], "enabled": false}),
    )
    .await;
    make_flag(&api, "acme", "beta").await;
    let (s, _, b) = api
        .post(
            &format!("{FLAGS}/beta/environments/production/toggle"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let segments = "/orgs/acme/projects/web/environments/production/segments";
    api.made(segments, json!({"key": "vip", "included": ["u1"]}), 201)
        .await;
    let (_, tag, _) = api.get(&format!("{segments}/vip")).await;
    let (s, _, _) = api
        .call_if_match(
            Method::DELETE,
            &format!("{segments}/vip"),
            None,
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 204);
    let acme = store.org_by_key("acme").await.unwrap();
    let queued = store
        .emit_event(acme.id, "rollback", json!({"flag": "web/beta"}))
        .await
        .unwrap();
    assert_eq!(queued, 2, "some and all");
    // Not a known event type: refused, nothing queued.
    assert!(
        store
            .emit_event(acme.id, "nonsense", json!({}))
            .await
            .is_err()
    );

    let config_types = types(&log(&api, "acme", configs).await);
    assert!(!config_types.is_empty());
    assert!(config_types.iter().all(|t| t.starts_with("flagConfig.")));
    assert_eq!(
        types(&log(&api, "acme", some).await),
        ["rollback", "segment.delete"]
    );
    let everything = types(&log(&api, "acme", all).await);
    for t in [
        "flag.create",
        "segment.create",
        "segment.delete",
        "rollback",
    ] {
        assert!(everything.iter().any(|e| e == t), "{t} in {everything:?}");
    }
    // Subscriptions' own changes are events too (webhook.create).
    assert!(everything.iter().any(|e| e == "webhook.create"));
    assert!(log(&api, "acme", off).await.is_empty());
    // The rollback event carries the organization.
    let l = log(&api, "acme", some).await;
    let rollback = l.iter().find(|d| d["eventType"] == "rollback").unwrap();
    assert_eq!(rollback["event"]["data"]["organization"], "acme");
    assert_eq!(rollback["event"]["data"]["flag"], "web/beta");
    assert_eq!(rollback["status"], "pending");
}

async fn failing_receiver_is_retried_until_delivered(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    receiver.knows(&secret);
    receiver.fail_first(2);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "retry-me").await;
    until!("delivered on the third attempt", {
        let l = log(&api, "acme", id).await;
        l[0]["status"] == "delivered"
    });
    let l = log(&api, "acme", id).await;
    assert_eq!(attempts(&l[0]), [json!(503), json!(503), json!(204)]);
    for a in l[0]["attempts"].as_array().unwrap() {
        assert!(a["durationMs"].as_i64().unwrap() >= 0 && a["at"].is_string());
    }
    assert_eq!(receiver.accepted().len(), 1);
    assert_eq!(receiver.requests(), 3);
    let text = metrics.render();
    assert!(
        text.contains("bunting_webhook_deliveries_total{outcome=\"retried\"} 2"),
        "{text}"
    );
    loop_.shutdown().await;
}

async fn failed_after_the_last_attempt_then_redelivered(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    receiver.knows(&secret);
    receiver.fail_first(3);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "doomed").await;
    until!("failed after 3 attempts", {
        let l = log(&api, "acme", id).await;
        l[0]["status"] == "failed"
    });
    let l = log(&api, "acme", id).await;
    assert_eq!(attempts(&l[0]), [json!(503), json!(503), json!(503)]);
    assert!(l[0]["nextAttemptAt"].is_null());
    // No more automatic attempts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests(), 3);
    assert!(
        metrics
            .render()
            .contains("bunting_webhook_deliveries_total{outcome=\"failed\"} 1")
    );
    // Manual redelivery: one new attempt with the same message id.
    let msg = l[0]["id"].as_str().unwrap().to_string();
    let r = api
        .call_with(
            Method::POST,
            &format!("{HOOKS}/{id}/deliveries/{msg}/redeliver"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    until!("redelivered", receiver.accepted().len() == 1);
    assert_eq!(receiver.accepted()[0].id, msg);
    until!("recorded", {
        let l = log(&api, "acme", id).await;
        l[0]["status"] == "delivered"
    });
    let l = log(&api, "acme", id).await;
    assert_eq!(attempts(&l[0]).len(), 4);
    // An unknown message answers 404.
    let r = api
        .call_with(
            Method::POST,
            &format!("{HOOKS}/{id}/deliveries/msg_nope/redeliver"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    loop_.shutdown().await;
}

async fn rotated_secret_signs_beside_the_old_one_during_grace(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, old) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    let r = api
        .post(&format!("{HOOKS}/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(r.0, 200, "{}", r.2);
    let new = r.2["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(r.2["previousSecretExpiresAt"].is_string());
    // A receiver that knows only the new secret accepts.
    receiver.knows(&new);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "rotated").await;
    until!("delivered", receiver.accepted().len() == 1);
    let m = receiver.accepted()[0].clone();
    let sigs: Vec<&str> = m.signature.split(' ').collect();
    assert_eq!(sigs.len(), 2, "{}", m.signature);
    assert!(sigs.iter().all(|s| s.starts_with("v1,")));
    // ...and one that still has the old secret does too, during grace.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for secret in [&old, &new] {
        assert_eq!(
            verify(secret, &m.id, &m.timestamp, &m.signature, &m.raw, now),
            Verdict::Valid
        );
    }
    // Rotating with no grace: one signature, the old secrets stop.
    let r = api
        .post(
            &format!("{HOOKS}/{id}/rotate-secret"),
            json!({"graceSeconds": 0}),
        )
        .await;
    let newest = r.2["secret"].as_str().unwrap().to_string();
    assert!(r.2["previousSecretExpiresAt"].is_null());
    receiver.knows(&newest);
    make_flag(&api, "acme", "rotated-again").await;
    until!("delivered", receiver.accepted().len() == 2);
    let m = receiver.accepted()[1].clone();
    assert_eq!(m.signature.split(' ').count(), 1);
    for secret in [&old, &new] {
        assert_eq!(
            verify(secret, &m.id, &m.timestamp, &m.signature, &m.raw, now),
            Verdict::BadSignature
        );
    }
    // The secrets are never in the audit log; the URL path is redacted.
    let (_, _, audit) = api.get("/orgs/acme/audit?entityType=webhook").await;
    let text = audit.to_string();
    assert!(!text.contains("whsec_"), "{text}");
    assert!(!text.contains("/hook"), "{text}");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "rotate", "rotate"]);
    loop_.shutdown().await;
}

async fn forged_unsigned_and_replayed_requests_are_refused(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    receiver.knows(&secret);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "genuine").await;
    until!("delivered", receiver.accepted().len() == 1);
    loop_.shutdown().await;
    let m = receiver.accepted()[0].clone();
    let headers = |id: &str, ts: &str, sig: &str| {
        vec![
            ("content-type", "application/json".to_string()),
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig.to_string()),
        ]
    };
    // Replayed as it was: recognised by its id, acknowledged, not acted on.
    let s = receiver
        .post_raw(&headers(&m.id, &m.timestamp, &m.signature), &m.raw)
        .await;
    assert_eq!(s, 200);
    assert_eq!(receiver.duplicates(), std::slice::from_ref(&m.id));
    // Unsigned.
    let unsigned = vec![
        ("webhook-id", "msg_forged".to_string()),
        ("webhook-timestamp", m.timestamp.clone()),
    ];
    assert_eq!(receiver.post_raw(&unsigned, &m.raw).await, 401);
    // Signed with another secret, or the body altered.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged = sign(
        &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        "msg_forged",
        now,
        &m.raw,
    )
    .unwrap();
    let s = receiver
        .post_raw(&headers("msg_forged", &now.to_string(), &forged), &m.raw)
        .await;
    assert_eq!(s, 401);
    let altered = br#"{"type":"flag.delete"}"#;
    let s = receiver
        .post_raw(&headers(&m.id, &m.timestamp, &m.signature), altered)
        .await;
    assert_eq!(s, 401);
    // Validly signed, but ten minutes old: a replay under a new id.
    let old = now - 600;
    let stale = sign(&[secret.as_str()], "msg_stale", old, &m.raw).unwrap();
    let s = receiver
        .post_raw(&headers("msg_stale", &old.to_string(), &stale), &m.raw)
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        verify(&secret, "msg_stale", &old.to_string(), &stale, &m.raw, now),
        Verdict::StaleTimestamp
    );
    let refused = receiver.refused();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused[3].1.contains("too old"), "{refused:?}");
    assert_eq!(receiver.accepted().len(), 1);
}

async fn slack_format_sends_a_text_message(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe_with(
        &api,
        "acme",
        json!({"url": receiver.url, "events": ["flag.*", "rollback"], "format": "slack",
               "description": "#releases"}),
    )
    .await;
    receiver.knows(&secret);
    let (_, _, hook) = api.get(&format!("{HOOKS}/{id}")).await;
    assert_eq!(hook["format"], "slack");
    assert_eq!(hook["description"], "#releases");
    assert!(hook.get("secret").is_none());
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "new-checkout").await;
    let acme = store.org_by_key("acme").await.unwrap();
    store
        .emit_event(
            acme.id,
            "rollback",
            json!({"flag": "web/a&b<c>", "actor": "auto-rollback", "action": "serveControl"}),
        )
        .await
        .unwrap();
    until!("delivered", receiver.accepted().len() == 2);
    loop_.shutdown().await;
    let mut texts: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|m| {
            assert_eq!(m.body.as_object().unwrap().len(), 1, "{}", m.body);
            m.body["text"].as_str().unwrap().to_string()
        })
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "*acme* · `flag.create` · new-checkout · by admin",
            "*acme* · `rollback` · web/a&amp;b&lt;c&gt; · action serveControl · by auto-rollback",
        ]
    );
}

async fn pending_messages_survive_a_restart(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    receiver.knows(&secret);
    // Queued with no loop running: it waits in the database.
    make_flag(&api, "acme", "queued").await;
    let l = log(&api, "acme", id).await;
    assert_eq!(l[0]["status"], "pending");
    assert!(l[0]["attempts"].as_array().unwrap().is_empty());
    // A first loop fails once, then stops before its retry.
    receiver.fail_first(1);
    let metrics = Arc::new(Metrics::new());
    let first = webhooks::spawn(
        store.clone(),
        metrics.clone(),
        DeliveryOptions {
            initial_backoff: Duration::from_millis(400),
            max_backoff: Duration::from_millis(400),
            ..options()
        },
    );
    until!("the first attempt", receiver.requests() == 1);
    first.shutdown().await;
    until!("recorded", {
        let l = log(&api, "acme", id).await;
        l[0]["attempts"].as_array().unwrap().len() == 1
    });
    assert_eq!(log(&api, "acme", id).await[0]["status"], "pending");
    // A new loop over the same database delivers it.
    let second = deliver(&store, &metrics);
    until!("delivered", receiver.accepted().len() == 1);
    second.shutdown().await;
    let l = log(&api, "acme", id).await;
    assert_eq!(l[0]["status"], "delivered");
    assert_eq!(attempts(&l[0]), [json!(503), json!(204)]);
    assert_eq!(receiver.accepted()[0].id, l[0]["id"].as_str().unwrap());
}

async fn one_organizations_events_never_reach_another(store: Store) {
    let api = setup(&store).await;
    api.made("/orgs", json!({"key": "other", "name": "Other"}), 201)
        .await;
    api.made(
        "/orgs/other/projects",
        json!({"key": "web", "name": "Web"}),
        201,
    )
    .await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let (acme_hook, sa) = subscribe(&api, "acme", &a.url, &["*"]).await;
    let (other_hook, sb) = subscribe(&api, "other", &b.url, &["*"]).await;
    a.knows(&sa);
    b.knows(&sb);
    let metrics = Arc::new(Metrics::new());
    let loop_ = deliver(&store, &metrics);
    make_flag(&api, "acme", "acme-only").await;
    make_flag(&api, "other", "other-only").await;
    let acme = store.org_by_key("acme").await.unwrap();
    store
        .emit_event(acme.id, "rollback", json!({"flag": "web/acme-only"}))
        .await
        .unwrap();
    until!("acme's events", a.accepted().len() >= 3);
    until!("other's events", b.accepted().len() >= 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    loop_.shutdown().await;
    for m in a.accepted() {
        assert_eq!(m.body["data"]["organization"], "acme", "{}", m.body);
        assert_ne!(m.body["data"]["entityKey"], "other-only");
    }
    for m in b.accepted() {
        assert_eq!(m.body["data"]["organization"], "other", "{}", m.body);
    }
    assert!(!types(&log(&api, "other", other_hook).await).contains(&"rollback".to_string()));
    // Another organization's admin sees neither acme's subscriptions nor
    // their log.
    let token = api
        .made(
            "/orgs/other/tokens",
            json!({"name": "admin", "role": "admin"}),
            201,
        )
        .await;
    let other_admin = api.as_token(token["secret"].as_str().unwrap());
    assert_eq!(other_admin.get(HOOKS).await.0, 404);
    let (s, _, _) = other_admin
        .get(&format!("/orgs/other/webhooks/{acme_hook}/deliveries"))
        .await;
    assert_eq!(s, 404);
}

async fn bad_subscriptions_are_refused_naming_every_problem(store: Store) {
    let api = setup(&store).await;
    let (s, _, b) = api
        .post(
            HOOKS,
            json!({"url": "ftp://example.com/x", "events": ["flag.create", "nope.*", "flag."],
                   "format": "xml"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problems(&b), ["url", "events[1]", "events[2]", "format"]);
    let (s, _, b) = api
        .post(HOOKS, json!({"url": "not a url", "events": []}))
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problems(&b), ["url", "events"]);
    let (s, _, b) = api
        .post(
            HOOKS,
            json!({"url": "https://x.example", "events": ["*"], "secret": "mine"}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (_, _, list) = api.get(HOOKS).await;
    assert!(list["items"].as_array().unwrap().is_empty());

    let (id, _) = subscribe(&api, "acme", "https://x.example/", &["*"]).await;
    let path = format!("{HOOKS}/{id}");
    let (_, tag, _) = api.get(&path).await;
    // A replacement is validated the same way; a stale ETag answers 412.
    let (s, _, b) = api
        .call_if_match(
            Method::PUT,
            &path,
            Some(json!({"url": "https://x.example/", "events": ["flags.*"], "format": "slack"})),
            tag.as_deref(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), problems(&b)),
        (422, vec!["events[0]".to_string()])
    );
    let (s, tag2, b) = api
        .call_if_match(
            Method::PUT,
            &path,
            Some(json!({"url": "https://y.example/", "events": ["rollback"], "enabled": false})),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["url"].as_str(), b["enabled"].as_bool()),
        (Some("https://y.example/"), Some(false))
    );
    let (s, _, _) = api
        .call_if_match(Method::DELETE, &path, None, tag.as_deref())
        .await;
    assert_eq!(s, 412);
    let (s, _, b) = api
        .post(
            &format!("{path}/rotate-secret"),
            json!({"graceSeconds": 99_999_999}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), problems(&b)),
        (422, vec!["graceSeconds".to_string()])
    );
    let (s, _, b) = api.get(&format!("{path}/deliveries?limit=0")).await;
    assert_eq!((s.as_u16(), problems(&b)), (422, vec!["limit".to_string()]));
    let (s, _, _) = api
        .call_if_match(Method::DELETE, &path, None, tag2.as_deref())
        .await;
    assert_eq!(s, 204);
    assert_eq!(api.get(&path).await.0, 404);
}

async fn two_loops_on_one_database_deliver_each_message_once(store: Store) {
    let api = setup(&store).await;
    let receiver = Receiver::start().await;
    let (id, secret) = subscribe(&api, "acme", &receiver.url, &["flag.create"]).await;
    receiver.knows(&secret);
    let n = 12;
    for i in 0..n {
        make_flag(&api, "acme", &format!("f{i}")).await;
    }
    let metrics = Arc::new(Metrics::new());
    let (one, two) = (deliver(&store, &metrics), deliver(&store, &metrics));
    until!("every message", receiver.accepted().len() == n);
    tokio::time::sleep(Duration::from_millis(200)).await;
    one.shutdown().await;
    two.shutdown().await;
    // No message was sent twice (the receiver refuses a repeated id).
    assert!(receiver.refused().is_empty(), "{:?}", receiver.refused());
    assert!(
        receiver.duplicates().is_empty(),
        "{:?}",
        receiver.duplicates()
    );
    assert_eq!(receiver.requests(), n);
    let l = log(&api, "acme", id).await;
    assert!(l.iter().all(|d| attempts(d) == [json!(204)]), "{l:?}");
}

/// A publication target that fails while it is down.
struct Flaky {
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), PublishError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(PublishError::Other("the target is down".into()))
        } else {
            Ok(())
        }
    }
}

impl Publisher for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    fn put<'a>(&'a self, _: &'a str, _: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move { self.check() })
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move { self.check() })
    }
}

async fn rollbacks_and_publish_failures_are_events(store: Store) {
    use std::sync::atomic::Ordering::SeqCst;
    let world = World::acme(&store).await;
    let api = TestApp::root(store.clone());
    let (id, _) = subscribe(
        &api,
        "acme",
        "https://hooks.example.com/ops",
        &["rollback", "publish.*"],
    )
    .await;
    // An external alert rolls a flag back: a `rollback` event.
    make_flag(&api, "acme", "checkout").await;
    let alert = json!({"version": "4", "status": "firing", "receiver": "bunting", "alerts": [{
        "status": "firing",
        "labels": {"alertname": "Errors", "bunting_project": "web",
                   "bunting_environment": "production", "bunting_flag": "checkout",
                   "bunting_action": "disableFlag"}}]});
    let (s, _, b) = api.post("/orgs/acme/alerts/alertmanager", alert).await;
    assert_eq!(s, 200, "{b}");
    let l = log(&api, "acme", id).await;
    assert_eq!(types(&l), ["rollback"]);
    let data = &l[0]["event"]["data"];
    assert_eq!(
        (
            data["organization"].as_str(),
            data["flag"].as_str(),
            data["actor"].as_str()
        ),
        (Some("acme"), Some("web/checkout"), Some("admin"))
    );
    assert_eq!(data["action"], "disableFlag");

    // A target that starts failing: one `publish.failed`, however often
    // the publisher retries.
    let target = Arc::new(Flaky { down: true.into() });
    let targets: Vec<Arc<dyn Publisher>> = vec![target.clone()];
    let publisher = publish::spawn(
        store.clone(),
        targets,
        Arc::new(Metrics::new()),
        crate::common::publishing::fast(),
    );
    let attempts = async || {
        let status = store.publish_status(world.env).await.unwrap();
        status.target("flaky").attempts
    };
    until!("retried", attempts().await >= 4);
    let failed = |l: &[Value]| {
        l.iter()
            .filter(|d| d["eventType"] == "publish.failed")
            .count()
    };
    let l = log(&api, "acme", id).await;
    assert_eq!(failed(&l), 1, "{l:?}");
    let data = &l
        .iter()
        .find(|d| d["eventType"] == "publish.failed")
        .unwrap()["event"]["data"];
    assert_eq!(data["environment"], "acme/web/production");
    assert_eq!(data["target"], "flaky");
    assert_eq!(data["permanent"], false);
    assert!(data["error"].as_str().unwrap().contains("down"));
    // It recovers, then fails again: a second failure, a second event.
    target.down.store(false, SeqCst);
    until!("published", attempts().await == 0);
    target.down.store(true, SeqCst);
    make_flag(&api, "acme", "another").await;
    until!("failing again", attempts().await >= 2);
    assert_eq!(failed(&log(&api, "acme", id).await), 2);
    publisher.shutdown().await;
}

/// The admin token of the server of [`docs_examples_work`].
const DOC_ADMIN: &str = "docs-admin-token";

/// The `## Webhooks` examples of `docs/access.md`, run as written against
/// `bunting serve` (whose delivery loop sends the messages) and a
/// receiver; the receiver-side verification recipe accepts a genuine
/// message and refuses forged, altered and stale ones.
#[tokio::test]
async fn docs_examples_work() {
    use bunting_origin::serve::ServeArgs;
    let receiver = Receiver::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let api = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let args = ServeArgs {
        database_url: Some("sqlite::memory:".into()),
        admin_token: Some(DOC_ADMIN.into()),
        monitor_seconds: Some(0.0),
        shutdown_seconds: Some(5),
        ..ServeArgs::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // On a runtime of its own: `serve`'s future is not `Send`.
    let server = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                bunting_origin::serve::serve(args, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
    });
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{api}{path}"))
            .bearer_auth(DOC_ADMIN)
            .json(&body)
            .send()
    };
    until!("serve answers", {
        let r = http
            .get(format!("{api}/orgs"))
            .bearer_auth(DOC_ADMIN)
            .send()
            .await;
        r.is_ok_and(|r| r.status() == 200)
    });
    for (path, body) in [
        ("/orgs", json!({"key": "acme", "name": "Acme"})),
        ("/orgs/acme/projects", json!({"key": "web", "name": "Web"})),
    ] {
        assert_eq!(post(path, body).await.unwrap().status(), 201);
    }

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhooks-docs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/access.md")).unwrap();
    let blocks = shell_blocks(&doc, "## Webhooks");
    let infos: Vec<&str> = blocks.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        infos,
        ["", "", "", "", "", "verify"],
        "the section's examples"
    );
    let env = [
        ("BUNTING", api.as_str()),
        ("TOKEN", DOC_ADMIN),
        ("RECEIVER", &receiver.url),
    ];
    let run = |i: usize| sh(&dir, &blocks[i].1, &env);

    // Subscribing: the secret is in webhook.json.
    let (ok, out) = run(0).await;
    assert!(ok && out.contains("whsec_"), "{out}");
    let hook: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("webhook.json")).unwrap()).unwrap();
    let secret = hook["secret"].as_str().unwrap().to_string();
    receiver.knows(&secret);
    // Replacing and listing.
    let (ok, out) = run(1).await;
    assert!(
        ok && out.contains("flagConfig.*") && out.contains(&receiver.url),
        "{out}"
    );
    // A change is delivered by serve's loop, and shows in the log.
    let flag = json!({"key": "docs-flag", "flagType": "boolean",
                      "variants": {"on": true, "off": false}, "offVariant": "off"});
    assert_eq!(
        post("/orgs/acme/projects/web/flags", flag)
            .await
            .unwrap()
            .status(),
        201
    );
    until!("delivered", receiver.accepted().len() == 1);
    let m = receiver.accepted()[0].clone();
    assert_eq!(m.body["type"], "flag.create");
    until!("logged", {
        let (ok, out) = run(2).await;
        ok && out.contains(&format!(
            "{{\"id\":\"{}\",\"eventType\":\"flag.create\",\"status\":\"delivered\",\"attempts\":[204]}}",
            m.id
        ))
    });
    // Redelivering: the same id again, acknowledged as a duplicate.
    let (ok, out) = run(3).await;
    assert!(ok && out.contains("\"status\":\"pending\""), "{out}");
    until!("redelivered", receiver.duplicates() == [m.id.clone()]);
    // Rotating.
    let (ok, out) = run(4).await;
    assert!(
        ok && out.contains("whsec_") && !out.contains(&secret),
        "{out}"
    );

    // The receiver's recipe, on the message signed before the rotation.
    let verify = |secret: String, body: Vec<u8>, timestamp: String| {
        let dir = dir.clone();
        let code = blocks[5].1.clone();
        let (id, signature) = (m.id.clone(), m.signature.clone());
        async move {
            std::fs::write(dir.join("body.json"), body).unwrap();
            let env = [
                ("SECRET", secret.as_str()),
                ("WEBHOOK_ID", id.as_str()),
                ("WEBHOOK_TIMESTAMP", timestamp.as_str()),
                ("WEBHOOK_SIGNATURE", signature.as_str()),
            ];
            let (ok, out) = sh(&dir, &code, &env).await;
            (ok, out.trim().to_string())
        }
    };
    let genuine = verify(secret.clone(), m.raw.clone(), m.timestamp.clone()).await;
    assert_eq!(genuine, (true, "valid".to_string()));
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
    let forged = verify(other, m.raw.clone(), m.timestamp.clone()).await;
    assert_eq!(forged, (false, "forged".to_string()));
    let altered = verify(secret.clone(), b"{}".to_vec(), m.timestamp.clone()).await;
    assert_eq!(altered, (false, "forged".to_string()));
    let old = (m.timestamp.parse::<i64>().unwrap() - 600).to_string();
    let stale = verify(secret.clone(), m.raw.clone(), old).await;
    assert_eq!(stale, (false, "stale".to_string()));

    stop.send(()).unwrap();
    tokio::task::spawn_blocking(move || server.join().unwrap().unwrap())
        .await
        .unwrap();
}
