//! Shared helpers: engines, snapshots, a pinned clock, a local HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

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
