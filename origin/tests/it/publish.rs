//! Publishing to the edge: the outbox (snapshot versions), the publish loop
//! and its publishers. Store-backed tests run on SQLite and PostgreSQL (see
//! `common`); the Cloudflare and wrangler publishers run against fakes (an
//! axum server on 127.0.0.1, a shell script).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bunting_core::packed;
use bunting_core::{Engine, ParsedSnapshot, Serve, Snapshot};
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::kv;
use bunting_origin::metrics::Metrics;
use bunting_origin::publish::{
    self, BoxFuture, CloudflareKv, Directory, EdgePointer, KvFormat, PublishError, PublishHandle,
    PublishOptions, Publisher, RetryPolicy, encode_key,
};
use bunting_origin::store::{Actor, ConfigSpec, SdkKeyKind, Store};

use crate::common::app::TestApp;
use crate::common::publishing::{fast, snapshot_json, temp_dir};
use crate::common::world::{World, split};

both!(
    directory_gets_snapshot_and_keys,
    outbox_survives_failures_and_restarts,
    versions_are_monotonic,
    status_and_lag_reflect_pending,
    status_endpoint,
    cloudflare_end_to_end,
    expired_keys_are_deleted,
    deleted_environment_is_unpublished,
    packed_setting_puts_the_packed_form_of_the_same_json,
    edge_pointer_gets_the_packed_value,
    edge_pointer_falls_back_to_json_for_an_older_worker,
    edge_pointer_never_sends_json_to_a_worker_reading_packed,
    edge_pointer_sends_version_1_to_a_worker_before_version_2,
    edge_kv_gets_the_tables_beside_a_packed_value,
);

const ENV: &str = "acme/web/production";

fn ana() -> Actor {
    Actor::new("ana")
}

/// An organization, a project, an environment and a flag: (env id, flag id).
async fn tree(s: &Store) -> (i64, i64) {
    let w = World::acme(s).await;
    (w.env, w.flag(s, "dark-mode").await)
}

/// Turns the flag on or off (one committed change).
async fn toggle(s: &Store, env: i64, flag: i64, on: bool) {
    let c = s.flag_config(flag, env).await.unwrap();
    let spec = ConfigSpec {
        enabled: on,
        rules: Vec::new(),
        fallthrough: Serve::Variant(if on { "on" } else { "off" }.into()),
        prerequisites: Vec::new(),
    };
    s.update_flag_config(&ana(), flag, env, c.version, &spec)
        .await
        .unwrap();
}

fn start(s: &Store, publishers: Vec<Arc<dyn Publisher>>) -> (PublishHandle, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let h = publish::spawn(s.clone(), publishers, metrics.clone(), fast());
    (h, metrics)
}

async fn published(s: &Store, env: i64, target: &str) -> i64 {
    s.publish_status(env)
        .await
        .unwrap()
        .target(target)
        .published_version
}

async fn current(s: &Store, env: i64) -> i64 {
    s.environment(env).await.unwrap().snapshot_version
}

/// A publisher keeping keys in memory, failing its first `fail` calls.
#[derive(Default)]
struct Memory {
    name: String,
    fail: AtomicUsize,
    kv: Mutex<BTreeMap<String, Vec<u8>>>,
    /// The snapshot versions put, in order.
    versions: Mutex<Vec<u64>>,
    /// Whether it is a KV edge workers read ([`Publisher::splits_tables`]).
    splits: bool,
    /// Every write, in order: `put <key>` or `delete <key>`.
    writes: Mutex<Vec<String>>,
}

impl Memory {
    fn new(name: &str, fail: usize) -> Arc<Memory> {
        Arc::new(Memory {
            name: name.into(),
            fail: AtomicUsize::new(fail),
            ..Memory::default()
        })
    }

    /// A KV edge workers read, failing nothing.
    fn splitting(name: &str) -> Arc<Memory> {
        Arc::new(Memory {
            name: name.into(),
            splits: true,
            ..Memory::default()
        })
    }

    fn failing(&self) -> Result<(), PublishError> {
        let left = self.fail.load(Ordering::SeqCst);
        if left > 0 {
            self.fail.store(left - 1, Ordering::SeqCst);
            return Err(PublishError::Other("KV is down".into()));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.lock().unwrap().get(key).cloned()
    }
}

impl Publisher for Memory {
    fn name(&self) -> &str {
        &self.name
    }
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            self.failing()?;
            if key.starts_with(kv::SNAPSHOT_PREFIX) {
                let s: Snapshot = serde_json::from_str(snapshot_json(value)).unwrap();
                self.versions.lock().unwrap().push(s.version);
            }
            self.kv.lock().unwrap().insert(key.into(), value.to_vec());
            self.writes.lock().unwrap().push(format!("put {key}"));
            Ok(())
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            self.failing()?;
            self.kv.lock().unwrap().remove(key);
            self.writes.lock().unwrap().push(format!("delete {key}"));
            Ok(())
        })
    }
    fn splits_tables(&self) -> bool {
        self.splits
    }
}

