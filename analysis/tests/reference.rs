//! Every method against independent reference values computed with
//! scipy / statsmodels / numpy by `analysis/reference/generate.py` and
//! committed in `tests/fixtures/reference.json` (CI cannot run Python: the
//! fixture is the source of truth; its `versions` field says what produced it).
//!
//! Tolerance: `|rust − reference| ≤ 1e-6 · |reference| + 1e-14`. The 1e-6 is
//! the relative agreement the issue asks for; the absolute floor 1e-14 only
//! matters for reference values that are (or should be) zero, such as a
//! relative lift of exactly 0, where a relative bound is meaningless and both
//! sides carry rounding of order 1e-16.

use bunting_analysis::AnalysisError;
use bunting_analysis::bayesian::{BayesianResult, BetaPrior, beta_binomial, normal_means};
use bunting_analysis::cuped::{CupedResult, PairSums, cuped, cuped_from_sums};
use bunting_analysis::frequentist::{Interval, TestResult, two_proportion_z_test, welch_t_test};
use bunting_analysis::multiple::{holm, holm_reject};
use bunting_analysis::srm::srm_check;
use bunting_analysis::summary::{Moments, Proportion};
use serde_json::Value;

const REL: f64 = 1e-6;
const ABS_FLOOR: f64 = 1e-14;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/reference.json")).expect("fixture parses")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[track_caller]
fn close(what: &str, actual: f64, expected: f64) {
    let tol = REL * expected.abs() + ABS_FLOOR;
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:e}, reference {expected:e} (diff {:e}, tol {tol:e})",
        (actual - expected).abs()
    );
}

fn cases<'a>(fixture: &'a Value, key: &str) -> &'a [Value] {
    let list = fixture[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"));
    assert!(!list.is_empty(), "{key} has no cases");
    list
}

fn name(case: &Value) -> &str {
    case["name"].as_str().unwrap_or("?")
}

fn proportion(v: &Value) -> Proportion {
    Proportion::new(v["n"].as_u64().unwrap(), v["conversions"].as_u64().unwrap()).unwrap()
}

fn moments(v: &Value) -> Moments {
    serde_json::from_value(v.clone()).expect("valid moments")
}

fn check_interval(what: &str, actual: &Interval, expected: &Value) {
    close(
        &format!("{what} estimate"),
        actual.estimate,
        num(&expected["estimate"]),
    );
    close(&format!("{what} se"), actual.se, num(&expected["se"]));
    close(
        &format!("{what} ciLow"),
        actual.ci_low,
        num(&expected["ciLow"]),
    );
    close(
        &format!("{what} ciHigh"),
        actual.ci_high,
        num(&expected["ciHigh"]),
    );
}

fn check_test(name: &str, r: &TestResult, e: &Value) {
    close(
        &format!("{name}: controlMean"),
        r.control_mean,
        num(&e["controlMean"]),
    );
    close(
        &format!("{name}: treatmentMean"),
        r.treatment_mean,
        num(&e["treatmentMean"]),
    );
    close(
        &format!("{name}: statistic"),
        r.statistic,
        num(&e["statistic"]),
    );
    close(&format!("{name}: pValue"), r.p_value, num(&e["pValue"]));
    match (&r.df, e.get("df")) {
        (Some(df), Some(expected)) => close(&format!("{name}: df"), *df, num(expected)),
        (None, None) => {}
        other => panic!("{name}: df mismatch {other:?}"),
    }
    check_interval(&format!("{name}: absolute"), &r.absolute, &e["absolute"]);
    match (&r.relative, &e["relative"]) {
        (Some(rel), Value::Object(_)) => {
            check_interval(&format!("{name}: relative"), rel, &e["relative"])
        }
        (None, Value::Null) => {}
        other => panic!("{name}: relative lift mismatch {other:?}"),
    }
}

#[test]
fn fixture_records_the_library_versions() {
    let f = fixture();
    for lib in ["python", "numpy", "scipy", "statsmodels"] {
        assert!(f["versions"][lib].is_string(), "{lib} version missing");
    }
}

