//! The closed-form statistics of the normal-mixture SPRT: likelihood
//! ratios, always-valid p-values, confidence sequences and the choice of the
//! mixing variance. These are pure functions of one look; the stateful
//! [`SequentialTest`](super::SequentialTest) strings looks together.
//!
//! Notation (see the module documentation of [`sequential`](super) for the
//! derivations): `estimate` is Δ̂, `variance` is V = Var(Δ̂), `tau_squared`
//! is the mixing variance τ², and r = τ²/V.

use std::f64::consts::{LN_2, PI, SQRT_2};

use statrs::function::erf::erfc;

use super::SequentialError;

/// ln Φ(x), the log of the standard normal distribution function, accurate
/// far into the lower tail (where Φ itself underflows).
pub(crate) fn ln_normal_cdf(x: f64) -> f64 {
    if x < -35.0 {
        // Φ(x) = φ(x)/(−x) · (1 − 1/x² + 3/x⁴ − 15/x⁶ + …); the next term is
        // below 2e-11 here.
        let x2 = x * x;
        let series = 1.0 - 1.0 / x2 + 3.0 / (x2 * x2) - 15.0 / (x2 * x2 * x2);
        -0.5 * x2 - (-x).ln() - 0.5 * (2.0 * PI).ln() + series.ln()
    } else {
        (0.5 * erfc(-x / SQRT_2)).ln()
    }
}

fn check_estimate(estimate: f64) -> Result<(), SequentialError> {
    if estimate.is_finite() {
        Ok(())
    } else {
        Err(SequentialError::NonFinite("estimate"))
    }
}

fn check_variance(variance: f64) -> Result<(), SequentialError> {
    if variance.is_finite() && variance > 0.0 {
        Ok(())
    } else {
        Err(SequentialError::InvalidVariance(variance))
    }
}

pub(crate) fn check_tau_squared(tau_squared: f64) -> Result<(), SequentialError> {
    if tau_squared.is_finite() && tau_squared > 0.0 {
        Ok(())
    } else {
        Err(SequentialError::InvalidTauSquared(tau_squared))
    }
}

pub(crate) fn check_alpha(alpha: f64) -> Result<(), SequentialError> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(SequentialError::InvalidAlpha(alpha))
    }
}

/// Keeps a log-likelihood ratio finite (and so serializable): +∞ only arises
/// from absurd inputs (a variance of 1e-300 and the like) and means the same
/// as `f64::MAX`, a p-value of exactly 0.
fn finite(ln: f64) -> f64 {
    ln.min(f64::MAX)
}

/// ln Λ of the two-sided mSPRT of H0: Δ = `null_value` with the mixture
/// Δ ~ N(`null_value`, τ²):
///
/// ln Λ = −½·ln(1 + τ²/V) + (Δ̂ − θ0)²·τ² / (2V(V + τ²)).
///
/// # Errors
///
/// Non-finite estimate or null value, a variance or τ² that is not finite and
/// positive.
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::log_likelihood_ratio;
///
/// // Δ̂ = 0.01, V = 1e-5, τ² = 1e-4: r = 10.
/// let ln_lr = log_likelihood_ratio(0.01, 1e-5, 1e-4, 0.0).unwrap();
/// let expected = -0.5 * 11f64.ln() + 0.01f64.powi(2) * 1e-4 / (2.0 * 1e-5 * 1.1e-4);
/// assert!((ln_lr - expected).abs() < 1e-12);
/// ```
pub fn log_likelihood_ratio(
    estimate: f64,
    variance: f64,
    tau_squared: f64,
    null_value: f64,
) -> Result<f64, SequentialError> {
    check_estimate(estimate)?;
    if !null_value.is_finite() {
        return Err(SequentialError::NonFinite("null value"));
    }
    check_variance(variance)?;
    check_tau_squared(tau_squared)?;
    let r = tau_squared / variance;
    let d = estimate - null_value;
    // (d²/2V)·(τ²/(V+τ²)) = (d²/2V)·(r/(1+r)).
    Ok(finite(
        -0.5 * r.ln_1p() + d * d / (2.0 * variance) * (r / (1.0 + r)),
    ))
}

