//! Fixed-horizon frequentist tests: the two-proportion z-test for
//! conversion metrics and Welch's t-test for continuous metrics, with
//! confidence intervals for the absolute and relative lift.
//!
//! Conventions (see `docs/analysis.md`):
//!
//! - lifts are *treatment − control* (absolute) and *(treatment − control) /
//!   control* (relative);
//! - p-values are two-sided, intervals are two-sided at level `1 − alpha`;
//! - the z-test's **statistic and p-value use the pooled standard error**
//!   `sqrt(p̂(1 − p̂)(1/n_t + 1/n_c))` with `p̂` the pooled rate, as in
//!   statsmodels' `proportions_ztest` (the variance under the null
//!   hypothesis of equal rates); its **interval uses the unpooled standard
//!   error** `sqrt(p_t(1 − p_t)/n_t + p_c(1 − p_c)/n_c)` (the Wald interval:
//!   no null hypothesis is assumed when estimating the difference);
//! - Welch's statistic, degrees of freedom (Welch–Satterthwaite), p-value and
//!   absolute interval (Student t critical value) match
//!   `scipy.stats.ttest_ind(equal_var=False)`;
//! - the relative lift's standard error is the delta method's,
//!   `Var(t/c) ≈ Var(t)/c² + t²·Var(c)/c⁴` on the variances of the two
//!   means (independent arms); its interval uses the same critical value
//!   as the absolute interval of the same test: the normal one for the
//!   z-test, Student's t with the Welch–Satterthwaite degrees of freedom
//!   for Welch;
//! - Student's t is evaluated exactly for every degree of freedom (no
//!   normal approximation, however large `df`): see `docs/analysis.md`.

use serde::{Deserialize, Serialize};

use crate::integrate::{phi_cdf, t_two_sided_p, t_upper_quantile, z_quantile};
use crate::summary::{AnalysisError, Moments, Proportion, check_alpha};

/// A point estimate with its standard error and two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interval {
    /// The point estimate.
    pub estimate: f64,
    /// Its standard error.
    pub se: f64,
    /// Lower end of the `1 − alpha` interval.
    pub ci_low: f64,
    /// Upper end of the `1 − alpha` interval.
    pub ci_high: f64,
}

impl Interval {
    fn symmetric(estimate: f64, se: f64, critical: f64) -> Self {
        Self {
            estimate,
            se,
            ci_low: estimate - critical * se,
            ci_high: estimate + critical * se,
        }
    }
}

/// The result of a treatment-versus-control test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// Control mean (conversion rate for proportions).
    pub control_mean: f64,
    /// Treatment mean (conversion rate for proportions).
    pub treatment_mean: f64,
    /// The test statistic: z for proportions, t for Welch.
    pub statistic: f64,
    /// Degrees of freedom of the t statistic; `None` for the z-test.
    pub df: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The `alpha` of the intervals (level `1 − alpha`).
    pub alpha: f64,
    /// Treatment − control.
    pub absolute: Interval,
    /// (treatment − control) / control; `None` when the control mean is 0
    /// (the ratio is undefined).
    pub relative: Option<Interval>,
}

/// Delta-method relative lift: estimate `t/c − 1`, standard error
/// `sqrt(var_t/c² + t²·var_c/c⁴)`, where `var_t` and `var_c` are the
/// variances of the two means; `critical` is the test's critical value.
fn relative_lift(t: f64, c: f64, var_t: f64, var_c: f64, critical: f64) -> Option<Interval> {
    if c == 0.0 {
        return None;
    }
    let se = (var_t / (c * c) + t * t * var_c / (c * c * c * c)).sqrt();
    Some(Interval::symmetric(t / c - 1.0, se, critical))
}

