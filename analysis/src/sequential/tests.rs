use super::*;

fn prop(successes: u64, count: u64) -> ArmSummary {
    ArmSummary::proportion(successes, count).unwrap()
}

fn fixed(tau_squared: f64) -> SequentialConfig {
    SequentialConfig {
        mixing: Mixing::TauSquared { tau_squared },
        ..SequentialConfig::default()
    }
}

#[test]
fn invalid_configurations_are_rejected() {
    let bad = [
        SequentialConfig {
            alpha: 0.0,
            ..SequentialConfig::default()
        },
        SequentialConfig {
            alpha: f64::NAN,
            ..SequentialConfig::default()
        },
        fixed(0.0),
        fixed(f64::INFINITY),
        SequentialConfig {
            mixing: Mixing::StandardizedEffect { effect_size: -1.0 },
            ..SequentialConfig::default()
        },
        SequentialConfig::harm(-0.1, Direction::HigherIsBetter),
        SequentialConfig::harm(f64::NAN, Direction::HigherIsBetter),
        SequentialConfig {
            min_samples_per_arm: 1,
            ..SequentialConfig::default()
        },
    ];
    for config in bad {
        assert!(SequentialTest::new(config).is_err(), "{config:?}");
    }
}

#[test]
fn bad_summaries_are_errors_and_leave_the_state_alone() {
    let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
    test.update(&prop(100, 1000), &prop(120, 1000)).unwrap();
    let before = test.clone();
    let err = test.update(&prop(50, 500), &prop(240, 2000)).unwrap_err();
    assert_eq!(
        err,
        SequentialError::CountDecreased {
            arm: "control",
            previous: 1000,
            current: 500
        }
    );
    let nan = ArmSummary {
        count: 2000,
        mean: f64::NAN,
        variance: 0.1,
    };
    assert!(test.update(&prop(200, 2000), &nan).is_err());
    let negative = ArmSummary {
        count: 2000,
        mean: 0.1,
        variance: -0.1,
    };
    assert!(matches!(
        test.update(&negative, &prop(200, 2000)),
        Err(SequentialError::NegativeVariance("control", _))
    ));
    assert_eq!(test, before);
    assert!(ArmSummary::moments(10, f64::INFINITY, 1.0).is_err());
    assert!(ArmSummary::from_sums(3, 6.0, 1.0).is_err());
    assert!(ArmSummary::from_sums(3, f64::NAN, 1.0).is_err());
    assert_eq!(ArmSummary::from_sums(0, 0.0, 0.0).unwrap().count, 0);
    assert_eq!(ArmSummary::from_sums(1, 5.0, 25.0).unwrap().variance, 0.0);
}

#[test]
fn early_and_degenerate_looks_are_not_informative() {
    let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
    let empty = test.update(&prop(0, 0), &prop(0, 0)).unwrap();
    assert!(!empty.informative);
    assert_eq!(empty.estimate, None);
    assert_eq!(empty.p_value, 1.0);
    assert_eq!(empty.interval, Some(Interval::default()));
    // Below the minimum sample: estimate shown, nothing tested, even if huge.
    let small = test.update(&prop(0, 50), &prop(50, 50)).unwrap();
    assert!(!small.informative);
    assert_eq!(small.estimate, Some(1.0));
    assert_eq!(small.decision, Decision::Continue);
    // Zero variance in both arms: no τ², nothing tested.
    let zero = test.update(&prop(0, 200), &prop(0, 200)).unwrap();
    assert!(!zero.informative);
    assert_eq!(zero.tau_squared, None);
    // First data with variance fixes τ² for good.
    let first = test.update(&prop(10, 400), &prop(12, 400)).unwrap();
    assert!(first.informative);
    let tau2 = first.tau_squared.unwrap();
    let pooled = (0.025 * 0.975 + 0.03 * 0.97) / 2.0;
    assert!((tau2 - 0.0025 * pooled).abs() < 1e-15);
    let later = test.update(&prop(100, 4000), &prop(300, 4000)).unwrap();
    assert_eq!(later.tau_squared, Some(tau2));
}

#[test]
fn p_value_is_a_running_minimum_and_the_interval_only_shrinks() {
    let mut test = SequentialTest::new(fixed(1e-4)).unwrap();
    let looks = [(100, 110), (200, 240), (300, 330), (400, 420), (500, 560)];
    let mut previous: Option<SequentialResult> = None;
    for (i, (c, t)) in looks.into_iter().enumerate() {
        let n = 1000 * (i as u64 + 1);
        let result = test.update(&prop(c, n), &prop(t, n)).unwrap();
        let ln_lr = result.log_likelihood_ratio.unwrap();
        assert!(result.p_value <= msprt::p_value(ln_lr));
        let interval = result.interval.unwrap();
        if let Some(prev) = previous {
            assert!(result.p_value <= prev.p_value);
            let old = prev.interval.unwrap();
            assert!(interval.lower.unwrap() >= old.lower.unwrap());
            assert!(interval.upper.unwrap() <= old.upper.unwrap());
        }
        // Consistency: rejected exactly when 0 has left the interval.
        assert_eq!(result.p_value <= 0.05, !interval.contains(0.0));
        previous = Some(result);
    }
    assert_eq!(test.last(), previous.as_ref());
}

