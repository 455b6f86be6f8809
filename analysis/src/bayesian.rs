//! Bayesian summaries of a treatment-versus-control comparison: chance to
//! beat control, expected loss and credible intervals.
//!
//! - Conversions: Beta-Binomial. With a `Beta(a, b)` prior (default
//!   `Beta(1, 1)`, uniform) and `k` conversions of `n` users, the rate's
//!   posterior is `Beta(a + k, b + n − k)`. `P(T > C)` and the expected
//!   losses are one-dimensional integrals over the two independent
//!   posteriors, computed by adaptive Gauss–Kronrod quadrature
//!   (deterministic; break points at posterior quantiles so concentrated
//!   posteriors are resolved).
//! - Means: Normal approximation with a flat prior. Each arm's mean has
//!   posterior `N(x̄, s²/n)`; the difference `D = T − C` is
//!   `N(d, σ²)` with `d = x̄_t − x̄_c`, `σ² = s_t²/n_t + s_c²/n_c`, so
//!   `P(T > C) = Φ(d/σ)` and, from `E[max(X, 0)] = mΦ(m/σ) + σφ(m/σ)` for
//!   `X ~ N(m, σ²)`, the expected losses have closed forms.
//!
//! The **expected loss of choosing treatment** is `E[max(C − T, 0)]`: what
//! is given up, on average, if treatment ships and is in fact worse; the
//! expected loss of keeping control is `E[max(T − C, 0)]`. Their difference
//! is `E[C] − E[T]`.

use serde::{Deserialize, Serialize};
use statrs::function::beta::{beta_reg, inv_beta_reg, ln_beta};

use crate::integrate::{integrate, phi_cdf, phi_pdf, z_quantile};
use crate::summary::{AnalysisError, Moments, Proportion, check_alpha};

/// A `Beta(alpha, beta)` prior for a conversion rate.
///
/// ```
/// use bunting_analysis::bayesian::BetaPrior;
/// assert_eq!(BetaPrior::default(), BetaPrior::new(1.0, 1.0).unwrap());
/// assert!(BetaPrior::new(0.0, 1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawPrior")]
pub struct BetaPrior {
    alpha: f64,
    beta: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPrior {
    alpha: f64,
    beta: f64,
}

impl TryFrom<RawPrior> for BetaPrior {
    type Error = AnalysisError;
    fn try_from(raw: RawPrior) -> Result<Self, Self::Error> {
        BetaPrior::new(raw.alpha, raw.beta)
    }
}

impl Default for BetaPrior {
    /// The uniform prior `Beta(1, 1)`.
    fn default() -> Self {
        Self {
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

impl BetaPrior {
    /// A prior with both parameters finite and positive.
    pub fn new(alpha: f64, beta: f64) -> Result<Self, AnalysisError> {
        for (name, value) in [("prior alpha", alpha), ("prior beta", beta)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(AnalysisError::OutOfRange {
                    name,
                    value,
                    expected: "finite and > 0",
                });
            }
        }
        Ok(Self { alpha, beta })
    }

    /// The first shape parameter.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The second shape parameter.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The posterior after observing `data`.
    pub fn update(&self, data: Proportion) -> BetaPosterior {
        let k = data.conversions() as f64;
        let misses = (data.n() - data.conversions()) as f64;
        BetaPosterior {
            alpha: self.alpha + k,
            beta: self.beta + misses,
        }
    }
}

/// A `Beta(alpha, beta)` posterior of a conversion rate.
///
/// ```
/// use bunting_analysis::bayesian::BetaPrior;
/// use bunting_analysis::summary::Proportion;
/// let post = BetaPrior::default().update(Proportion::new(100, 20).unwrap());
/// assert_eq!((post.alpha(), post.beta()), (21.0, 81.0));
/// let (low, high) = post.credible_interval(0.05).unwrap();
/// assert!(low < post.mean() && post.mean() < high);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BetaPosterior {
    alpha: f64,
    beta: f64,
}

impl BetaPosterior {
    /// The first shape parameter.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The second shape parameter.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// Posterior mean `alpha / (alpha + beta)`.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// Density at `x`.
    pub fn pdf(&self, x: f64) -> f64 {
        if !(x > 0.0 && x < 1.0) {
            return 0.0;
        }
        ((self.alpha - 1.0) * x.ln() + (self.beta - 1.0) * (-x).ln_1p()
            - ln_beta(self.alpha, self.beta))
        .exp()
    }

