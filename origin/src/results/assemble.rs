//! [`assemble`]: from per-arm aggregates to [`ExperimentResults`].

use std::collections::BTreeMap;

use bunting_analysis::bayesian::{BayesianResult, BetaPrior, beta_binomial, normal_means};
use bunting_analysis::cuped::{PairSums, cuped_from_sums};
use bunting_analysis::frequentist::{TestResult, two_proportion_z_test, welch_t_test};
use bunting_analysis::multiple::holm;
use bunting_analysis::sequential::{self, ArmSummary, Direction, SequentialConfig, SequentialTest};
use bunting_analysis::srm::{SRM_P_THRESHOLD, srm_check};
use bunting_analysis::summary::{Moments, Proportion};

use super::{
    ALPHA, ArmMetric, ArmUsers, Comparison, CupedSummary, Estimate, ExperimentResults,
    GuardrailTest, Input, MetricResult, MetricRole, SequentialKind, SequentialSummary, SeriesArm,
    SeriesPoint, SrmSummary, TestKind,
};
use crate::model::guardrail::Guardrail;
use crate::model::metric::{MetricKind, MetricSpec};
use crate::store::aggregate::{ArmData, DailyPoint, MetricAgg};

/// A ratio `Σy / Σd` of per-user sums and the variance of that estimate by
/// the delta method:
/// `Var(R) ≈ (s²_y − 2R·s_yd + R²·s²_d) / (n·d̄²)`, with sample variances
/// and covariance of the per-user numerators `y` and denominators `d`.
/// `None` with fewer than two users or a denominator sum that is not
/// positive.
///
/// ```
/// use bunting_origin::results::ratio_delta;
/// // y = 2d for every user: the ratio is exactly 2, with no variance.
/// let (r, v) = ratio_delta(3, 12.0, 56.0, 6.0, 14.0, 28.0).unwrap();
/// assert!((r - 2.0).abs() < 1e-12 && v.abs() < 1e-12);
/// ```
pub fn ratio_delta(
    n: u64,
    sum_y: f64,
    sum_yy: f64,
    sum_d: f64,
    sum_dd: f64,
    sum_yd: f64,
) -> Option<(f64, f64)> {
    if n < 2 || sum_d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let nf = n as f64;
    let (my, md) = (sum_y / nf, sum_d / nf);
    let vy = (sum_yy - sum_y * my) / (nf - 1.0);
    let vd = (sum_dd - sum_d * md) / (nf - 1.0);
    let cyd = (sum_yd - sum_y * md) / (nf - 1.0);
    let r = my / md;
    let var = ((vy - 2.0 * r * cyd + r * r * vd) / (nf * md * md)).max(0.0);
    (r.is_finite() && var.is_finite()).then_some((r, var))
}

/// Per-user moments (sample variance, divisor `n − 1`, never negative).
fn moments(n: u64, sum: f64, sum_sq: f64) -> Option<Moments> {
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean = sum / nf;
    let var = ((sum_sq - sum * mean) / (nf - 1.0)).max(0.0);
    Moments::new(n, mean, var).ok()
}

/// What one arm's metric looks like to the tests.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Conversion(Proportion),
    Moments(Moments),
}

/// The test input of `agg` for `kind`, or why there is none.
fn shape(kind: MetricKind, agg: &MetricAgg) -> Result<Shape, String> {
    match kind {
        MetricKind::Conversion => Proportion::new(agg.n, agg.conversions.unwrap_or(0).min(agg.n))
            .map(Shape::Conversion)
            .map_err(|e| e.to_string()),
        MetricKind::Mean | MetricKind::Sum => moments(agg.n, agg.sum, agg.sum_sq)
            .map(Shape::Moments)
            .ok_or_else(|| "fewer than two users".to_string()),
        MetricKind::Ratio => {
            let (r, var) = ratio_delta(
                agg.n,
                agg.sum,
                agg.sum_sq,
                agg.den_sum.unwrap_or(0.0),
                agg.den_sum_sq.unwrap_or(0.0),
                agg.cross_sum.unwrap_or(0.0),
            )
            .ok_or_else(|| "fewer than two users or no denominator events".to_string())?;
            Moments::new(agg.n, r, var * agg.n as f64)
                .map(Shape::Moments)
                .map_err(|e| e.to_string())
        }
    }
}

