//! Always-valid inference for results watched continuously: the mixture
//! sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh,
//! its always-valid p-values and confidence sequences.
//!
//! # Method
//!
//! At every look the difference of the treatment and control means,
//! Δ̂ = x̄_T − x̄_C, is approximately normal with variance
//! V = s²_T/n_T + s²_C/n_C (for a proportion s² = p̂(1 − p̂)). For Gaussian
//! data observed over time, Δ̂ scaled by the information 1/V is a Brownian
//! motion with drift Δ, and for every alternative θ the likelihood ratio
//! against H0: Δ = θ0 is a martingale under H0. Mixing the alternatives over
//! θ ~ N(θ0, τ²) keeps it a martingale and integrates in closed form:
//!
//! Λ = √(V/(V + τ²)) · exp( (Δ̂ − θ0)²·τ² / (2V(V + τ²)) ).
//!
//! By Ville's inequality P(Λ ever reaches 1/α | H0) ≤ α, whatever the number
//! of looks and whenever they happen, so
//!
//! - rejecting H0 the first time Λ ≥ 1/α is a level-α test under continuous
//!   monitoring;
//! - p = min over looks so far of min(1, 1/Λ) is an *always-valid p-value*
//!   (P(p ever ≤ α | H0) ≤ α), monotone by construction;
//! - the values θ0 not (yet) rejected form a *confidence sequence*, intervals
//!   that cover the true Δ at every look simultaneously with probability
//!   1 − α. Solving Λ(θ0) < 1/α for θ0:
//!
//!   ½·ln(V/(V+τ²)) + (Δ̂ − θ0)²·τ²/(2V(V+τ²)) < −ln α
//!   ⇔ (Δ̂ − θ0)² < V(V+τ²)/τ² · (ln((V+τ²)/V) − 2·ln α),
//!
//!   so Δ̂ ± √( V(V+τ²)/τ² · (ln((V+τ²)/V) − 2·ln α) ). The monitor reports
//!   the running intersection of these intervals, which is consistent with
//!   the running-minimum p-value (p ≤ α exactly when 0 has left the
//!   interval).
//!
//! ## One-sided (harm) mode
//!
//! For guardrails, with h the change in the harmful direction (−Δ when
//! higher is better, +Δ when lower is better) and a tolerance δ ≥ 0, the
//! monitor tests H0: h ≤ δ against h > δ with a half-normal mixture over the
//! alternatives only, h − δ ~ |N(0, τ²)|:
//!
//! Λ⁺ = 2·Φ(x)·Λ,  x = (ĥ − δ)·τ/√(V(V + τ²)).
//!
//! For any true h ≤ δ and any alternative θ > δ the increments of the
//! likelihood ratio have expectation exp((θ − δ)(h − (θ + δ)/2)/σ²) ≤ 1, so
//! Λ⁺ is a supermartingale under the whole composite null and Ville's
//! inequality again bounds the false-alarm probability by α. Its confidence
//! sequence is one-sided: a lower bound on the harm (Λ⁺ = 1/α, found by
//! bisection), reported as an upper bound on Δ when higher is better and a
//! lower bound when lower is better.
//!
//! ## Choosing τ²
//!
//! τ² is the only tuning knob. The confidence sequence at variance V is
//! narrowest for τ² = r*·V, where r* − ln(1 + r*) = −2·ln α
//! (r* ≈ 8.21 at α = 0.05), see [`msprt::optimal_mixing_ratio`]. So:
//!
//! - if you know roughly when you expect to decide (the planned sample size,
//!   hence the variance V* = σ²/n_T + σ²/n_C), use
//!   [`Mixing::TauSquared`] with [`msprt::tau_squared_for_variance`]`(V*)`;
//! - if you know the effect size you care about (the minimum detectable
//!   effect), τ ≈ that effect puts the mixture's mass where the effects are;
//! - by default ([`Mixing::StandardizedEffect`] with 0.05) τ = 0.05·σ̂, with
//!   σ̂² the pooled per-unit variance frozen at the first informative look:
//!   tightest around n ≈ 2r*/0.05² ≈ 6,600 units per arm.
//!
//! The trade-off: a small τ² waits for small effects (narrowest late, slow
//! to stop on large effects), a large τ² stops early on large effects but is
//! wider (less powerful) once the variance is small. Power is flat over a
//! range of a few-fold around the optimum; the false-positive guarantee
//! holds for every fixed τ².
//!
//! ## Caveats
//!
//! The guarantee is exact for Gaussian observations with known variance;
//! here V is estimated at each look and Δ̂ is only asymptotically normal, so
//! the monitor ignores looks before `min_samples_per_arm` units per arm
//! (default 100) and looks where the estimated variance is zero. Discrete
//! looks make the test conservative (the bound assumes continuous
//! monitoring). A drifting effect (novelty) makes Δ̂ estimate the
//! running-average effect; an empty running intersection signals such
//! inconsistency.
//!
//! # Example
//!
//! ```
//! use bunting_analysis::sequential::{ArmSummary, Decision, SequentialConfig, SequentialTest};
//!
//! let mut test = SequentialTest::new(SequentialConfig::default()).unwrap();
//! // Cumulative conversions at each look: (control, treatment), 2 000 users per arm per look.
//! let looks = [(200, 262), (410, 530), (598, 790), (801, 1070)];
//! let mut last = None;
//! for (i, (c, t)) in looks.into_iter().enumerate() {
//!     let n = 2_000 * (i as u64 + 1);
//!     let result = test
//!         .update(&ArmSummary::proportion(c, n).unwrap(), &ArmSummary::proportion(t, n).unwrap())
//!         .unwrap();
//!     last = Some(result);
//! }
//! let last = last.unwrap();
//! assert_eq!(last.decision, Decision::TreatmentBetter);
//! assert!(last.p_value < 0.05);
//! assert!(last.interval.unwrap().lower.unwrap() > 0.0);
//! ```
//!
//! # References
//!
//! - R. Johari, P. Koomen, L. Pekelis, D. Walsh (2017), *Peeking at A/B
//!   tests: why it matters, and what to do about it*, KDD.
//! - R. Johari, L. Pekelis, D. Walsh (2022), *Always valid inference:
//!   continuous monitoring of A/B tests*, Operations Research 70(3).
//! - H. Robbins (1970), *Statistical methods related to the law of the
//!   iterated logarithm*, Ann. Math. Statist. 41 (normal mixtures).
//! - S. Howard, A. Ramdas, J. McAuliffe, J. Sekhon (2021), *Time-uniform,
//!   nonparametric, nonasymptotic confidence sequences*, Ann. Statist. 49.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod msprt;

