//! Simulations of the sequential test under continuous monitoring, with
//! fixed seeds: A/A false-positive rates against a naive fixed-horizon
//! z-test peeked at after every batch, A/B power, and the one-sided harm
//! mode used for guardrails. Per-look counts are drawn as binomials, so all
//! of this takes well under a second even in a debug build. Run
//! `cargo test -p bunting-analysis --test simulation -- --nocapture` to see
//! the figures (recorded in docs/analysis.md).

use std::time::Instant;

use bunting_analysis::sequential::msprt;
use bunting_analysis::sequential::{
    ArmSummary, Decision, Direction, SequentialConfig, SequentialTest,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution};
use statrs::function::erf::erfc;

const ALPHA: f64 = 0.05;
/// Φ⁻¹(0.975) and Φ⁻¹(0.95), for the naive z-tests.
const Z_TWO_SIDED: f64 = 1.959_963_984_540_054;
const Z_ONE_SIDED: f64 = 1.644_853_626_951_472_2;

fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard error of a rate estimated from `runs` runs.
fn standard_error(rate: f64, runs: usize) -> f64 {
    (rate * (1.0 - rate) / runs as f64).sqrt()
}

/// Naive two-proportion z statistic (pooled variance), treatment − control.
fn z_statistic(x_control: u64, x_treatment: u64, n: u64) -> f64 {
    let n = n as f64;
    let (pc, pt) = (x_control as f64 / n, x_treatment as f64 / n);
    let pooled = (pc + pt) / 2.0;
    let se = (pooled * (1.0 - pooled) * 2.0 / n).sqrt();
    if se > 0.0 { (pt - pc) / se } else { 0.0 }
}

#[derive(Clone, Copy)]
struct Design {
    looks: u32,
    batch: u64,
    p_control: f64,
    p_treatment: f64,
}

#[derive(Default)]
struct Tally {
    runs: usize,
    /// Sequential test rejected (any decision) at some look.
    sequential: usize,
    /// Of which in the "better" direction.
    better: usize,
    /// Sum of the looks at which the sequential test decided.
    stop_looks: u64,
    /// Naive z-test rejected at some look (peeking).
    naive_peeking: usize,
    /// Naive z-test rejected at the last look only (the fixed horizon).
    naive_final: usize,
}

impl Tally {
    fn rate(&self, count: usize) -> f64 {
        count as f64 / self.runs as f64
    }
    fn mean_stop(&self) -> f64 {
        self.stop_looks as f64 / self.sequential.max(1) as f64
    }
}

/// Runs `runs` experiments of `design`, looking after every batch with a
/// fresh `config` monitor and with a naive z-test (`naive` says whether a
/// z statistic rejects).
fn simulate(
    seed: u64,
    runs: usize,
    design: Design,
    config: SequentialConfig,
    naive: impl Fn(f64) -> bool,
) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let control = Binomial::new(design.batch, design.p_control).unwrap();
    let treatment = Binomial::new(design.batch, design.p_treatment).unwrap();
    let mut tally = Tally {
        runs,
        ..Tally::default()
    };
    for _ in 0..runs {
        let mut test = SequentialTest::new(config).unwrap();
        let (mut xc, mut xt) = (0, 0);
        let mut peeked = false;
        let mut last_z = 0.0;
        for look in 1..=design.looks {
            xc += control.sample(&mut rng);
            xt += treatment.sample(&mut rng);
            let n = design.batch * u64::from(look);
            test.update(
                &ArmSummary::proportion(xc, n).unwrap(),
                &ArmSummary::proportion(xt, n).unwrap(),
            )
            .unwrap();
            last_z = z_statistic(xc, xt, n);
            peeked |= naive(last_z);
        }
        let result = test.last().unwrap();
        if result.decision != Decision::Continue {
            tally.sequential += 1;
            tally.better += usize::from(result.decision == Decision::TreatmentBetter);
            tally.stop_looks += u64::from(result.decided_at_look.unwrap());
        }
        tally.naive_peeking += usize::from(peeked);
        tally.naive_final += usize::from(naive(last_z));
    }
    tally
}

