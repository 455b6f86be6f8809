//! Shared helpers: engines, snapshots, a pinned clock, a local HTTP server,
//! a fake ingest.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bunting_server_sdk::{Clock, EngineKind};
use serde_json::{Value, json};

/// Both engine backends, named.
pub(crate) fn engines() -> Vec<(&'static str, EngineKind)> {
    vec![
        ("wasm", EngineKind::default()),
        ("native", EngineKind::Native),
    ]
}

/// A clock the test sets.
pub(crate) fn pinned(at: i64) -> (Arc<AtomicI64>, Clock) {
    let now = Arc::new(AtomicI64::new(at));
    let read = now.clone();
    (now, Arc::new(move || read.load(Ordering::SeqCst)))
}

/// A sealed snapshot (with its checksum) of `environment` at `version`
/// with one 50/50 boolean flag `split` and a static string flag `color`
/// serving `color`.
pub(crate) fn snapshot(environment: &str, version: u64, color: &str) -> String {
    let doc = json!({
        "schemaVersion": 1, "environment": environment, "version": version,
        "generatedAt": "2026-11-25T00:00:00Z",
        "flags": [
            {"key": "split", "type": "boolean", "variants": {"on": true, "off": false},
             "offVariant": "off",
             "fallthrough": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}},
            {"key": "color", "type": "string", "variants": {"c": color}, "offVariant": "c",
             "fallthrough": {"variant": "c"}}
        ]
    });
    seal(&doc)
}

/// Adds the checksum the origin would publish.
pub(crate) fn seal(doc: &Value) -> String {
    let mut s = bunting_core::snapshot::parse_json(&doc.to_string()).expect("valid snapshot");
    bunting_core::snapshot::seal(&mut s);
    serde_json::to_string(&s).expect("serializes")
}

/// Serves `router` on 127.0.0.1 on a free port.
pub(crate) async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") });
    addr
}

/// Waits (bounded) until `pred` holds.
pub(crate) async fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    for _ in 0..200 {
        if pred() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A fake ingest: records every body and token; answers `status`.
#[derive(Clone)]
pub(crate) struct Ingest {
    pub(crate) status: Arc<Mutex<u16>>,
    pub(crate) bodies: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Ingest {
    pub(crate) async fn start(status: u16) -> (Ingest, String) {
        let ingest = Ingest {
            status: Arc::new(Mutex::new(status)),
            bodies: Arc::default(),
        };
        let router = Router::new()
            .route("/api/v1/events", post(ingest_post))
            .with_state(ingest.clone());
        let url = format!("http://{}/api/v1/events", serve(router).await);
        (ingest, url)
    }

    pub(crate) fn exposures(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["kind"] == "exposures")
            .flat_map(|(_, b)| b["exposures"].as_array().unwrap().clone())
            .collect()
    }
}

async fn ingest_post(State(ingest): State<Ingest>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let token = headers
        .get("authorization")
        .map_or(String::new(), |v| v.to_str().unwrap().to_owned());
    ingest
        .bodies
        .lock()
        .unwrap()
        .push((token, serde_json::from_slice(&body).unwrap()));
    StatusCode::from_u16(*ingest.status.lock().unwrap()).unwrap()
}