#[test]
fn two_proportion_z_test_matches_statsmodels() {
    let f = fixture();
    for case in cases(&f, "zTest") {
        let result = two_proportion_z_test(
            proportion(&case["control"]),
            proportion(&case["treatment"]),
            num(&case["alpha"]),
        );
        match case.get("error").and_then(Value::as_str) {
            Some("ZeroVariance") => {
                assert!(
                    matches!(result, Err(AnalysisError::ZeroVariance(_))),
                    "{}",
                    name(case)
                )
            }
            Some(other) => panic!("unknown expected error {other}"),
            None => check_test(name(case), &result.unwrap(), &case["expected"]),
        }
    }
}

#[test]
fn welch_t_test_matches_scipy() {
    let f = fixture();
    for case in cases(&f, "welch") {
        let (control, treatment) = (moments(&case["control"]), moments(&case["treatment"]));
        // Where the raw values are given, the Welford summary must match
        // numpy's mean and var(ddof=1) too.
        if case.get("controlValues").is_some() {
            for (key, summary) in [("controlValues", control), ("treatmentValues", treatment)] {
                let raw: Vec<f64> = case[key].as_array().unwrap().iter().map(num).collect();
                let m = Moments::from_values(&raw).unwrap();
                assert_eq!(m.n(), summary.n());
                close(
                    &format!("{}: {key} mean", name(case)),
                    m.mean(),
                    summary.mean(),
                );
                close(
                    &format!("{}: {key} variance", name(case)),
                    m.variance(),
                    summary.variance(),
                );
            }
        }
        let r = welch_t_test(control, treatment, num(&case["alpha"])).unwrap();
        check_test(name(case), &r, &case["expected"]);
    }
}

#[test]
fn beta_quantiles_match_scipy() {
    let f = fixture();
    for case in cases(&f, "betaQuantiles") {
        let prior = BetaPrior::new(num(&case["alpha"]), num(&case["beta"])).unwrap();
        // A posterior with no data is the prior itself.
        let dist = prior.update(Proportion::new(0, 0).unwrap());
        let q = dist.quantile(num(&case["p"])).unwrap();
        close(&format!("quantile {case}"), q, num(&case["quantile"]));
    }
}

fn check_bayesian(name: &str, r: &BayesianResult, e: &Value) {
    for (arm, actual) in [("control", &r.control), ("treatment", &r.treatment)] {
        close(
            &format!("{name}: {arm} mean"),
            actual.mean,
            num(&e[arm]["mean"]),
        );
        close(
            &format!("{name}: {arm} ciLow"),
            actual.ci_low,
            num(&e[arm]["ciLow"]),
        );
        close(
            &format!("{name}: {arm} ciHigh"),
            actual.ci_high,
            num(&e[arm]["ciHigh"]),
        );
    }
    close(
        &format!("{name}: P(T > C)"),
        r.prob_treatment_beats_control,
        num(&e["probTreatmentBeatsControl"]),
    );
    close(
        &format!("{name}: loss of treatment"),
        r.expected_loss_treatment,
        num(&e["expectedLossTreatment"]),
    );
    close(
        &format!("{name}: loss of control"),
        r.expected_loss_control,
        num(&e["expectedLossControl"]),
    );
    match (&r.difference, e.get("difference")) {
        (Some((low, high)), Some(expected)) => {
            close(&format!("{name}: difference low"), *low, num(&expected[0]));
            close(
                &format!("{name}: difference high"),
                *high,
                num(&expected[1]),
            );
        }
        (None, None) => {}
        other => panic!("{name}: difference mismatch {other:?}"),
    }
}

#[test]
fn beta_binomial_matches_scipy_quad() {
    let f = fixture();
    for case in cases(&f, "betaBinomial") {
        let prior: BetaPrior = serde_json::from_value(case["prior"].clone()).unwrap();
        let r = beta_binomial(
            proportion(&case["control"]),
            proportion(&case["treatment"]),
            prior,
            num(&case["alpha"]),
        )
        .unwrap();
        check_bayesian(name(case), &r, &case["expected"]);
    }
}

