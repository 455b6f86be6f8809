//! Runs the shared conformance fixtures through bunting-core compiled to WASM
//! and hosted by wasmtime: the same cases, the same checks as natively.

#[path = "../../core/tests/common/fixtures.rs"]
mod fixtures;

mod common;

use bunting_core::conformance::Fixture;

#[test]
fn every_fixture_passes_in_wasmtime() {
    let runtime = common::runtime();
    let mut failures = Vec::new();
    let (mut listed, mut ran) = (0, 0);
    for (name, text) in fixtures::FIXTURES {
        let fixture: Fixture = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        listed += fixture.cases.len();
        let snapshot = fixture.snapshot.to_string();
        let loaded = if fixture.lenient {
            runtime.load_snapshot_lenient(&snapshot).map(|(e, _)| e)
        } else {
            runtime.load_snapshot(&snapshot)
        };
        let mut engine = match loaded {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{name}: snapshot does not load: {e}"));
                continue;
            }
        };
        for case in &fixture.cases {
            let req = match case.request() {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{name}: {e}"));
                    continue;
                }
            };
            ran += 1;
            let outcome = engine
                .answer(&req)
                .map_err(|e| format!("case {:?}: {e}", case.name))
                .and_then(|got| case.check(&got));
            if let Err(e) = outcome {
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) in wasmtime{}:\n{}",
        failures.len(),
        common::stale_hint().map_or(String::new(), |h| format!(" ({h})")),
        failures.join("\n")
    );
    assert_eq!(
        ran, listed,
        "every case the native suite runs must run in wasmtime"
    );
    assert!(ran > 0, "no conformance cases found");
    println!(
        "{ran} conformance cases from {} fixture files passed in wasmtime",
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
