//! Runs the shared conformance fixtures natively.

mod common;

use bunting_core::conformance::{Fixture, run_native};

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance")
}

#[test]
fn every_fixture_passes_natively() {
    let report = run_native(common::fixtures::FIXTURES);
    report.assert_clean("natively");
    assert!(
        report.cases >= 150,
        "only {} conformance cases",
        report.cases
    );
}

#[test]
fn embedded_list_matches_the_directory() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/conformance exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = common::fixtures::FIXTURES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "core/tests/common/fixtures.rs must list every fixture file"
    );
    for (name, text) in common::fixtures::FIXTURES {
        let disk = std::fs::read_to_string(dir().join(name)).unwrap();
        assert_eq!(&disk, text, "{name} differs from its embedded copy");
    }
}

#[test]
fn case_names_are_unique_per_file() {
    for (name, text) in common::fixtures::FIXTURES {
        let fixture: Fixture = serde_json::from_str(text).unwrap();
        let mut seen = std::collections::HashSet::new();
        for c in &fixture.cases {
            assert!(
                seen.insert(&c.name),
                "{name}: duplicate case name {:?}",
                c.name
            );
        }
    }
}

/// The same fixtures through `Engine::from_json`, the load path of the
/// hosts (`run_native` loads with `from_snapshot`).
#[test]
fn every_fixture_passes_loaded_from_json() {
    use bunting_core::Engine;
    use bunting_core::protocol::EvalReply;
    let report = bunting_core::conformance::run(
        common::fixtures::FIXTURES,
        |json, lenient| {
            if lenient {
                Ok(Engine::from_json_lenient(json)
                    .map_err(|e| e.to_string())?
                    .0)
            } else {
                Engine::from_json(json).map_err(|e| e.to_string())
            }
        },
        |engine, req| match engine.answer(req) {
            EvalReply::One(e) => Ok(serde_json::to_value(e).unwrap()),
            EvalReply::All(all) => Ok(serde_json::to_value(all).unwrap()),
            EvalReply::BadRequest(m) => Err(m),
        },
    );
    report.assert_clean("loaded from JSON");
}
