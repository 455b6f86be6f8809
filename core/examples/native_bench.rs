//! The native reference of the embedding hosts' benchmarks: evaluates one
//! flag, and every flag, of a snapshot for a list of contexts in a loop and
//! prints the median time per evaluation as JSON, so that a host's bench
//! (`hosts/node/bench/bench.mjs`, `hosts/python/bench.py`) prints its
//! ratio to native `bunting-core` on the same snapshot and contexts, in the
//! same run.
//!
//! ```text
//! cargo build --release -p bunting-core --example native_bench
//! target/release/examples/native_bench SNAPSHOT CONTEXTS FLAG NOW_MS
//! {"oneUs": 0.21, "allPerFlagUs": 0.15, "flags": 7}
//! ```
//!
//! `CONTEXTS` is a JSON array of evaluation contexts. Each figure is the
//! median of 15 rounds, each round evaluating every context once.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use bunting_core::Engine;
use serde_json::Value;

const ROUNDS: usize = 15;

fn median_us(per_round: impl Fn() -> usize) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let evaluations = per_round();
            start.elapsed().as_secs_f64() * 1e6 / evaluations as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn run(args: &[String]) -> Result<Value, String> {
    let [snapshot, contexts, flag, now] = args else {
        return Err("usage: native_bench SNAPSHOT CONTEXTS FLAG NOW_MS".into());
    };
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let engine = Engine::from_json(&read(snapshot)?).map_err(|e| format!("{snapshot}: {e}"))?;
    let contexts: Vec<Value> =
        serde_json::from_str(&read(contexts)?).map_err(|e| format!("{contexts}: {e}"))?;
    if contexts.is_empty() {
        return Err("CONTEXTS is an empty array".into());
    }
    let now: i64 = now.parse().map_err(|_| format!("NOW_MS {now:?}"))?;
    let flags = engine.flag_keys().count();
    let one = median_us(|| {
        for c in &contexts {
            black_box(engine.evaluate(flag, black_box(c), now));
        }
        contexts.len()
    });
    let all = median_us(|| {
        for c in &contexts {
            black_box(engine.evaluate_all(black_box(c), now));
        }
        contexts.len() * flags
    });
    Ok(serde_json::json!({"oneUs": one, "allPerFlagUs": all, "flags": flags}))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("native_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