/// The arm's value and per-user variance.
fn describe(kind: MetricKind, agg: &MetricAgg) -> (Option<f64>, Option<f64>) {
    match shape(kind, agg) {
        Ok(Shape::Conversion(p)) => {
            let r = p.rate();
            (r, r.map(|r| r * (1.0 - r)))
        }
        Ok(Shape::Moments(m)) => (Some(m.mean()), Some(m.variance())),
        Err(_) => {
            let den = agg.den_sum.unwrap_or(0.0);
            let value = match kind {
                MetricKind::Conversion if agg.n > 0 => {
                    Some(agg.conversions.unwrap_or(0) as f64 / agg.n as f64)
                }
                MetricKind::Ratio if den > 0.0 => Some(agg.sum / den),
                MetricKind::Mean | MetricKind::Sum if agg.n > 0 => Some(agg.sum / agg.n as f64),
                _ => None,
            };
            (value, None)
        }
    }
}

/// The fixed-horizon test of treatment against control.
///
/// Ratios go through Welch's test on their delta-method moments (mean
/// `R`, variance of the mean `Var(R)`): a normal test on the difference of
/// ratios, the t critical value being the normal one at the arm sizes where
/// the delta method holds.
fn fixed(control: Shape, treatment: Shape) -> Result<TestResult, String> {
    match (control, treatment) {
        (Shape::Conversion(c), Shape::Conversion(t)) => two_proportion_z_test(c, t, ALPHA),
        (Shape::Moments(c), Shape::Moments(t)) => welch_t_test(c, t, ALPHA),
        _ => unreachable!("both arms of a metric have the same kind"),
    }
    .map_err(|e| e.to_string())
}

fn bayes(control: Shape, treatment: Shape) -> Option<BayesianResult> {
    match (control, treatment) {
        (Shape::Conversion(c), Shape::Conversion(t)) => {
            beta_binomial(c, t, BetaPrior::default(), ALPHA).ok()
        }
        (Shape::Moments(c), Shape::Moments(t)) => normal_means(c, t, ALPHA).ok(),
        _ => None,
    }
}

/// The sequential summary of `shape` for the mSPRT.
fn seq_arm(s: Shape) -> Option<ArmSummary> {
    match s {
        Shape::Conversion(p) => ArmSummary::proportion(p.conversions(), p.n()).ok(),
        Shape::Moments(m) => ArmSummary::moments(m.n(), m.mean(), m.variance()).ok(),
    }
}

/// The summary of one arm that the one-sided guardrail harm test reads,
/// for every metric kind: the one function behind both the guardrail
/// monitor's tests ([`crate::monitor`], which roll flags back) and the
/// guardrail tests of the results ([`Comparison::guardrails`]), so the
/// results show what triggers a rollback.
///
/// - conversion, mean and sum metrics: the mean and sample variance of the
///   per-user values from `n`, `Σy`, `Σy²` (conversions: `y ∈ {0, 1}`, so
///   `Σy² = Σy`);
/// - ratio metrics: the ratio `Σy / Σd` with its delta-method variance
///   ([`ratio_delta`]) as `n ×` the variance of the ratio, so the test's
///   effect is the difference of the arms' ratios and the tolerance is in
///   the ratio's units.
///
/// `None` without enough data (no user; for a ratio, fewer than two users
/// or no denominator).
///
/// ```
/// use bunting_origin::results::guardrail_summary;
/// use bunting_origin::store::aggregate::MetricAgg;
/// use bunting_origin::model::metric::MetricKind;
/// // Errors per request: 4 users with 10 requests each, 1 error each.
/// let agg = MetricAgg {
///     n: 4, sum: 4.0, sum_sq: 4.0,
///     den_sum: Some(40.0), den_sum_sq: Some(400.0), cross_sum: Some(40.0),
///     ..MetricAgg::default()
/// };
/// let s = guardrail_summary(MetricKind::Ratio, &agg).unwrap();
/// assert!((s.mean - 0.1).abs() < 1e-12); // the ratio, not 1 error per user
/// let mean = guardrail_summary(MetricKind::Mean, &agg).unwrap();
/// assert_eq!(mean.mean, 1.0);
/// // No denominator: no summary.
/// let none = MetricAgg { n: 4, sum: 4.0, sum_sq: 4.0, ..MetricAgg::default() };
/// assert!(guardrail_summary(MetricKind::Ratio, &none).is_none());
/// ```
pub fn guardrail_summary(kind: MetricKind, agg: &MetricAgg) -> Option<ArmSummary> {
    match kind {
        MetricKind::Ratio => seq_arm(shape(kind, agg).ok()?),
        MetricKind::Conversion | MetricKind::Mean | MetricKind::Sum => {
            ArmSummary::from_sums(agg.n, agg.sum, agg.sum_sq).ok()
        }
    }
}