async fn directory_gets_snapshot_and_keys(s: Store) {
    let (env, flag) = tree(&s).await;
    let (key, raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Server, "backend")
        .await
        .unwrap();
    assert_eq!(key.kv_state, "pending");
    let root = temp_dir("publish");
    let dir = Directory::new(&root);
    let (h, _) = start(&s, vec![Arc::new(dir.clone())]);
    let v = current(&s, env).await;
    until!(
        "first publication",
        published(&s, env, "directory").await == v
    );
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    let snap: Snapshot = serde_json::from_str(snapshot_json(&value)).unwrap();
    assert_eq!((snap.environment.as_str(), snap.version), (ENV, v as u64));
    assert!(Engine::from_snapshot(&snap).is_ok());
    assert_eq!(
        std::fs::read_to_string(root.join(encode_key(&kv::sdk_key_key(&raw)))).unwrap(),
        r#"{"environment":"acme/web/production","kind":"server"}"#
    );
    until!(
        "key marked live",
        s.sdk_key(key.id).await.unwrap().kv_state == "live"
    );
    // A change reaches the directory after a wake-up.
    toggle(&s, env, flag, true).await;
    h.notify();
    until!(
        "second publication",
        published(&s, env, "directory").await == v + 1
    );
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    let snap: Snapshot = serde_json::from_str(snapshot_json(&value)).unwrap();
    assert_eq!(snap.version, v as u64 + 1);
    assert!(snap.flags[0].enabled);
    // Only the two files, no temporary leftovers.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 2);
    h.shutdown().await;
    std::fs::remove_dir_all(&root).unwrap();
}

async fn outbox_survives_failures_and_restarts(s: Store) {
    let (env, flag) = tree(&s).await;
    let down = Memory::new("edge", usize::MAX);
    let (h, metrics) = start(&s, vec![down.clone()]);
    until!(
        "failures recorded",
        s.publish_status(env).await.unwrap().target("edge").attempts >= 2
    );
    let st = s.publish_status(env).await.unwrap();
    assert_eq!(st.target("edge").published_version, 0);
    assert_eq!(st.target("edge").last_error.as_deref(), Some("KV is down"));
    assert!(st.pending_since.is_some());
    // The loop dies mid-outage; more changes are committed meanwhile.
    h.shutdown().await;
    assert!(metrics.publish_failures.get() >= 2);
    assert_eq!(metrics.publishes.get(), 0);
    toggle(&s, env, flag, true).await;
    toggle(&s, env, flag, false).await;
    toggle(&s, env, flag, true).await;
    let latest = current(&s, env).await;
    // A new loop over the same database: two more failures, then it works.
    let edge = Memory::new("edge", 2);
    let (h, metrics) = start(&s, vec![edge.clone()]);
    until!(
        "published after the outage",
        published(&s, env, "edge").await == latest
    );
    let value = edge.get(&kv::snapshot_key(ENV)).unwrap();
    let snap: Snapshot = serde_json::from_str(snapshot_json(&value)).unwrap();
    assert_eq!(snap.version, latest as u64);
    assert!(
        snap.flags[0].enabled,
        "the latest change is the one published"
    );
    let t = s.publish_status(env).await.unwrap().target("edge");
    assert_eq!((t.attempts, t.last_error, t.lag_seconds), (0, None, 0.0));
    h.shutdown().await;
    assert_eq!(metrics.publish_failures.get(), 2);
    assert_eq!(metrics.publishes.get(), 1);
}