/// Two-proportion z-test of `treatment` against `control`.
///
/// Fails if an arm has no users or if no user (or every user) converted in
/// both arms together: the pooled standard error is then 0 and the statistic
/// undefined.
///
/// ```
/// use bunting_analysis::frequentist::two_proportion_z_test;
/// use bunting_analysis::summary::Proportion;
/// let control = Proportion::new(1000, 100).unwrap();
/// let treatment = Proportion::new(1000, 130).unwrap();
/// let r = two_proportion_z_test(control, treatment, 0.05).unwrap();
/// assert!((r.absolute.estimate - 0.03).abs() < 1e-12);
/// assert!(r.p_value < 0.05);
/// let rel = r.relative.unwrap();
/// assert!((rel.estimate - 0.3).abs() < 1e-12);
/// assert!(rel.ci_low < rel.estimate && rel.estimate < rel.ci_high);
/// ```
pub fn two_proportion_z_test(
    control: Proportion,
    treatment: Proportion,
    alpha: f64,
) -> Result<TestResult, AnalysisError> {
    check_alpha(alpha)?;
    let (Some(pc), Some(pt)) = (control.rate(), treatment.rate()) else {
        let n = control.n().min(treatment.n());
        return Err(AnalysisError::TooFewObservations {
            what: "a z-test arm",
            min: 1,
            n,
        });
    };
    let (nc, nt) = (control.n() as f64, treatment.n() as f64);
    let pooled = (control.conversions() + treatment.conversions()) as f64 / (nc + nt);
    let pooled_se = (pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nt)).sqrt();
    if pooled_se.is_nan() || pooled_se <= 0.0 {
        return Err(AnalysisError::ZeroVariance(
            "the pooled conversion rate is 0 or 1 (no conversions, or only conversions)",
        ));
    }
    let diff = pt - pc;
    let statistic = diff / pooled_se;
    let p_value = 2.0 * phi_cdf(-statistic.abs());
    let var_t = pt * (1.0 - pt) / nt;
    let var_c = pc * (1.0 - pc) / nc;
    let z = z_quantile(1.0 - alpha / 2.0);
    Ok(TestResult {
        control_mean: pc,
        treatment_mean: pt,
        statistic,
        df: None,
        p_value,
        alpha,
        absolute: Interval::symmetric(diff, (var_t + var_c).sqrt(), z),
        relative: relative_lift(pt, pc, var_t, var_c, z),
    })
}

