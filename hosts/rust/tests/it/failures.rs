//! Fail-static behaviour against local HTTP servers on 127.0.0.1: a source
//! down at start, bad snapshots, an ingest that is down or refuses, the
//! dedup window, and the flush on close.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use bunting_server_sdk::{Client, ClientEvent, SnapshotError, Status};
use serde_json::{Value, json};

use crate::common::{Ingest, engines, eventually, serve, snapshot};

/// A fake edge: serves `body` with an ETag, 304 when it matches.
#[derive(Clone, Default)]
struct Edge {
    body: Arc<Mutex<(u16, String)>>,
    auth: Arc<Mutex<Vec<String>>>,
}

impl Edge {
    fn set(&self, status: u16, body: impl Into<String>) {
        *self.body.lock().unwrap() = (status, body.into());
    }

    async fn start(&self) -> String {
        let router = Router::new()
            .route("/sdk/v1/snapshot", get(edge_snapshot))
            .with_state(self.clone());
        format!("http://{}", serve(router).await)
    }
}

async fn edge_snapshot(
    State(edge): State<Edge>,
    headers: HeaderMap,
) -> (StatusCode, HeaderMap, String) {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    edge.auth.lock().unwrap().extend(auth);
    let (status, body) = edge.body.lock().unwrap().clone();
    let tag = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        format!("\"{:x}\"", h.finish())
    };
    let mut out = HeaderMap::new();
    out.insert("etag", tag.parse().unwrap());
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        return (StatusCode::NOT_MODIFIED, out, String::new());
    }
    (StatusCode::from_u16(status).unwrap(), out, body)
}

/// What a refresh must fail with.
type Expected = fn(&SnapshotError) -> bool;

