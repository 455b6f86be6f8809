//! Bucketing quality: uniformity, sticky ramps and minimal movement, through
//! the public engine and bucketer.

use bunting_core::bucket::{BUCKETS, Bucketer};
use bunting_core::{Engine, Reason};
use serde_json::json;

/// Upper-tail standard-normal quantile for the Wilson–Hilferty transform.
fn wilson_hilferty_z(chi2: f64, df: f64) -> f64 {
    let t = 2.0 / (9.0 * df);
    ((chi2 / df).powf(1.0 / 3.0) - (1.0 - t)) / t.sqrt()
}

fn chi_square(counts: &[u64], n: u64) -> f64 {
    let expected = n as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn a_million_ids_fill_the_buckets_uniformly() {
    let b = Bucketer::new("uniformity");
    let n = 1_000_000u64;
    let mut fine = vec![0u64; BUCKETS as usize];
    let mut percentiles = vec![0u64; 100];
    for i in 0..n {
        let x = b.bucket(&format!("user-{i}"));
        fine[x as usize] += 1;
        percentiles[(x / 1000) as usize] += 1;
    }
    // 99,999 and 99 degrees of freedom; reject at α = 0.001 (z > 3.09).
    let z_fine = wilson_hilferty_z(chi_square(&fine, n), f64::from(BUCKETS - 1));
    let z_pct = wilson_hilferty_z(chi_square(&percentiles, n), 99.0);
    assert!(z_fine < 3.09, "100,000 buckets not uniform: z = {z_fine}");
    assert!(z_pct < 3.09, "percentiles not uniform: z = {z_pct}");
    // And not suspiciously perfect (a counter would pass the upper test).
    assert!(z_pct > -3.09, "percentiles too even: z = {z_pct}");
}

fn snapshot(weights: &[(&str, f64)]) -> Engine {
    let rollout: Vec<_> = weights
        .iter()
        .map(|(v, w)| json!({"variant": v, "weight": w}))
        .collect();
    let doc = json!({
        "schemaVersion": 1, "environment": "test", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "flags": [{"key": "exp", "type": "string",
                   "variants": {"a": "a", "b": "b", "c": "c", "on": "on", "off": "off"},
                   "offVariant": "off", "fallthrough": {"rollout": rollout}}]
    });
    Engine::from_json(&doc.to_string()).expect("valid")
}

fn assignments(engine: &Engine, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let r = engine.evaluate("exp", &json!({"targetingKey": format!("u{i}")}), 0);
            assert_eq!(r.reason, Reason::Split);
            r.variant.unwrap().into_owned()
        })
        .collect()
}

#[test]
fn ramping_ten_to_twenty_percent_keeps_everybody_who_was_in() {
    let n = 100_000;
    let at10 = assignments(&snapshot(&[("on", 10.0), ("off", 90.0)]), n);
    let at20 = assignments(&snapshot(&[("on", 20.0), ("off", 80.0)]), n);
    let was_in = at10.iter().filter(|v| *v == "on").count();
    let kicked_out = at10
        .iter()
        .zip(&at20)
        .filter(|(a, b)| *a == "on" && *b != "on")
        .count();
    let now_in = at20.iter().filter(|v| *v == "on").count();
    assert_eq!(kicked_out, 0);
    assert!((9_000..11_000).contains(&was_in), "{was_in}");
    assert!((19_000..21_000).contains(&now_in), "{now_in}");
}

#[test]
fn shifting_weight_moves_only_the_shifted_share() {
    let n = 100_000;
    let before = assignments(&snapshot(&[("a", 50.0), ("b", 50.0)]), n);
    let after = assignments(&snapshot(&[("a", 60.0), ("b", 40.0)]), n);
    let moved: Vec<_> = before.iter().zip(&after).filter(|(x, y)| x != y).collect();
    // Only b → a moves, and about 10% of users: the minimum for 50/50 → 60/40.
    assert!(moved.iter().all(|(x, y)| *x == "b" && *y == "a"));
    assert!((9_000..11_000).contains(&moved.len()), "{}", moved.len());
}

#[test]
fn three_way_split_matches_weights() {
    let n = 60_000;
    let got = assignments(&snapshot(&[("a", 20.0), ("b", 30.0), ("c", 50.0)]), n);
    for (v, w) in [("a", 0.2), ("b", 0.3), ("c", 0.5)] {
        let share = got.iter().filter(|x| *x == v).count() as f64 / n as f64;
        assert!((share - w).abs() < 0.01, "{v}: {share}");
    }
}
