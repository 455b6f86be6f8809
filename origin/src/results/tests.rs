//! Results assembled from hand-built aggregates, checked against direct
//! computations and the reference values of `docs/analysis.md`.

use super::*;
use crate::model::experiment::{ExperimentSpec, ExperimentStatus};
use crate::store::aggregate::{ArmData, DailyPoint, MetricAgg};

#[test]
fn ratio_delta_matches_a_direct_computation() {
    // Users (y, d): (1, 2), (3, 2), (2, 4), (6, 4).
    let users = [(1.0, 2.0), (3.0, 2.0), (2.0, 4.0), (6.0, 4.0)];
    let s = |f: &dyn Fn(f64, f64) -> f64| users.iter().map(|&(y, d)| f(y, d)).sum::<f64>();
    let (r, v) = ratio_delta(
        4,
        s(&|y, _| y),
        s(&|y, _| y * y),
        s(&|_, d| d),
        s(&|_, d| d * d),
        s(&|y, d| y * d),
    )
    .unwrap();
    assert!((r - 1.0).abs() < 1e-12, "{r}");
    // Linearization: residuals y − R·d = (-1, 1, -2, 2), their sample
    // variance 10/3, divided by n·d̄² = 4·9.
    assert!((v - (10.0 / 3.0) / 36.0).abs() < 1e-12, "{v}");
    assert!(ratio_delta(1, 1.0, 1.0, 1.0, 1.0, 1.0).is_none());
    assert!(ratio_delta(5, 1.0, 1.0, 0.0, 0.0, 0.0).is_none());
}

fn experiment(allocation: &[(&str, f64)]) -> ExperimentRecord {
    let mut spec = ExperimentSpec::new("x", "f", "off", "conv");
    spec.allocation = allocation
        .iter()
        .map(|(k, w)| (k.to_string(), *w))
        .collect();
    ExperimentRecord {
        id: 1,
        environment_id: 1,
        spec,
        status: ExperimentStatus::Running,
        started_at: None,
        stopped_at: None,
        decision: None,
        version: 1,
    }
}

fn arm(v: &str, users: u64, conversions: u64) -> ArmData {
    ArmData {
        variant: v.into(),
        users,
        metrics: [(
            "conv".to_string(),
            MetricAgg {
                n: users,
                sum: conversions as f64,
                sum_sq: conversions as f64,
                conversions: Some(conversions),
                ..MetricAgg::default()
            },
        )]
        .into(),
    }
}

fn data(arms: Vec<ArmData>, multi_arm_users: u64, series: Vec<DailyPoint>) -> ExperimentData {
    ExperimentData {
        environment: "acme/web/production".into(),
        arms,
        multi_arm_users,
        series,
        from_ms: None,
        until_ms: None,
    }
}