/// A port nothing listens on.
async fn closed_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_down_at_start_uses_the_bootstrap_and_reports_stale() {
    let dir = tempfile::tempdir().unwrap();
    let text = snapshot("prod", 4, "blue");
    let json = dir.path().join("snapshot.json");
    std::fs::write(&json, &text).unwrap();
    // The same snapshot packed, as a KV value or publish-directory file holds it.
    let parsed = bunting_core::ParsedSnapshot::parse(&text).unwrap();
    let packed = dir.path().join("snapshot.bsnp");
    std::fs::write(
        &packed,
        bunting_core::packed::pack_with_document(&parsed, &text).unwrap(),
    )
    .unwrap();
    for ((name, kind), boot) in engines()
        .into_iter()
        .flat_map(|e| [(e.clone(), &json), (e, &packed)])
    {
        let client = Client::builder("server-key")
            .edge(closed_url().await)
            .bootstrap(boot)
            .engine(kind)
            .build()
            .await
            .unwrap();
        let health = client.health();
        assert_eq!(health.status, Status::Stale, "{name} {boot:?}");
        assert_eq!(health.source, "bootstrap");
        assert_eq!(health.snapshot_version, Some(4));
        assert!(health.last_error.unwrap().contains("cannot fetch"));
        let e = client.evaluate("color", None, &json!({})).unwrap();
        assert_eq!(e.value.as_deref(), Some(&json!("blue")), "{name}");
        client.close().await;
    }
    // No source and no bootstrap: ERROR, evaluations say not ready.
    let client = Client::builder("k")
        .edge(closed_url().await)
        .build()
        .await
        .unwrap();
    assert_eq!(client.status(), Status::Error);
    assert!(client.evaluate("color", None, &json!({})).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshots_are_rejected_and_the_last_good_one_kept() {
    for (name, kind) in engines() {
        let edge = Edge::default();
        edge.set(200, snapshot("prod", 2, "red"));
        let url = edge.start().await;
        let client = Client::builder("server-key")
            .edge(url)
            .poll_interval(Duration::from_secs(3600))
            .engine(kind)
            .build()
            .await
            .unwrap();
        let mut events = client.subscribe();
        assert_eq!(client.status(), Status::Ready, "{name}");
        assert_eq!(edge.auth.lock().unwrap()[0], "Bearer server-key");
        // Not modified: fine.
        client.refresh().await.unwrap();

        let mut tampered: Value = serde_json::from_str(&snapshot("prod", 3, "red")).unwrap();
        tampered["flags"][1]["variants"]["c"] = json!("green");
        let mut no_sum: Value = serde_json::from_str(&snapshot("prod", 3, "red")).unwrap();
        no_sum.as_object_mut().unwrap().remove("checksum");
        let mut schema: Value = serde_json::from_str(&snapshot("prod", 3, "red")).unwrap();
        schema["schemaVersion"] = json!(2);
        let bad: Vec<(String, Expected)> = vec![
            ("{corrupt".into(), |e| {
                matches!(e, SnapshotError::NotJson(_))
            }),
            (snapshot("prod", 1, "old"), |e| {
                matches!(
                    e,
                    SnapshotError::Older {
                        found: 1,
                        current: 2
                    }
                )
            }),
            (schema.to_string(), |e| {
                e.to_string() == "snapshot schema 2 is not the engine's 1; upgrade the package"
            }),
            (
                tampered.to_string(),
                |e| matches!(e, SnapshotError::Rejected(m) if m.contains("checksum")),
            ),
            (no_sum.to_string(), |e| {
                matches!(e, SnapshotError::MissingChecksum)
            }),
            (snapshot("staging", 3, "red"), |e| {
                matches!(e, SnapshotError::Environment { .. })
            }),
        ];
        for (i, (body, want)) in bad.iter().enumerate() {
            edge.set(200, body.clone());
            let err = client.refresh().await.unwrap_err();
            assert!(want(&err), "{name} bad #{i}: {err}");
            let health = client.health();
            assert_eq!(health.status, Status::Stale);
            assert_eq!(health.snapshot_version, Some(2));
            assert_eq!(health.last_error, Some(err.to_string()));
            assert_eq!(health.consecutive_failures, i as u64 + 1);
            let e = client.evaluate("color", None, &json!({})).unwrap();
            assert_eq!(e.value.as_deref(), Some(&json!("red")));
        }
        edge.set(503, "{\"errorCode\":\"GENERAL\"}");
        assert!(
            client
                .refresh()
                .await
                .unwrap_err()
                .to_string()
                .contains("503")
        );
        // STALE was announced once, on the first failure.
        assert!(matches!(events.try_recv(), Ok(ClientEvent::Stale { .. })));
        assert!(events.try_recv().is_err());

        edge.set(200, snapshot("prod", 3, "green"));
        client.refresh().await.unwrap();
        assert_eq!(client.status(), Status::Ready);
        assert_eq!(
            events.try_recv().unwrap(),
            ClientEvent::ConfigurationChanged {
                flags_changed: vec!["color".into()],
                version: 3,
            }
        );
        assert_eq!(events.try_recv().unwrap(), ClientEvent::Ready);
        let e = client.evaluate("color", None, &json!({})).unwrap();
        assert_eq!(e.value.as_deref(), Some(&json!("green")), "{name}");
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_refresh_picks_up_changes_from_kv_and_directory() {
    // KV REST fake.
    let kv: Arc<Mutex<String>> = Arc::new(Mutex::new(snapshot("acme/web/prod", 1, "a")));
    let router = Router::new()
        .route(
            "/accounts/{acct}/storage/kv/namespaces/{ns}/values/{key}",
            get(
                |State(kv): State<Arc<Mutex<String>>>,
                 Path((acct, ns, key)): Path<(String, String, String)>,
                 headers: HeaderMap| async move {
                    assert_eq!((acct.as_str(), ns.as_str()), ("acct", "ns"));
                    assert_eq!(key, "snapshot:acme/web/prod");
                    assert_eq!(headers["authorization"], "Bearer cf-token");
                    kv.lock().unwrap().clone()
                },
            ),
        )
        .with_state(kv.clone());
    let base = format!("http://{}", serve(router).await);
    let client = Client::builder("k")
        .kv("acct", "ns", "acme/web/prod", "cf-token")
        .kv_api_base(base)
        .poll_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    assert_eq!(client.status(), Status::Ready);
    *kv.lock().unwrap() = snapshot("acme/web/prod", 2, "b");
    eventually("the KV change is seen", || {
        client
            .evaluate("color", None, &json!({}))
            .unwrap()
            .value
            .as_deref()
            == Some(&json!("b"))
    })
    .await;
    client.close().await;

    // Directory publisher files.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot%3Aacme%2Fweb%2Fprod");
    std::fs::write(&file, snapshot("acme/web/prod", 1, "a")).unwrap();
    let client = Client::builder("k")
        .directory(dir.path(), "acme/web/prod")
        .poll_interval(Duration::from_millis(100))
        .native()
        .build()
        .await
        .unwrap();
    std::fs::write(&file, snapshot("acme/web/prod", 2, "b")).unwrap();
    eventually("the file change is seen", || {
        client.health().snapshot_version == Some(2)
    })
    .await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_down_buffers_up_to_the_bound_and_counts_drops() {
    for (name, kind) in engines() {
        let client = Client::builder("k")
            .fixed(snapshot("prod", 1, "a"), false)
            .ingest_url(format!("{}/api/v1/events", closed_url().await))
            .max_queued_exposures(5)
            .flush_interval(Duration::from_millis(50))
            .close_timeout(Duration::from_millis(500))
            .engine(kind)
            .build()
            .await
            .unwrap();
        for i in 0..50 {
            let e = client
                .evaluate("split", None, &json!({"targetingKey": format!("user-{i}")}))
                .unwrap();
            assert_eq!(
                e.reason.as_str(),
                "SPLIT",
                "{name}: evaluations are unaffected"
            );
        }
        let h = client.health().counters;
        assert_eq!(h.exposures_queued, 5);
        assert!(h.exposures_dropped >= 45, "{name}: {h:?}");
        eventually("a send failed", || {
            client.health().counters.failed_requests >= 1
        })
        .await;
        assert!(!client.flush().await);
        let h = client.health().counters;
        assert_eq!(h.exposures_sent, 0);
        assert!(h.last_ingest_error.unwrap().contains("/api/v1/events"));
        assert!(!client.close().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_ingest_drops_the_batch_and_a_flaky_one_gets_a_retry() {
    let (ingest, url) = Ingest::start(400).await;
    let client = Client::builder("k")
        .fixed(snapshot("prod", 1, "a"), false)
        .ingest_url(url)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    client
        .evaluate("split", None, &json!({"targetingKey": "u1"}))
        .unwrap();
    assert!(client.flush().await, "a refused batch is not retried");
    let h = client.health().counters;
    assert_eq!(
        (h.rejected_batches, h.exposures_dropped, h.exposures_sent),
        (1, 1, 0)
    );
    *ingest.status.lock().unwrap() = 503;
    client
        .evaluate("split", None, &json!({"targetingKey": "u2"}))
        .unwrap();
    assert!(!client.flush().await, "503 keeps the batch");
    *ingest.status.lock().unwrap() = 202;
    assert!(client.flush().await);
    assert_eq!(client.health().counters.exposures_sent, 1);
    // u1 (refused), u2 (503), u2 again (accepted).
    assert_eq!(ingest.exposures().len(), 3);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposures_are_deduplicated_within_the_window() {
    let client = Client::builder("k")
        .fixed(snapshot("prod", 1, "a"), false)
        .exposure_dedup_window(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let ctx = json!({"targetingKey": "u1"});
    for _ in 0..5 {
        client.evaluate("split", None, &ctx).unwrap();
    }
    client.evaluate_all(&ctx).unwrap();
    let h = client.health().counters;
    assert_eq!((h.exposures_queued, h.exposures_deduplicated), (1, 5));
    client.evaluate("color", None, &ctx).unwrap(); // STATIC: no exposure
    // A split without a targeting key is an error evaluation, not an exposure.
    let e = client.evaluate("split", None, &json!({})).unwrap();
    assert_eq!(e.reason.as_str(), "ERROR");
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.evaluate("split", None, &ctx).unwrap();
    assert_eq!(client.health().counters.exposures_queued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_exposures_and_events() {
    let (ingest, url) = Ingest::start(202).await;
    let client = Client::builder("server-key")
        .fixed(snapshot("acme/web/prod", 7, "a"), false)
        .ingest_url(url)
        .hash_secret("exposure-secret")
        .flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let ctx = json!({"targetingKey": "u1", "geo": {"country": "CA"}, "device": {"type": "mobile"}});
    let e = client.evaluate("split", None, &ctx).unwrap();
    client
        .evaluate("split", None, &json!({"targetingKey": "u2"}))
        .unwrap();
    client.track("purchase", &ctx, Some(9.5)).unwrap();
    assert!(client.track("bad name!", &ctx, None).is_err());
    assert!(client.close().await);
    let exposures = ingest.exposures();
    assert_eq!(exposures.len(), 2);
    let hasher = bunting_core::keyhash::KeyHasher::new("exposure-secret");
    assert_eq!(exposures[0]["flag"], "split");
    assert_eq!(exposures[0]["variant"], json!(e.variant.as_deref()));
    assert_eq!(exposures[0]["bucketingKeyHash"], hasher.hash("u1"));
    assert_eq!(exposures[0]["environment"], "acme/web/prod");
    assert_eq!(exposures[0]["snapshotVersion"], 7);
    assert_eq!(exposures[0]["country"], "CA");
    assert_eq!(exposures[0]["deviceType"], "mobile");
    assert_eq!(exposures[1]["bucketingKeyHash"], hasher.hash("u2"));
    let bodies = ingest.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|(token, _)| token == "Bearer server-key"));
    let events: Vec<&Value> = bodies
        .iter()
        .filter(|(_, b)| b["kind"] == "events")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["environment"], "acme/web/prod");
    assert_eq!(events[0]["events"][0]["name"], "purchase");
    assert_eq!(events[0]["events"][0]["value"], 9.5);
    assert_eq!(
        events[0]["events"][0]["targetingKeyHash"],
        hasher.hash("u1")
    );
    assert_eq!(events[0]["events"][0]["id"].as_str().unwrap().len(), 36);
    let h = client.health().counters;
    assert_eq!((h.exposures_sent, h.events_sent), (2, 1));
}
