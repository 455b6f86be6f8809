//! Experiment results, assembled from per-arm aggregates with
//! `bunting-analysis`: pure functions, no I/O (the HTTP API and the CLI
//! read the aggregates from the store and call [`assemble`]): the types
//! here, the computation in `assemble.rs`, CSV and text in `render.rs`.
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

mod assemble;
mod render;
#[cfg(test)]
mod tests;

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::experiment::ExperimentRecord;
use crate::model::guardrail::RollbackAction;
use crate::model::metric::{MetricKind, MetricSpec};
use crate::store::aggregate::ExperimentData;

pub use assemble::{assemble, guardrail_summary, ratio_delta};
pub use render::{CSV_HEADER, to_csv, to_table};

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
