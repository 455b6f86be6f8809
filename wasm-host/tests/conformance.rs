//! Runs the shared conformance fixtures through bunting-core compiled to WASM
//! and hosted by wasmtime: the same cases, the same checks as natively.

#[path = "../../core/tests/common/fixtures.rs"]
mod fixtures;

mod common;

use bunting_core::conformance::{self, Fixture};

#[test]
fn every_fixture_passes_in_wasmtime() {
    let runtime = common::runtime();
    let report = conformance::run(
        fixtures::FIXTURES,
        |json, lenient| {
            if lenient {
                runtime.load_snapshot_lenient(json).map(|(e, _)| e)
            } else {
                runtime.load_snapshot(json)
            }
            .map_err(|e| e.to_string())
        },
        |engine, req| engine.answer(req).map_err(|e| e.to_string()),
    );
    let hint = common::stale_hint().map_or(String::new(), |h| format!(" ({h})"));
    report.assert_clean(&format!("in wasmtime{hint}"));
    assert_eq!(
        report.cases,
        conformance::run_native(fixtures::FIXTURES).cases,
        "every case the native suite runs must run in wasmtime"
    );
    println!(
        "{} conformance cases from {} fixture files passed in wasmtime",
        report.cases,
        fixtures::FIXTURES.len()
    );
}

/// Lenient loads report the same problems through the boundary as natively.
#[test]
fn lenient_problems_cross_the_boundary() {
    let runtime = common::runtime();
    for (name, text) in fixtures::FIXTURES {
        let fixture: Fixture = serde_json::from_str(text).unwrap();
        let snapshot: bunting_core::Snapshot =
            match serde_json::from_value(fixture.snapshot.clone()) {
                Ok(s) => s,
                Err(_) => continue,
            };
        let (_, native) = bunting_core::Engine::from_snapshot_lenient(&snapshot);
        let (_, hosted) = runtime
            .load_snapshot_lenient(&fixture.snapshot.to_string())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hosted, native, "{name}: lenient problems differ");
    }
}

/// The module hashes targeting keys exactly as the native code the edge
/// runs, and reports the schema version it reads.
#[test]
fn keys_hash_as_natively_and_the_schema_version_is_reported() {
    let runtime = common::runtime();
    let mut instance = runtime.instantiate().unwrap();
    assert_eq!(
        instance.schema_version().unwrap(),
        bunting_core::model::SCHEMA_VERSION
    );
    let keys = [
        serde_json::json!("user-1"),
        serde_json::json!(42),
        serde_json::json!(1.5),
        serde_json::json!(""),
        serde_json::json!(null),
        serde_json::json!({"a": 1}),
    ];
    let got = instance.hash_keys("exposure-secret", &keys).unwrap();
    let hasher = bunting_core::keyhash::KeyHasher::new("exposure-secret");
    let want: Vec<Option<String>> = keys.iter().map(|k| hasher.hash_value(k)).collect();
    assert_eq!(got, want);
    assert!(got[0].is_some() && got[4].is_none() && got[5].is_none());
}