/// Runs the mSPRT over `looks` (cumulative control/treatment aggregates,
/// oldest first): two-sided, or with `Some(tolerance)` the guardrail
/// monitor's one-sided harm test.
fn run_sequential(
    m: &MetricSpec,
    harm_tolerance: Option<f64>,
    looks: &[(MetricAgg, MetricAgg)],
) -> Option<SequentialSummary> {
    let kind = m.kind;
    let direction = Direction::from_higher_is_better(m.higher_is_better);
    let config = match harm_tolerance {
        Some(tolerance) => SequentialConfig {
            alpha: ALPHA,
            ..SequentialConfig::harm(tolerance, direction)
        },
        None => SequentialConfig {
            alpha: ALPHA,
            direction,
            ..SequentialConfig::default()
        },
    };
    let mut test = SequentialTest::new(config).ok()?;
    let mut last = None;
    for (c, t) in looks {
        let arms = match harm_tolerance {
            Some(_) => guardrail_summary(kind, c).zip(guardrail_summary(kind, t)),
            None => match (shape(kind, c), shape(kind, t)) {
                (Ok(c), Ok(t)) => seq_arm(c).zip(seq_arm(t)),
                _ => None,
            },
        };
        let Some((c, t)) = arms else {
            continue;
        };
        // A look whose counts went down is refused by the monitor, whose
        // state then stays as it was.
        if let Ok(r) = test.update(&c, &t) {
            last = Some(r);
        }
    }
    let r = last?;
    Some(SequentialSummary {
        p_value: r.p_value,
        absolute: match (r.interval, r.estimate) {
            (Some(i), Some(estimate)) => Some(Estimate {
                estimate,
                ci_low: i.lower,
                ci_high: i.upper,
            }),
            _ => None,
        },
        decision: match r.decision {
            sequential::Decision::Continue => "continue",
            sequential::Decision::TreatmentBetter => "treatmentBetter",
            sequential::Decision::TreatmentWorse => "treatmentWorse",
        }
        .to_string(),
        looks: r.look,
        test: match harm_tolerance {
            Some(_) => SequentialKind::Harm,
            None => SequentialKind::TwoSided,
        },
        tolerance: harm_tolerance,
    })
}

fn pair_sums(kind: MetricKind, a: &MetricAgg) -> PairSums {
    // For conversions y ∈ {0, 1}: Σy = Σy² = conversions.
    let (sum_y, sum_yy) = match (kind, a.conversions) {
        (MetricKind::Conversion, Some(c)) => (c as f64, c as f64),
        _ => (a.sum, a.sum_sq),
    };
    PairSums {
        n: a.n,
        sum_y,
        sum_x: a.pre_sum.unwrap_or(0.0),
        sum_yy,
        sum_xx: a.pre_sum_sq.unwrap_or(0.0),
        sum_xy: a.pre_cross.unwrap_or(0.0),
    }
}

/// CUPED comparisons of every arm against arm 0 (`None` per arm when not
/// computable; all `None` without pre-exposure data or for ratios).
fn cuped_all(kind: MetricKind, aggs: &[MetricAgg]) -> Vec<Option<CupedSummary>> {
    let none = vec![None; aggs.len()];
    let has_pre = aggs.iter().any(|a| a.pre_sum_sq.is_some_and(|s| s > 0.0));
    if kind == MetricKind::Ratio || !has_pre || aggs.len() < 2 || aggs.iter().any(|a| a.n < 2) {
        return none;
    }
    let sums: Vec<PairSums> = aggs.iter().map(|a| pair_sums(kind, a)).collect();
    let Ok(c) = cuped_from_sums(&sums) else {
        return none;
    };
    let control = c.arms[0].adjusted;
    let mut out = vec![None];
    for arm in &c.arms[1..] {
        out.push(
            welch_t_test(control, arm.adjusted, ALPHA)
                .ok()
                .map(|r| CupedSummary {
                    absolute: Estimate::of(&r.absolute),
                    relative: r.relative.as_ref().map(Estimate::of),
                    p_value: r.p_value,
                    variance_reduction: c.variance_reduction,
                }),
        );
    }
    out
}

