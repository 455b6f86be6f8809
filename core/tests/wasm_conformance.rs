//! Runs the shared conformance fixtures through the JavaScript binding
//! ([`bunting_core::js::JsEngine`], the `Engine` class of the wasm-bindgen
//! package) under Node:
//!
//! ```text
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!   cargo test -p bunting-core --target wasm32-unknown-unknown --features js --test wasm_conformance
//! ```
//!
//! (`cargo xtask test` does this.) Contexts and results cross the boundary as
//! JavaScript values through `serde_wasm_bindgen`, exactly as a worker's would.
#![cfg(target_arch = "wasm32")]

mod common;

use bunting_core::conformance::{Case, Expect, Fixture};
use bunting_core::js::JsEngine;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

fn js_error(e: impl Into<JsValue>) -> String {
    format!("{:?}", e.into())
}

/// Numbers by value: JavaScript has one number type, so a fixture's `1.0`
/// comes back as `1`. Applied to both sides before comparing.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Value::from(f as i64)
            }
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        other => other.clone(),
    }
}

fn canonical_case(case: &Case) -> Case {
    let fix = |e: &Expect| Expect {
        value: canonical(&e.value),
        ..e.clone()
    };
    Case {
        expect: case.expect.as_ref().map(fix),
        expect_all: case
            .expect_all
            .as_ref()
            .map(|all| all.iter().map(|(k, e)| (k.clone(), fix(e))).collect()),
        ..case.clone()
    }
}

/// Evaluates one case through the binding, returning the result as JSON.
fn run_case(engine: &JsEngine, case: &Case) -> Result<Value, String> {
    let req = case.request()?;
    let context = req
        .context
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| format!("context does not convert: {e}"))?;
    let got = match &req.flag {
        Some(flag) => engine.evaluate(
            flag,
            context,
            req.now_ms as f64,
            req.expected_type.map(|t| t.as_str().to_string()),
        ),
        None => engine.evaluate_all(context, req.now_ms as f64),
    }
    .map_err(|e| format!("the binding threw {}", js_error(e)))?;
    serde_wasm_bindgen::from_value::<Value>(got)
        .map(|v| canonical(&v))
        .map_err(|e| format!("the result does not convert: {e}"))
}

#[wasm_bindgen_test]
fn every_fixture_passes_through_the_js_binding() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for (name, text) in common::fixtures::FIXTURES {
        let fixture: Fixture = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        cases += fixture.cases.len();
        let snapshot = serde_json::to_string(&fixture.snapshot).expect("JSON serializes");
        let engine = match JsEngine::new(&snapshot, Some(fixture.lenient)) {
            Ok(engine) => engine,
            Err(e) => {
                failures.push(format!("{name}: snapshot does not load: {}", js_error(e)));
                continue;
            }
        };
        for case in &fixture.cases {
            let outcome = run_case(&engine, case)
                .map_err(|why| format!("case {:?}: {why}", case.name))
                .and_then(|got| canonical_case(case).check(&got));
            if let Err(why) = outcome {
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases >= 150, "only {cases} conformance cases");
}