/// Errors of the sequential tests: bad configuration or bad input, never a
/// panic.
#[derive(Clone, Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum SequentialError {
    /// α must lie in (0, 1).
    #[error("alpha must be in (0, 1), got {0}")]
    InvalidAlpha(f64),
    /// τ² must be finite and positive.
    #[error("mixing variance tau^2 must be finite and positive, got {0}")]
    InvalidTauSquared(f64),
    /// The standardized effect size must be finite and positive.
    #[error("standardized effect size must be finite and positive, got {0}")]
    InvalidEffectSize(f64),
    /// The harm tolerance must be finite and non-negative.
    #[error("harm tolerance must be finite and non-negative, got {0}")]
    InvalidTolerance(f64),
    /// A variance passed to a formula must be finite and positive.
    #[error("variance must be finite and positive, got {0}")]
    InvalidVariance(f64),
    /// `min_samples_per_arm` must be at least 2.
    #[error("min_samples_per_arm must be at least 2, got {0}")]
    InvalidMinSamples(u64),
    /// A value that must be finite was not.
    #[error("{0} must be finite")]
    NonFinite(&'static str),
    /// A per-unit variance was negative.
    #[error("{0} variance must be non-negative, got {1}")]
    NegativeVariance(&'static str, f64),
    /// More successes than units.
    #[error("successes ({successes}) exceed the count ({count})")]
    SuccessesExceedCount {
        /// Successes given.
        successes: u64,
        /// Units given.
        count: u64,
    },
    /// A sum of squares too small for the sum (negative sample variance).
    #[error("sum of squares {sum_of_squares} is inconsistent with sum {sum} over {count} units")]
    InconsistentSums {
        /// Units.
        count: u64,
        /// Sum of the values.
        sum: f64,
        /// Sum of the squared values.
        sum_of_squares: f64,
    },
    /// Summaries must be cumulative: an arm's count went down.
    #[error("{arm} count went down from {previous} to {current}; summaries must be cumulative")]
    CountDecreased {
        /// "control" or "treatment".
        arm: &'static str,
        /// Count at the previous look.
        previous: u64,
        /// Count at this look.
        current: u64,
    },
}

/// Cumulative summary of one arm: units, mean and per-unit variance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmSummary {
    /// Units (users) so far.
    pub count: u64,
    /// Mean of the metric per unit (the conversion rate for a proportion).
    pub mean: f64,
    /// Per-unit variance of the metric: p̂(1 − p̂) for a proportion, the
    /// sample variance (n − 1 denominator) otherwise.
    pub variance: f64,
}

