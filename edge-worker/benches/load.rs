//! The native cost of loading a new version of the edge benchmark's
//! 1,000-flag snapshot (`tests/edge/bench-data.mjs`), step by step, as
//! `cache::SnapshotCache::apply` does it: the KV bytes' UTF-8 check, the
//! text's fingerprint, the parse, validation and compilation, the number
//! forms, the clock, dropping the parsed document and the replaced
//! snapshot. Prints medians of 40 loads; a bench binary, not a test.
//!
//! Then the same load from the packed form of each text
//! (`bunting_core::packed`): reading it against the JSON parse, the whole
//! load (parse or read, compile, number forms, clock, drop) from either
//! form, unsealed and sealed (a `checksum` to verify, as the origin
//! publishes), the whole `cache.apply` of a sealed JSON value against a
//! sealed packed one (which carries the JSON text, copied out to serve
//! `/sdk/v1/snapshot`), and the sizes of both forms; and the read and load
//! of the packed format's version 1 (condition texts parsed at load)
//! beside version 2's (conditions precompiled). `LOAD_DUMP=<dir>` writes the
//! first text and its packed form there (`snapshot.json`,
//! `snapshot.packed`), to measure their compressed sizes.
//!
//! ```sh
//! cargo bench -p bunting-edge-worker --bench load
//! ```

mod common;

use bunting_core::packed::{FORMAT_VERSION_1, pack_as, pack_with_document};
use bunting_core::snapshot::{parse_json, seal};
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
    cache.apply("bench", Ok(Some(texts[0].clone().into_bytes())), 0);
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
        let clock = Clock::of(&parsed, &engine);
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
        cache.apply("bench", Ok(Some(text.into_bytes())), 0);
        apply.push(a.elapsed());
        if repeat > 1 {
            cache = SnapshotCache::default();
        }
    }
    for (n, v) in steps {
        println!("{n:>14}: median {:?}", median(v));
    }
    println!("{:>14}: median {:?}", "cache.apply", median(apply));
    packed(&texts[1..]);
}

/// The whole load of one parsed snapshot, as `cache::load` does it.
fn load_parsed(parsed: ParsedSnapshot<'_>) {
    let (engine, problems) = Engine::from_parsed_lenient(&parsed);
    let numbers = NumberForms::of(&parsed);
    let clock = Clock::of(&parsed, &engine);
    drop(parsed);
    std::hint::black_box((&engine, &numbers, &clock, &problems));
}

/// The JSON and packed forms of `texts` side by side: the read, the
/// whole load, unsealed and sealed, and the sizes.
fn packed(texts: &[String]) {
    let sealed: Vec<String> = texts
        .iter()
        .map(|t| {
            let mut s = parse_json(t).unwrap();
            seal(&mut s);
            serde_json::to_string(&s).unwrap()
        })
        .collect();
    let mut pack_times = Vec::new();
    let mut packs = |texts: &[String]| -> Vec<Vec<u8>> {
        texts
            .iter()
            .map(|t| {
                let parsed = ParsedSnapshot::parse(t).unwrap();
                let a = Instant::now();
                let bytes = pack_with_document(&parsed, t).unwrap();
                pack_times.push(a.elapsed());
                bytes
            })
            .collect()
    };
    let packed = packs(texts);
    let packed_sealed = packs(&sealed);
    // Format version 1 (condition texts, parsed at load), for comparison.
    let v1_sealed: Vec<Vec<u8>> = sealed
        .iter()
        .map(|t| {
            pack_as(
                &ParsedSnapshot::parse(t).unwrap(),
                Some(t),
                FORMAT_VERSION_1,
            )
            .unwrap()
        })
        .collect();
    println!(
        "sizes: json {} bytes, packed {} bytes ({} without its document); \
         sealed: json {} bytes, packed {} bytes ({} without)",
        texts[0].len(),
        packed[0].len(),
        packed[0].len() - texts[0].len(),
        sealed[0].len(),
        packed_sealed[0].len(),
        packed_sealed[0].len() - sealed[0].len()
    );
    if let Ok(dir) = std::env::var("LOAD_DUMP") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("snapshot.json"), &texts[0]).unwrap();
        std::fs::write(dir.join("snapshot.packed"), &packed[0]).unwrap();
    }
    let names = [
        "parse json",
        "read packed",
        "load json",
        "load packed",
        "load json, sealed",
        "load packed, sealed",
        "cache.apply json, sealed",
        "cache.apply packed, sealed",
        "read packed v1, sealed",
        "load packed v1, sealed",
    ];
    let (mut json_cache, mut packed_cache) = (SnapshotCache::default(), SnapshotCache::default());
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for i in 0..texts.len() {
        let a = Instant::now();
        std::hint::black_box(ParsedSnapshot::parse(&texts[i]).unwrap());
        times[0].push(a.elapsed());
        let a = Instant::now();
        std::hint::black_box(ParsedSnapshot::from_packed(&packed[i]).unwrap());
        times[1].push(a.elapsed());
        let a = Instant::now();
        load_parsed(ParsedSnapshot::parse(&texts[i]).unwrap());
        times[2].push(a.elapsed());
        let a = Instant::now();
        load_parsed(ParsedSnapshot::from_packed(&packed[i]).unwrap());
        times[3].push(a.elapsed());
        let a = Instant::now();
        load_parsed(ParsedSnapshot::parse(&sealed[i]).unwrap());
        times[4].push(a.elapsed());
        let a = Instant::now();
        load_parsed(ParsedSnapshot::from_packed(&packed_sealed[i]).unwrap());
        times[5].push(a.elapsed());
        let bytes = sealed[i].clone().into_bytes();
        let a = Instant::now();
        json_cache.apply("bench", Ok(Some(bytes)), 0);
        times[6].push(a.elapsed());
        let bytes = packed_sealed[i].clone();
        let a = Instant::now();
        packed_cache.apply("bench", Ok(Some(bytes)), 0);
        times[7].push(a.elapsed());
        let a = Instant::now();
        std::hint::black_box(ParsedSnapshot::from_packed(&v1_sealed[i]).unwrap());
        times[8].push(a.elapsed());
        let a = Instant::now();
        load_parsed(ParsedSnapshot::from_packed(&v1_sealed[i]).unwrap());
        times[9].push(a.elapsed());
    }
    for cache in [&json_cache, &packed_cache] {
        let health = cache.health(0);
        assert_eq!(health["bench"]["lastError"], serde_json::Value::Null);
        assert_eq!(health["bench"]["version"], texts.len() + 1);
    }
    for (n, v) in names.iter().zip(times) {
        println!("{n:>26}: median {:?}", median(v));
    }
    println!("{:>26}: median {:?}", "pack (origin)", median(pack_times));
}