async fn versions_are_monotonic(s: Store) {
    let (env, flag) = tree(&s).await;
    let edge = Memory::new("edge", 0);
    let (h, _) = start(&s, vec![edge.clone()]);
    for i in 0..6 {
        toggle(&s, env, flag, i % 2 == 0).await;
        h.notify();
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let latest = current(&s, env).await;
    until!(
        "latest published",
        published(&s, env, "edge").await == latest
    );
    h.shutdown().await;
    let versions = edge.versions.lock().unwrap().clone();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert_eq!(*versions.last().unwrap(), latest as u64);
    // A late, older publication never moves the recorded version back.
    s.mark_published(env, "edge", ENV, 1).await.unwrap();
    assert_eq!(published(&s, env, "edge").await, latest);
    assert!(s.pending_publications("edge").await.unwrap().is_empty());
}

async fn status_and_lag_reflect_pending(s: Store) {
    let (env, flag) = tree(&s).await;
    let st = s.publish_status(env).await.unwrap();
    assert_eq!(st.environment, ENV);
    assert!(st.changed_at.is_some() && st.pending_since.is_some());
    assert!(st.targets.is_empty());
    let pending = s.pending_publications("edge").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].edge_env.as_str(), pending[0].published_version),
        (ENV, 0)
    );
    // A failing target: its lag grows, in the status and the metric.
    let metrics = Arc::new(Metrics::new());
    let h = publish::spawn(
        s.clone(),
        vec![Memory::new("edge", usize::MAX)],
        metrics.clone(),
        fast(),
    );
    let lag = |m: &Metrics| {
        let text = m.render();
        text.lines()
            .find(|l| {
                l.starts_with("bunting_publish_lag_seconds{environment=\"acme/web/production\"}")
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
    };
    // The metric and the stored status are written at different moments:
    // wait for both (asserting one after seeing the other raced).
    until!(
        "lag metric and failed attempt",
        lag(&metrics).is_some_and(|l| l >= 0.05) && {
            let t = s.publish_status(env).await.unwrap().target("edge");
            t.attempts >= 1 && t.lag_seconds >= 0.05
        }
    );
    h.shutdown().await;
    // Caught up (a new loop, same metrics): no lag, pending_since cleared.
    let h = publish::spawn(
        s.clone(),
        vec![Memory::new("edge", 0)],
        metrics.clone(),
        fast(),
    );
    let v = current(&s, env).await;
    until!(
        "lag metric at 0 and published",
        lag(&metrics) == Some(0.0) && published(&s, env, "edge").await == v
    );
    let st = s.publish_status(env).await.unwrap();
    assert_eq!(
        (st.pending_since.clone(), st.target("edge").lag_seconds),
        (None, 0.0)
    );
    // A new change is pending again, since its commit.
    h.shutdown().await;
    toggle(&s, env, flag, true).await;
    let st = s.publish_status(env).await.unwrap();
    assert_eq!(st.snapshot_version, v + 1);
    assert_eq!(st.pending_since, st.changed_at);
    assert!(st.target("edge").lag_seconds > 0.0);
}

async fn status_endpoint(s: Store) {
    use axum::http::{Method, StatusCode};
    let (env, _) = tree(&s).await;
    s.mark_failed(env, "cloudflare", ENV, "HTTP 503")
        .await
        .unwrap();
    let mut state = AppState::new(
        s.clone(),
        ServeConfig {
            admin_token: Some("root-secret".into()),
            ingest_secret: None,
            ..ServeConfig::default()
        },
    );
    let (h, _) = start(&s, vec![Memory::new("zz-never-run", usize::MAX)]);
    h.shutdown().await; // only its target list is used here
    state.publish = Some(h);
    let app = TestApp::new(state);
    let path = "/orgs/acme/projects/web/environments/production/publish";
    let r = app.call_with(Method::GET, path, None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let app = app.as_token("root-secret");
    let r = app.call_with(Method::GET, path, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.body;
    assert_eq!(v["environment"], ENV);
    assert_eq!(v["snapshotVersion"], current(&s, env).await);
    assert!(v["changedAt"].is_string());
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{v}");
    assert_eq!(targets[0]["target"], "cloudflare");
    assert_eq!(targets[0]["attempts"], 1);
    assert_eq!(targets[0]["lastError"], "HTTP 503");
    assert_eq!(targets[0]["publishedVersion"], 0);
    assert!(targets[0]["lagSeconds"].as_f64().unwrap() > 0.0);
    // The loop's target that has not run yet is listed as unpublished.
    assert_eq!(targets[1]["target"], "zz-never-run");
    assert_eq!(targets[1]["publishedVersion"], 0);
    let r = app
        .call_with(
            Method::GET,
            "/orgs/acme/projects/web/environments/nope/publish",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A fake Cloudflare KV API: answers 503 to its first `fail` requests and
/// 403 for keys containing `forbidden`; records every request.
#[derive(Default)]
struct FakeKv {
    fail: AtomicUsize,
    requests: Mutex<Vec<(String, String, String)>>,
    kv: Mutex<BTreeMap<String, Vec<u8>>>,
}

const VALUES: &str = "/accounts/acct-1/storage/kv/namespaces/ns-1/values/";

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Header `name` of a fake server's request as text (empty when absent).
fn header_text(req: &axum::extract::Request, name: &str) -> String {
    req.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Serves a fake server's `app` on a loopback port; its base URL.
async fn serve_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn fake_kv(fail: usize) -> (Arc<FakeKv>, String) {
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    let fake = Arc::new(FakeKv {
        fail: AtomicUsize::new(fail),
        ..FakeKv::default()
    });
    async fn handle(State(f): State<Arc<FakeKv>>, req: Request) -> (StatusCode, String) {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let auth = header_text(&req, "authorization");
        let body = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .unwrap();
        f.requests
            .lock()
            .unwrap()
            .push((method.clone(), path.clone(), auth.clone()));
        if auth != "Bearer cf-token" {
            return (StatusCode::UNAUTHORIZED, "bad token".into());
        }
        let Some(key) = path.strip_prefix(VALUES).map(decode) else {
            return (StatusCode::NOT_FOUND, "no route".into());
        };
        if key.contains("forbidden") {
            return (StatusCode::FORBIDDEN, r#"{"success":false}"#.into());
        }
        let left = f.fail.load(Ordering::SeqCst);
        if left > 0 {
            f.fail.store(left - 1, Ordering::SeqCst);
            return (StatusCode::SERVICE_UNAVAILABLE, "try later".into());
        }
        match method.as_str() {
            "PUT" => {
                f.kv.lock().unwrap().insert(key, body.to_vec());
            }
            "DELETE" => {
                f.kv.lock().unwrap().remove(&key);
            }
            _ => return (StatusCode::METHOD_NOT_ALLOWED, String::new()),
        }
        (StatusCode::OK, r#"{"success":true,"errors":[]}"#.into())
    }
    let url = serve_loopback(
        axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone()),
    )
    .await;
    (fake, url)
}

fn cloudflare(url: &str, attempts: u32) -> CloudflareKv {
    CloudflareKv::new("acct-1", "ns-1", "cf-token")
        .with_base_url(url)
        .with_retry(RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        })
}

#[tokio::test]
async fn cloudflare_retries_then_succeeds() {
    let (fake, url) = fake_kv(2).await;
    let kv = cloudflare(&url, 4);
    kv.put("snapshot:acme/web/production", b"{\"v\":1}")
        .await
        .unwrap();
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 3, "two 503s, then success: {reqs:?}");
    for (method, path, auth) in &reqs {
        assert_eq!(method, "PUT");
        assert_eq!(path, &format!("{VALUES}snapshot%3Aacme%2Fweb%2Fproduction"));
        assert_eq!(auth, "Bearer cf-token");
    }
    assert_eq!(
        fake.kv.lock().unwrap()["snapshot:acme/web/production"],
        b"{\"v\":1}"
    );
    kv.delete("snapshot:acme/web/production").await.unwrap();
    assert!(fake.kv.lock().unwrap().is_empty());
}

#[tokio::test]
async fn cloudflare_gives_up_and_does_not_retry_4xx() {
    // Bounded: three tries, all 503.
    let (fake, url) = fake_kv(usize::MAX).await;
    let err = cloudflare(&url, 3)
        .put("sdk-key:ab", b"{}")
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Http { status: 503, .. }),
        "{err}"
    );
    assert_eq!(fake.requests.lock().unwrap().len(), 3);
    // A 403 is final at once.
    let (fake, url) = fake_kv(0).await;
    let err = cloudflare(&url, 5)
        .put("sdk-key:forbidden", b"{}")
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Http { status: 403, .. }),
        "{err}"
    );
    assert_eq!(fake.requests.lock().unwrap().len(), 1);
    // A refused connection is retried, then reported.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = cloudflare(&closed, 2).delete("k").await.unwrap_err();
    assert!(matches!(err, PublishError::Request(_)), "{err}");
}

async fn cloudflare_end_to_end(s: Store) {
    let (env, _) = tree(&s).await;
    let (_, raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Client, "web")
        .await
        .unwrap();
    let (fake, url) = fake_kv(3).await;
    let (h, metrics) = start(&s, vec![Arc::new(cloudflare(&url, 5))]);
    let v = current(&s, env).await;
    until!(
        "published through the REST API",
        published(&s, env, "cloudflare").await == v
    );
    h.shutdown().await;
    let kv = fake.kv.lock().unwrap().clone();
    let snap: Snapshot = serde_json::from_str(snapshot_json(&kv[&kv::snapshot_key(ENV)])).unwrap();
    assert_eq!(snap.version, v as u64);
    assert_eq!(
        kv[&kv::sdk_key_key(&raw)],
        kv::sdk_key_value(ENV, kv::KeyKind::Client).into_bytes()
    );
    // The snapshot was put before the key.
    let reqs = fake.requests.lock().unwrap().clone();
    let first_key = reqs.iter().position(|r| r.1.contains("sdk-key")).unwrap();
    assert!(reqs[..first_key].iter().any(|r| r.1.contains("snapshot")));
    // The 503s were absorbed by the client's retries.
    assert_eq!(metrics.publish_failures.get(), 0);
    assert_eq!(metrics.publishes.get(), 1);
}

async fn expired_keys_are_deleted(s: Store) {
    let (env, _) = tree(&s).await;
    let (old, old_raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Server, "backend")
        .await
        .unwrap();
    let edge = Memory::new("edge", 0);
    let (h, _) = start(&s, vec![edge.clone()]);
    until!(
        "old key live",
        s.sdk_key(old.id).await.unwrap().kv_state == "live"
    );
    // Rotation with a grace period: both keys work meanwhile.
    let (new, new_raw) = s.rotate_sdk_key(&ana(), old.id, 3600).await.unwrap();
    h.notify();
    until!(
        "new key live",
        s.sdk_key(new.id).await.unwrap().kv_state == "live"
    );
    assert!(edge.get(&kv::sdk_key_key(&old_raw)).is_some());
    assert!(edge.get(&kv::sdk_key_key(&new_raw)).is_some());
    // The grace period ends (no change is committed for that): removed.
    sqlx::query("UPDATE sdk_keys SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(old.id)
        .execute(s.pool())
        .await
        .unwrap();
    until!(
        "old key removed",
        s.sdk_key(old.id).await.unwrap().kv_state == "removed"
    );
    assert!(edge.get(&kv::sdk_key_key(&old_raw)).is_none());
    // Revocation removes at once; the new key stays removed afterwards.
    s.revoke_sdk_key(&ana(), new.id).await.unwrap();
    h.notify();
    until!(
        "new key removed",
        s.sdk_key(new.id).await.unwrap().kv_state == "removed"
    );
    assert!(edge.get(&kv::sdk_key_key(&new_raw)).is_none());
    assert!(edge.get(&kv::snapshot_key(ENV)).is_some());
    h.shutdown().await;
}

async fn deleted_environment_is_unpublished(s: Store) {
    let (env, _) = tree(&s).await;
    let (key, raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Client, "web")
        .await
        .unwrap();
    let edge = Memory::new("edge", 0);
    let (h, _) = start(&s, vec![edge.clone()]);
    until!(
        "published",
        s.sdk_key(key.id).await.unwrap().kv_state == "live"
    );
    let e = s.environment(env).await.unwrap();
    s.delete_environment(&ana(), env, e.version).await.unwrap();
    h.notify();
    // The publisher deletes from the edge, then records it: wait for the
    // record too (asserting it right after seeing the edge side raced).
    until!(
        "snapshot and key removed, and recorded",
        edge.get(&kv::snapshot_key(ENV)).is_none()
            && s.sdk_key(key.id).await.unwrap().kv_state == "removed"
            && s.orphaned_publications("edge").await.unwrap().is_empty()
    );
    assert!(edge.get(&kv::sdk_key_key(&raw)).is_none());
    assert!(s.pending_publications("edge").await.unwrap().is_empty());
    h.shutdown().await;
}

/// The wrangler publisher runs `wrangler kv key put/delete` with the local
/// target's options (a fake wrangler records its arguments and input).
#[cfg(unix)]
#[tokio::test]
async fn wrangler_local_runs_kv_commands() {
    use bunting_origin::kv::Wrangler;
    use bunting_origin::publish::WranglerLocal;
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("publish");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let script = dir.join("wrangler");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *sdk-key:broken*) echo 'X [ERROR] KV is unhappy' >&2; exit 3;; esac\n\
             echo \"$*\" >> {log}\nwhile [ $# -gt 0 ]; do\n  \
             if [ \"$1\" = --path ]; then cat \"$2\" >> {log}; echo >> {log}; fi\n  shift\ndone\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let w = WranglerLocal::new(
        Wrangler::from_command_line(&script.display().to_string()).unwrap(),
        Some(dir.join("state")),
        None,
    );
    w.put("snapshot:acme/web/dev", b"{\"version\":3}")
        .await
        .unwrap();
    w.delete("sdk-key:ab").await.unwrap();
    let err = w.put("sdk-key:broken", b"{}").await.unwrap_err();
    assert!(
        matches!(&err, PublishError::Command { stderr, .. } if stderr.contains("KV is unhappy")),
        "{err}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let state = dir.join("state").display().to_string();
    assert!(
        lines[0].starts_with("kv key put snapshot:acme/web/dev --path ")
            && lines[0].ends_with(&format!(" --binding FLAGS --local --persist-to {state}")),
        "{log}"
    );
    assert_eq!(lines[1], "{\"version\":3}");
    assert_eq!(
        lines[2],
        format!("kv key delete sdk-key:ab --binding FLAGS --local --persist-to {state}")
    );
    // Temporary value files are removed.
    let path = lines[0].split(' ').nth(5).unwrap();
    assert!(!std::path::Path::new(path).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Migration 0015 re-registers the SDK keys already in KV, whose records
/// predate key kinds: a key published before it is published again, with
/// its kind, and its environment gets a new snapshot version.
async fn keys_republished_with_their_kind(url: &str) {
    let s = Store::open(url).await.unwrap();
    let (env, _) = tree(&s).await;
    let (key, raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Server, "backend")
        .await
        .unwrap();
    let root = temp_dir("kinds");
    let dir = Directory::new(&root);
    let (h, _) = start(&s, vec![Arc::new(dir.clone())]);
    let v = current(&s, env).await;
    until!("published", published(&s, env, "directory").await == v);
    until!(
        "key live",
        s.sdk_key(key.id).await.unwrap().kv_state == "live"
    );
    h.shutdown().await;
    // What an origin before key kinds left in KV.
    let key_file = root.join(encode_key(&kv::sdk_key_key(&raw)));
    std::fs::write(&key_file, r#"{"environment":"acme/web/production"}"#).unwrap();
    sqlx::raw_sql("DELETE FROM bunting_migrations WHERE version = 15")
        .execute(s.pool())
        .await
        .unwrap();
    s.pool().close().await;

    let s = Store::open(url).await.unwrap();
    assert_eq!(s.sdk_key(key.id).await.unwrap().kv_state, "pending");
    assert_eq!(current(&s, env).await, v + 1);
    let (h, _) = start(&s, vec![Arc::new(dir.clone())]);
    until!(
        "republished",
        published(&s, env, "directory").await == v + 1
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        r#"{"environment":"acme/web/production","kind":"server"}"#
    );
    until!(
        "key live again",
        s.sdk_key(key.id).await.unwrap().kv_state == "live"
    );
    h.shutdown().await;
    s.pool().close().await;
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn sqlite_keys_republished_with_their_kind() {
    let dir = crate::common::cli::scratch("publish", "kinds");
    keys_republished_with_their_kind(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("old.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_keys_republished_with_their_kind() {
    let (url, _guard) = crate::common::postgres_schema().await;
    keys_republished_with_their_kind(&url).await;
}

/// Starts a publish loop writing `snapshot:<env>` values in `format`.
fn start_in(s: &Store, publishers: Vec<Arc<dyn Publisher>>, format: KvFormat) -> PublishHandle {
    let options = PublishOptions {
        kv_format: format,
        ..fast()
    };
    publish::spawn(s.clone(), publishers, Arc::new(Metrics::new()), options)
}

/// The answers of `engine` to every flag for a few contexts and times, as
/// JSON (so two engines can be compared).
fn answers(engine: &Engine) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for i in 0..40 {
        let ctx = serde_json::json!({"targetingKey": format!("user-{i}"), "plan": "pro"});
        for now in [0, 1_796_083_200_000] {
            out.push(serde_json::to_value(engine.evaluate_all(&ctx, now)).unwrap());
        }
    }
    out
}

/// The JSON text `json` would be once generated at `generated_at` and
/// sealed again: the origin's snapshot of the same state at another time.
fn regenerated(json: &[u8], generated_at: &str) -> Vec<u8> {
    let mut s: Snapshot = serde_json::from_slice(json).unwrap();
    s.generated_at = generated_at.to_string();
    bunting_core::snapshot::seal(&mut s);
    serde_json::to_vec(&s).unwrap()
}

/// With `KvFormat::Packed` the directory holds the packed form: the magic,
/// the JSON the default setting writes carried inside (the same bytes but
/// for the generation time, which is each build's), and the same answers
/// from the packed read as from that JSON; SDK keys stay JSON. The default
/// loop, next to it, still writes JSON.
async fn packed_setting_puts_the_packed_form_of_the_same_json(s: Store) {
    let w = World::acme(&s).await;
    let flag = w.flag(&s, "dark-mode").await;
    w.serve(&s, flag, split(&[("on", 30.0), ("off", 70.0)]))
        .await;
    let env = w.env;
    let (_, raw) = s
        .create_sdk_key(&ana(), env, SdkKeyKind::Server, "backend")
        .await
        .unwrap();
    let (json_root, packed_root) = (temp_dir("publish-json"), temp_dir("publish-packed"));
    let json_dir = Directory::new(&json_root).named("json");
    let packed_dir = Directory::new(&packed_root).named("packed");
    let h_json = start_in(&s, vec![Arc::new(json_dir.clone())], KvFormat::Json);
    let h_packed = start_in(&s, vec![Arc::new(packed_dir.clone())], KvFormat::Packed);
    let key = kv::snapshot_key(ENV);
    for round in 0..2 {
        if round == 1 {
            toggle(&s, env, flag, false).await;
            h_json.notify();
            h_packed.notify();
        }
        let v = current(&s, env).await;
        until!(
            "both published",
            published(&s, env, "json").await == v && published(&s, env, "packed").await == v
        );
        let json = std::fs::read(json_dir.path(&key)).unwrap();
        let value = std::fs::read(packed_dir.path(&key)).unwrap();
        assert!(!json.starts_with(&packed::MAGIC));
        assert!(value.starts_with(&packed::MAGIC));
        let document = packed::document(&value).unwrap().expect("a JSON document");
        let from_document: Snapshot = serde_json::from_str(document).unwrap();
        assert_eq!(from_document.version, v as u64);
        assert_eq!(from_document.flags[0].enabled, round == 0);
        // The document is the origin's compact JSON, byte for byte.
        assert_eq!(
            regenerated(&json, &from_document.generated_at),
            document.as_bytes()
        );
        assert_eq!(
            serde_json::to_vec(&from_document).unwrap(),
            document.as_bytes()
        );
        // The packed read loads (checksum verified at pack time) and
        // answers as the JSON does.
        let read = ParsedSnapshot::from_packed(&value).unwrap();
        assert_eq!(
            (read.environment(), read.version(), read.checksum()),
            (ENV, v as u64, from_document.checksum.as_deref())
        );
        let from_packed = Engine::from_parsed(&read).expect("loads without problems");
        let from_json = Engine::from_json(std::str::from_utf8(&json).unwrap()).unwrap();
        let from_doc = Engine::from_json(document).unwrap();
        assert_eq!(answers(&from_packed), answers(&from_doc));
        assert_eq!(answers(&from_packed), answers(&from_json));
        // SDK keys are JSON in both.
        for root in [&json_root, &packed_root] {
            assert_eq!(
                std::fs::read_to_string(root.join(encode_key(&kv::sdk_key_key(&raw)))).unwrap(),
                r#"{"environment":"acme/web/production","kind":"server"}"#
            );
        }
    }
    h_json.shutdown().await;
    h_packed.shutdown().await;
    // Only the snapshot and the key, no temporary leftovers.
    assert_eq!(std::fs::read_dir(&packed_root).unwrap().count(), 2);
    std::fs::remove_dir_all(&json_root).unwrap();
    std::fs::remove_dir_all(&packed_root).unwrap();
}

/// A fake edge worker's pointer route: what it received (content type,
/// body), and how it answers.
#[derive(Default)]
struct FakePointer {
    posts: Mutex<Vec<(String, Vec<u8>)>>,
    /// Answer as a worker that predates packed pointer values: 400 to a
    /// body that is not UTF-8, or not a JSON object.
    json_only: std::sync::atomic::AtomicBool,
    /// Answer 400 to every body (a snapshot the edge does not load).
    refuse: std::sync::atomic::AtomicBool,
    /// Answer as a worker that reads packed values only: every answer
    /// names the forms it reads, and a body that is not packed gets 400.
    packed_only: std::sync::atomic::AtomicBool,
    /// With `packed_only`, answer as a worker from before the packed
    /// format's version 2: it names `packed` alone and refuses version 2.
    before_v2: std::sync::atomic::AtomicBool,
}

async fn fake_pointer() -> (Arc<FakePointer>, String) {
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    let fake = Arc::new(FakePointer::default());
    async fn handle(State(f): State<Arc<FakePointer>>, req: Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let packed_only = f.packed_only.load(Ordering::SeqCst);
        let forms = if f.before_v2.load(Ordering::SeqCst) {
            "packed"
        } else {
            "packed-2"
        };
        let mut r = answer(f, req).await.into_response();
        if packed_only {
            r.headers_mut().insert(
                "x-bunting-snapshot-forms",
                axum::http::HeaderValue::from_static(forms),
            );
        }
        r
    }
    async fn answer(f: Arc<FakePointer>, req: Request) -> (StatusCode, String) {
        if req.uri().path() != "/edge/v1/snapshot"
            || header_text(&req, "authorization") != "Bearer s3cret"
        {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        let ct = header_text(&req, "content-type");
        let body = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .unwrap();
        f.posts.lock().unwrap().push((ct, body.to_vec()));
        let refused = |details: &str| {
            let body = serde_json::json!({"errorCode": "GENERAL", "errorDetails": details});
            (StatusCode::BAD_REQUEST, body.to_string())
        };
        if f.refuse.load(Ordering::SeqCst) {
            return refused("snapshot rejected: schemaVersion");
        }
        if f.packed_only.load(Ordering::SeqCst) && !body.starts_with(&packed::MAGIC) {
            return refused("the snapshot value is JSON: this worker reads packed snapshots only");
        }
        if f.before_v2.load(Ordering::SeqCst)
            && body[4..6] != packed::FORMAT_VERSION_1.to_le_bytes()
        {
            return refused("packed snapshot format version 2, this build reads version 1");
        }
        if f.json_only.load(Ordering::SeqCst) {
            // The checks of a worker that reads JSON only, in its order.
            let Ok(text) = std::str::from_utf8(&body) else {
                return refused("the snapshot is not UTF-8");
            };
            if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).is_err() {
                return refused("not a snapshot: expected value at line 1 column 1");
            }
        }
        (StatusCode::OK, "{}".into())
    }
    let url = serve_loopback(
        axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone()),
    )
    .await;
    (fake, url)
}

/// A packed publish loop to an edge pointer at `url` and a directory,
/// run until both hold the environment's current version: the loop, the
/// pointer, the directory (and its root), the environment and flag ids
/// and that version.
async fn packed_to_pointer_and_directory(
    s: &Store,
    url: &str,
    name: &str,
) -> (
    PublishHandle,
    EdgePointer,
    Directory,
    PathBuf,
    i64,
    i64,
    i64,
) {
    let (env, flag) = tree(s).await;
    let root = temp_dir(name);
    let dir = Directory::new(&root);
    let pointer = EdgePointer::new(url, "s3cret");
    let h = start_in(
        s,
        vec![Arc::new(pointer.clone()), Arc::new(dir.clone())],
        KvFormat::Packed,
    );
    let v = current(s, env).await;
    until!(
        "published to both",
        published(s, env, "edge-pointer").await == v && published(s, env, "directory").await == v
    );
    (h, pointer, dir, root, env, flag, v)
}

/// A packed loop sends the edge pointer the packed value KV gets, byte for
/// byte; a JSON value goes as it is; a packed value without a document,
/// or damaged, is refused, permanently, without a request.
async fn edge_pointer_gets_the_packed_value(s: Store) {
    let (fake, url) = fake_pointer().await;
    let (h, pointer, dir, root, ..) =
        packed_to_pointer_and_directory(&s, &url, "publish-pointer").await;
    h.shutdown().await;
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    assert!(value.starts_with(&packed::MAGIC));
    let document = packed::document(&value).unwrap().unwrap();
    let posts = fake.posts.lock().unwrap().clone();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].0, "application/octet-stream");
    assert_eq!(posts[0].1, value);
    // JSON values go as they are; SDK keys never reach the pointer.
    pointer.put("snapshot:a/b/c", b"{\"v\":1}").await.unwrap();
    pointer.put("sdk-key:ab", b"{}").await.unwrap();
    assert_eq!(
        fake.posts.lock().unwrap()[1],
        ("application/json".to_string(), b"{\"v\":1}".to_vec())
    );
    // Packed without a document, or damaged: no request, permanent.
    let parsed = ParsedSnapshot::parse(document).unwrap();
    let bare = packed::pack(&parsed).unwrap();
    let mut cut = value.clone();
    cut.truncate(packed::MAGIC.len() + 3);
    for bad in [bare, cut] {
        let err = pointer.put("snapshot:a/b/c", &bad).await.unwrap_err();
        assert!(matches!(err, PublishError::Packing(_)), "{err}");
        assert!(err.is_permanent());
    }
    assert_eq!(fake.posts.lock().unwrap().len(), 2);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A worker that predates packed pointer values answers a packed value
/// 400: the pointer then gets the JSON text it carries, once, and the
/// publish succeeds. A 400 to that JSON text too (or to a JSON value) is
/// the edge refusing the snapshot: a permanent failure, not a loop.
async fn edge_pointer_falls_back_to_json_for_an_older_worker(s: Store) {
    let (fake, url) = fake_pointer().await;
    fake.json_only.store(true, Ordering::SeqCst);
    let (h, pointer, dir, root, env, flag, v) =
        packed_to_pointer_and_directory(&s, &url, "publish-pointer-old").await;
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    let document = packed::document(&value)
        .unwrap()
        .unwrap()
        .as_bytes()
        .to_vec();
    {
        let posts = fake.posts.lock().unwrap();
        assert_eq!(posts.len(), 2, "the packed value, then its JSON text");
        assert_eq!(
            posts[0],
            ("application/octet-stream".to_string(), value.clone())
        );
        assert_eq!(posts[1], ("application/json".to_string(), document));
    }
    // Every publish tries packed first: a worker upgraded meanwhile gets it.
    fake.json_only.store(false, Ordering::SeqCst);
    toggle(&s, env, flag, true).await;
    h.notify();
    let v2 = current(&s, env).await;
    assert!(v2 > v);
    until!(
        "the next version published",
        published(&s, env, "edge-pointer").await == v2
    );
    h.shutdown().await;
    {
        let posts = fake.posts.lock().unwrap();
        assert_eq!(posts.len(), 3);
        assert_eq!(posts[2].0, "application/octet-stream");
        assert!(posts[2].1.starts_with(&packed::MAGIC));
    }
    // The edge refusing the snapshot whatever its form: one fallback, then
    // the 400, permanent.
    fake.refuse.store(true, Ordering::SeqCst);
    let err = pointer
        .put(&kv::snapshot_key(ENV), &value)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PublishError::Http { status: 400, body } if body.contains("schemaVersion")),
        "{err}"
    );
    assert!(err.is_permanent());
    assert_eq!(fake.posts.lock().unwrap().len(), 5);
    assert_eq!(fake.posts.lock().unwrap()[4].0, "application/json");
    // A JSON value refused: no second request.
    let json = packed::document(&value)
        .unwrap()
        .unwrap()
        .as_bytes()
        .to_vec();
    let err = pointer
        .put(&kv::snapshot_key(ENV), &json)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Http { status: 400, .. }),
        "{err}"
    );
    assert_eq!(fake.posts.lock().unwrap().len(), 6);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A worker that reads packed values says so in every answer: its 400 to
/// a packed value is the snapshot refused, permanent, with no JSON text
/// sent after it (the worker would refuse that too, for its form, and the
/// error would hide the real one). A JSON value (`--kv-format json`) is
/// refused with what to do.
async fn edge_pointer_never_sends_json_to_a_worker_reading_packed(s: Store) {
    let (fake, url) = fake_pointer().await;
    fake.packed_only.store(true, Ordering::SeqCst);
    let (h, pointer, dir, root, ..) =
        packed_to_pointer_and_directory(&s, &url, "publish-pointer-packed-only").await;
    h.shutdown().await;
    assert_eq!(fake.posts.lock().unwrap().len(), 1);
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    fake.refuse.store(true, Ordering::SeqCst);
    let err = pointer
        .put(&kv::snapshot_key(ENV), &value)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PublishError::Http { status: 400, body } if body.contains("schemaVersion")),
        "{err}"
    );
    assert!(err.is_permanent());
    {
        let posts = fake.posts.lock().unwrap();
        assert_eq!(posts.len(), 2, "no JSON text after the packed value");
        assert_eq!(posts[1].0, "application/octet-stream");
    }
    fake.refuse.store(false, Ordering::SeqCst);
    let json = packed::document(&value)
        .unwrap()
        .unwrap()
        .as_bytes()
        .to_vec();
    let err = pointer
        .put(&kv::snapshot_key(ENV), &json)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PublishError::Http { status: 400, body } if body.contains("packed snapshots only")),
        "{err}"
    );
    assert!(err.is_permanent());
    assert_eq!(fake.posts.lock().unwrap().len(), 3);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A worker from before the packed format's version 2 names `packed` but
