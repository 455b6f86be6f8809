//! Experiment results, assembled from per-arm aggregates with
//! `bunting-analysis`: pure functions, no I/O (the HTTP API and the CLI
//! read the aggregates from the store and call [`assemble`]).
//!
//! Per metric and treatment arm, against the control arm:
//!
//! - the arm's value: conversion rate (conversion metrics), mean per
//!   exposed user (mean and sum metrics; sums also report the total), or
//!   `Σ numerator / Σ denominator` (ratio metrics);
//! - the fixed-horizon test: two-proportion z-test for conversions, Welch's
//!   t-test for means and sums, and for ratios a normal test on the
//!   delta-method variance of each arm's ratio ([`ratio_delta`]), with
//!   absolute and relative lift and their `1 − α` intervals;
//! - Holm-adjusted p-values across the treatment arms when there are more
//!   than two arms;
//! - the sequential (mSPRT) always-valid p-value and confidence sequence
//!   (default mixing: τ = 0.05·σ̂, σ̂ the pooled per-user standard
//!   deviation at the first look with at least 100 users per arm; see
//!   `docs/analysis.md`). Primary and secondary metrics get the two-sided
//!   test; a guardrail metric gets the guardrail monitor's test
//!   ([`crate::monitor`]): one-sided harm detection with the guardrail's
//!   tolerance, on the arms' [`guardrail_summary`] like the monitor (the
//!   per-user mean, or a ratio's delta-method moments). Every guardrail on
//!   a metric (there may be several, e.g. a tight one that alerts and a
//!   looser one that rolls back) gets its own test in
//!   [`Comparison::guardrails`], whatever the metric's role.
//!   Looks: each day of the daily cumulative series of the primary metric
//!   (conversion, mean and sum metrics: the series carries users, Σy and
//!   Σy² per arm), then the final totals; ratio metrics (the series has no
//!   denominator sums) and the other metrics (no series) get one look at
//!   the totals;
//! - Bayesian chance to beat control and expected loss of shipping the arm
//!   (Beta(1, 1) prior for conversions, normal approximation otherwise);
//! - CUPED-adjusted lift when the aggregates carry pre-exposure data.
//!
//! Whole-experiment checks: the sample-ratio-mismatch chi-square test
//! against the planned allocation (equal when none): `p < 0.001` marks the
//! results `untrustworthy` with a warning first in `warnings`; users exposed
//! to more than one arm are counted, with a warning (the aggregation keeps
//! them in the arm of their first exposure).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bunting_analysis::bayesian::{BayesianResult, BetaPrior, beta_binomial, normal_means};
use bunting_analysis::cuped::{PairSums, cuped_from_sums};
use bunting_analysis::frequentist::{TestResult, two_proportion_z_test, welch_t_test};
use bunting_analysis::multiple::holm;
use bunting_analysis::sequential::{self, ArmSummary, Direction, SequentialConfig, SequentialTest};
use bunting_analysis::srm::{SRM_P_THRESHOLD, srm_check};
use bunting_analysis::summary::{Moments, Proportion};
use serde::Serialize;
use utoipa::ToSchema;

use crate::model::experiment::ExperimentRecord;
use crate::model::guardrail::{Guardrail, RollbackAction};
use crate::model::metric::{MetricKind, MetricSpec};
use crate::store::aggregate::{ArmData, DailyPoint, ExperimentData, MetricAgg};

/// Level of every interval and test.
pub const ALPHA: f64 = 0.05;

/// Everything [`assemble`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The experiment.
    pub experiment: &'a ExperimentRecord,
    /// Its metrics (primary first, then secondary, then guardrails).
    pub metrics: &'a [MetricSpec],
    /// Its aggregated data (with the daily series for the chart and the
    /// sequential looks).
    pub data: &'a ExperimentData,
}

/// The results of an experiment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentResults {
    /// The experiment key.
    pub experiment: String,
    /// Its flag.
    pub flag: String,
    /// The control variant.
    pub control: String,
    /// Lifecycle state.
    pub status: String,
    /// Level of every interval and test (0.05).
    pub alpha: f64,
    /// `true` when the data must not be trusted (sample-ratio mismatch):
    /// show no conclusion.
    pub untrustworthy: bool,
    /// Problems with the data, the most serious first.
    pub warnings: Vec<String>,
    /// Users per arm.
    pub arms: Vec<ArmUsers>,
    /// The sample-ratio-mismatch check (absent without users or with fewer
    /// than two planned arms).
    pub srm: Option<SrmSummary>,
    /// Users exposed to more than one arm (counted in the arm of their first
    /// exposure).
    pub multi_arm_users: u64,
    /// Per metric, per arm.
    pub metrics: Vec<MetricResult>,
    /// Daily cumulative lift of the primary metric (for charts).
    pub series: Vec<SeriesPoint>,
}