impl ArmSummary {
    /// A conversion metric: `successes` of `count` units.
    ///
    /// # Errors
    ///
    /// [`SequentialError::SuccessesExceedCount`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bunting_analysis::sequential::ArmSummary;
    ///
    /// let arm = ArmSummary::proportion(100, 1_000).unwrap();
    /// assert_eq!(arm.mean, 0.1);
    /// assert!((arm.variance - 0.09).abs() < 1e-15);
    /// assert!(ArmSummary::proportion(2, 1).is_err());
    /// ```
    pub fn proportion(successes: u64, count: u64) -> Result<Self, SequentialError> {
        if successes > count {
            return Err(SequentialError::SuccessesExceedCount { successes, count });
        }
        if count == 0 {
            return Ok(Self {
                count,
                mean: 0.0,
                variance: 0.0,
            });
        }
        let p = successes as f64 / count as f64;
        Ok(Self {
            count,
            mean: p,
            variance: p * (1.0 - p),
        })
    }

    /// A continuous metric from its count, mean and sample variance.
    ///
    /// # Errors
    ///
    /// A non-finite mean or variance, a negative variance.
    pub fn moments(count: u64, mean: f64, variance: f64) -> Result<Self, SequentialError> {
        let arm = Self {
            count,
            mean,
            variance,
        };
        arm.validate("arm")?;
        Ok(arm)
    }

    /// A continuous metric from running sums Σx and Σx² (what an event
    /// pipeline accumulates). Uses the sample variance.
    ///
    /// # Errors
    ///
    /// Non-finite sums; a sum of squares smaller than sum²/count (beyond
    /// rounding).
    ///
    /// # Examples
    ///
    /// ```
    /// use bunting_analysis::sequential::ArmSummary;
    ///
    /// // Values 1, 2, 3.
    /// let arm = ArmSummary::from_sums(3, 6.0, 14.0).unwrap();
    /// assert_eq!(arm.mean, 2.0);
    /// assert_eq!(arm.variance, 1.0);
    /// ```
    pub fn from_sums(count: u64, sum: f64, sum_of_squares: f64) -> Result<Self, SequentialError> {
        if !sum.is_finite() || !sum_of_squares.is_finite() {
            return Err(SequentialError::NonFinite("sum"));
        }
        if count == 0 {
            return Ok(Self {
                count,
                mean: 0.0,
                variance: 0.0,
            });
        }
        let n = count as f64;
        let mean = sum / n;
        let centered = sum_of_squares - sum * mean;
        let tolerance = 1e-9 * sum_of_squares.abs().max(f64::MIN_POSITIVE);
        if centered < -tolerance {
            return Err(SequentialError::InconsistentSums {
                count,
                sum,
                sum_of_squares,
            });
        }
        let variance = if count > 1 {
            centered.max(0.0) / (n - 1.0)
        } else {
            0.0
        };
        Ok(Self {
            count,
            mean,
            variance,
        })
    }

