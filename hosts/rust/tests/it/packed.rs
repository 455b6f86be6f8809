//! Packed values through the KV source (a fake Cloudflare KV REST API on
//! 127.0.0.1) and the directory source (a real file), on both engines: the
//! checked-in fixture `tests/conformance/packed/` (`cases.json`) is
//! accepted and evaluates as its JSON does; every refused value it lists
//! is refused with a typed error, the last good snapshot serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use bunting_server_sdk::{Client, ClientBuilder, SnapshotError, Status};
use serde_json::Value;

use crate::common::{engines, pinned, serve};

/// 2026-11-30T00:00:00Z: a fixed clock for schedules.
const NOW_MS: i64 = 1_796_000_000_000;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/packed")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fixture's `cases.json`, its JSON text and its packed bytes.
struct Fixture {
    cases: Value,
    json: String,
    packed: Vec<u8>,
}

impl Fixture {
    fn load() -> Fixture {
        let cases: Value = serde_json::from_slice(&read("cases.json")).unwrap();
        let json = String::from_utf8(read(cases["snapshot"].as_str().unwrap())).unwrap();
        let packed = read(cases["packed"].as_str().unwrap());
        Fixture {
            cases,
            json,
            packed,
        }
    }

    fn environment(&self) -> &str {
        self.cases["environment"].as_str().unwrap()
    }

    fn version(&self) -> u64 {
        serde_json::from_str::<Value>(&self.json).unwrap()["version"]
            .as_u64()
            .unwrap()
    }

    /// Every flag's evaluation for each of the fixture's contexts.
    fn answers(&self, client: &Client) -> Vec<Value> {
        self.cases["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ctx| serde_json::to_value(client.evaluate_all(ctx).unwrap()).unwrap())
            .collect()
    }
}

/// Whether `err` is what `case` of `cases.json` says a refused value fails with.
fn refused_as(case: &Value, err: &SnapshotError) -> bool {
    let message = case["message"].as_str().unwrap();
    match case["problem"].as_str().unwrap() {
        "version" => {
            matches!(err, SnapshotError::PackedVersion { found: 3, reads: 2 })
                && err.to_string().contains(message)
        }
        _ => matches!(err, SnapshotError::Packed(m) if m.contains(message)),
    }
}

/// Builds `builder` on a pinned clock and checks: the packed fixture serves
/// as its JSON does; each refused value `publish`ed is refused, the
/// fixture's snapshot serving; the JSON again is the same version.
async fn check_source(
    name: &str,
    fixture: &Fixture,
    builder: ClientBuilder,
    publish: &dyn Fn(Vec<u8>),
) {
    let (_, clock) = pinned(NOW_MS);
    let expected = {
        let json = Client::builder("k")
            .fixed(fixture.json.clone(), false)
            .clock(clock.clone())
            .build()
            .await
            .unwrap();
        let answers = fixture.answers(&json);
        json.close().await;
        answers
    };
    let client = builder
        .clock(clock)
        .poll_interval(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    let health = client.health();
    assert_eq!(
        health.status,
        Status::Ready,
        "{name}: {:?}",
        health.last_error
    );
    assert_eq!(health.snapshot_version, Some(fixture.version()), "{name}");
    assert_eq!(fixture.answers(&client), expected, "{name}");
    for case in fixture.cases["refused"].as_array().unwrap() {
        let what = format!("{name}: {}", case["name"]);
        publish(read(case["file"].as_str().unwrap()));
        let err = client.refresh().await.unwrap_err();
        assert!(refused_as(case, &err), "{what}: {err}");
        let health = client.health();
        assert_eq!(health.status, Status::Stale, "{what}");
        assert_eq!(health.snapshot_version, Some(fixture.version()), "{what}");
        assert_eq!(health.last_error, Some(err.to_string()), "{what}");
        assert_eq!(fixture.answers(&client), expected, "{what}");
    }
    // Published as JSON again: the same version, nothing to load, READY.
    publish(fixture.json.clone().into_bytes());
    client.refresh().await.unwrap();
    assert_eq!(client.status(), Status::Ready, "{name}");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_source_reads_packed_values() {
    let fixture = Fixture::load();
    let env = fixture.environment().to_owned();
    let value = Arc::new(Mutex::new(fixture.packed.clone()));
    let router = Router::new()
        .route(
            "/accounts/acct/storage/kv/namespaces/ns/values/{key}",
            get(
                |State(value): State<Arc<Mutex<Vec<u8>>>>, UrlPath(key): UrlPath<String>| async move {
                    assert!(key.starts_with("snapshot:"), "{key}");
                    value.lock().unwrap().clone()
                },
            ),
        )
        .with_state(value.clone());
    let base = format!("http://{}", serve(router).await);
    for (name, kind) in engines() {
        *value.lock().unwrap() = fixture.packed.clone();
        let builder = Client::builder("k")
            .kv("acct", "ns", env.clone(), "cf-token")
            .kv_api_base(base.clone())
            .engine(kind);
        let publish = |bytes: Vec<u8>| *value.lock().unwrap() = bytes;
        check_source(name, &fixture, builder, &publish).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_source_reads_packed_files() {
    let fixture = Fixture::load();
    for (name, kind) in engines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(bunting_server_sdk::encode_key(&format!(
            "snapshot:{}",
            fixture.environment()
        )));
        // The publisher's atomic replacement.
        let publish = |bytes: Vec<u8>| {
            let tmp = dir.path().join("tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        };
        publish(fixture.packed.clone());
        let builder = Client::builder("k")
            .directory(dir.path(), fixture.environment())
            .engine(kind);
        check_source(name, &fixture, builder, &publish).await;
    }
}