/// ln Λ⁺ of the one-sided mSPRT of H0: Δ ≤ `null_value` against Δ >
/// `null_value`, mixing over the alternatives with a half-normal,
/// Δ − θ0 ~ |N(0, τ²)|:
///
/// Λ⁺ = 2·Φ(x)·Λ, with x = (Δ̂ − θ0)·τ / √(V(V + τ²)) and Λ the two-sided
/// ratio above; in logs, ln Λ⁺ = ln 2 + ln Φ(x) + x²/2 − ½·ln(1 + τ²/V).
///
/// Λ⁺ is a supermartingale under every Δ ≤ θ0 (not only at the boundary), so
/// the test is valid for the whole composite null.
///
/// # Errors
///
/// As [`log_likelihood_ratio`].
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::{log_likelihood_ratio, one_sided_log_likelihood_ratio};
///
/// // Far above the null, the half-normal mixture is worth twice the normal one.
/// let one = one_sided_log_likelihood_ratio(0.05, 1e-5, 1e-4, 0.0).unwrap();
/// let two = log_likelihood_ratio(0.05, 1e-5, 1e-4, 0.0).unwrap();
/// assert!((one - two - 2f64.ln()).abs() < 1e-9);
/// // Below the null it is no evidence at all.
/// assert!(one_sided_log_likelihood_ratio(-0.01, 1e-5, 1e-4, 0.0).unwrap() < 0.0);
/// ```
pub fn one_sided_log_likelihood_ratio(
    estimate: f64,
    variance: f64,
    tau_squared: f64,
    null_value: f64,
) -> Result<f64, SequentialError> {
    check_estimate(estimate)?;
    if !null_value.is_finite() {
        return Err(SequentialError::NonFinite("null value"));
    }
    check_variance(variance)?;
    check_tau_squared(tau_squared)?;
    let r = tau_squared / variance;
    let x = (estimate - null_value) / variance.sqrt() * (r / (1.0 + r)).sqrt();
    Ok(finite(
        LN_2 + ln_normal_cdf(x) + 0.5 * x * x - 0.5 * r.ln_1p(),
    ))
}

/// The always-valid p-value of one look, min(1, 1/Λ) = min(1, e^(−ln Λ)).
/// Across looks, take the running minimum (the monitor does).
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::p_value;
///
/// assert_eq!(p_value(-3.0), 1.0);
/// assert!((p_value(20f64.ln()) - 0.05).abs() < 1e-15);
/// ```
#[must_use]
pub fn p_value(log_likelihood_ratio: f64) -> f64 {
    if log_likelihood_ratio.is_nan() {
        return 1.0;
    }
    (-log_likelihood_ratio).exp().min(1.0)
}

/// Half-width of the two-sided (1 − α) confidence sequence at one look,
/// Δ̂ ± w with
///
/// w = √( V(V + τ²)/τ² · (ln((V + τ²)/V) − 2·ln α) ),
///
/// the set of θ0 whose two-sided mSPRT has not reached 1/α.
///
/// # Errors
///
/// α outside (0, 1), a variance or τ² that is not finite and positive.
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::{confidence_sequence_half_width, log_likelihood_ratio};
///
/// let (estimate, v, tau2, alpha) = (0.012, 2e-5, 1.6e-4, 0.05);
/// let w = confidence_sequence_half_width(v, tau2, alpha).unwrap();
/// // At the edge of the interval the mSPRT is exactly at its threshold 1/α.
/// let at_edge = log_likelihood_ratio(estimate, v, tau2, estimate - w).unwrap();
/// assert!((at_edge - (1.0 / alpha).ln()).abs() < 1e-9);
/// ```
pub fn confidence_sequence_half_width(
    variance: f64,
    tau_squared: f64,
    alpha: f64,
) -> Result<f64, SequentialError> {
    check_variance(variance)?;
    check_tau_squared(tau_squared)?;
    check_alpha(alpha)?;
    let r = tau_squared / variance;
    Ok((variance * (1.0 + 1.0 / r) * (r.ln_1p() - 2.0 * alpha.ln())).sqrt())
}