#[test]
fn decisions_follow_direction_and_are_final() {
    for (direction, expected) in [
        (Direction::HigherIsBetter, Decision::TreatmentWorse),
        (Direction::LowerIsBetter, Decision::TreatmentBetter),
    ] {
        let mut test = SequentialTest::new(SequentialConfig {
            direction,
            ..fixed(1e-4)
        })
        .unwrap();
        let result = test
            .update(&prop(1000, 10_000), &prop(700, 10_000))
            .unwrap();
        assert_eq!(result.decision, expected);
        assert_eq!(result.decided_at_look, Some(1));
        // The effect reverses sharply: decision stays, the interval empties.
        let after = test
            .update(&prop(1000, 20_000), &prop(2300, 20_000))
            .unwrap();
        assert_eq!(after.decision, expected);
        assert_eq!(after.decided_at_look, Some(1));
        assert_eq!(after.interval, None);
        assert!(after.p_value < 1e-6);
    }
}

#[test]
fn harm_mode_ignores_improvements_and_respects_the_tolerance() {
    let mut test = SequentialTest::new(SequentialConfig {
        mixing: Mixing::TauSquared { tau_squared: 1e-4 },
        ..SequentialConfig::harm(0.0, Direction::HigherIsBetter)
    })
    .unwrap();
    // A large improvement is no harm.
    let better = test
        .update(&prop(1000, 10_000), &prop(1500, 10_000))
        .unwrap();
    assert_eq!(better.decision, Decision::Continue);
    assert!(better.p_value > 0.5);
    let interval = better.interval.unwrap();
    assert_eq!(interval.lower, None);
    assert!(interval.upper.unwrap() > 0.04);

    // A drop of 1 point against a tolerance of 2 points: no alarm, however sure.
    let mut tolerant = SequentialTest::new(SequentialConfig {
        mixing: Mixing::TauSquared { tau_squared: 1e-4 },
        ..SequentialConfig::harm(0.02, Direction::HigherIsBetter)
    })
    .unwrap();
    let small = tolerant
        .update(&prop(10_000, 100_000), &prop(9_000, 100_000))
        .unwrap();
    assert_eq!(small.decision, Decision::Continue);
    let upper = small.interval.unwrap().upper.unwrap();
    assert!(upper < 0.0 && upper > -0.02, "{upper}");
    // A drop of 4 points is beyond it.
    let big = tolerant
        .update(&prop(20_000, 200_000), &prop(14_000, 200_000))
        .unwrap();
    assert_eq!(big.decision, Decision::TreatmentWorse);
    assert!(big.interval.unwrap().upper.unwrap() < -0.02);
}

#[test]
fn results_and_state_serialize_in_camel_case() {
    let mut test =
        SequentialTest::new(SequentialConfig::harm(0.01, Direction::LowerIsBetter)).unwrap();
    let result = test.update(&prop(100, 1000), &prop(130, 1000)).unwrap();
    let json = serde_json::to_value(result).unwrap();
    for key in [
        "look",
        "informative",
        "estimate",
        "variance",
        "tauSquared",
        "logLikelihoodRatio",
        "pValue",
        "interval",
        "decision",
        "decidedAtLook",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    assert_eq!(json["decision"], "continue");
    assert!(json["interval"]["upper"].is_null());

    let state = serde_json::to_string(&test).unwrap();
    assert!(state.contains("\"minSamplesPerArm\":100"));
    assert!(state.contains("\"kind\":\"harm\""));
    assert!(state.contains("\"kind\":\"standardizedEffect\",\"effectSize\":0.05"));
    let mut restored: SequentialTest = serde_json::from_str(&state).unwrap();
    assert_eq!(restored, test);
    let a = test.update(&prop(200, 2000), &prop(290, 2000)).unwrap();
    let b = restored.update(&prop(200, 2000), &prop(290, 2000)).unwrap();
    assert_eq!(a, b);

    // A tampered state is an error, not a panic.
    let tampered = state.replace("\"alpha\":0.05", "\"alpha\":7.0");
    let mut bad: SequentialTest = serde_json::from_str(&tampered).unwrap();
    assert_eq!(
        bad.update(&prop(300, 3000), &prop(300, 3000)),
        Err(SequentialError::InvalidAlpha(7.0))
    );
}