    /// `P(X ≤ x)`.
    pub fn cdf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            0.0
        } else if x >= 1.0 {
            1.0
        } else {
            beta_reg(self.alpha, self.beta, x)
        }
    }

    /// `P(X > x)`, accurate in the upper tail.
    pub fn sf(&self, x: f64) -> f64 {
        if x <= 0.0 {
            1.0
        } else if x >= 1.0 {
            0.0
        } else {
            beta_reg(self.beta, self.alpha, 1.0 - x)
        }
    }

    /// The `p`-quantile, `p` in `[0, 1]` (like `scipy.stats.beta.ppf`).
    pub fn quantile(&self, p: f64) -> Result<f64, AnalysisError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(AnalysisError::OutOfRange {
                name: "probability",
                value: p,
                expected: "0 <= p <= 1",
            });
        }
        if p == 0.0 {
            return Ok(0.0);
        }
        if p == 1.0 {
            return Ok(1.0);
        }
        // Solve in the tail that is smaller, for relative accuracy.
        if p <= 0.5 {
            Ok(lower_quantile(self.alpha, self.beta, p))
        } else {
            Ok(1.0 - lower_quantile(self.beta, self.alpha, 1.0 - p))
        }
    }

    /// Equal-tailed `1 − alpha` credible interval `(q(alpha/2), q(1 − alpha/2))`.
    pub fn credible_interval(&self, alpha: f64) -> Result<(f64, f64), AnalysisError> {
        check_alpha(alpha)?;
        Ok((
            self.quantile(alpha / 2.0)?,
            self.quantile(1.0 - alpha / 2.0)?,
        ))
    }

    /// The posterior with `alpha + 1` (its density is `x f(x) / mean`).
    fn shifted(&self) -> BetaPosterior {
        BetaPosterior {
            alpha: self.alpha + 1.0,
            beta: self.beta,
        }
    }
}

/// `x` with `I_x(a, b) = p` for `p ≤ 1/2`: statrs' AS 109 start, polished by
/// safeguarded Newton steps on the regularized incomplete beta function.
fn lower_quantile(a: f64, b: f64, p: f64) -> f64 {
    let dist = BetaPosterior { alpha: a, beta: b };
    let mut x = inv_beta_reg(a, b, p);
    if !(x > 0.0 && x < 1.0) {
        x = dist.mean().clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
    }
    // A bracket kept by bisection whenever Newton would leave it.
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let residual = dist.cdf(x) - p;
        if residual == 0.0 {
            break;
        }
        if residual > 0.0 {
            high = x;
        } else {
            low = x;
        }
        let density = dist.pdf(x);
        let mut next = x - residual / density;
        if !(next > low && next < high && next.is_finite()) {
            next = 0.5 * (low + high);
        }
        if (next - x).abs() <= 4.0 * f64::EPSILON * x {
            x = next;
            break;
        }
        x = next;
    }
    x
}

/// Summary of one arm's posterior.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmPosterior {
    /// Posterior mean.
    pub mean: f64,
    /// Lower end of the equal-tailed `1 − alpha` credible interval.
    pub ci_low: f64,
    /// Upper end of the equal-tailed `1 − alpha` credible interval.
    pub ci_high: f64,
}