fn day(date: &str, arms: &[(&str, u64, f64)]) -> DailyPoint {
    DailyPoint {
        day: date.into(),
        arms: arms
            .iter()
            .map(|(v, users, sum)| {
                (
                    v.to_string(),
                    crate::store::aggregate::DailyArm {
                        users: *users,
                        sum: *sum,
                        // Conversions: y ∈ {0, 1}, so Σ y² = Σ y.
                        sum_sq: *sum,
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn conversions_srm_holm_and_csv() {
    let x = experiment(&[]);
    let metrics = [MetricSpec::conversion("conv", "purchase")];
    let d = data(
        vec![
            arm("on", 5000, 650),
            arm("off", 5000, 500),
            arm("b", 5000, 505),
        ],
        12,
        vec![day(
            "2026-11-24",
            &[
                ("off", 2500, 250.0),
                ("on", 2500, 320.0),
                ("b", 2500, 250.0),
            ],
        )],
    );
    let r = assemble(&Input {
        experiment: &x,
        metrics: &metrics,
        data: &d,
    });
    assert_eq!(r.arms[0].variant, "off", "control first");
    assert!(!r.untrustworthy);
    assert!(r.srm.as_ref().unwrap().p_value > 0.5);
    assert!(r.warnings.iter().any(|w| w.contains("more than one arm")));
    let m = &r.metrics[0];
    assert_eq!(m.role, MetricRole::Primary);
    let on = m.arms.iter().find(|a| a.variant == "on").unwrap();
    let c = on.comparison.as_ref().unwrap();
    assert!((on.value.unwrap() - 0.13).abs() < 1e-12);
    assert!((c.absolute.estimate - 0.03).abs() < 1e-12);
    assert!(c.p_value < 1e-4);
    let holm = c.p_value_holm.unwrap();
    assert!(holm >= c.p_value && holm <= 1.0);
    assert!(c.chance_to_beat_control.unwrap() > 0.99);
    let s = c.sequential.as_ref().unwrap();
    assert_eq!(s.looks, 2);
    assert!((0.0..=1.0).contains(&s.p_value));
    assert!(s.p_value >= c.p_value, "always-valid p is larger");
    assert_eq!(r.series.len(), 1);
    assert!(r.series[0].arms[1].relative.unwrap().estimate > 0.2);

    let csv = to_csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with("conv,conversion,primary,off,5000,0.1,500,"));
    let cols = CSV_HEADER.split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == cols));

    let table = to_table(&r);
    assert!(table.contains("SRM: chi-square"), "{table}");
    assert!(table.contains("+30.00% ["), "{table}");
}

#[test]
fn skewed_allocation_is_untrustworthy() {
    let x = experiment(&[("off", 50.0), ("on", 50.0)]);
    let metrics = [MetricSpec::conversion("conv", "purchase")];
    let d = data(vec![arm("off", 5300, 500), arm("on", 4700, 470)], 0, vec![]);
    let input = Input {
        experiment: &x,
        metrics: &metrics,
        data: &d,
    };
    let r = assemble(&input);
    assert!(r.untrustworthy);
    assert!(r.warnings[0].starts_with("SAMPLE RATIO MISMATCH"));
    assert!(to_table(&r).contains("UNTRUSTWORTHY"));
    // The same counts match a 53/47 plan.
    let x = experiment(&[("off", 53.0), ("on", 47.0)]);
    let r = assemble(&Input {
        experiment: &x,
        ..input
    });
    assert!(!r.untrustworthy, "{:?}", r.warnings);
}

#[test]
fn means_cuped_and_ratios() {
    let mut x = experiment(&[]);
    x.spec.primary_metric = "rev".into();
    let mut rev = MetricSpec::conversion("rev", "purchase");
    rev.kind = MetricKind::Mean;
    let mut rpc = MetricSpec::conversion("rpc", "purchase");
    rpc.kind = MetricKind::Ratio;
    rpc.denominator_event = Some("click".into());
    // Per user: y = x + noise; treatment adds 1 to y.
    let make = |v: &str, shift: f64| {
        let mut a = MetricAgg {
            pre_sum: Some(0.0),
            pre_sum_sq: Some(0.0),
            pre_cross: Some(0.0),
            ..MetricAgg::default()
        };
        let mut r = MetricAgg {
            den_sum: Some(0.0),
            den_sum_sq: Some(0.0),
            cross_sum: Some(0.0),
            ..MetricAgg::default()
        };
        for i in 0..400 {
            let pre = (i % 20) as f64;
            let y = pre + shift + ((i * 7) % 5) as f64 * 0.5;
            a.n += 1;
            a.sum += y;
            a.sum_sq += y * y;
            *a.pre_sum.as_mut().unwrap() += pre;
            *a.pre_sum_sq.as_mut().unwrap() += pre * pre;
            *a.pre_cross.as_mut().unwrap() += pre * y;
            let d = 1.0 + (i % 3) as f64;
            r.n += 1;
            r.sum += y;
            r.sum_sq += y * y;
            *r.den_sum.as_mut().unwrap() += d;
            *r.den_sum_sq.as_mut().unwrap() += d * d;
            *r.cross_sum.as_mut().unwrap() += y * d;
        }
        ArmData {
            variant: v.into(),
            users: 400,
            metrics: [("rev".to_string(), a), ("rpc".to_string(), r)].into(),
        }
    };
    let metrics = [rev, rpc];
    let d = data(vec![make("off", 0.0), make("on", 1.0)], 0, vec![]);
    let r = assemble(&Input {
        experiment: &x,
        metrics: &metrics,
        data: &d,
    });
    let c = r.metrics[0].arms[1].comparison.as_ref().unwrap();
    assert_eq!(c.test, TestKind::Welch);
    assert!((c.absolute.estimate - 1.0).abs() < 1e-9);
    let k = c.cuped.as_ref().unwrap();
    assert!((k.absolute.estimate - 1.0).abs() < 1e-9);
    assert!(k.variance_reduction > 0.9);
    let width = |e: &Estimate| e.ci_high.unwrap() - e.ci_low.unwrap();
    assert!(width(&k.absolute) < width(&c.absolute));
    assert!(k.p_value <= c.p_value);
    let ratio = r.metrics[1].arms[1].comparison.as_ref().unwrap();
    assert_eq!(ratio.test, TestKind::DeltaMethod);
    assert!(ratio.absolute.estimate > 0.0 && (0.0..=1.0).contains(&ratio.p_value));
    assert!(ratio.cuped.is_none());
}

/// The sequential results against `analysis/tests/fixtures/sequential.json`
/// ("results", computed with mpmath by `analysis/reference/sequential.py`):
/// a mean primary metric over its daily cumulative series (two-sided),
/// a mean and a conversion guardrail (the monitor's one-sided harm test
/// with their tolerances, one look at the totals).
#[test]
fn sequential_looks_and_guardrails_match_the_reference() {
    use crate::model::guardrail::{Guardrail, RollbackAction};
    use crate::store::aggregate::DailyArm;
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../../../analysis/tests/fixtures/sequential.json"
    ))
    .unwrap();
    let scenarios = &fixture["results"];
    let looks = |key: &str| -> Vec<[f64; 6]> {
        scenarios[key]["looks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let v: Vec<f64> = l
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                [v[0], v[1], v[2], v[3], v[4], v[5]]
            })
            .collect()
    };
    let agg = |n: f64, sum: f64, sum_sq: f64, conversion: bool| MetricAgg {
        n: n as u64,
        sum,
        sum_sq,
        conversions: conversion.then_some(sum as u64),
        ..MetricAgg::default()
    };
    let mean_looks = looks("meanPrimary");
    let latency = looks("meanGuardrail")[0];
    let errors = looks("conversionGuardrail")[0];
    // The totals are the last look; the days are the looks before.
    let total = *mean_looks.last().unwrap();
    let series: Vec<DailyPoint> = mean_looks[..mean_looks.len() - 1]
        .iter()
        .enumerate()
        .map(|(i, l)| DailyPoint {
            day: format!("2026-11-2{i}"),
            arms: [
                (
                    "off".to_string(),
                    DailyArm {
                        users: l[0] as u64,
                        sum: l[1],
                        sum_sq: l[2],
                    },
                ),
                (
                    "on".to_string(),
                    DailyArm {
                        users: l[3] as u64,
                        sum: l[4],
                        sum_sq: l[5],
                    },
                ),
            ]
            .into(),
        })
        .collect();
    let arm = |v: &str, i: usize| ArmData {
        variant: v.into(),
        users: total[i] as u64,
        metrics: [
            (
                "rev".to_string(),
                agg(total[i], total[i + 1], total[i + 2], false),
            ),
            (
                "latency".to_string(),
                agg(latency[i], latency[i + 1], latency[i + 2], false),
            ),
            (
                "ok".to_string(),
                agg(errors[i], errors[i + 1], errors[i + 2], true),
            ),
        ]
        .into(),
    };
    let mut x = experiment(&[]);
    x.spec.primary_metric = "rev".into();
    let tolerance = |key: &str| scenarios[key]["tolerance"].as_f64().unwrap();
    x.spec.guardrails = vec![
        Guardrail {
            metric: "latency".into(),
            tolerance: tolerance("meanGuardrail"),
            action: RollbackAction::ServeControl,
        },
        Guardrail {
            metric: "ok".into(),
            tolerance: tolerance("conversionGuardrail"),
            action: RollbackAction::Alert,
        },
    ];
    let mut rev = MetricSpec::conversion("rev", "purchase");
    rev.kind = MetricKind::Mean;
    let mut lat = MetricSpec::conversion("latency", "page");
    lat.kind = MetricKind::Mean;
    lat.higher_is_better = scenarios["meanGuardrail"]["higherIsBetter"]
        .as_bool()
        .unwrap();
    let ok = MetricSpec::conversion("ok", "success");
    let metrics = [rev, lat, ok];
    let d = data(vec![arm("off", 0), arm("on", 3)], 0, series);
    let r = assemble(&Input {
        experiment: &x,
        metrics: &metrics,
        data: &d,
    });
    let close = |what: &str, got: f64, want: f64| {
        assert!(
            (got - want).abs() <= 1e-6 * want.abs() + 1e-14,
            "{what}: {got} vs reference {want}"
        );
    };
    let end = |what: &str, got: Option<f64>, want: &serde_json::Value| match want.as_f64() {
        Some(w) => close(what, got.unwrap_or_else(|| panic!("{what} missing")), w),
        None => assert_eq!(got, None, "{what}"),
    };
    for (key, scenario, kind) in [
        ("rev", "meanPrimary", SequentialKind::TwoSided),
        ("latency", "meanGuardrail", SequentialKind::Harm),
        ("ok", "conversionGuardrail", SequentialKind::Harm),
    ] {
        let want = &scenarios[scenario]["expected"];
        let m = r.metrics.iter().find(|m| m.key == key).unwrap();
        let s = m.arms[1]
            .comparison
            .as_ref()
            .unwrap()
            .sequential
            .as_ref()
            .unwrap();
        assert_eq!(s.test, kind, "{key}");
        assert_eq!(u64::from(s.looks), want["looks"].as_u64().unwrap(), "{key}");
        assert_eq!(s.decision, want["decision"].as_str().unwrap(), "{key}");
        close(
            &format!("{key} p"),
            s.p_value,
            want["pValue"].as_f64().unwrap(),
        );
        let a = s.absolute.unwrap();
        close(
            &format!("{key} estimate"),
            a.estimate,
            want["estimate"].as_f64().unwrap(),
        );
        end(&format!("{key} low"), a.ci_low, &want["lower"]);
        end(&format!("{key} high"), a.ci_high, &want["upper"]);
        match kind {
            SequentialKind::Harm => {
                assert_eq!(m.role, MetricRole::Guardrail);
                assert_eq!(s.tolerance, Some(tolerance(scenario)));
            }
            SequentialKind::TwoSided => assert_eq!(s.tolerance, None),
        }
    }
    // Mean series points now carry Welch intervals for the lift.
    let day = &r.series[1].arms[1];
    let rel = day.relative.unwrap();
    assert!(rel.ci_low.unwrap() < rel.estimate && rel.estimate < rel.ci_high.unwrap());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["metrics"][1]["arms"][1]["comparison"]["sequential"]["test"],
        "harm"
    );
}

#[test]
fn no_data_yet() {
    let x = experiment(&[]);
    let metrics = [MetricSpec::conversion("conv", "purchase")];
    let d = data(vec![], 0, vec![]);
    let r = assemble(&Input {
        experiment: &x,
        metrics: &metrics,
        data: &d,
    });
    assert!(r.srm.is_none() && !r.untrustworthy);
    assert_eq!(r.warnings, ["no exposures yet"]);
    assert!(r.metrics[0].arms[0].value.is_none());
    assert!(to_csv(&r).lines().count() == 2);
}
