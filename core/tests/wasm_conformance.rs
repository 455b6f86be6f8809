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

use bunting_core::conformance;
use bunting_core::js::JsEngine;
use bunting_core::protocol::EvalRequest;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

fn js_error(e: impl Into<JsValue>) -> String {
    format!("{:?}", e.into())
}

/// Evaluates one request through the binding, returning the result as JSON.
fn run_case(engine: &JsEngine, req: &EvalRequest) -> Result<Value, String> {
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
        .map_err(|e| format!("the result does not convert: {e}"))
}

#[wasm_bindgen_test]
fn every_fixture_passes_through_the_js_binding() {
    let report = conformance::run(
        common::fixtures::FIXTURES,
        |json, lenient| JsEngine::new(json, Some(lenient)).map_err(js_error),
        |engine, req| run_case(engine, req),
    );
    report.assert_clean("through the JS binding");
    assert!(
        report.cases >= 150,
        "only {} conformance cases",
        report.cases
    );
}
