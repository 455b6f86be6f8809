//! CUPED (Controlled-experiment Using Pre-Experiment Data, Deng et al.
//! 2013): variance reduction with a pre-exposure covariate, here the same
//! metric measured on the same user before exposure.
//!
//! Each user contributes a pair `(y, x)`: the metric during the experiment
//! and before exposure. With `θ = cov(Y, X) / var(X)` estimated on the users
//! of **all arms pooled** (the covariate is pre-exposure, so treatment cannot
//! have changed it and one `θ` serves every arm), the adjusted metric is
//! `Y' = Y − θ(X − x̄)` with `x̄` the pooled covariate mean. Per arm,
//! `mean(Y') = ȳ − θ(x̄_arm − x̄)` and
//! `var(Y') = var(Y) − 2θ cov(Y, X) + θ² var(X)` (sample moments of the arm,
//! divisor `n − 1`). The adjusted [`Moments`] then go to the usual tests
//! (for example [`crate::frequentist::welch_t_test`]). The pooled variance
//! reduction is `1 − var(Y')/var(Y) = ρ²(Y, X)`.
//!
//! Two entry points compute the same thing: [`cuped`] from raw pairs, and
//! [`cuped_from_sums`] from per-arm sums (`n, Σy, Σx, Σy², Σx², Σxy`) that a
//! database can aggregate. Sums of squares lose precision when the mean is
//! large compared with the spread (`Σy² − (Σy)²/n` cancels); prefer the raw
//! form, or center the values before summing, in that case.

use serde::{Deserialize, Serialize};

use crate::summary::{AnalysisError, Moments};

/// Per-arm sufficient statistics of the `(y, x)` pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairSums {
    /// Number of users.
    pub n: u64,
    /// `Σ y`.
    pub sum_y: f64,
    /// `Σ x`.
    pub sum_x: f64,
    /// `Σ y²`.
    pub sum_yy: f64,
    /// `Σ x²`.
    pub sum_xx: f64,
    /// `Σ x·y`.
    pub sum_xy: f64,
}

/// One arm after adjustment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CupedArm {
    /// Moments of the metric as observed.
    pub unadjusted: Moments,
    /// Moments of the adjusted metric `Y − θ(X − x̄)`.
    pub adjusted: Moments,
    /// `1 − var(Y')/var(Y)` in this arm (0 if `var(Y) = 0`).
    pub variance_reduction: f64,
}

/// The CUPED adjustment of every arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CupedResult {
    /// `θ = cov(Y, X) / var(X)` over all arms pooled.
    pub theta: f64,
    /// The pooled covariate mean `x̄`.
    pub covariate_mean: f64,
    /// The arms, in input order.
    pub arms: Vec<CupedArm>,
    /// Pooled variance reduction `1 − var(Y')/var(Y) = ρ²(Y, X)` over all
    /// users (0 if `var(Y) = 0`).
    pub variance_reduction: f64,
}

/// Count, means, centered sums of squares and cross-products.
#[derive(Debug, Clone, Copy, Default)]
struct CoMoments {
    n: u64,
    mean_y: f64,
    mean_x: f64,
    m2_y: f64,
    m2_x: f64,
    c_xy: f64,
}

impl CoMoments {
    /// Welford's update with one pair.
    fn push(&mut self, y: f64, x: f64) {
        self.n += 1;
        let n = self.n as f64;
        let dx = x - self.mean_x;
        let dy = y - self.mean_y;
        self.mean_x += dx / n;
        self.mean_y += dy / n;
        self.m2_x += dx * (x - self.mean_x);
        self.m2_y += dy * (y - self.mean_y);
        self.c_xy += dx * (y - self.mean_y);
    }