const AA: Design = Design {
    looks: 20,
    batch: 500,
    p_control: 0.1,
    p_treatment: 0.1,
};

#[test]
fn aa_peeking_inflates_the_naive_test_but_not_the_sequential_one() {
    let start = Instant::now();
    let runs = 2_000;
    let tally = simulate(
        0x5EED_0001,
        runs,
        AA,
        SequentialConfig::default(),
        |z: f64| z.abs() > Z_TWO_SIDED,
    );
    let sequential = tally.rate(tally.sequential);
    let naive = tally.rate(tally.naive_peeking);
    let fixed = tally.rate(tally.naive_final);
    let bound = ALPHA + 3.0 * standard_error(ALPHA, runs);
    println!(
        "A/A, {runs} runs, 20 looks x 500 users/arm, p = 0.10, alpha = 0.05 (took {:?}):\n  \
         mSPRT (default tau) false-positive rate {sequential:.4} (bound {bound:.4}, mean decision look {:.1})\n  \
         naive z-test, any of 20 looks     {naive:.4}\n  \
         naive z-test, last look only      {fixed:.4}",
        start.elapsed(),
        tally.mean_stop()
    );
    assert!(sequential <= bound, "sequential FPR {sequential} > {bound}");
    assert!(
        naive > 2.0 * ALPHA,
        "naive peeking FPR {naive} not inflated"
    );
    // The fixed horizon without peeking is itself near alpha.
    let fixed_se = 3.0 * standard_error(ALPHA, runs);
    assert!(
        (fixed - ALPHA).abs() <= fixed_se,
        "fixed-horizon FPR {fixed}"
    );
}

#[test]
fn aa_holds_for_a_fixed_tau_too() {
    // τ² tuned for the final look (V = 2·0.09/10 000): narrowest late.
    let tau_squared = msprt::tau_squared_for_variance(2.0 * 0.09 / 10_000.0, ALPHA).unwrap();
    let runs = 2_000;
    let config = SequentialConfig {
        mixing: bunting_analysis::sequential::Mixing::TauSquared { tau_squared },
        ..SequentialConfig::default()
    };
    let tally = simulate(0x5EED_0002, runs, AA, config, |z: f64| {
        z.abs() > Z_TWO_SIDED
    });
    let sequential = tally.rate(tally.sequential);
    let bound = ALPHA + 3.0 * standard_error(ALPHA, runs);
    println!(
        "A/A, {runs} runs, tau^2 = {tau_squared:.3e} (optimal at the last look): mSPRT FPR {sequential:.4} (bound {bound:.4})"
    );
    assert!(sequential <= bound, "sequential FPR {sequential} > {bound}");
}

#[test]
fn ab_power_with_a_ten_percent_lift() {
    let start = Instant::now();
    let runs = 1_000;
    let design = Design {
        looks: 20,
        batch: 1_000,
        p_control: 0.10,
        p_treatment: 0.11,
    };
    let tally = simulate(
        0x5EED_0003,
        runs,
        design,
        SequentialConfig::default(),
        |z: f64| z.abs() > Z_TWO_SIDED,
    );
    let power = tally.rate(tally.sequential);
    let wrong_way = tally.sequential - tally.better;
    // A lower bound on the power: rejecting at the last look alone. There
    // n = 20 000 per arm, V = (0.09 + 0.099)/n, τ² = 0.05²·σ̂² with σ̂² the
    // pooled variance (≈ 0.105·0.895), and the test rejects when Δ̂ exceeds
    // the confidence sequence's half-width w, so P ≈ Φ((Δ − w)/√V).
    let n = 20_000.0;
    let v = (0.1 * 0.9 + 0.11 * 0.89) / n;
    let tau_squared = 0.05_f64.powi(2) * 0.105 * 0.895;
    let w = msprt::confidence_sequence_half_width(v, tau_squared, ALPHA).unwrap();
    let final_look_power = normal_cdf((0.01 - w) / v.sqrt());
    let fixed_power = tally.rate(tally.naive_final);
    println!(
        "A/B, {runs} runs, 20 looks x 1000 users/arm, 0.10 -> 0.11 (+10 %) (took {:?}):\n  \
         mSPRT power {power:.4}, mean decision look {:.2} of 20, wrong-direction decisions {wrong_way}\n  \
         analytic power of the last look alone {final_look_power:.4}\n  \
         fixed-horizon z-test at 20 000/arm (no peeking) power {fixed_power:.4}",
        start.elapsed(),
        tally.mean_stop()
    );
    let se = standard_error(power, runs);
    assert!(
        power >= final_look_power - 3.0 * se,
        "power {power} below the last-look bound {final_look_power}"
    );
    assert!(power > 0.5, "power {power}");
    assert!(tally.mean_stop() < 20.0);
    assert_eq!(wrong_way, 0);
}