    fn validate(&self, arm: &'static str) -> Result<(), SequentialError> {
        if !self.mean.is_finite() {
            return Err(SequentialError::NonFinite("mean"));
        }
        if !self.variance.is_finite() {
            return Err(SequentialError::NonFinite("variance"));
        }
        if self.variance < 0.0 {
            return Err(SequentialError::NegativeVariance(arm, self.variance));
        }
        Ok(())
    }
}

/// Which way is good for the metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Conversions, revenue: an increase is an improvement.
    #[default]
    HigherIsBetter,
    /// Latency, errors, churn: an increase is a harm.
    LowerIsBetter,
}

impl Direction {
    /// The direction of a metric from its `higher_is_better` flag (what a
    /// metric definition stores), so that every caller — the results page
    /// and the guardrail monitor — maps it the same way.
    ///
    /// # Examples
    ///
    /// ```
    /// use bunting_analysis::sequential::{Direction, SequentialConfig};
    ///
    /// assert_eq!(Direction::from_higher_is_better(false), Direction::LowerIsBetter);
    /// // A guardrail on latency tolerating +5 ms:
    /// let config = SequentialConfig::harm(5.0, Direction::from_higher_is_better(false));
    /// assert_eq!(config.direction, Direction::LowerIsBetter);
    /// ```
    #[must_use]
    pub fn from_higher_is_better(higher_is_better: bool) -> Self {
        if higher_is_better {
            Self::HigherIsBetter
        } else {
            Self::LowerIsBetter
        }
    }
}

/// The mixing distribution of the mSPRT (its variance τ²).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Mixing {
    /// A fixed τ² in the metric's units squared, e.g. from
    /// [`msprt::tau_squared_for_variance`] at the planned sample size, or the
    /// square of the minimum detectable effect.
    TauSquared {
        /// τ².
        tau_squared: f64,
    },
    /// τ = `effect_size`·σ̂, with σ̂² the pooled per-unit variance of both
    /// arms frozen at the first informative look (a standardized effect,
    /// Cohen's d).
    StandardizedEffect {
        /// The standardized effect, e.g. 0.05.
        effect_size: f64,
    },
}

impl Default for Mixing {
    fn default() -> Self {
        Self::StandardizedEffect { effect_size: 0.05 }
    }
}

/// What the monitor tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Hypothesis {
    /// H0: Δ = 0 against Δ ≠ 0; decides treatment better or worse.
    #[default]
    TwoSided,
    /// Guardrail: H0: harm ≤ `tolerance` against harm > `tolerance`, where
    /// harm is the change in the bad direction (metric units, ≥ 0). Only
    /// ever decides [`Decision::TreatmentWorse`].
    Harm {
        /// Tolerated harm in the metric's units (0: any harm).
        tolerance: f64,
    },
}

/// Configuration of a [`SequentialTest`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialConfig {
    /// Level: the probability of ever rejecting a true H0. Default 0.05.
    pub alpha: f64,
    /// The mixing variance τ².
    pub mixing: Mixing,
    /// Two-sided test or one-sided harm detection.
    pub hypothesis: Hypothesis,
    /// Which way is good.
    pub direction: Direction,
    /// Looks with fewer units in either arm are not tested (the normal
    /// approximation needs data). Default 100.
    pub min_samples_per_arm: u64,
}

impl Default for SequentialConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            mixing: Mixing::default(),
            hypothesis: Hypothesis::TwoSided,
            direction: Direction::HigherIsBetter,
            min_samples_per_arm: 100,
        }
    }
}