/// A Bayesian comparison of treatment against control.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BayesianResult {
    /// Control's posterior.
    pub control: ArmPosterior,
    /// Treatment's posterior.
    pub treatment: ArmPosterior,
    /// `P(T > C)`, the chance that treatment beats control.
    pub prob_treatment_beats_control: f64,
    /// `E[max(C − T, 0)]`: the expected loss of choosing treatment.
    pub expected_loss_treatment: f64,
    /// `E[max(T − C, 0)]`: the expected loss of keeping control.
    pub expected_loss_control: f64,
    /// Credible interval of `T − C` (`None` for Beta-Binomial, where only
    /// the per-arm intervals are given).
    pub difference: Option<(f64, f64)>,
    /// The `alpha` of the intervals (level `1 − alpha`).
    pub alpha: f64,
}

const INTEGRATION_ABS_TOL: f64 = 1e-15;
const INTEGRATION_REL_TOL: f64 = 1e-12;

/// Break points for integrals over two Beta posteriors: 0, 1 and quantiles of
/// both, so the quadrature sees where the mass is.
fn break_points(a: &BetaPosterior, b: &BetaPosterior) -> Vec<f64> {
    const PROBS: [f64; 11] = [
        1e-13,
        1e-6,
        1e-3,
        0.05,
        0.25,
        0.5,
        0.75,
        0.95,
        0.999,
        1.0 - 1e-6,
        1.0 - 1e-13,
    ];
    let mut points = vec![0.0, 1.0];
    for dist in [a, b] {
        for &p in &PROBS {
            let q = inv_beta_reg(dist.alpha, dist.beta, p);
            if q > 0.0 && q < 1.0 {
                points.push(q);
            }
        }
    }
    points.sort_by(f64::total_cmp);
    points.dedup();
    points
}

/// `P(T > C) = ∫ f_C(x) P(T > x) dx` for independent Beta posteriors.
pub fn prob_beats(control: &BetaPosterior, treatment: &BetaPosterior) -> f64 {
    let points = break_points(control, treatment);
    let p = integrate(
        |x| control.pdf(x) * treatment.sf(x),
        &points,
        INTEGRATION_ABS_TOL,
        INTEGRATION_REL_TOL,
    );
    p.clamp(0.0, 1.0)
}

/// `E[max(A − B, 0)]` for independent Beta posteriors `A`, `B`:
/// `∫ f_B(x) E[(A − x)⁺] dx` with `E[(A − x)⁺] = E[A]·P(A⁺ > x) − x·P(A > x)`,
/// `A⁺ ~ Beta(α_A + 1, β_A)` (since `a f_A(a) = E[A] f_{A⁺}(a)`).
pub fn expected_shortfall(a: &BetaPosterior, b: &BetaPosterior) -> f64 {
    let points = break_points(a, b);
    let mean_a = a.mean();
    let shifted = a.shifted();
    let v = integrate(
        |x| b.pdf(x) * (mean_a * shifted.sf(x) - x * a.sf(x)).max(0.0),
        &points,
        INTEGRATION_ABS_TOL,
        INTEGRATION_REL_TOL,
    );
    v.max(0.0)
}

/// Beta-Binomial comparison of conversion rates under `prior` (the same
/// prior for both arms), with equal-tailed credible intervals at level
/// `1 − alpha`.
///
/// ```
/// use bunting_analysis::bayesian::{beta_binomial, BetaPrior};
/// use bunting_analysis::summary::Proportion;
/// let control = Proportion::new(1000, 100).unwrap();
/// let treatment = Proportion::new(1000, 130).unwrap();
/// let r = beta_binomial(control, treatment, BetaPrior::default(), 0.05).unwrap();
/// assert!(r.prob_treatment_beats_control > 0.97);
/// assert!(r.expected_loss_treatment < r.expected_loss_control);
/// // The two losses differ by the difference of the posterior means.
/// let gap = r.expected_loss_control - r.expected_loss_treatment;
/// assert!((gap - (r.treatment.mean - r.control.mean)).abs() < 1e-12);
/// ```
pub fn beta_binomial(
    control: Proportion,
    treatment: Proportion,
    prior: BetaPrior,
    alpha: f64,
) -> Result<BayesianResult, AnalysisError> {
    check_alpha(alpha)?;
    let pc = prior.update(control);
    let pt = prior.update(treatment);
    let arm = |post: &BetaPosterior| -> Result<ArmPosterior, AnalysisError> {
        let (ci_low, ci_high) = post.credible_interval(alpha)?;
        Ok(ArmPosterior {
            mean: post.mean(),
            ci_low,
            ci_high,
        })
    };
    Ok(BayesianResult {
        control: arm(&pc)?,
        treatment: arm(&pt)?,
        prob_treatment_beats_control: prob_beats(&pc, &pt),
        expected_loss_treatment: expected_shortfall(&pc, &pt),
        expected_loss_control: expected_shortfall(&pt, &pc),
        difference: None,
        alpha,
    })
}