/// An arm's users.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmUsers {
    /// The variant.
    pub variant: String,
    /// Exposed users.
    pub users: u64,
    /// Planned share of users (0–1).
    pub planned_share: f64,
    /// Observed share of users (0–1; 0 without users).
    pub observed_share: f64,
}

/// The sample-ratio-mismatch check.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SrmSummary {
    /// Pearson's chi-square statistic.
    pub statistic: f64,
    /// Its degrees of freedom.
    pub df: u64,
    /// Its p-value.
    pub p_value: f64,
    /// The users per arm the allocation predicts (arms with a positive
    /// weight, in arm order).
    pub expected: Vec<f64>,
    /// `p < 0.001`.
    pub untrustworthy: bool,
}

/// Why a metric is in the experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricRole {
    /// The primary metric.
    Primary,
    /// A secondary metric.
    Secondary,
    /// A guardrail.
    Guardrail,
}

/// One metric across the arms.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// The metric key.
    pub key: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Its role in the experiment.
    pub role: MetricRole,
    /// Whether larger values are better.
    pub higher_is_better: bool,
    /// Control first, then the treatments.
    pub arms: Vec<ArmMetric>,
}

/// One metric in one arm.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmMetric {
    /// The variant.
    pub variant: String,
    /// Users.
    pub users: u64,
    /// Conversion rate, mean per user, or ratio; absent without users.
    pub value: Option<f64>,
    /// `Σ` of the metric over the arm's users.
    pub total: f64,
    /// Converted users (conversion metrics).
    pub conversions: Option<u64>,
    /// Per-user variance (for ratios: `n ×` the delta-method variance of
    /// the ratio).
    pub variance: Option<f64>,
    /// The comparison with control (treatments only).
    pub comparison: Option<Comparison>,
    /// Why something could not be computed.
    pub note: Option<String>,
}

/// An estimate with its `1 − α` interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// The point estimate.
    pub estimate: f64,
    /// Lower end (absent: unbounded).
    pub ci_low: Option<f64>,
    /// Upper end (absent: unbounded).
    pub ci_high: Option<f64>,
}

impl Estimate {
    fn of(i: &bunting_analysis::frequentist::Interval) -> Estimate {
        Estimate {
            estimate: i.estimate,
            ci_low: Some(i.ci_low),
            ci_high: Some(i.ci_high),
        }
    }
}

/// Which fixed-horizon test was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum TestKind {
    /// Two-proportion z-test.
    ZTest,
    /// Welch's t-test.
    Welch,
    /// Normal test on delta-method variances of ratios.
    DeltaMethod,
}

/// A treatment compared with control.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The fixed-horizon test.
    pub test: TestKind,
    /// Treatment − control.
    pub absolute: Estimate,
    /// (treatment − control) / control (absent when control is 0).
    pub relative: Option<Estimate>,
    /// Fixed-horizon two-sided p-value.
    pub p_value: f64,
    /// Holm-adjusted p-value across the treatments (more than two arms).
    pub p_value_holm: Option<f64>,
    /// Always-valid inference (mSPRT): two-sided for the primary and
    /// secondary metrics; for a guardrail metric, the harm test of its
    /// first guardrail (as in `guardrails[0]`).
    pub sequential: Option<SequentialSummary>,
    /// Posterior probability that the arm beats control.
    pub chance_to_beat_control: Option<f64>,
    /// Expected loss of shipping the arm instead of control (metric units;
    /// losses are in the metric's good direction).
    pub expected_loss: Option<f64>,
    /// CUPED-adjusted comparison (pre-exposure data present).
    pub cuped: Option<CupedSummary>,
    /// The harm test of every guardrail of the experiment on this metric,
    /// in the order of the experiment's `guardrails` (empty when none):
    /// each is the monitor's test of that guardrail (same arm summaries,
    /// tolerance and direction), looked at over the daily series and the
    /// totals.
    pub guardrails: Vec<GuardrailTest>,
}

/// One guardrail's one-sided harm test in the results.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailTest {
    /// Index of the guardrail in the experiment's `guardrails` (the
    /// monitor's checks and rollback evidence use the same index).
    pub guardrail: usize,
    /// Tolerated harm, in the metric's unit.
    pub tolerance: f64,
    /// What the monitor does when it trips.
    pub action: RollbackAction,
    /// The harm test after the last look (absent without enough data).
    pub sequential: Option<SequentialSummary>,
}