impl SequentialConfig {
    /// A guardrail monitor: one-sided harm detection with the given
    /// tolerance (metric units) and direction, defaults otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use bunting_analysis::sequential::{Direction, Hypothesis, SequentialConfig};
    ///
    /// let config = SequentialConfig::harm(0.002, Direction::LowerIsBetter);
    /// assert_eq!(config.hypothesis, Hypothesis::Harm { tolerance: 0.002 });
    /// ```
    #[must_use]
    pub fn harm(tolerance: f64, direction: Direction) -> Self {
        Self {
            hypothesis: Hypothesis::Harm { tolerance },
            direction,
            ..Self::default()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// α outside (0, 1), a τ² or effect size that is not finite and
    /// positive, a negative or non-finite tolerance, `min_samples_per_arm`
    /// below 2.
    pub fn validate(&self) -> Result<(), SequentialError> {
        msprt::check_alpha(self.alpha)?;
        match self.mixing {
            Mixing::TauSquared { tau_squared } => msprt::check_tau_squared(tau_squared)?,
            Mixing::StandardizedEffect { effect_size } => {
                if !(effect_size.is_finite() && effect_size > 0.0) {
                    return Err(SequentialError::InvalidEffectSize(effect_size));
                }
            }
        }
        if let Hypothesis::Harm { tolerance } = self.hypothesis
            && !(tolerance.is_finite() && tolerance >= 0.0)
        {
            return Err(SequentialError::InvalidTolerance(tolerance));
        }
        if self.min_samples_per_arm < 2 {
            return Err(SequentialError::InvalidMinSamples(self.min_samples_per_arm));
        }
        Ok(())
    }
}

/// The monitor's verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Not enough evidence yet: keep collecting.
    #[default]
    Continue,
    /// H0 rejected, the treatment improves the metric.
    TreatmentBetter,
    /// H0 rejected, the treatment harms the metric (beyond the tolerance in
    /// harm mode).
    TreatmentWorse,
}

/// A confidence interval for Δ = treatment − control; `None` ends are
/// unbounded (one-sided sequences, or no informative look yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    /// Lower end, `None` for −∞.
    pub lower: Option<f64>,
    /// Upper end, `None` for +∞.
    pub upper: Option<f64>,
}

impl Interval {
    /// Whether `value` lies in the (closed) interval.
    #[must_use]
    pub fn contains(&self, value: f64) -> bool {
        self.lower.is_none_or(|l| l <= value) && self.upper.is_none_or(|u| value <= u)
    }
}

/// What a look returns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialResult {
    /// 1-based index of this look.
    pub look: u32,
    /// Whether this look was tested (both arms at `min_samples_per_arm` and
    /// a positive variance).
    pub informative: bool,
    /// Δ̂ = treatment mean − control mean (`None` while an arm is empty).
    pub estimate: Option<f64>,
    /// Var(Δ̂) = s²_T/n_T + s²_C/n_C (`None` while an arm is empty).
    pub variance: Option<f64>,
    /// The mixing variance τ² in use (`None` until fixed).
    pub tau_squared: Option<f64>,
    /// ln Λ of this look (ln Λ⁺ in harm mode); `None` if not informative.
    pub log_likelihood_ratio: Option<f64>,
    /// Always-valid p-value: running minimum over looks of min(1, 1/Λ).
    pub p_value: f64,
    /// Always-valid confidence interval for Δ: running intersection of the
    /// confidence sequence (one-sided in harm mode). `None` if the
    /// intersection became empty, which under H0's model happens with
    /// probability at most α and otherwise points at a drifting effect.
    pub interval: Option<Interval>,
    /// The decision; final once reached.
    pub decision: Decision,
    /// The look at which the decision was reached.
    pub decided_at_look: Option<u32>,
}

