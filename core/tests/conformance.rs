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

/// Loads a fixture's snapshot as the hosts do, leniently where it says so.
fn load_from_json(json: &str, lenient: bool) -> Result<bunting_core::Engine, String> {
    use bunting_core::Engine;
    if lenient {
        Ok(Engine::from_json_lenient(json)
            .map_err(|e| e.to_string())?
            .0)
    } else {
        Engine::from_json(json).map_err(|e| e.to_string())
    }
}

/// The same fixtures through `Engine::from_json`, the load path of the
/// hosts (`run_native` loads with `from_snapshot`).
#[test]
fn every_fixture_passes_loaded_from_json() {
    use bunting_core::protocol::EvalReply;
    let report = bunting_core::conformance::run(
        common::fixtures::FIXTURES,
        load_from_json,
        |engine, req| match engine.answer(req) {
            EvalReply::One(e) => Ok(serde_json::to_value(e).unwrap()),
            EvalReply::All(all) => Ok(serde_json::to_value(all).unwrap()),
            EvalReply::BadRequest(m) => Err(m),
        },
    );
    report.assert_clean("loaded from JSON");
}

/// bunting's own [`Context`] for a JSON context: objects become nested
/// objects, strings are borrowed, lists stay JSON. `None` for a context
/// that is not an object (those cases test the JSON form's type check).
fn own_context(value: &serde_json::Value) -> Option<bunting_core::Context<'_>> {
    use bunting_core::context::Object;
    use bunting_core::{Attr, Context};
    use serde_json::{Map, Value};
    fn attr(v: &Value) -> Attr<'_> {
        match v {
            Value::Null => Attr::Null,
            Value::Bool(b) => Attr::Bool(*b),
            Value::Number(n) => Attr::Number(n.clone()),
            Value::String(s) => Attr::from(s),
            Value::Array(_) | Value::Object(_) => Attr::Json(v),
        }
    }
    fn fill<'a>(object: &mut Object<'_, 'a>, map: &'a Map<String, Value>) {
        for (name, v) in map {
            match v {
                Value::Object(inner) => {
                    object.set_object(name, |o| fill(o, inner));
                }
                v => {
                    object.set(name, attr(v));
                }
            }
        }
    }
    let mut ctx = Context::new();
    for (name, v) in value.as_object()? {
        match v {
            Value::Object(inner) => {
                ctx.set_object(name, |o| fill(o, inner));
            }
            v => {
                ctx.set(name, attr(v));
            }
        }
    }
    Some(ctx)
}

/// The same fixtures evaluated against bunting's own [`Context`] instead of
/// JSON: every answer, reason, error code and message is the JSON form's.
#[test]
fn every_fixture_passes_with_bunting_contexts() {
    let mut own = 0;
    let report = bunting_core::conformance::run(
        common::fixtures::FIXTURES,
        load_from_json,
        |engine, req| {
            let Some(ctx) = own_context(&req.context) else {
                return Ok(match &req.flag {
                    Some(flag) => serde_json::to_value(engine.evaluate_typed(
                        flag,
                        req.expected_type,
                        &req.context,
                        req.now_ms,
                    )),
                    None => serde_json::to_value(engine.evaluate_all(&req.context, req.now_ms)),
                }
                .unwrap());
            };
            own += 1;
            assert_eq!(ctx.to_json(), req.context, "the context round-trips");
            Ok(match &req.flag {
                Some(flag) => serde_json::to_value(engine.evaluate_typed(
                    flag,
                    req.expected_type,
                    &ctx,
                    req.now_ms,
                )),
                None => serde_json::to_value(engine.evaluate_all(&ctx, req.now_ms)),
            }
            .unwrap())
        },
    );
    report.assert_clean("with bunting contexts");
    assert!(own >= 150, "only {own} cases had an object context");
}