/// Welch's unequal-variance t-test of `treatment` against `control`.
///
/// The absolute and relative intervals both use the Student t critical
/// value at the Welch–Satterthwaite degrees of freedom, evaluated exactly
/// for any `df` (no normal approximation). Fails if both arms have zero
/// variance.
///
/// ```
/// use bunting_analysis::frequentist::welch_t_test;
/// use bunting_analysis::summary::Moments;
/// let control = Moments::new(200, 10.0, 4.0).unwrap();
/// let treatment = Moments::new(150, 10.6, 9.0).unwrap();
/// let r = welch_t_test(control, treatment, 0.05).unwrap();
/// assert!((r.absolute.estimate - 0.6).abs() < 1e-12);
/// assert!(r.df.unwrap() < 348.0); // Welch–Satterthwaite, below n_t + n_c − 2
/// assert!(r.p_value < 0.05);
/// ```
pub fn welch_t_test(
    control: Moments,
    treatment: Moments,
    alpha: f64,
) -> Result<TestResult, AnalysisError> {
    check_alpha(alpha)?;
    let var_c = control.variance_of_mean();
    let var_t = treatment.variance_of_mean();
    let var = var_t + var_c;
    if var.is_nan() || var <= 0.0 {
        return Err(AnalysisError::ZeroVariance("both arms have zero variance"));
    }
    let se = var.sqrt();
    let diff = treatment.mean() - control.mean();
    let statistic = diff / se;
    // Welch–Satterthwaite on the shares w = v/(v_t + v_c), which cannot
    // underflow or overflow when the variances are tiny or huge:
    // df = 1 / (w_t²/(n_t − 1) + w_c²/(n_c − 1)).
    let (w_t, w_c) = (var_t / var, var_c / var);
    let df = 1.0 / (w_t * w_t / (treatment.n() - 1) as f64 + w_c * w_c / (control.n() - 1) as f64);
    let p_value = t_two_sided_p(statistic, df);
    let t_crit = t_upper_quantile(alpha / 2.0, df);
    Ok(TestResult {
        control_mean: control.mean(),
        treatment_mean: treatment.mean(),
        statistic,
        df: Some(df),
        p_value,
        alpha,
        absolute: Interval::symmetric(diff, se, t_crit),
        relative: relative_lift(treatment.mean(), control.mean(), var_t, var_c, t_crit),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_input() {
        let p = Proportion::new(10, 1).unwrap();
        let empty = Proportion::new(0, 0).unwrap();
        assert!(matches!(
            two_proportion_z_test(empty, p, 0.05),
            Err(AnalysisError::TooFewObservations { .. })
        ));
        let none = Proportion::new(10, 0).unwrap();
        assert!(matches!(
            two_proportion_z_test(none, none, 0.05),
            Err(AnalysisError::ZeroVariance(_))
        ));
        let all = Proportion::new(10, 10).unwrap();
        assert!(matches!(
            two_proportion_z_test(all, all, 0.05),
            Err(AnalysisError::ZeroVariance(_))
        ));
        for alpha in [0.0, 1.0, f64::NAN, -0.1] {
            assert!(matches!(
                two_proportion_z_test(p, p, alpha),
                Err(AnalysisError::OutOfRange { .. })
            ));
        }
        let flat = Moments::new(5, 1.0, 0.0).unwrap();
        assert!(matches!(
            welch_t_test(flat, flat, 0.05),
            Err(AnalysisError::ZeroVariance(_))
        ));
    }

    #[test]
    fn zero_control_rate_has_no_relative_lift() {
        let c = Proportion::new(100, 0).unwrap();
        let t = Proportion::new(100, 5).unwrap();
        let r = two_proportion_z_test(c, t, 0.05).unwrap();
        assert!(r.relative.is_none());
        assert!(r.p_value > 0.0 && r.p_value < 0.05);
    }

    #[test]
    fn swapping_arms_negates_the_statistic_and_keeps_the_p_value() {
        let a = Proportion::new(1234, 150).unwrap();
        let b = Proportion::new(987, 140).unwrap();
        let ab = two_proportion_z_test(a, b, 0.1).unwrap();
        let ba = two_proportion_z_test(b, a, 0.1).unwrap();
        assert_eq!(ab.statistic, -ba.statistic);
        assert!((ab.p_value - ba.p_value).abs() < 1e-15);
        assert!((ab.absolute.ci_low + ba.absolute.ci_high).abs() < 1e-15);

        let x = Moments::new(40, 3.0, 2.0).unwrap();
        let y = Moments::new(25, 3.5, 5.0).unwrap();
        let xy = welch_t_test(x, y, 0.05).unwrap();
        let yx = welch_t_test(y, x, 0.05).unwrap();
        assert_eq!(xy.statistic, -yx.statistic);
        assert_eq!(xy.df, yx.df);
        assert!((xy.p_value - yx.p_value).abs() < 1e-15);
    }

    #[test]
    fn interval_contains_estimate_and_widens_with_confidence() {
        let c = Moments::new(30, 5.0, 1.0).unwrap();
        let t = Moments::new(35, 5.4, 1.5).unwrap();
        let narrow = welch_t_test(c, t, 0.2).unwrap();
        let wide = welch_t_test(c, t, 0.01).unwrap();
        for r in [narrow, wide] {
            for i in [r.absolute, r.relative.unwrap()] {
                assert!(i.ci_low < i.estimate && i.estimate < i.ci_high);
            }
        }
        assert!(wide.absolute.ci_low < narrow.absolute.ci_low);
        assert!(wide.absolute.ci_high > narrow.absolute.ci_high);
    }

    #[test]
    fn welch_relative_interval_uses_the_t_critical_value() {
        // Small arms: t_{df, 0.975} is well above z = 1.96.
        let c = Moments::new(6, 10.0, 4.0).unwrap();
        let t = Moments::new(5, 12.0, 9.0).unwrap();
        let r = welch_t_test(c, t, 0.05).unwrap();
        let critical = |i: &Interval| (i.ci_high - i.estimate) / i.se;
        let rel = r.relative.unwrap();
        assert!((critical(&rel) - critical(&r.absolute)).abs() < 1e-12);
        assert!(critical(&rel) > 2.2, "{}", critical(&rel));
    }

    #[test]
    fn welch_is_exact_and_fast_at_huge_df() {
        // df ≈ 4e12: statrs' Student t hung here; the t tail must still
        // differ from the normal one by about t⁴/(4 df) relative.
        let c = Moments::new(2_000_000_000_000, 1.0, 1.0).unwrap();
        let t = Moments::new(2_000_000_000_000, 1.000_005, 1.0).unwrap();
        let r = welch_t_test(c, t, 0.05).unwrap();
        assert!(r.df.unwrap() > 3.9e12);
        let normal = 2.0 * phi_cdf(-r.statistic.abs());
        assert!(
            (r.p_value / normal - 1.0).abs() < 1e-9,
            "{} vs {normal}",
            r.p_value
        );
        // Tiny variances: the degrees of freedom do not underflow to NaN.
        let c = Moments::new(50, 0.0, 1e-300).unwrap();
        let t = Moments::new(70, 1e-151, 3e-300).unwrap();
        let r = welch_t_test(c, t, 0.05).unwrap();
        assert!(r.df.unwrap().is_finite() && r.p_value.is_finite());
    }

    #[test]
    fn p_value_and_interval_agree_at_the_boundary() {
        // For Welch, the (1 − p)-level interval has an end exactly at 0.
        let c = Moments::new(30, 5.0, 1.0).unwrap();
        let t = Moments::new(35, 5.4, 1.5).unwrap();
        let r = welch_t_test(c, t, 0.05).unwrap();
        let at_p = welch_t_test(c, t, r.p_value).unwrap();
        assert!(
            at_p.absolute.ci_low.abs() < 1e-9,
            "{}",
            at_p.absolute.ci_low
        );
    }
}