/// The planned share of each of `variants` (equal when `allocation` is
/// empty; variants missing from a non-empty allocation get 0).
fn planned_shares(variants: &[String], allocation: &BTreeMap<String, f64>) -> Vec<f64> {
    let weights: Vec<f64> = variants
        .iter()
        .map(|v| {
            if allocation.is_empty() {
                1.0
            } else {
                allocation.get(v).copied().unwrap_or(0.0)
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| if total > 0.0 { w / total } else { 0.0 })
        .collect()
}

/// The results of `input`.
pub fn assemble(input: &Input<'_>) -> ExperimentResults {
    let x = input.experiment;
    let data = input.data;
    let control = x.spec.control.clone();
    // Control first, then the other arms in their order.
    let empty_control = ArmData {
        variant: control.clone(),
        users: 0,
        metrics: BTreeMap::new(),
    };
    let mut arms: Vec<&ArmData> = vec![
        data.arms
            .iter()
            .find(|a| a.variant == control)
            .unwrap_or(&empty_control),
    ];
    arms.extend(data.arms.iter().filter(|a| a.variant != control));
    let variants: Vec<String> = arms.iter().map(|a| a.variant.clone()).collect();
    let total_users: u64 = arms.iter().map(|a| a.users).sum();
    let shares = planned_shares(&variants, &x.spec.allocation);

    let mut warnings = Vec::new();
    let mut untrustworthy = false;

    // Sample-ratio mismatch over the arms with a planned share.
    let planned: Vec<usize> = (0..arms.len()).filter(|&i| shares[i] > 0.0).collect();
    let srm = if total_users > 0 && planned.len() >= 2 {
        let observed: Vec<u64> = planned.iter().map(|&i| arms[i].users).collect();
        let weights: Vec<f64> = planned.iter().map(|&i| shares[i]).collect();
        srm_check(&observed, &weights).ok().map(|r| SrmSummary {
            statistic: r.statistic,
            df: r.df,
            p_value: r.p_value,
            expected: r.expected,
            untrustworthy: r.untrustworthy,
        })
    } else {
        None
    };
    if let Some(s) = &srm
        && s.p_value < SRM_P_THRESHOLD
    {
        untrustworthy = true;
        warnings.push(format!(
            "SAMPLE RATIO MISMATCH: the users per arm ({}) do not match the planned allocation \
             (chi-square p = {:.2e} < {SRM_P_THRESHOLD}); assignment or logging is broken and \
             these results must not be trusted",
            arms.iter()
                .map(|a| format!("{} {}", a.variant, a.users))
                .collect::<Vec<_>>()
                .join(", "),
            s.p_value
        ));
    }
    for (i, a) in arms.iter().enumerate() {
        if shares[i] == 0.0 && a.users > 0 {
            untrustworthy = true;
            warnings.push(format!(
                "SAMPLE RATIO MISMATCH: {} users were exposed to {}, which the allocation \
                 excludes; these results must not be trusted",
                a.users, a.variant
            ));
        }
    }
    if data.multi_arm_users > 0 {
        warnings.push(format!(
            "{} users ({:.2} % of exposed users) saw more than one arm; they count in the arm \
             of their first exposure: check that assignment is sticky",
            data.multi_arm_users,
            100.0 * data.multi_arm_users as f64 / total_users.max(1) as f64
        ));
    }
    if total_users == 0 {
        warnings.push("no exposures yet".to_string());
    }

    let role = |key: &str| {
        if key == x.spec.primary_metric {
            MetricRole::Primary
        } else if x.spec.secondary_metrics.iter().any(|m| m == key) {
            MetricRole::Secondary
        } else {
            MetricRole::Guardrail
        }
    };
    let primary = input
        .metrics
        .iter()
        .find(|m| m.key == x.spec.primary_metric);
    let metrics: Vec<MetricResult> = input
        .metrics
        .iter()
        .map(|m| {
            // The series carries the primary metric only.
            let series: &[DailyPoint] = if primary.is_some_and(|p| p.key == m.key) {
                &data.series
            } else {
                &[]
            };
            // Every guardrail on the metric, with its index.
            let guardrails: Vec<(usize, &Guardrail)> = x
                .spec
                .guardrails
                .iter()
                .enumerate()
                .filter(|(_, g)| g.metric == m.key)
                .collect();
            let role = role(&m.key);
            metric_result(m, role, &guardrails, &arms, series)
        })
        .collect();
    let series = match primary {
        Some(m) => data
            .series
            .iter()
            .map(|look| series_point(m, &variants, look))
            .collect(),
        None => Vec::new(),
    };

    ExperimentResults {
        experiment: x.spec.key.clone(),
        flag: x.spec.flag.clone(),
        control,
        status: x.status.as_str().to_string(),
        alpha: ALPHA,
        untrustworthy,
        warnings,
        arms: arms
            .iter()
            .zip(&shares)
            .map(|(a, s)| ArmUsers {
                variant: a.variant.clone(),
                users: a.users,
                planned_share: *s,
                observed_share: if total_users > 0 {
                    a.users as f64 / total_users as f64
                } else {
                    0.0
                },
            })
            .collect(),
        srm,
        multi_arm_users: data.multi_arm_users,
        metrics,
        series,
    }
}

fn agg_of(arm: &ArmData, key: &str) -> MetricAgg {
    arm.metrics.get(key).cloned().unwrap_or(MetricAgg {
        n: arm.users,
        ..MetricAgg::default()
    })
}

/// The aggregates of the primary metric from a day of the series: users,
/// Σy and Σy² (for conversions, whose per-user values are 0/1, Σy is the
/// conversions); `None` for ratio metrics, whose series lack the
/// denominator sums.
fn daily_agg(kind: MetricKind, point: &DailyPoint, variant: &str) -> Option<MetricAgg> {
    let d = point.arms.get(variant)?;
    match kind {
        MetricKind::Conversion => Some(MetricAgg {
            n: d.users,
            sum: d.sum,
            sum_sq: d.sum,
            conversions: Some(d.sum.round().max(0.0) as u64),
            ..MetricAgg::default()
        }),
        MetricKind::Mean | MetricKind::Sum => Some(MetricAgg {
            n: d.users,
            sum: d.sum,
            sum_sq: d.sum_sq,
            ..MetricAgg::default()
        }),
        MetricKind::Ratio => None,
    }
}

/// One metric's results; `guardrails` are the experiment's guardrails on
/// it, with their indices. A guardrail metric's `sequential` is its first
/// guardrail's harm test; the others are two-sided.
fn metric_result(
    m: &MetricSpec,
    role: MetricRole,
    guardrails: &[(usize, &Guardrail)],
    arms: &[&ArmData],
    series: &[DailyPoint],
) -> MetricResult {
    let aggs: Vec<MetricAgg> = arms.iter().map(|a| agg_of(a, &m.key)).collect();
    let shapes: Vec<Result<Shape, String>> = aggs.iter().map(|a| shape(m.kind, a)).collect();
    let cuped = cuped_all(m.kind, &aggs);
    let mut out: Vec<ArmMetric> = Vec::new();
    for (i, arm) in arms.iter().enumerate() {
        let agg = &aggs[i];
        let (value, variance) = describe(m.kind, agg);
        let mut note = shapes[i].as_ref().err().cloned();
        let comparison = if i == 0 {
            None
        } else {
            match (&shapes[0], &shapes[i]) {
                (Ok(c), Ok(t)) => match fixed(*c, *t) {
                    Ok(r) => {
                        let b = bayes(*c, *t);
                        // Looks: each day of the series (primary metric,
                        // not a ratio), then the final totals.
                        let looks: Vec<(MetricAgg, MetricAgg)> = series
                            .iter()
                            .filter_map(|p| {
                                Some((
                                    daily_agg(m.kind, p, &arms[0].variant)?,
                                    daily_agg(m.kind, p, &arm.variant)?,
                                ))
                            })
                            .chain(std::iter::once((aggs[0].clone(), agg.clone())))
                            .collect();
                        let guardrails: Vec<GuardrailTest> = guardrails
                            .iter()
                            .map(|(i, g)| GuardrailTest {
                                guardrail: *i,
                                tolerance: g.tolerance,
                                action: g.action,
                                sequential: run_sequential(m, Some(g.tolerance), &looks),
                            })
                            .collect();
                        let sequential = match (role, guardrails.first()) {
                            (MetricRole::Guardrail, Some(g)) => g.sequential.clone(),
                            _ => run_sequential(m, None, &looks),
                        };
                        Some(Comparison {
                            test: match m.kind {
                                MetricKind::Conversion => TestKind::ZTest,
                                MetricKind::Ratio => TestKind::DeltaMethod,
                                _ => TestKind::Welch,
                            },
                            absolute: Estimate::of(&r.absolute),
                            relative: r.relative.as_ref().map(Estimate::of),
                            p_value: r.p_value,
                            p_value_holm: None,
                            sequential,
                            chance_to_beat_control: b.map(|b| {
                                if m.higher_is_better {
                                    b.prob_treatment_beats_control
                                } else {
                                    1.0 - b.prob_treatment_beats_control
                                }
                            }),
                            expected_loss: b.map(|b| {
                                if m.higher_is_better {
                                    b.expected_loss_treatment
                                } else {
                                    b.expected_loss_control
                                }
                            }),
                            cuped: cuped[i].clone(),
                            guardrails,
                        })
                    }
                    Err(e) => {
                        note = Some(e);
                        None
                    }
                },
                (Err(e), Ok(_)) => {
                    note = Some(format!("control: {e}"));
                    None
                }
                _ => None,
            }
        };
        out.push(ArmMetric {
            variant: arm.variant.clone(),
            users: agg.n,
            value,
            total: match (m.kind, agg.conversions) {
                (MetricKind::Conversion, Some(c)) => c as f64,
                _ => agg.sum,
            },
            conversions: (m.kind == MetricKind::Conversion).then_some(agg.conversions.unwrap_or(0)),
            variance,
            comparison,
            note,
        });
    }
    // Holm across the treatments, when there is more than one.
    if arms.len() > 2 {
        let idx: Vec<usize> = (1..out.len())
            .filter(|&i| out[i].comparison.is_some())
            .collect();
        let ps: Vec<f64> = idx
            .iter()
            .map(|&i| out[i].comparison.as_ref().map_or(1.0, |c| c.p_value))
            .collect();
        if let Ok(adj) = holm(&ps) {
            for (i, p) in idx.into_iter().zip(adj) {
                if let Some(c) = out[i].comparison.as_mut() {
                    c.p_value_holm = Some(p);
                }
            }
        }
    }
    MetricResult {
        key: m.key.clone(),
        kind: m.kind,
        role,
        higher_is_better: m.higher_is_better,
        arms: out,
    }
}

/// One day of the chart: each arm's value (per-user mean of the primary
/// metric; not available for ratios, whose series lack the denominator)
/// and relative lift with the fixed-horizon interval of the day's
/// cumulative data (z-test for conversions, Welch for means and sums).
fn series_point(m: &MetricSpec, variants: &[String], look: &DailyPoint) -> SeriesPoint {
    let value = |v: &str| {
        let d = look.arms.get(v)?;
        (m.kind != MetricKind::Ratio && d.users > 0).then(|| d.sum / d.users as f64)
    };
    let control_value = value(&variants[0]);
    let control_shape = daily_agg(m.kind, look, &variants[0]).and_then(|a| shape(m.kind, &a).ok());
    SeriesPoint {
        date: look.day.clone(),
        arms: variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let own = value(v);
                let relative = if i == 0 {
                    None
                } else {
                    let test = daily_agg(m.kind, look, v)
                        .and_then(|a| shape(m.kind, &a).ok())
                        .zip(control_shape)
                        .and_then(|(t, c)| fixed(c, t).ok())
                        .and_then(|r| r.relative.as_ref().map(Estimate::of));
                    test.or_else(|| match (own, control_value) {
                        (Some(t), Some(c)) if c != 0.0 => Some(Estimate {
                            estimate: t / c - 1.0,
                            ci_low: None,
                            ci_high: None,
                        }),
                        _ => None,
                    })
                };
                SeriesArm {
                    variant: v.clone(),
                    users: look.arms.get(v).map_or(0, |d| d.users),
                    value: own,
                    relative,
                }
            })
            .collect(),
    }
}