/// not `packed-2`: its 400 to a version-2 value is followed by the same
/// snapshot packed in version 1 (the JSON text inside unchanged), once,
/// and the publish succeeds; a 400 to that too is permanent.
async fn edge_pointer_sends_version_1_to_a_worker_before_version_2(s: Store) {
    let (fake, url) = fake_pointer().await;
    fake.packed_only.store(true, Ordering::SeqCst);
    fake.before_v2.store(true, Ordering::SeqCst);
    let (h, pointer, dir, root, ..) =
        packed_to_pointer_and_directory(&s, &url, "publish-pointer-before-v2").await;
    h.shutdown().await;
    let value = std::fs::read(dir.path(&kv::snapshot_key(ENV))).unwrap();
    assert_eq!(value[4..6], packed::FORMAT_VERSION.to_le_bytes());
    {
        let posts = fake.posts.lock().unwrap();
        assert_eq!(posts.len(), 2, "version 2, then version 1");
        assert_eq!(
            posts[0],
            ("application/octet-stream".to_string(), value.clone())
        );
        let (ct, v1) = &posts[1];
        assert_eq!(ct, "application/octet-stream");
        assert_eq!(v1[4..6], packed::FORMAT_VERSION_1.to_le_bytes());
        assert_eq!(packed::document(v1), packed::document(&value));
        let read = bunting_core::ParsedSnapshot::from_packed(v1).unwrap();
        assert_eq!(read.version(), current_version_of(&value));
    }
    fake.refuse.store(true, Ordering::SeqCst);
    let err = pointer
        .put(&kv::snapshot_key(ENV), &value)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PublishError::Http { status: 400, body } if body.contains("schemaVersion")),
        "{err}"
    );
    assert!(err.is_permanent());
    assert_eq!(fake.posts.lock().unwrap().len(), 4, "one fallback, no JSON");
    std::fs::remove_dir_all(&root).unwrap();
}

