//! bunting_analysis::sequential against independent reference values:
//! `tests/fixtures/sequential.json`, computed with mpmath at 50 digits by
//! `analysis/reference/sequential.py` (regenerate with
//! `python3 analysis/reference/sequential.py > analysis/tests/fixtures/sequential.json`).
//! Everything must agree to 1e-9 relative.

use bunting_analysis::sequential::msprt;
use bunting_analysis::sequential::{
    ArmSummary, Decision, Direction, Hypothesis, Mixing, SequentialConfig, SequentialTest,
};
use serde_json::Value;

const FIXTURE: &str = include_str!("fixtures/sequential.json");

fn assert_close(what: &str, actual: f64, expected: f64) {
    let tolerance = 1e-9 * actual.abs().max(expected.abs()) + 1e-300;
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs reference {expected} (difference {})",
        (actual - expected).abs()
    );
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn single_look_statistics_match_the_reference() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let (est, v, tau2, alpha, null) = (
            num(case, "estimate"),
            num(case, "variance"),
            num(case, "tauSquared"),
            num(case, "alpha"),
            num(case, "nullValue"),
        );
        let two = msprt::log_likelihood_ratio(est, v, tau2, null).unwrap();
        assert_close("ln Λ", two, num(case, "logLikelihoodRatio"));
        assert_close("p", msprt::p_value(two), num(case, "pValue"));
        assert_close(
            "half-width",
            msprt::confidence_sequence_half_width(v, tau2, alpha).unwrap(),
            num(case, "halfWidth"),
        );
        let one = msprt::one_sided_log_likelihood_ratio(est, v, tau2, null).unwrap();
        assert_close("ln Λ⁺", one, num(case, "oneSidedLogLikelihoodRatio"));
        assert_close("p⁺", msprt::p_value(one), num(case, "oneSidedPValue"));
        assert_close(
            "one-sided lower bound",
            msprt::one_sided_lower_bound(est, v, tau2, alpha).unwrap(),
            num(case, "oneSidedLowerBound"),
        );
    }
    for row in fixture["optimalMixingRatio"].as_array().unwrap() {
        assert_close(
            "r*",
            msprt::optimal_mixing_ratio(num(row, "alpha")).unwrap(),
            num(row, "ratio"),
        );
    }
}

#[test]
fn monitors_replay_the_reference() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let monitors = fixture["monitors"].as_array().unwrap();
    assert_eq!(monitors.len(), 3);
    let mut decisions = Vec::new();
    for monitor in monitors {
        let name = monitor["name"].as_str().unwrap();
        let config = SequentialConfig {
            alpha: num(monitor, "alpha"),
            mixing: Mixing::TauSquared {
                tau_squared: num(monitor, "tauSquared"),
            },
            hypothesis: serde_json::from_value::<Hypothesis>(monitor["hypothesis"].clone())
                .unwrap(),
            direction: serde_json::from_value::<Direction>(monitor["direction"].clone()).unwrap(),
            min_samples_per_arm: 100,
        };
        let mut test = SequentialTest::new(config).unwrap();
        let looks = monitor["looks"].as_array().unwrap();
        let expected = monitor["results"].as_array().unwrap();
        assert_eq!(looks.len(), expected.len());
        for (i, (look, want)) in looks.iter().zip(expected).enumerate() {
            let l: Vec<u64> = look
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            let got = test
                .update(
                    &ArmSummary::proportion(l[0], l[1]).unwrap(),
                    &ArmSummary::proportion(l[2], l[3]).unwrap(),
                )
                .unwrap();
            let at = format!("{name}, look {}", i + 1);
            assert_eq!(got.look as usize, i + 1);
            assert_eq!(
                got.informative,
                want["informative"].as_bool().unwrap(),
                "{at}"
            );
            assert_close(&at, got.estimate.unwrap(), num(want, "estimate"));
            assert_close(&at, got.variance.unwrap(), num(want, "variance"));
            match want["logLikelihoodRatio"].as_f64() {
                Some(x) => assert_close(&at, got.log_likelihood_ratio.unwrap(), x),
                None => assert_eq!(got.log_likelihood_ratio, None, "{at}"),
            }
            assert_close(&at, got.p_value, num(want, "pValue"));
            let interval = got.interval.unwrap();
            for (end, key) in [(interval.lower, "lower"), (interval.upper, "upper")] {
                match want[key].as_f64() {
                    Some(x) => assert_close(&format!("{at} {key}"), end.unwrap(), x),
                    None => assert_eq!(end, None, "{at} {key}"),
                }
            }
            let decision: Decision = serde_json::from_value(want["decision"].clone()).unwrap();
            assert_eq!(got.decision, decision, "{at}");
            assert_eq!(
                got.decided_at_look.map(u64::from),
                want["decidedAtLook"].as_u64(),
                "{at}"
            );
        }
        decisions.push(test.last().unwrap().decision);
    }
    // The fixture exercises both outcomes.
    assert!(decisions.contains(&Decision::Continue));
    assert!(decisions.contains(&Decision::TreatmentBetter));
    assert!(decisions.contains(&Decision::TreatmentWorse));
}