    /// Chan et al.'s pairwise combination.
    fn merge(&self, other: &CoMoments) -> CoMoments {
        if self.n == 0 {
            return *other;
        }
        if other.n == 0 {
            return *self;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let dx = other.mean_x - self.mean_x;
        let dy = other.mean_y - self.mean_y;
        let w = na * nb / n;
        CoMoments {
            n: self.n + other.n,
            mean_x: self.mean_x + dx * nb / n,
            mean_y: self.mean_y + dy * nb / n,
            m2_x: self.m2_x + other.m2_x + dx * dx * w,
            m2_y: self.m2_y + other.m2_y + dy * dy * w,
            c_xy: self.c_xy + other.c_xy + dx * dy * w,
        }
    }

    fn from_sums(s: &PairSums) -> Result<CoMoments, AnalysisError> {
        for (name, v) in [
            ("sumY", s.sum_y),
            ("sumX", s.sum_x),
            ("sumYy", s.sum_yy),
            ("sumXx", s.sum_xx),
            ("sumXy", s.sum_xy),
        ] {
            if !v.is_finite() {
                return Err(AnalysisError::NonFinite(name));
            }
        }
        if s.n < 2 {
            return Err(AnalysisError::TooFewObservations {
                what: "a CUPED arm",
                min: 2,
                n: s.n,
            });
        }
        let n = s.n as f64;
        let (mean_y, mean_x) = (s.sum_y / n, s.sum_x / n);
        // Rounding can make a zero spread slightly negative.
        let m2_y = (s.sum_yy - s.sum_y * mean_y).max(0.0);
        let m2_x = (s.sum_xx - s.sum_x * mean_x).max(0.0);
        let c_xy = s.sum_xy - s.sum_x * mean_y;
        Ok(CoMoments {
            n: s.n,
            mean_y,
            mean_x,
            m2_y,
            m2_x,
            c_xy,
        })
    }
}

/// CUPED from raw `(y, x)` pairs, one slice per arm (`y`: the metric during
/// the experiment, `x`: the same metric before exposure).
///
/// Fails if an arm has fewer than two users, a value is not finite, or the
/// covariate does not vary at all (θ undefined).
///
/// ```
/// use bunting_analysis::cuped::cuped;
/// let control = [(12.0, 10.0), (7.0, 6.0), (15.0, 13.0), (9.0, 9.0)];
/// let treatment = [(14.0, 11.0), (8.0, 6.0), (17.0, 14.0), (10.0, 8.0)];
/// let r = cuped(&[&control, &treatment]).unwrap();
/// assert!(r.theta > 0.0);
/// assert!(r.variance_reduction > 0.9);
/// for arm in &r.arms {
///     assert!(arm.adjusted.variance() < arm.unadjusted.variance());
/// }
/// ```
pub fn cuped(arms: &[&[(f64, f64)]]) -> Result<CupedResult, AnalysisError> {
    let mut moments = Vec::with_capacity(arms.len());
    for pairs in arms {
        let mut m = CoMoments::default();
        for &(y, x) in *pairs {
            if !(y.is_finite() && x.is_finite()) {
                return Err(AnalysisError::NonFinite("metric or covariate value"));
            }
            m.push(y, x);
        }
        if m.n < 2 {
            return Err(AnalysisError::TooFewObservations {
                what: "a CUPED arm",
                min: 2,
                n: m.n,
            });
        }
        moments.push(m);
    }
    adjust(&moments)
}

/// CUPED from per-arm sums, for callers that aggregate in a database: the
/// same result as [`cuped`] on the pairs the sums came from, up to rounding.
///
/// ```
/// use bunting_analysis::cuped::{cuped, cuped_from_sums, PairSums};
/// let arm = [(12.0, 10.0), (7.0, 6.0), (15.0, 13.0), (9.0, 9.0)];
/// let other = [(14.0, 11.0), (8.0, 6.0), (17.0, 14.0), (10.0, 8.0)];
/// let sums = |pairs: &[(f64, f64)]| PairSums {
///     n: pairs.len() as u64,
///     sum_y: pairs.iter().map(|p| p.0).sum(),
///     sum_x: pairs.iter().map(|p| p.1).sum(),
///     sum_yy: pairs.iter().map(|p| p.0 * p.0).sum(),
///     sum_xx: pairs.iter().map(|p| p.1 * p.1).sum(),
///     sum_xy: pairs.iter().map(|p| p.0 * p.1).sum(),
/// };
/// let a = cuped(&[&arm, &other]).unwrap();
/// let b = cuped_from_sums(&[sums(&arm), sums(&other)]).unwrap();
/// assert!((a.theta - b.theta).abs() < 1e-12);
/// ```
pub fn cuped_from_sums(arms: &[PairSums]) -> Result<CupedResult, AnalysisError> {
    let moments = arms
        .iter()
        .map(CoMoments::from_sums)
        .collect::<Result<Vec<_>, _>>()?;
    adjust(&moments)
}

fn adjust(arms: &[CoMoments]) -> Result<CupedResult, AnalysisError> {
    if arms.is_empty() {
        return Err(AnalysisError::Empty("no arms"));
    }
    let pooled = arms
        .iter()
        .fold(CoMoments::default(), |acc, m| acc.merge(m));
    if pooled.m2_x.is_nan() || pooled.m2_x <= 0.0 {
        return Err(AnalysisError::ZeroVariance(
            "the covariate does not vary, so θ is undefined",
        ));
    }
    let theta = pooled.c_xy / pooled.m2_x;
    let adjusted_m2 =
        |m: &CoMoments| (m.m2_y - 2.0 * theta * m.c_xy + theta * theta * m.m2_x).max(0.0);
    let reduction = |m2_y: f64, m2_adj: f64| if m2_y > 0.0 { 1.0 - m2_adj / m2_y } else { 0.0 };
    let mut out = Vec::with_capacity(arms.len());
    for m in arms {
        let dof = (m.n - 1) as f64;
        let m2_adj = adjusted_m2(m);
        out.push(CupedArm {
            unadjusted: Moments::new(m.n, m.mean_y, m.m2_y / dof)?,
            adjusted: Moments::new(
                m.n,
                m.mean_y - theta * (m.mean_x - pooled.mean_x),
                m2_adj / dof,
            )?,
            variance_reduction: reduction(m.m2_y, m2_adj),
        });
    }
    Ok(CupedResult {
        theta,
        covariate_mean: pooled.mean_x,
        arms: out,
        variance_reduction: reduction(pooled.m2_y, adjusted_m2(&pooled)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn sums(pairs: &[(f64, f64)]) -> PairSums {
        PairSums {
            n: pairs.len() as u64,
            sum_y: pairs.iter().map(|p| p.0).sum(),
            sum_x: pairs.iter().map(|p| p.1).sum(),
            sum_yy: pairs.iter().map(|p| p.0 * p.0).sum(),
            sum_xx: pairs.iter().map(|p| p.1 * p.1).sum(),
            sum_xy: pairs.iter().map(|p| p.0 * p.1).sum(),
        }
    }

    fn simulated(seed: u64, n: usize, shift: f64) -> Vec<(f64, f64)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pre = Normal::new(20.0, 5.0).unwrap();
        let noise = Normal::new(0.0, 2.0).unwrap();
        (0..n)
            .map(|_| {
                let x: f64 = pre.sample(&mut rng);
                (0.8 * x + 4.0 + shift + noise.sample(&mut rng), x)
            })
            .collect()
    }

    #[test]
    fn raw_and_sums_agree_and_reduce_variance() {
        let a = simulated(1, 2000, 0.0);
        let b = simulated(2, 1800, 0.5);
        let raw = cuped(&[&a, &b]).unwrap();
        let from_sums = cuped_from_sums(&[sums(&a), sums(&b)]).unwrap();
        assert!((raw.theta - 0.8).abs() < 0.05, "{}", raw.theta);
        assert!((raw.theta - from_sums.theta).abs() < 1e-9);
        // var(Y) = 0.64·25 + 4 = 20, residual 4: reduction ≈ 0.8.
        assert!(
            (raw.variance_reduction - 0.8).abs() < 0.03,
            "{}",
            raw.variance_reduction
        );
        for (x, y) in raw.arms.iter().zip(&from_sums.arms) {
            assert!((x.adjusted.mean() - y.adjusted.mean()).abs() < 1e-9);
            assert!((x.adjusted.variance() - y.adjusted.variance()).abs() < 1e-8);
            assert!(x.adjusted.variance() < x.unadjusted.variance());
        }
        // The adjustment keeps the pooled mean: Σ n_i·(adjusted mean_i) = Σ y.
        let total: f64 = raw
            .arms
            .iter()
            .map(|a| a.adjusted.mean() * a.adjusted.n() as f64)
            .sum();
        let raw_total: f64 = a.iter().chain(&b).map(|p| p.0).sum();
        assert!((total - raw_total).abs() < 1e-6 * raw_total);
    }

    #[test]
    fn uncorrelated_covariate_changes_little() {
        let a: Vec<(f64, f64)> = (0..100)
            .map(|i| (f64::from(i % 7), f64::from(i % 2)))
            .collect();
        let r = cuped(&[&a]).unwrap();
        assert!(r.variance_reduction >= 0.0 && r.variance_reduction < 0.05);
    }

    #[test]
    fn bad_input_is_an_error() {
        let constant_x = [(1.0, 3.0), (2.0, 3.0), (5.0, 3.0)];
        assert!(matches!(
            cuped(&[&constant_x]),
            Err(AnalysisError::ZeroVariance(_))
        ));
        assert!(matches!(
            cuped(&[&[(1.0, 2.0)]]),
            Err(AnalysisError::TooFewObservations { .. })
        ));
        assert!(matches!(
            cuped(&[&[(1.0, 2.0), (f64::NAN, 1.0)]]),
            Err(AnalysisError::NonFinite(_))
        ));
        assert!(matches!(cuped(&[]), Err(AnalysisError::Empty(_))));
        let mut s = sums(&[(1.0, 2.0), (2.0, 4.0)]);
        s.sum_xy = f64::INFINITY;
        assert!(matches!(
            cuped_from_sums(&[s]),
            Err(AnalysisError::NonFinite(_))
        ));
    }
}