/// The sequential test's state after the last look.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SequentialSummary {
    /// Always-valid p-value.
    pub p_value: f64,
    /// Confidence sequence of treatment − control (running intersection).
    pub absolute: Option<Estimate>,
    /// `continue`, `treatmentBetter` or `treatmentWorse`.
    pub decision: String,
    /// Looks taken (days, plus the final totals).
    pub looks: u32,
    /// The hypothesis tested: `twoSided` (primary and secondary metrics)
    /// or `harm` (guardrails: the monitor's one-sided test, which only ever
    /// decides `treatmentWorse`; its interval is one-sided).
    pub test: SequentialKind,
    /// The guardrail's tolerated harm in the metric's units (`harm` only).
    pub tolerance: Option<f64>,
}

/// Which sequential hypothesis a [`SequentialSummary`] tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SequentialKind {
    /// H0: no difference, against any difference.
    TwoSided,
    /// H0: harm ≤ tolerance, against harm > tolerance (guardrails).
    Harm,
}

/// A CUPED-adjusted comparison.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CupedSummary {
    /// Adjusted treatment − control.
    pub absolute: Estimate,
    /// Adjusted relative lift.
    pub relative: Option<Estimate>,
    /// Welch p-value on the adjusted metric.
    pub p_value: f64,
    /// Pooled variance reduction (0–1).
    pub variance_reduction: f64,
}

/// One day of the primary metric's cumulative results.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesPoint {
    /// The day.
    pub date: String,
    /// Control first.
    pub arms: Vec<SeriesArm>,
}

/// One arm on one day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesArm {
    /// The variant.
    pub variant: String,
    /// Users so far.
    pub users: u64,
    /// The metric's value so far.
    pub value: Option<f64>,
    /// Relative lift over control so far, with its interval (treatments
    /// with enough data).
    pub relative: Option<Estimate>,
}

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