/// Normal-approximation comparison of means (flat prior): each arm's mean
/// is `N(x̄, s²/n)`.
///
/// With `d = x̄_t − x̄_c` and `σ = sqrt(s_t²/n_t + s_c²/n_c)`:
/// `P(T > C) = Φ(d/σ)`,
/// `E[max(C − T, 0)] = σφ(d/σ) − dΦ(−d/σ)`,
/// `E[max(T − C, 0)] = σφ(d/σ) + dΦ(d/σ)`,
/// and the interval of `T − C` is `d ± z_{1−alpha/2} σ`. Fails if both
/// variances are zero.
///
/// ```
/// use bunting_analysis::bayesian::normal_means;
/// use bunting_analysis::summary::Moments;
/// let control = Moments::new(400, 10.0, 16.0).unwrap();
/// let treatment = Moments::new(400, 10.0, 16.0).unwrap();
/// let r = normal_means(control, treatment, 0.05).unwrap();
/// assert_eq!(r.prob_treatment_beats_control, 0.5);
/// // σ = sqrt(0.08); with d = 0 both losses are σφ(0).
/// let expected = 0.08_f64.sqrt() / (2.0 * std::f64::consts::PI).sqrt();
/// assert!((r.expected_loss_treatment - expected).abs() < 1e-15);
/// ```
pub fn normal_means(
    control: Moments,
    treatment: Moments,
    alpha: f64,
) -> Result<BayesianResult, AnalysisError> {
    check_alpha(alpha)?;
    let var_c = control.variance_of_mean();
    let var_t = treatment.variance_of_mean();
    let sigma = (var_c + var_t).sqrt();
    if sigma.is_nan() || sigma <= 0.0 {
        return Err(AnalysisError::ZeroVariance("both arms have zero variance"));
    }
    let z = z_quantile(1.0 - alpha / 2.0);
    let arm = |m: &Moments, var: f64| {
        let sd = var.sqrt();
        ArmPosterior {
            mean: m.mean(),
            ci_low: m.mean() - z * sd,
            ci_high: m.mean() + z * sd,
        }
    };
    let d = treatment.mean() - control.mean();
    let ratio = d / sigma;
    let density = sigma * phi_pdf(ratio);
    Ok(BayesianResult {
        control: arm(&control, var_c),
        treatment: arm(&treatment, var_t),
        prob_treatment_beats_control: phi_cdf(ratio),
        expected_loss_treatment: density - d * phi_cdf(-ratio),
        expected_loss_control: density + d * phi_cdf(ratio),
        difference: Some((d - z * sigma, d + z * sigma)),
        alpha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Beta as BetaDist, Distribution};

    #[test]
    fn quantile_inverts_cdf() {
        for (a, b) in [
            (1.0, 1.0),
            (0.5, 0.5),
            (1.0, 101.0),
            (3.0, 8.0),
            (500.5, 9500.5),
            (40.0, 1.0),
        ] {
            let post = BetaPosterior { alpha: a, beta: b };
            for p in [1e-9, 0.001, 0.025, 0.5, 0.975, 0.999] {
                let q = post.quantile(p).unwrap();
                let back = if p <= 0.5 {
                    post.cdf(q)
                } else {
                    1.0 - post.sf(q)
                };
                assert!(
                    (back - p).abs() <= 1e-12 * p.max(1e-3),
                    "Beta({a},{b}) p={p}: {back}"
                );
            }
        }
        let post = BetaPosterior {
            alpha: 2.0,
            beta: 2.0,
        };
        assert!(post.quantile(1.5).is_err());
        assert_eq!(post.quantile(0.0).unwrap(), 0.0);
    }

    #[test]
    fn identical_arms_are_a_coin_flip() {
        let p = Proportion::new(5000, 250).unwrap();
        let r = beta_binomial(p, p, BetaPrior::default(), 0.05).unwrap();
        assert!((r.prob_treatment_beats_control - 0.5).abs() < 1e-10);
        assert!((r.expected_loss_treatment - r.expected_loss_control).abs() < 1e-14);
    }

    #[test]
    fn swapping_arms_complements_the_probability() {
        let a = Proportion::new(300, 12).unwrap();
        let b = Proportion::new(280, 20).unwrap();
        let prior = BetaPrior::new(0.5, 0.5).unwrap();
        let ab = beta_binomial(a, b, prior, 0.05).unwrap();
        let ba = beta_binomial(b, a, prior, 0.05).unwrap();
        assert!(
            (ab.prob_treatment_beats_control + ba.prob_treatment_beats_control - 1.0).abs() < 1e-12
        );
        assert!((ab.expected_loss_treatment - ba.expected_loss_control).abs() < 1e-15);
    }

    #[test]
    fn beta_binomial_agrees_with_monte_carlo() {
        let control = Proportion::new(200, 30).unwrap();
        let treatment = Proportion::new(220, 41).unwrap();
        let r = beta_binomial(control, treatment, BetaPrior::default(), 0.05).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let dc = BetaDist::new(31.0, 171.0).unwrap();
        let dt = BetaDist::new(42.0, 180.0).unwrap();
        let draws = 200_000;
        let (mut wins, mut loss) = (0u32, 0.0);
        for _ in 0..draws {
            let (c, t): (f64, f64) = (dc.sample(&mut rng), dt.sample(&mut rng));
            wins += u32::from(t > c);
            loss += (c - t).max(0.0);
        }
        let p_mc = f64::from(wins) / f64::from(draws);
        // Standard error of the Monte Carlo estimate is below 0.0012.
        assert!(
            (p_mc - r.prob_treatment_beats_control).abs() < 0.005,
            "{p_mc}"
        );
        let loss_mc = loss / f64::from(draws);
        assert!(
            (loss_mc - r.expected_loss_treatment).abs() < 0.1 * r.expected_loss_treatment + 1e-5
        );
    }

    #[test]
    fn normal_losses_differ_by_the_mean_difference() {
        let c = Moments::new(50, 3.0, 4.0).unwrap();
        let t = Moments::new(60, 3.7, 2.0).unwrap();
        let r = normal_means(c, t, 0.1).unwrap();
        assert!((r.expected_loss_control - r.expected_loss_treatment - 0.7).abs() < 1e-14);
        let (low, high) = r.difference.unwrap();
        assert!(low < 0.7 && 0.7 < high);
        let flat = Moments::new(5, 1.0, 0.0).unwrap();
        assert!(normal_means(flat, flat, 0.05).is_err());
    }

    #[test]
    fn prior_deserialization_validates() {
        assert!(serde_json::from_str::<BetaPrior>(r#"{"alpha":1.0,"beta":-1.0}"#).is_err());
        let p: BetaPrior = serde_json::from_str(r#"{"alpha":0.5,"beta":0.5}"#).unwrap();
        assert_eq!(p, BetaPrior::new(0.5, 0.5).unwrap());
    }
}
