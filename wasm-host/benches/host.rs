//! Evaluations per second, native bunting-core vs the WASM module in
//! wasmtime, and process start to first evaluation with and without the
//! compilation cache. Prints medians; no assertions.
//!
//! Run: `cargo bench -p bunting-wasm-host --bench host` (after `cargo xtask wasm`).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use bunting_core::Engine;
use bunting_core::snapshot::{parse_json, seal};
use bunting_wasm_host::{PreparedContext, RuntimeOptions, WasmRuntime};
use serde_json::{Value, json};

const NOW: i64 = 1_764_547_200_000;

/// The flag of `core/benches/engine.rs`: a three-clause rule, a segment
/// rule and a weighted rollout.
fn flag(i: usize) -> Value {
    json!({
        "key": format!("flag-{i}"),
        "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"},
        "offVariant": "off",
        "rules": [
            {"id": "internal", "condition": "email ends_with \"@bunting.dev\" || segment(\"staff\")",
             "serve": {"variant": "treatment"}},
            {"id": "launch", "condition": format!(
                "country in [\"US\", \"CA\", \"GB\"] && semver(app.version) >= \"2.{}.0\" && !(plan == \"free\")", i % 7),
             "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}
        ],
        "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]},
        "metadata": {"description": format!("benchmark flag {i}"), "owner": "perf", "tags": ["bench"]}
    })
}

fn snapshot(n: usize) -> String {
    let doc = json!({
        "schemaVersion": 1, "environment": "bench", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "segments": [{"key": "staff", "included": ["admin-1", "admin-2"], "condition": "department == \"eng\""}],
        "flags": (0..n).map(flag).collect::<Vec<_>>()
    });
    let mut s = parse_json(&doc.to_string()).expect("valid");
    seal(&mut s);
    serde_json::to_string(&s).expect("serializes")
}

fn context() -> Value {
    json!({"targetingKey": "user-12345", "email": "jane@example.com", "country": "CA",
           "plan": "pro", "app": {"version": "2.4.1"}, "department": "sales"})
}