#[test]
fn normal_means_match_scipy() {
    let f = fixture();
    for case in cases(&f, "normalMeans") {
        let r = normal_means(
            moments(&case["control"]),
            moments(&case["treatment"]),
            num(&case["alpha"]),
        )
        .unwrap();
        check_bayesian(name(case), &r, &case["expected"]);
    }
}

#[test]
fn srm_matches_scipy_chisquare() {
    let f = fixture();
    for case in cases(&f, "srm") {
        let observed: Vec<u64> = case["observed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let weights: Vec<f64> = case["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let r = srm_check(&observed, &weights).unwrap();
        let e = &case["expected"];
        let n = name(case);
        close(
            &format!("{n}: statistic"),
            r.statistic,
            num(&e["statistic"]),
        );
        close(&format!("{n}: pValue"), r.p_value, num(&e["pValue"]));
        assert_eq!(r.df, e["df"].as_u64().unwrap(), "{n}: df");
        assert_eq!(
            Value::Bool(r.untrustworthy),
            e["untrustworthy"],
            "{n}: untrustworthy"
        );
        let expected: Vec<f64> = e["expected"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(r.expected.len(), expected.len());
        for (a, b) in r.expected.iter().zip(expected) {
            close(&format!("{n}: expected count"), *a, b);
        }
    }
}

fn check_cuped(name: &str, r: &CupedResult, e: &Value) {
    close(&format!("{name}: theta"), r.theta, num(&e["theta"]));
    close(
        &format!("{name}: covariate mean"),
        r.covariate_mean,
        num(&e["covariateMean"]),
    );
    close(
        &format!("{name}: reduction"),
        r.variance_reduction,
        num(&e["varianceReduction"]),
    );
    let arms = e["arms"].as_array().unwrap();
    assert_eq!(r.arms.len(), arms.len());
    for (i, (actual, expected)) in r.arms.iter().zip(arms).enumerate() {
        for (key, m) in [
            ("unadjusted", actual.unadjusted),
            ("adjusted", actual.adjusted),
        ] {
            assert_eq!(m.n(), expected[key]["n"].as_u64().unwrap());
            close(
                &format!("{name} arm {i}: {key} mean"),
                m.mean(),
                num(&expected[key]["mean"]),
            );
            close(
                &format!("{name} arm {i}: {key} variance"),
                m.variance(),
                num(&expected[key]["variance"]),
            );
        }
        close(
            &format!("{name} arm {i}: reduction"),
            actual.variance_reduction,
            num(&expected["varianceReduction"]),
        );
    }
}

#[test]
fn cuped_matches_numpy_from_pairs_and_from_sums() {
    let f = fixture();
    for case in cases(&f, "cuped") {
        let arms: Vec<Vec<(f64, f64)>> = case["arms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|arm| {
                arm.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (num(&p[0]), num(&p[1])))
                    .collect()
            })
            .collect();
        let slices: Vec<&[(f64, f64)]> = arms.iter().map(Vec::as_slice).collect();
        check_cuped(name(case), &cuped(&slices).unwrap(), &case["expected"]);
        let sums: Vec<PairSums> = serde_json::from_value(case["sums"].clone()).unwrap();
        check_cuped(
            &format!("{} (sums)", name(case)),
            &cuped_from_sums(&sums).unwrap(),
            &case["expected"],
        );
    }
}

#[test]
fn holm_matches_statsmodels() {
    let f = fixture();
    for case in cases(&f, "holm") {
        let p: Vec<f64> = case["pValues"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let e = &case["expected"];
        let adjusted = holm(&p).unwrap();
        let expected: Vec<f64> = e["adjusted"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(adjusted.len(), expected.len());
        for (a, b) in adjusted.iter().zip(expected) {
            close(&format!("{}: adjusted", name(case)), *a, b);
        }
        let reject: Vec<bool> = e["reject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        assert_eq!(
            holm_reject(&p, num(&case["alpha"])).unwrap(),
            reject,
            "{}",
            name(case)
        );
    }
}