/// A continuously monitored comparison of a treatment with its control:
/// feed it cumulative [`ArmSummary`]s as often as you like, it returns an
/// always-valid p-value, confidence interval and decision. Serializable, so
/// a monitor can persist its state between evaluations.
///
/// Once a decision is reached it stays (the guarantee is for stopping at the
/// first crossing); later looks still update the estimate, the p-value and
/// the interval.
///
/// # Examples
///
/// A guardrail on error rate (lower is better), alarming only if errors rise
/// by more than 0.1 percentage point:
///
/// ```
/// use bunting_analysis::sequential::{ArmSummary, Decision, Direction, SequentialConfig, SequentialTest};
///
/// let mut monitor = SequentialTest::new(SequentialConfig::harm(0.001, Direction::LowerIsBetter)).unwrap();
/// let control = ArmSummary::proportion(100, 10_000).unwrap();
/// let same = ArmSummary::proportion(104, 10_000).unwrap();
/// assert_eq!(monitor.update(&control, &same).unwrap().decision, Decision::Continue);
///
/// let control = ArmSummary::proportion(200, 20_000).unwrap();
/// let worse = ArmSummary::proportion(420, 20_000).unwrap();
/// let result = monitor.update(&control, &worse).unwrap();
/// assert_eq!(result.decision, Decision::TreatmentWorse);
/// // At least this much worse, with always-valid confidence:
/// assert!(result.interval.unwrap().lower.unwrap() > 0.001);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequentialTest {
    config: SequentialConfig,
    looks: u32,
    control_count: u64,
    treatment_count: u64,
    tau_squared: Option<f64>,
    min_p_value: f64,
    lower: Option<f64>,
    upper: Option<f64>,
    empty: bool,
    decision: Decision,
    decided_at_look: Option<u32>,
    last: Option<SequentialResult>,
}

