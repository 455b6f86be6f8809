//! The native cost of loading a new version of the edge benchmark's
//! 1,000-flag snapshot (`tests/edge/bench-data.mjs`), step by step, as
//! `cache::SnapshotCache::apply` does it: the KV bytes' UTF-8 check, the
//! text's fingerprint, the parse, validation and compilation, the number
//! forms, the clock, dropping the parsed document and the replaced
//! snapshot. Prints medians of 40 loads; a bench binary, not a test.
//!
//! ```sh
//! cargo bench -p bunting-edge-worker --bench load
//! ```

mod common;

use bunting_core::{Engine, ParsedSnapshot};
use bunting_edge_worker::answers::Clock;
use bunting_edge_worker::cache::{SnapshotCache, text_from_kv_bytes};
use bunting_edge_worker::ofrep::NumberForms;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    const N: usize = 40;
    let texts: Vec<String> = (1..=N as u64 + 1)
        .map(|v| common::snapshot("bench", v))
        .collect();
    println!("snapshot: {} bytes", texts[0].len());
    let mut steps: Vec<(&str, Vec<Duration>)> = [
        "utf-8 check",
        "fingerprint",
        "parse",
        "compile",
        "number forms",
        "clock",
        "drop parsed",
        "drop engine",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    let mut apply = Vec::new();
    let mut cache = SnapshotCache::default();
    cache.apply("bench", Ok(Some(texts[0].clone())), 0);
    // LOAD_REPEAT: load each text more times (under a profiler).
    let repeat: usize = std::env::var("LOAD_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for text in texts[1..]
        .iter()
        .flat_map(|t| std::iter::repeat_n(t, repeat))
    {
        let bytes = text.clone().into_bytes();
        let mut t = vec![Instant::now()];
        let text = text_from_kv_bytes(bytes);
        t.push(Instant::now());
        std::hint::black_box(foldhash::quality::FixedState::with_seed(1).hash_one(&text));
        t.push(Instant::now());
        let parsed = ParsedSnapshot::parse(&text).unwrap();
        t.push(Instant::now());
        let (engine, problems) = Engine::from_parsed_lenient(&parsed);
        t.push(Instant::now());
        let numbers = NumberForms::of(&parsed);
        t.push(Instant::now());
        let clock = Clock::of(&parsed);
        t.push(Instant::now());
        drop(parsed);
        t.push(Instant::now());
        std::hint::black_box((&numbers, &clock, &problems));
        drop(engine);
        t.push(Instant::now());
        for (i, (_, v)) in steps.iter_mut().enumerate() {
            v.push(t[i + 1] - t[i]);
        }
        // The whole of it, through the cache (replacing the served one).
        let a = Instant::now();
        cache.apply("bench", Ok(Some(text)), 0);
        apply.push(a.elapsed());
        if repeat > 1 {
            cache = SnapshotCache::default();
        }
    }
    for (n, v) in steps {
        println!("{n:>14}: median {:?}", median(v));
    }
    println!("{:>14}: median {:?}", "cache.apply", median(apply));
}