/// The snapshot version a packed value holds.
fn current_version_of(value: &[u8]) -> u64 {
    bunting_core::ParsedSnapshot::from_packed(value)
        .unwrap()
        .version()
}

/// A KV edge workers read gets, after each packed `snapshot:<env>`, the
/// same snapshot without its JSON text under `snapshot-tables:<env>`; a
/// JSON text deletes that key first (the tables would be older than the
/// text); deleting the environment deletes both, the tables first. Other
/// targets (a directory) never get it.
async fn edge_kv_gets_the_tables_beside_a_packed_value(s: Store) {
    let (env, flag) = tree(&s).await;
    let edge = Memory::splitting("edge");
    let root = temp_dir("publish-tables");
    let dir = Directory::new(&root);
    let (snapshot_key, tables_key) = (kv::snapshot_key(ENV), kv::tables_key(ENV));
    let h = start_in(
        &s,
        vec![edge.clone(), Arc::new(dir.clone())],
        KvFormat::Packed,
    );
    let v = current(&s, env).await;
    until!(
        "published packed",
        published(&s, env, "edge").await == v && published(&s, env, "directory").await == v
    );
    let whole = edge.get(&snapshot_key).unwrap();
    let tables = edge.get(&tables_key).expect("the tables beside");
    assert_eq!(tables, &*packed::without_document(&whole).unwrap());
    assert_eq!(packed::document(&tables).unwrap(), None);
    assert_eq!(
        packed::tables(&tables).unwrap(),
        packed::tables(&whole).unwrap()
    );
    let read = ParsedSnapshot::from_packed(&tables).unwrap();
    assert_eq!((read.environment(), read.version()), (ENV, v as u64));
    assert_eq!(
        edge.writes.lock().unwrap()[..2],
        [format!("put {snapshot_key}"), format!("put {tables_key}")],
        "the whole value first"
    );
    assert!(!dir.path(&tables_key).exists(), "a directory never gets it");
    h.shutdown().await;

    // Published as JSON from now on: the tables go, before the text comes.
    let h = start_in(&s, vec![edge.clone()], KvFormat::Json);
    toggle(&s, env, flag, true).await;
    h.notify();
    let v = current(&s, env).await;
    until!("published as JSON", published(&s, env, "edge").await == v);
    assert!(edge.get(&tables_key).is_none());
    assert!(!edge.get(&snapshot_key).unwrap().starts_with(&packed::MAGIC));
    let writes = edge.writes.lock().unwrap().clone();
    let at = writes
        .iter()
        .position(|w| *w == format!("delete {tables_key}"))
        .expect("the tables deleted");
    assert_eq!(writes[at + 1], format!("put {snapshot_key}"), "{writes:?}");
    h.shutdown().await;

    // Packed again, then the environment deleted: both keys go.
    let h = start_in(&s, vec![edge.clone()], KvFormat::Packed);
    toggle(&s, env, flag, false).await;
    h.notify();
    let v = current(&s, env).await;
    until!(
        "published packed again",
        published(&s, env, "edge").await == v
    );
    assert!(edge.get(&tables_key).is_some());
    let e = s.environment(env).await.unwrap();
    s.delete_environment(&ana(), env, e.version).await.unwrap();
    h.notify();
    until!(
        "both keys removed, and recorded",
        edge.get(&snapshot_key).is_none()
            && s.orphaned_publications("edge").await.unwrap().is_empty()
    );
    assert!(edge.get(&tables_key).is_none());
    let writes = edge.writes.lock().unwrap().clone();
    assert_eq!(
        writes[writes.len() - 2..],
        [
            format!("delete {tables_key}"),
            format!("delete {snapshot_key}")
        ]
    );
    h.shutdown().await;
    std::fs::remove_dir_all(&root).ok();
}