#[test]
fn harm_mode_false_alarms_stay_below_alpha() {
    let start = Instant::now();
    let runs = 1_000;
    // No change at all, tolerance 0.
    let none = simulate(
        0x5EED_0004,
        runs,
        AA,
        SequentialConfig::harm(0.0, Direction::HigherIsBetter),
        |z: f64| -z > Z_ONE_SIDED,
    );
    // The worst case of the composite null: the harm is exactly the
    // tolerance (0.5 point off a 10 % rate, tolerated).
    let edge = simulate(
        0x5EED_0005,
        runs,
        Design {
            p_treatment: 0.095,
            ..AA
        },
        SequentialConfig::harm(0.005, Direction::HigherIsBetter),
        |_| false,
    );
    // Lower is better (say errors at 10 %), no change.
    let lower = simulate(
        0x5EED_0006,
        runs,
        AA,
        SequentialConfig::harm(0.0, Direction::LowerIsBetter),
        |z: f64| z > Z_ONE_SIDED,
    );
    let bound = ALPHA + 3.0 * standard_error(ALPHA, runs);
    let (a, b, c) = (
        none.rate(none.sequential),
        edge.rate(edge.sequential),
        lower.rate(lower.sequential),
    );
    println!(
        "harm mode, {runs} runs each, 20 looks x 500 users/arm, p = 0.10 (took {:?}):\n  \
         no change, tolerance 0, higher is better: false alarms {a:.4} (naive one-sided z peeking {:.4})\n  \
         harm = tolerance = 0.005 (worst null case):  false alarms {b:.4}\n  \
         no change, tolerance 0, lower is better:  false alarms {c:.4} (naive one-sided z peeking {:.4})\n  \
         bound {bound:.4}",
        start.elapsed(),
        none.rate(none.naive_peeking),
        lower.rate(lower.naive_peeking),
    );
    for rate in [a, b, c] {
        assert!(rate <= bound, "false-alarm rate {rate} > {bound}");
    }
    assert!(none.rate(none.naive_peeking) > 2.0 * ALPHA);
    assert_eq!(none.better + edge.better + lower.better, 0);
}

#[test]
fn harm_mode_detects_a_real_regression() {
    let runs = 500;
    let design = Design {
        looks: 20,
        batch: 1_000,
        p_control: 0.10,
        p_treatment: 0.09,
    };
    let tally = simulate(
        0x5EED_0007,
        runs,
        design,
        SequentialConfig::harm(0.0, Direction::HigherIsBetter),
        |z: f64| -z > Z_ONE_SIDED,
    );
    let power = tally.rate(tally.sequential);
    // Last-look lower bound as in the A/B test: reject when the harm
    // estimate exceeds d*, the distance from the estimate to its one-sided
    // lower confidence bound (independent of the estimate).
    let n = 20_000.0;
    let v = (0.1 * 0.9 + 0.09 * 0.91) / n;
    let tau_squared = 0.05_f64.powi(2) * 0.095 * 0.905;
    let d = -msprt::one_sided_lower_bound(0.0, v, tau_squared, ALPHA).unwrap();
    let final_look_power = normal_cdf((0.01 - d) / v.sqrt());
    println!(
        "harm mode, {runs} runs, 20 looks x 1000 users/arm, 0.10 -> 0.09 (-10 %): \
         detected {power:.4}, mean decision look {:.2}; last look alone {final_look_power:.4}",
        tally.mean_stop()
    );
    assert!(power >= final_look_power - 3.0 * standard_error(power, runs));
    assert!(power > 0.6, "power {power}");
}
