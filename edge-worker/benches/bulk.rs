//! The native cost of one bulk answer of 1,000 flags for a new context,
//! step by step: parse the request's context, evaluate every flag,
//! serialize the OFREP body, hash its ETag. The snapshot and context are
//! the edge benchmark's (`tests/edge/bench-data.mjs`). Prints medians of
//! 300 requests; a bench binary, not a test.
//!
//! ```sh
//! cargo bench -p bunting-edge-worker --bench bulk
//! ```

mod common;

use bunting_core::{Engine, ParsedSnapshot};
use bunting_edge_worker::ofrep::{NumberForms, bulk, etag};
use std::time::Instant;
/// Builds the snapshot and measures each step of 300 requests.
fn main() {
    let doc = common::snapshot("e", 1);
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