/// Median time per call of `f`, over 15 samples of `iters` calls.
fn median(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters.min(100) {
        f();
    }
    let mut samples: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn per_sec(d: Duration) -> f64 {
    1.0 / d.as_secs_f64()
}

fn row(name: &str, per_call: Duration, evals_per_call: usize) {
    let per_eval = per_call / evals_per_call as u32;
    println!(
        "{name:<48} {:>10.2} µs/call {:>9.3} µs/eval {:>12.0} evals/s",
        per_call.as_secs_f64() * 1e6,
        per_eval.as_secs_f64() * 1e6,
        per_sec(per_eval)
    );
}

/// Child mode: start, compile (or load from the cache), load, evaluate once.
fn child(mode: &str) {
    let snapshot = snapshot(1);
    let mut options = RuntimeOptions::default();
    if mode == "cache" {
        options = options.cache_dir(std::env::var("BUNTING_BENCH_CACHE").expect("cache dir"));
    }
    let runtime = WasmRuntime::locate_with(&options).expect("module");
    let mut engine = runtime.load_snapshot(&snapshot).expect("loads");
    black_box(
        engine
            .evaluate("flag-0", &context(), NOW)
            .expect("evaluates"),
    );
    if mode == "cache" {
        // Let the cache worker write the compiled module before exiting.
        std::thread::sleep(Duration::from_millis(0));
    }
}

fn start_to_first_eval(mode: &str, cache: &std::path::Path) -> Duration {
    let exe = std::env::current_exe().expect("exe");
    let mut samples: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let status = Command::new(&exe)
                .env("BUNTING_BENCH_CHILD", mode)
                .env("BUNTING_BENCH_CACHE", cache)
                .status()
                .expect("runs");
            assert!(status.success());
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[2]
}

fn main() {
    if let Ok(mode) = std::env::var("BUNTING_BENCH_CHILD") {
        child(&mode);
        return;
    }
    let ctx = context();
    let one = snapshot(1);
    let thousand = snapshot(1000);
    let native_one = Engine::from_json(&one).expect("loads");
    let native_all = Engine::from_json(&thousand).expect("loads");
    let runtime = WasmRuntime::locate().expect("build the module with `cargo xtask wasm`");
    let mut wasm_one = runtime.load_snapshot(&one).expect("loads");
    let mut wasm_all = runtime.load_snapshot(&thousand).expect("loads");
    let unbounded = WasmRuntime::locate_with(
        &RuntimeOptions::default()
            .call_budget(None)
            .load_budget(None),
    )
    .expect("module");
    let mut wasm_all_unbounded = unbounded.load_snapshot(&thousand).expect("loads");

    println!("single-threaded, medians of 15 samples\n");
    let n1 = median(20_000, || {
        black_box(native_one.evaluate(black_box("flag-0"), black_box(&ctx), NOW));
    });
    row("native: one flag", n1, 1);
    let w1 = median(5_000, || {
        black_box(
            wasm_one
                .evaluate("flag-0", black_box(&ctx), NOW)
                .expect("ok"),
        );
    });
    row("wasmtime: one flag (typed), same context", w1, 1);
    // The context prepared once and the flag found once: nothing encoded,
    // compared or looked up per call.
    let prepared = PreparedContext::new(&ctx);
    let handle = wasm_one.flag("flag-0").expect("ok").expect("exists");
    let w1p = median(5_000, || {
        black_box(
            wasm_one
                .evaluate_prepared(handle, None, black_box(&prepared), NOW)
                .expect("ok"),
        );
    });
    row("wasmtime: one flag, prepared context + handle", w1p, 1);
    // A new context each call: the module cannot reuse the last one.
    let contexts: Vec<Value> = (0..64)
        .map(|i| {
            let mut c = context();
            c["targetingKey"] = json!(format!("user-{i}"));
            c
        })
        .collect();
    let mut next = 0;
    let n1n = median(20_000, || {
        next = (next + 1) % contexts.len();
        black_box(native_one.evaluate(black_box("flag-0"), &contexts[next], NOW));
    });
    row("native: one flag, new context", n1n, 1);
    let w1n = median(5_000, || {
        next = (next + 1) % contexts.len();
        black_box(
            wasm_one
                .evaluate("flag-0", &contexts[next], NOW)
                .expect("ok"),
        );
    });
    row("wasmtime: one flag (typed), new context", w1n, 1);

    let na = median(20, || {
        black_box(native_all.evaluate_all(black_box(&ctx), NOW));
    });
    row("native: evaluate all, 1000 flags", na, 1000);
    let nas = median(20, || {
        black_box(serde_json::to_vec(&native_all.evaluate_all(black_box(&ctx), NOW)).expect("ok"));
    });
    row("native: evaluate all + serialize JSON", nas, 1000);
    let wa = median(20, || {
        black_box(wasm_all.evaluate_all(black_box(&ctx), NOW).expect("ok"));
    });
    row("wasmtime: evaluate all (typed)", wa, 1000);
    // The batch call as a caller reading its results uses it: decoded on
    // access, a few flags looked up, or every result read once.
    let wv = median(20, || {
        let all = wasm_all
            .evaluate_all_view(black_box(&ctx), NOW)
            .expect("ok");
        let e = all.find(black_box("flag-500")).expect("there");
        black_box((e.value(), e.reason()));
    });
    row("wasmtime: evaluate all (view), one looked up", wv, 1000);
    let wvi = median(20, || {
        let all = wasm_all
            .evaluate_all_view(black_box(&ctx), NOW)
            .expect("ok");
        for e in &all {
            black_box((e.key(), e.value(), e.reason()));
        }
    });
    row(
        "wasmtime: evaluate all (view), every key+value read",
        wvi,
        1000,
    );
    let prepared_all = PreparedContext::new(&ctx);
    let wap = median(20, || {
        black_box(
            wasm_all
                .evaluate_all_prepared(black_box(&prepared_all), NOW)
                .expect("ok"),
        );
    });
    row("wasmtime: evaluate all (prepared context)", wap, 1000);
    let wau = median(20, || {
        black_box(
            wasm_all_unbounded
                .evaluate_all(black_box(&ctx), NOW)
                .expect("ok"),
        );
    });
    row("wasmtime: evaluate all (typed, no epoch checks)", wau, 1000);
    let mut out = Vec::new();
    let wr = median(20, || {
        out.clear();
        wasm_all
            .evaluate_all_raw(black_box(&ctx), NOW, &mut out)
            .expect("ok");
        black_box(&out);
    });
    row("wasmtime: evaluate all (raw JSON bytes)", wr, 1000);
    let wu = median(20, || {
        out.clear();
        wasm_all_unbounded
            .evaluate_all_raw(black_box(&ctx), NOW, &mut out)
            .expect("ok");
        black_box(&out);
    });
    row("wasmtime: evaluate all (raw, no epoch checks)", wu, 1000);

    let ratio = |w: Duration, n: Duration| w.as_secs_f64() / n.as_secs_f64();
    println!();
    println!(
        "ratio wasmtime/native, one flag:                 {:.2}x",
        ratio(w1, n1)
    );
    println!(
        "ratio wasmtime/native, one flag, prepared:       {:.2}x",
        ratio(w1p, n1)
    );
    println!(
        "ratio wasmtime/native, one flag, new context:    {:.2}x",
        ratio(w1n, n1n)
    );
    println!(
        "ratio wasmtime/native, evaluate all typed:       {:.2}x",
        ratio(wa, na)
    );
    println!(
        "ratio wasmtime/native, evaluate all view:        {:.2}x",
        ratio(wv, na)
    );
    println!(
        "ratio wasmtime/native, evaluate all view, read:  {:.2}x",
        ratio(wvi, na)
    );
    println!(
        "ratio wasmtime/native, evaluate all prepared:    {:.2}x",
        ratio(wap, na)
    );
    println!(
        "ratio wasmtime/native, evaluate all raw:         {:.2}x",
        ratio(wr, na)
    );
    println!(
        "ratio wasmtime raw / native + serialize:         {:.2}x",
        ratio(wr, nas)
    );

    let cache = tempfile::tempdir().expect("temp dir");
    println!();
    let cold = start_to_first_eval("nocache", cache.path());
    println!(
        "process start -> first evaluation, no cache:     {:>8.1} ms",
        cold.as_secs_f64() * 1e3
    );
    // Fill the cache, then measure warm starts.
    let _ = start_to_first_eval("cache", cache.path());
    std::thread::sleep(Duration::from_millis(500));
    let warm = start_to_first_eval("cache", cache.path());
    println!(
        "process start -> first evaluation, warm cache:   {:>8.1} ms",
        warm.as_secs_f64() * 1e3
    );
}
