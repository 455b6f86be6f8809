//! The native cost of one bulk answer of 1,000 flags for a new context,
//! step by step: parse the request's context, evaluate every flag,
//! serialize the OFREP body, hash its ETag. The snapshot and context are
//! the edge benchmark's (`tests/edge/bench-data.mjs`). Prints medians of
//! 300 requests; a bench binary, not a test.
//!
//! ```sh
//! cargo bench -p bunting-edge-worker --bench bulk
//! ```

use bunting_core::{Engine, ParsedSnapshot};
use bunting_edge_worker::ofrep::{NumberForms, bulk, etag};
use serde_json::json;
use std::time::Instant;
/// Builds the snapshot and measures each step of 300 requests.
fn main() {
    let flags: Vec<_> = (0..1000).map(|i| json!({
        "key": format!("flag-{i}"), "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"}, "offVariant": "off",
        "rules": [{"id": "internal", "condition": "email ends_with \"@bunting.dev\" || segment(\"staff\")", "serve": {"variant": "treatment"}},
                  {"id": "launch", "condition": format!("country in [\"US\", \"CA\", \"GB\"] && semver(app.version) >= \"2.{}.0\" && !(plan == \"free\")", i % 7),
                   "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}],
        "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]},
        "metadata": {"description": format!("benchmark flag {i}"), "owner": "perf", "tags": ["bench"]}})).collect();
    let doc = json!({"schemaVersion": 1, "environment": "e", "version": 1, "generatedAt": "2026-01-01T00:00:00Z",
        "segments": [{"key": "staff", "included": ["admin-1", "admin-2"], "condition": "department == \"eng\""}], "flags": flags}).to_string();
    let parsed = ParsedSnapshot::parse(&doc).unwrap();
    let engine = Engine::from_parsed(&parsed).unwrap();
    let numbers = NumberForms::of(&parsed);
    let mut t_eval = vec![];
    let mut t_ser = vec![];
    let mut t_etag = vec![];
    let mut t_ctx = vec![];
    for i in 0..300 {
        let body = format!(
            r#"{{"context":{{"targetingKey":"user-{i}","email":"jane@example.com","country":"CA","plan":"pro","app":{{"version":"2.4.1"}},"department":"sales"}}}}"#
        );
        let a = Instant::now();
        let ctx = bunting_edge_worker::ofrep::parse_context(body.as_bytes()).unwrap();
        let b = Instant::now();
        let evals = engine.evaluate_all(&ctx, 0);
        let c = Instant::now();
        let bytes = bulk(&evals, &numbers, None).to_bytes();
        let d = Instant::now();
        let tag = etag(&bytes);
        let e = Instant::now();
        std::hint::black_box((&bytes, &tag));
        t_ctx.push(b - a);
        t_eval.push(c - b);
        t_ser.push(d - c);
        t_etag.push(e - d);
    }
    for (n, mut v) in [
        ("context", t_ctx),
        ("evaluate_all", t_eval),
        ("serialize", t_ser),
        ("etag", t_etag),
    ] {
        v.sort();
        println!("{n}: median {:?}", v[v.len() / 2]);
    }
}
