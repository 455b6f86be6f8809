//! Criterion benchmarks of the hot paths: one evaluation, evaluate-all over
//! 500 flags (with the conditions repeated across flags, as in most
//! snapshots, and with every condition distinct), and loading a 1,000-flag
//! snapshot, from JSON and packed.
//!
//! Run: `cargo bench -p bunting-core --bench engine`.

use std::hint::black_box;

use bunting_core::packed::pack;
use bunting_core::snapshot::{checksum, parse_json, seal};
use bunting_core::{Context, Engine, ParsedSnapshot};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const NOW: i64 = 1_764_547_200_000;

/// A realistic flag: three-clause targeting rule, a segment rule, and a
/// weighted rollout in the fallthrough. Its conditions are shared with other
/// flags (`distinct == false`: one "internal" text in every flag, seven
/// "launch" texts, 8 distinct conditions in all) or its own
/// (`distinct == true`: every condition text unique, same clauses and the
/// same answers for the benchmark context).
fn flag(i: usize, distinct: bool) -> Value {
    let (domain, free) = if distinct {
        (format!("@team-{i}.bunting.dev"), format!("free-{i}"))
    } else {
        ("@bunting.dev".to_string(), "free".to_string())
    };
    json!({
        "key": format!("flag-{i}"),
        "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"},
        "offVariant": "off",
        "rules": [
            {"id": "internal", "condition": format!("email ends_with \"{domain}\" || segment(\"staff\")"),
             "serve": {"variant": "treatment"}},
            {"id": "launch", "condition": format!(
                "country in [\"US\", \"CA\", \"GB\"] && semver(app.version) >= \"2.{}.0\" && !(plan == \"{free}\")", i % 7),
             "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}
        ],
        "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]},
        "metadata": {"description": format!("benchmark flag {i}"), "owner": "perf", "tags": ["bench"]}
    })
}

fn snapshot(n: usize) -> String {
    snapshot_of(n, false)
}

fn snapshot_of(n: usize, distinct: bool) -> String {
    let doc = json!({
        "schemaVersion": 1, "environment": "bench", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "segments": [{"key": "staff", "included": ["admin-1", "admin-2"], "condition": "department == \"eng\""}],
        "flags": (0..n).map(|i| flag(i, distinct)).collect::<Vec<_>>()
    });
    let mut s = parse_json(&doc.to_string()).expect("valid");
    seal(&mut s);
    serde_json::to_string(&s).expect("serializes")
}

fn context() -> Value {
    json!({"targetingKey": "user-12345", "email": "jane@example.com", "country": "CA",
           "plan": "pro", "app": {"version": "2.4.1"}, "department": "sales"})
}

fn benches(c: &mut Criterion) {
    let one = Engine::from_json(&snapshot(1)).expect("loads");
    let ctx = context();
    c.bench_function("evaluate one flag (3 clauses + rollout)", |b| {
        b.iter(|| black_box(one.evaluate(black_box("flag-0"), black_box(&ctx), NOW)))
    });

    // The same context as bunting's own `Context` (borrowed, no JSON).
    let own = Context::new()
        .with_targeting_key("user-12345")
        .with("email", "jane@example.com")
        .with("country", "CA")
        .with("plan", "pro")
        .with_object("app", |app| {
            app.set("version", "2.4.1");
        })
        .with("department", "sales");
    assert_eq!(own.to_json(), ctx);
    c.bench_function("evaluate one flag (3 clauses + rollout), Context", |b| {
        b.iter(|| black_box(one.evaluate(black_box("flag-0"), black_box(&own), NOW)))
    });

    let five_hundred = Engine::from_json(&snapshot(500)).expect("loads");
    c.bench_function("evaluate all, 500 flags", |b| {
        b.iter(|| black_box(five_hundred.evaluate_all(black_box(&ctx), NOW)))
    });
    c.bench_function("evaluate all, 500 flags, Context", |b| {
        b.iter(|| black_box(five_hundred.evaluate_all(black_box(&own), NOW)))
    });

    // Every rule condition its own text: nothing for evaluate_all's
    // per-call condition memo to share. Same answers as the above.
    let distinct = Engine::from_json(&snapshot_of(500, true)).expect("loads");
    let shared = five_hundred.evaluate_all(&ctx, NOW);
    let own_answers = distinct.evaluate_all(&ctx, NOW);
    assert_eq!(format!("{own_answers:?}"), format!("{shared:?}"));
    c.bench_function("evaluate all, 500 flags, distinct conditions", |b| {
        b.iter(|| black_box(distinct.evaluate_all(black_box(&ctx), NOW)))
    });

    let thousand = snapshot(1000);
    println!("1,000-flag snapshot: {} bytes of JSON", thousand.len());
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function(
        "snapshot load, 1,000 flags (parse + verify checksum + compile)",
        |b| b.iter(|| black_box(Engine::from_json(black_box(&thousand)).expect("loads"))),
    );
    let parsed = parse_json(&thousand).expect("parses");
    group.bench_function("  of which: JSON parse", |b| {
        b.iter(|| black_box(parse_json(black_box(&thousand)).expect("parses")))
    });
    group.bench_function("  of which: checksum", |b| {
        b.iter(|| black_box(checksum(black_box(&parsed))))
    });
    group.finish();

    // The same snapshot packed (sealed: the reader checks the digest, not
    // the checksum), as the edge and the server SDKs load it.
    let packed = pack(&ParsedSnapshot::parse(&thousand).expect("parses")).expect("packs");
    println!("1,000-flag snapshot: {} bytes packed", packed.len());
    let mut group = c.benchmark_group("load packed");
    group.sample_size(50);
    group.bench_function(
        "packed load, 1,000 flags (read + verify digest + compile)",
        |b| {
            b.iter(|| {
                let parsed = ParsedSnapshot::from_packed(black_box(&packed)).expect("reads");
                black_box(Engine::from_parsed(&parsed).expect("loads"))
            })
        },
    );
    group.bench_function("  of which: read (with digest)", |b| {
        b.iter(|| black_box(ParsedSnapshot::from_packed(black_box(&packed)).expect("reads")))
    });
    group.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
