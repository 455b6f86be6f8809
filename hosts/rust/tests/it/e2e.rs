//! End to end with the real origin (`bunting serve`, SQLite in memory,
//! directory publisher): a flag changed through the API reaches the client
//! on its next refresh, and the client's exposures reach the origin and
//! show in the experiment's results.
//!
//! Needs the `bunting` binary: `BUNTING_BIN`, else `target/debug/bunting`
//! of this workspace (`cargo build -p bunting-origin`). Skipped, saying so,
//! when neither exists.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bunting_server_sdk::{BuntingProvider, Client, Status};
use serde_json::{Value, json};

use crate::common::eventually;

const ROOT: &str = "root-token-for-tests";
const INGEST_SECRET: &str = "ingest-secret-for-tests";

/// The `bunting` binary: `BUNTING_BIN`, else `debug/bunting` of the target
/// directory (`cargo test --workspace` builds it before any test runs).
/// Never skipped: without it the test fails and says how to build it.
fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = std::env::var_os("BUNTING_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("debug/bunting"));
    assert!(
        path.is_file(),
        "{} is not built: `cargo build -p bunting-origin --bin bunting` (or set BUNTING_BIN)",
        path.display()
    );
    path
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (Value, Option<String>) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(ROOT);
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        (
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
            etag,
        )
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body), None)
            .await
            .0
    }

    async fn published(&self, env: &str) {
        for _ in 0..400 {
            let (p, _) = self
                .call(reqwest::Method::GET, &format!("{env}/publish"), None, None)
                .await;
            let done = p["pendingSince"].is_null()
                && p["targets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["publishedVersion"] == p["snapshotVersion"]);
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{env} was not published");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_change_reaches_the_provider_and_exposures_reach_the_results() {
    let bin = binary();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let publish = tempfile::tempdir().unwrap();
    let mut origin = tokio::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            "sqlite::memory:",
            "--admin-token",
            ROOT,
            "--ingest-secret",
            INGEST_SECRET,
            "--publish-dir",
        ])
        .arg(publish.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
    };
    let mut up = false;
    for _ in 0..400 {
        if api
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the origin did not start");

    let p = "/orgs/acme/projects/web";
    let env = format!("{p}/environments/production");
    api.post("/orgs", json!({"key": "acme", "name": "Acme"}))
        .await;
    api.post("/orgs/acme/projects", json!({"key": "web", "name": "Web"}))
        .await;
    api.post(
        &format!("{p}/environments"),
        json!({"key": "production", "name": "Production"}),
    )
    .await;
    for key in ["checkout", "banner"] {
        api.post(&format!("{p}/flags"), json!({
            "key": key, "flagType": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
        })).await;
    }
    let cfg = format!("{p}/flags/checkout/environments/production");
    let (_, etag) = api.call(reqwest::Method::GET, &cfg, None, None).await;
    api.call(
        reqwest::Method::PUT,
        &cfg,
        Some(
            json!({"enabled": true, "rules": [], "fallthrough": {"rollout": [
        {"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}),
        ),
        etag.as_deref(),
    )
    .await;
    api.post(
        &format!("{p}/metrics"),
        json!({"key": "purchased", "kind": "conversion", "event": "purchase"}),
    )
    .await;
    let x = api.post(&format!("{env}/experiments"), json!({
        "key": "one-page", "flag": "checkout", "control": "off", "primaryMetric": "purchased",
    })).await;
    api.call(
        reqwest::Method::POST,
        &format!("{env}/experiments/one-page/start"),
        None,
        Some(&format!("\"{}\"", x["version"])),
    )
    .await;
    let key = api
        .post(
            &format!("{env}/sdk-keys"),
            json!({"kind": "server", "name": "backend"}),
        )
        .await;
    let sdk_key = key["secret"].as_str().unwrap().to_owned();
    api.published(&env).await;

    for (engine, kind) in crate::common::engines() {
        let client = Client::builder(&sdk_key)
            .directory(publish.path(), "acme/web/production")
            .poll_interval(Duration::from_millis(100))
            .ingest_url(format!("{base}/api/v1/events"))
            .engine(kind)
            .build()
            .await
            .unwrap();
        assert_eq!(
            client.status(),
            Status::Ready,
            "{engine}: {:?}",
            client.health()
        );

        // Through OpenFeature: the banner is off.
        let name = format!("e2e-{engine}");
        let of = {
            let mut api = open_feature::OpenFeature::singleton_mut().await;
            api.set_named_provider(&name, BuntingProvider::new(client.clone()))
                .await;
            api.create_named_client(&name)
        };
        let ctx = open_feature::EvaluationContext::default().with_targeting_key("u-0");
        assert!(!of.get_bool_value("banner", Some(&ctx), None).await.unwrap());

        let users = 40;
        for i in 0..users {
            let ctx = open_feature::EvaluationContext::default()
                .with_targeting_key(format!("{engine}-user-{i}"));
            let d = of
                .get_bool_details("checkout", Some(&ctx), None)
                .await
                .unwrap();
            assert_eq!(d.reason, Some(open_feature::EvaluationReason::Split));
        }
        assert!(client.flush().await, "{engine}: {:?}", client.health());
        assert_eq!(client.health().counters.exposures_sent, users);
        client.close().await;
    }

    // Change the banner through the API; a new client-side refresh sees it.
    let client = Client::builder(&sdk_key)
        .directory(publish.path(), "acme/web/production")
        .poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let before = client.health().snapshot_version.unwrap();
    let mut changes = client.subscribe();
    let cfg = format!("{p}/flags/banner/environments/production");
    let (_, etag) = api.call(reqwest::Method::GET, &cfg, None, None).await;
    api.call(
        reqwest::Method::PUT,
        &cfg,
        Some(json!({"enabled": true, "rules": [],
        "fallthrough": {"variant": "on"}})),
        etag.as_deref(),
    )
    .await;
    api.published(&env).await;
    eventually("the provider sees the banner on", || {
        client
            .evaluate("banner", None, &json!({"targetingKey": "u-0"}))
            .unwrap()
            .value
            .as_deref()
            == Some(&json!(true))
    })
    .await;
    assert!(client.health().snapshot_version.unwrap() > before);
    let changed = changes.recv().await.unwrap();
    assert!(
        matches!(changed, bunting_server_sdk::ClientEvent::ConfigurationChanged { ref flags_changed, .. }
        if flags_changed == &["banner".to_string()]),
        "{changed:?}"
    );
    client.close().await;

    // The exposures are in the experiment's results: 40 users per engine.
    let mut total = 0;
    for _ in 0..200 {
        let (r, _) = api
            .call(
                reqwest::Method::GET,
                &format!("{env}/experiments/one-page/results"),
                None,
                None,
            )
            .await;
        total = r["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["users"].as_u64().unwrap_or(0))
            .sum::<u64>();
        if total == 80 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(total, 80, "users in the results");
    origin.kill().await.unwrap();
}