/// Reads experiment `x`'s metrics (of project `project_id`) and data from
/// the store, with the daily series, and [`assemble`]s its results: the
/// one function of this module that does I/O.
pub async fn load(
    store: &crate::store::Store,
    project_id: i64,
    x: &ExperimentRecord,
) -> crate::store::Result<ExperimentResults> {
    let all = store.metrics(project_id).await?;
    let mut keys: Vec<&str> = vec![x.spec.primary_metric.as_str()];
    keys.extend(x.spec.secondary_metrics.iter().map(String::as_str));
    keys.extend(x.spec.guardrails.iter().map(|g| g.metric.as_str()));
    let mut metrics: Vec<MetricSpec> = Vec::new();
    for k in keys {
        if !metrics.iter().any(|m| m.key == k)
            && let Some(m) = all.iter().find(|m| m.spec.key == k)
        {
            metrics.push(m.spec.clone());
        }
    }
    let data = store
        .experiment_data(
            x,
            &metrics,
            &crate::store::aggregate::AggregateOptions {
                series: true,
                ..Default::default()
            },
        )
        .await?;
    Ok(assemble(&Input {
        experiment: x,
        metrics: &metrics,
        data: &data,
    }))
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str = "metric,kind,role,variant,users,value,total,variance,\
absolute_lift,absolute_ci_low,absolute_ci_high,relative_lift,relative_ci_low,relative_ci_high,\
p_value,p_value_holm,sequential_p_value,sequential_ci_low,sequential_ci_high,\
chance_to_beat_control,expected_loss,cuped_absolute_lift,cuped_p_value,\
srm_p_value,untrustworthy";

/// The results as CSV: [`CSV_HEADER`], then one row per (metric, arm),
/// control first; comparison columns are empty for control.
pub fn to_csv(r: &ExperimentResults) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let srm = num(r.srm.as_ref().map(|s| s.p_value));
    for m in &r.metrics {
        let kind = serde_json::to_value(m.kind).unwrap_or_default();
        let role = serde_json::to_value(m.role).unwrap_or_default();
        for a in &m.arms {
            let c = a.comparison.as_ref();
            let seq = c.and_then(|c| c.sequential.as_ref());
            let fields = [
                csv_field(&m.key),
                kind.as_str().unwrap_or_default().to_string(),
                role.as_str().unwrap_or_default().to_string(),
                csv_field(&a.variant),
                a.users.to_string(),
                num(a.value),
                a.total.to_string(),
                num(a.variance),
                num(c.map(|c| c.absolute.estimate)),
                num(c.and_then(|c| c.absolute.ci_low)),
                num(c.and_then(|c| c.absolute.ci_high)),
                num(c.and_then(|c| c.relative.map(|r| r.estimate))),
                num(c.and_then(|c| c.relative.and_then(|r| r.ci_low))),
                num(c.and_then(|c| c.relative.and_then(|r| r.ci_high))),
                num(c.map(|c| c.p_value)),
                num(c.and_then(|c| c.p_value_holm)),
                num(seq.map(|s| s.p_value)),
                num(seq.and_then(|s| s.absolute.and_then(|a| a.ci_low))),
                num(seq.and_then(|s| s.absolute.and_then(|a| a.ci_high))),
                num(c.and_then(|c| c.chance_to_beat_control)),
                num(c.and_then(|c| c.expected_loss)),
                num(c.and_then(|c| c.cuped.as_ref().map(|k| k.absolute.estimate))),
                num(c.and_then(|c| c.cuped.as_ref().map(|k| k.p_value))),
                srm.clone(),
                r.untrustworthy.to_string(),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:+.2}%", 100.0 * v)
}

fn value_text(kind: MetricKind, v: Option<f64>) -> String {
    match (kind, v) {
        (_, None) => "-".into(),
        (MetricKind::Conversion, Some(v)) => format!("{:.2}%", 100.0 * v),
        (_, Some(v)) => format!("{v:.4}"),
    }
}

/// The results as a terminal table: per metric, one line per arm (users,
/// value, relative lift with its interval, fixed and sequential p-values,
/// chance to beat control), then the SRM line and the warnings.
pub fn to_table(r: &ExperimentResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {} (flag {}, control {}, {})",
        r.experiment, r.flag, r.control, r.status
    );
    if r.untrustworthy {
        let _ = writeln!(out, "!!! UNTRUSTWORTHY: do not draw conclusions !!!");
    }
    for m in &r.metrics {
        let role = serde_json::to_value(m.role).unwrap_or_default();
        let kind = serde_json::to_value(m.kind).unwrap_or_default();
        let _ = writeln!(
            out,
            "\nmetric {} ({}, {})",
            m.key,
            kind.as_str().unwrap_or_default(),
            role.as_str().unwrap_or_default()
        );
        let rows: Vec<[String; 7]> = std::iter::once(
            [
                "arm",
                "users",
                "value",
                "lift [95% CI]",
                "p (fixed)",
                "p (sequential)",
                "P(beat control)",
            ]
            .map(String::from),
        )
        .chain(m.arms.iter().map(|a| {
            let c = a.comparison.as_ref();
            let lift = match c.and_then(|c| c.relative) {
                Some(Estimate {
                    estimate,
                    ci_low: Some(lo),
                    ci_high: Some(hi),
                }) => format!("{} [{}, {}]", pct(estimate), pct(lo), pct(hi)),
                _ => match c {
                    Some(c) => format!("{:+.4} (absolute)", c.absolute.estimate),
                    None if a.variant == r.control => "(control)".into(),
                    None => a.note.clone().unwrap_or_else(|| "-".into()),
                },
            };
            let p = match c {
                Some(c) => match c.p_value_holm {
                    Some(h) => format!("{:.4} (Holm {h:.4})", c.p_value),
                    None => format!("{:.4}", c.p_value),
                },
                None => "-".into(),
            };
            [
                a.variant.clone(),
                a.users.to_string(),
                value_text(m.kind, a.value),
                lift,
                p,
                c.and_then(|c| c.sequential.as_ref())
                    .map_or("-".into(), |s| format!("{:.4}", s.p_value)),
                c.and_then(|c| c.chance_to_beat_control)
                    .map_or("-".into(), |p| format!("{:.1}%", 100.0 * p)),
            ]
        }))
        .collect();
        let widths: Vec<usize> = (0..7)
            .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(j, (cell, w))| {
                    if j == 0 || j == 3 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
    }
    let _ = writeln!(out);
    match &r.srm {
        Some(s) => {
            let _ = writeln!(
                out,
                "SRM: chi-square {:.2}, df {}, p = {:.4} ({})",
                s.statistic,
                s.df,
                s.p_value,
                if s.untrustworthy { "MISMATCH" } else { "ok" }
            );
        }
        None => {
            let _ = writeln!(out, "SRM: not checked (no users)");
        }
    }
    if r.multi_arm_users > 0 {
        let _ = writeln!(out, "users in several arms: {}", r.multi_arm_users);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::experiment::{ExperimentSpec, ExperimentStatus};

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
            "../../analysis/tests/fixtures/sequential.json"
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
}