/// Solves ln Φ(x) + x²/2 = k for x; the left side increases strictly from
/// −∞ to +∞ (its derivative φ(x)/Φ(x) + x is positive everywhere).
fn solve_half_normal_boundary(k: f64) -> f64 {
    let g = |x: f64| ln_normal_cdf(x) + 0.5 * x * x;
    // For x ≥ 0, ln Φ(x) ≥ −ln 2, so g(hi) ≥ hi²/2 − ln 2 > k.
    let mut hi = (2.0 * (k + LN_2).max(0.0)).sqrt() + 1.0;
    let mut lo = -1.0_f64;
    while g(lo) >= k && lo > -1e300 {
        lo *= 2.0;
    }
    while g(hi) < k && hi < 1e300 {
        hi *= 2.0;
    }
    for _ in 0..2100 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if g(mid) < k {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The lower end of the one-sided (1 − α) confidence sequence at one look:
/// the θ0 at which the one-sided mSPRT Λ⁺ (alternative Δ > θ0) equals 1/α.
/// Every θ0 below it is rejected; Δ ≥ bound with always-valid confidence
/// 1 − α. Found by bisection (Λ⁺ decreases strictly in θ0).
///
/// # Errors
///
/// As [`confidence_sequence_half_width`], plus a non-finite estimate.
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::{one_sided_lower_bound, one_sided_log_likelihood_ratio};
///
/// let (estimate, v, tau2, alpha) = (0.03, 2e-5, 1.6e-4, 0.05);
/// let lower = one_sided_lower_bound(estimate, v, tau2, alpha).unwrap();
/// let at_bound = one_sided_log_likelihood_ratio(estimate, v, tau2, lower).unwrap();
/// assert!((at_bound - (1.0 / alpha).ln()).abs() < 1e-9);
/// ```
pub fn one_sided_lower_bound(
    estimate: f64,
    variance: f64,
    tau_squared: f64,
    alpha: f64,
) -> Result<f64, SequentialError> {
    check_estimate(estimate)?;
    check_variance(variance)?;
    check_tau_squared(tau_squared)?;
    check_alpha(alpha)?;
    let r = tau_squared / variance;
    // ln 2 + g(x) − ½ ln(1+r) = −ln α  ⇔  g(x) = −ln α − ln 2 + ½ ln(1+r).
    let k = -alpha.ln() - LN_2 + 0.5 * r.ln_1p();
    let x = solve_half_normal_boundary(k);
    // x = (Δ̂ − θ0)/√V · √(r/(1+r))  ⇒  θ0 = Δ̂ − x·√V·√((1+r)/r).
    Ok(estimate - x * variance.sqrt() * ((1.0 + r) / r).sqrt())
}

/// The ratio r* = τ²/V that makes the two-sided confidence sequence
/// narrowest at a given variance V: the half-width is
/// √(V·(1 + 1/r)·(ln(1 + r) − 2 ln α)), whose derivative in r vanishes at
/// r − ln(1 + r) = −2 ln α; there the half-width is √(V·(1 + r*)).
/// r* ≈ 8.21 for α = 0.05 (6.64 for 0.10, 11.76 for 0.01).
///
/// # Errors
///
/// α outside (0, 1).
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::optimal_mixing_ratio;
///
/// let r = optimal_mixing_ratio(0.05).unwrap();
/// assert!((r - r.ln_1p() - 2.0 * 20f64.ln()).abs() < 1e-12);
/// assert!((r - 8.212).abs() < 1e-3);
/// ```
pub fn optimal_mixing_ratio(alpha: f64) -> Result<f64, SequentialError> {
    check_alpha(alpha)?;
    let c = -2.0 * alpha.ln();
    // r ← c + ln(1 + r) contracts (derivative 1/(1 + r) < 1) to the root.
    let mut r = c + 1.0;
    for _ in 0..200 {
        let next = c + r.ln_1p();
        if (next - r).abs() <= 1e-15 * next {
            return Ok(next);
        }
        r = next;
    }
    Ok(r)
}

/// τ² = r*·V: the mixing variance whose confidence sequence is narrowest
/// when Var(Δ̂) has come down to `target_variance`, e.g. the variance at the
/// planned sample size (2σ²/n for n users per arm and a per-user variance
/// σ²). Tighter than any other τ² near that point, a little looser well
/// before and well after it.
///
/// # Errors
///
/// α outside (0, 1), a target variance that is not finite and positive.
///
/// # Examples
///
/// ```
/// use bunting_analysis::sequential::msprt::tau_squared_for_variance;
///
/// // A conversion rate near 10 % (σ² = 0.09), 10 000 users per arm planned.
/// let tau2 = tau_squared_for_variance(2.0 * 0.09 / 10_000.0, 0.05).unwrap();
/// assert!((tau2.sqrt() - 0.0122).abs() < 1e-4);
/// ```
pub fn tau_squared_for_variance(target_variance: f64, alpha: f64) -> Result<f64, SequentialError> {
    check_variance(target_variance)?;
    Ok(optimal_mixing_ratio(alpha)? * target_variance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_normal_cdf_is_continuous_across_the_tail_switch() {
        // Same point through erfc and through the asymptotic series.
        let x = -35.000_001;
        let direct = (0.5 * erfc(-x / SQRT_2)).ln();
        let series = ln_normal_cdf(x);
        assert!(
            (direct - series).abs() < 1e-11 * direct.abs(),
            "{direct} vs {series}"
        );
        assert!(ln_normal_cdf(-1e6).is_finite());
        assert!(ln_normal_cdf(40.0) <= 0.0);
    }

    #[test]
    fn half_normal_boundary_solves_its_equation() {
        for k in [-5.0, 0.0, 1.0, 3.0, 10.0, 200.0] {
            let x = solve_half_normal_boundary(k);
            let g = ln_normal_cdf(x) + 0.5 * x * x;
            assert!((g - k).abs() < 1e-9 * k.abs().max(1.0), "k={k} x={x} g={g}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(
            log_likelihood_ratio(f64::NAN, 1.0, 1.0, 0.0),
            Err(SequentialError::NonFinite(_))
        ));
        assert!(matches!(
            log_likelihood_ratio(0.0, 0.0, 1.0, 0.0),
            Err(SequentialError::InvalidVariance(_))
        ));
        assert!(matches!(
            one_sided_log_likelihood_ratio(0.0, 1.0, -1.0, 0.0),
            Err(SequentialError::InvalidTauSquared(_))
        ));
        assert!(matches!(
            confidence_sequence_half_width(1.0, 1.0, 1.0),
            Err(SequentialError::InvalidAlpha(_))
        ));
        assert!(matches!(
            one_sided_lower_bound(0.0, 1.0, 1.0, 0.0),
            Err(SequentialError::InvalidAlpha(_))
        ));
        assert!(optimal_mixing_ratio(f64::NAN).is_err());
        assert_eq!(p_value(f64::NAN), 1.0);
    }

    #[test]
    fn extreme_evidence_stays_finite() {
        let ln = log_likelihood_ratio(1.0, 1e-300, 1.0, 0.0).unwrap();
        assert!(ln.is_finite());
        assert_eq!(p_value(ln), 0.0);
    }

    #[test]
    fn narrowest_width_is_at_the_optimal_ratio() {
        let v = 1e-5;
        let best = tau_squared_for_variance(v, 0.05).unwrap();
        let w = confidence_sequence_half_width(v, best, 0.05).unwrap();
        let r = best / v;
        assert!((w - (v * (1.0 + r)).sqrt()).abs() < 1e-12);
        for factor in [0.5, 0.9, 1.1, 2.0] {
            assert!(confidence_sequence_half_width(v, best * factor, 0.05).unwrap() > w);
        }
    }
}