impl SequentialTest {
    /// A monitor with no looks yet.
    ///
    /// # Errors
    ///
    /// An invalid configuration (see [`SequentialConfig::validate`]).
    pub fn new(config: SequentialConfig) -> Result<Self, SequentialError> {
        config.validate()?;
        Ok(Self {
            config,
            looks: 0,
            control_count: 0,
            treatment_count: 0,
            tau_squared: match config.mixing {
                Mixing::TauSquared { tau_squared } => Some(tau_squared),
                Mixing::StandardizedEffect { .. } => None,
            },
            min_p_value: 1.0,
            lower: None,
            upper: None,
            empty: false,
            decision: Decision::Continue,
            decided_at_look: None,
            last: None,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SequentialConfig {
        &self.config
    }

    /// The latest result, if any look happened.
    #[must_use]
    pub fn last(&self) -> Option<&SequentialResult> {
        self.last.as_ref()
    }

    /// Takes a look at the cumulative summaries of both arms.
    ///
    /// # Errors
    ///
    /// An invalid configuration (e.g. a deserialized state), a non-finite
    /// mean or variance, a negative variance, a count below the previous
    /// look's. On error the state is unchanged.
    pub fn update(
        &mut self,
        control: &ArmSummary,
        treatment: &ArmSummary,
    ) -> Result<SequentialResult, SequentialError> {
        self.config.validate()?;
        control.validate("control")?;
        treatment.validate("treatment")?;
        if control.count < self.control_count {
            return Err(SequentialError::CountDecreased {
                arm: "control",
                previous: self.control_count,
                current: control.count,
            });
        }
        if treatment.count < self.treatment_count {
            return Err(SequentialError::CountDecreased {
                arm: "treatment",
                previous: self.treatment_count,
                current: treatment.count,
            });
        }
        let mut next = self.clone();
        let result = next.look(control, treatment)?;
        *self = next;
        Ok(result)
    }

    fn look(
        &mut self,
        control: &ArmSummary,
        treatment: &ArmSummary,
    ) -> Result<SequentialResult, SequentialError> {
        self.looks = self.looks.saturating_add(1);
        self.control_count = control.count;
        self.treatment_count = treatment.count;
        let alpha = self.config.alpha;

        let both = control.count > 0 && treatment.count > 0;
        let (n_c, n_t) = (control.count as f64, treatment.count as f64);
        let estimate = both.then_some(treatment.mean - control.mean);
        let variance = both.then(|| treatment.variance / n_t + control.variance / n_c);
        let enough = control.count >= self.config.min_samples_per_arm
            && treatment.count >= self.config.min_samples_per_arm;

        if enough
            && self.tau_squared.is_none()
            && let Mixing::StandardizedEffect { effect_size } = self.config.mixing
        {
            let pooled = (n_c * control.variance + n_t * treatment.variance) / (n_c + n_t);
            let tau_squared = effect_size * effect_size * pooled;
            if tau_squared.is_finite() && tau_squared > 0.0 {
                self.tau_squared = Some(tau_squared);
            }
        }

        let mut log_likelihood_ratio = None;
        if enough
            && let (Some(estimate), Some(variance), Some(tau_squared)) =
                (estimate, variance, self.tau_squared)
            && estimate.is_finite()
            && variance.is_finite()
            && variance > 0.0
        {
            let (ln_lr, lower, upper) = self.statistics(estimate, variance, tau_squared)?;
            log_likelihood_ratio = Some(ln_lr);
            self.min_p_value = self.min_p_value.min(msprt::p_value(ln_lr));
            if let Some(l) = lower {
                self.lower = Some(self.lower.map_or(l, |old| old.max(l)));
            }
            if let Some(u) = upper {
                self.upper = Some(self.upper.map_or(u, |old| old.min(u)));
            }
            if let (Some(l), Some(u)) = (self.lower, self.upper)
                && l > u
            {
                self.empty = true;
            }
            if self.decision == Decision::Continue && self.min_p_value <= alpha {
                let improved = match self.config.hypothesis {
                    Hypothesis::Harm { .. } => false,
                    Hypothesis::TwoSided => {
                        (estimate > 0.0) == (self.config.direction == Direction::HigherIsBetter)
                    }
                };
                self.decision = if improved {
                    Decision::TreatmentBetter
                } else {
                    Decision::TreatmentWorse
                };
                self.decided_at_look = Some(self.looks);
            }
        }

        let result = SequentialResult {
            look: self.looks,
            informative: log_likelihood_ratio.is_some(),
            estimate,
            variance,
            tau_squared: self.tau_squared,
            log_likelihood_ratio,
            p_value: self.min_p_value,
            interval: (!self.empty).then_some(Interval {
                lower: self.lower,
                upper: self.upper,
            }),
            decision: self.decision,
            decided_at_look: self.decided_at_look,
        };
        self.last = Some(result);
        Ok(result)
    }

    /// ln Λ (ln Λ⁺ in harm mode) and this look's interval for Δ.
    fn statistics(
        &self,
        estimate: f64,
        variance: f64,
        tau_squared: f64,
    ) -> Result<(f64, Option<f64>, Option<f64>), SequentialError> {
        let alpha = self.config.alpha;
        Ok(match self.config.hypothesis {
            Hypothesis::TwoSided => {
                let ln_lr = msprt::log_likelihood_ratio(estimate, variance, tau_squared, 0.0)?;
                let w = msprt::confidence_sequence_half_width(variance, tau_squared, alpha)?;
                (ln_lr, Some(estimate - w), Some(estimate + w))
            }
            Hypothesis::Harm { tolerance } => {
                let sign = match self.config.direction {
                    Direction::HigherIsBetter => -1.0,
                    Direction::LowerIsBetter => 1.0,
                };
                let harm = sign * estimate;
                let ln_lr =
                    msprt::one_sided_log_likelihood_ratio(harm, variance, tau_squared, tolerance)?;
                let bound = msprt::one_sided_lower_bound(harm, variance, tau_squared, alpha)?;
                match self.config.direction {
                    Direction::HigherIsBetter => (ln_lr, None, Some(-bound)),
                    Direction::LowerIsBetter => (ln_lr, Some(bound), None),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
