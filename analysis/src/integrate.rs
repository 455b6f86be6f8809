//! Deterministic numerical integration (adaptive Gauss–Kronrod 7–15) and
//! small special-function helpers shared by the modules.

use statrs::distribution::{Continuous, ContinuousCDF, Normal};

/// Abscissae of the 15-point Kronrod rule on `[-1, 1]` (QUADPACK `qk15`),
/// non-negative half, largest first; odd indices are the 7-point Gauss nodes.
const XGK: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
/// Weights of the 15-point Kronrod rule.
const WGK: [f64; 8] = [
    0.022_935_322_010_529_225,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_18,
    0.140_653_259_715_525_92,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_83,
];
/// Weights of the 7-point Gauss rule (nodes `XGK[1]`, `XGK[3]`, `XGK[5]`, 0).
const WG: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// One Gauss–Kronrod panel: (Kronrod estimate, |Kronrod − Gauss|).
fn gk15(f: &mut impl FnMut(f64) -> f64, a: f64, b: f64) -> (f64, f64) {
    let center = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let fc = f(center);
    let mut kronrod = fc * WGK[7];
    let mut gauss = fc * WG[3];
    for (j, (&x, &w)) in XGK.iter().zip(WGK.iter()).take(7).enumerate() {
        let dx = half * x;
        let pair = f(center - dx) + f(center + dx);
        kronrod += w * pair;
        if j % 2 == 1 {
            gauss += WG[j / 2] * pair;
        }
    }
    (kronrod * half, ((kronrod - gauss) * half).abs())
}

/// Integral of `f` over `[points[0], points[last]]`, with the interior
/// points as initial break points. Globally adaptive: the panel with the
/// largest error estimate is bisected until the total estimated error is
/// below `max(abs_tol, rel_tol * |integral|)` or the panel budget is spent.
pub(crate) fn integrate(
    mut f: impl FnMut(f64) -> f64,
    points: &[f64],
    abs_tol: f64,
    rel_tol: f64,
) -> f64 {
    const MAX_PANELS: usize = 2000;
    let mut panels: Vec<(f64, f64, f64, f64)> = points
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| {
            let (v, e) = gk15(&mut f, w[0], w[1]);
            (w[0], w[1], v, e)
        })
        .collect();
    loop {
        let total: f64 = panels.iter().map(|p| p.2).sum();
        let error: f64 = panels.iter().map(|p| p.3).sum();
        if error <= abs_tol.max(rel_tol * total.abs()) || panels.len() >= MAX_PANELS {
            return total;
        }
        let Some((worst, _)) = panels
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.3.total_cmp(&y.1.3))
        else {
            return total;
        };
        let (a, b, _, _) = panels.swap_remove(worst);
        let mid = 0.5 * (a + b);
        if mid <= a || mid >= b {
            // The panel cannot be split further in floating point.
            return total;
        }
        let (v1, e1) = gk15(&mut f, a, mid);
        let (v2, e2) = gk15(&mut f, mid, b);
        panels.push((a, mid, v1, e1));
        panels.push((mid, b, v2, e2));
    }
}

pub(crate) fn std_normal() -> Normal {
    Normal::standard()
}

/// Standard normal quantile.
pub(crate) fn z_quantile(p: f64) -> f64 {
    std_normal().inverse_cdf(p)
}

/// Standard normal CDF.
pub(crate) fn phi_cdf(x: f64) -> f64 {
    std_normal().cdf(x)
}

/// Standard normal density.
pub(crate) fn phi_pdf(x: f64) -> f64 {
    std_normal().pdf(x)
}

/// `ln Γ(a + ½) − ln Γ(a)` for `a > 0`, without the cancellation of two
/// huge `ln Γ` values: the asymptotic series
/// `½ ln a − 1/(8a) + 1/(192a³) − 1/(640a⁵) + 17/(14336a⁷) − 31/(18432a⁹)`
/// for `a ≥ 10` (truncation error below 1e-15 relative there, checked
/// against mpmath), `ln Γ` differences below (where they are small numbers).
pub(crate) fn ln_gamma_half_ratio(a: f64) -> f64 {
    use statrs::function::gamma::ln_gamma;
    if a < 10.0 {
        return ln_gamma(a + 0.5) - ln_gamma(a);
    }
    let r = 1.0 / (a * a);
    let series = (-1.0 / 8.0
        + r * (1.0 / 192.0 + r * (-1.0 / 640.0 + r * (17.0 / 14_336.0 + r * (-31.0 / 18_432.0)))))
        / a;
    0.5 * a.ln() + series
}

/// Upper tail `P(T > t)` of Student's t with `df > 0` degrees of freedom,
/// accurate to about 1e-13 relative for every finite `df` (no normal
/// approximation; `df = ∞` is the normal itself).
///
/// Why not `I_{df/(df+t²)}(df/2, ½)` in floating point (statrs): the
/// argument `x = df/(df + t²)` is stored with an absolute error of `ε`,
/// i.e. `1 − x ≈ t²/df` with a relative error of `ε·df/t²`, and the
/// incomplete beta depends on `x` through `(df/2)(1 − x)`: the result is
/// conditioned like `df·ε` (1e-6 relative at `df = 1e10`), and its
/// prefactor cancels `ln Γ` values of size `df·ln df`. statrs'
/// `StudentsT::inverse_cdf` then never meets its Newton tolerance on those
/// values (`inv_beta_reg` has no iteration cap): it hangs from
/// `df ≈ 1e8`.
///
/// Here the substitution `x = √df·tan θ` turns the tail into
/// `P(T > t) = (1/B(df/2, ½)) ∫_{θ₀}^{π/2} cos^{df−1}θ dθ`, `θ₀ = atan(t/√df)`.
/// On `[0, π/4]` it uses `ln cos θ = −½ ln(1 + tan²θ)` (`ln_1p`: no `1 − x`
/// anywhere), on `[π/4, π/2]` the variable `φ = π/2 − θ` with `ln sin φ`
/// and `φ₀ = atan(√df/t)` (so `π/2` is never rounded against `θ`);
/// `1/B(df/2, ½) = exp(ln_gamma_half_ratio(df/2))/√π` without
/// cancellation; the integrand is scaled by its value at `θ₀` (no
/// underflow before the final product). The integrals of these smooth,
/// monotone (for `df ≥ 1`) functions over finite intervals go to the
/// adaptive Gauss–Kronrod rule with break points where `x` has moved
/// 0.5, 1, 2, …, 64 units past `t` (the mass of large `df` sits within a few
/// units of `t`), to a relative error estimate of 1e-13.
pub(crate) fn t_upper_tail(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t < 0.0 {
        return 1.0 - t_upper_tail(-t, df);
    }
    if df.is_infinite() {
        return phi_cdf(-t);
    }
    if t.is_infinite() {
        return 0.0;
    }
    let sqrt_df = df.sqrt();
    let quarter_pi = std::f64::consts::FRAC_PI_4;
    // ln cos θ on [0, π/4] and, with φ = π/2 − θ, ln sin φ on (0, π/4]:
    // both accurate in relative terms (no π/2 − θ is ever rounded).
    let ln_cos = |theta: f64| {
        let tan = theta.tan();
        -0.5 * (tan * tan).ln_1p()
    };
    let ln_sin = |phi: f64| phi.sin().ln();
    let power = df - 1.0;
    // Where x = √df·tan θ has moved s units past t.
    let shifts = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let (reference, theta_points, phi_points) = if t <= sqrt_df {
        // θ₀ = atan(t/√df) ≤ π/4: ∫_{θ₀}^{π/4} in θ, then all of (0, π/4] in φ.
        let theta0 = (t / sqrt_df).atan();
        let mut theta_points = vec![theta0];
        let mut phi_points = vec![0.0];
        for s in shifts {
            let x = t + s;
            if x < sqrt_df {
                theta_points.push((x / sqrt_df).atan());
            } else {
                phi_points.push((sqrt_df / x).atan());
            }
        }
        theta_points.push(quarter_pi);
        phi_points.push(quarter_pi);
        (ln_cos(theta0), theta_points, phi_points)
    } else {
        // φ₀ = atan(√df/t) < π/4: only (0, φ₀] in φ.
        let phi0 = (sqrt_df / t).atan();
        let mut phi_points = vec![0.0];
        phi_points.extend(shifts.iter().rev().map(|s| (sqrt_df / (t + s)).atan()));
        phi_points.push(phi0);
        (ln_sin(phi0), Vec::new(), phi_points)
    };
    let sorted = |mut p: Vec<f64>| {
        p.sort_by(f64::total_cmp);
        p.dedup();
        p
    };
    let (theta_points, phi_points) = (sorted(theta_points), sorted(phi_points));
    // The integrand cos^{df−1}θ scaled by its value at θ₀.
    let scaled = |ln_value: f64| {
        if power == 0.0 {
            1.0
        } else {
            (power * (ln_value - reference)).exp()
        }
    };
    let mut integral = 0.0;
    if theta_points.len() >= 2 {
        integral += integrate(|theta| scaled(ln_cos(theta)), &theta_points, 0.0, 1e-13);
    }
    integral += integrate(|phi| scaled(ln_sin(phi)), &phi_points, 0.0, 1e-13);
    let ln_norm = ln_gamma_half_ratio(0.5 * df) - 0.5 * std::f64::consts::PI.ln();
    (ln_norm + power * reference).exp() * integral
}

/// Two-sided Student t p-value `2 P(T > |t|)` for `df` degrees of freedom
/// (see [`t_upper_tail`]).
pub(crate) fn t_two_sided_p(t: f64, df: f64) -> f64 {
    (2.0 * t_upper_tail(t.abs(), df)).min(1.0)
}

/// Student t density for `df` degrees of freedom, through
/// `ln Γ((df+1)/2) − ln Γ(df/2)` without cancellation (see
/// [`ln_gamma_half_ratio`]) and `ln_1p`, so it is accurate for any `df`.
pub(crate) fn t_pdf(x: f64, df: f64) -> f64 {
    if df.is_infinite() {
        return phi_pdf(x);
    }
    (ln_gamma_half_ratio(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (x * x / df).ln_1p())
    .exp()
}

/// The Student t quantile with upper tail `tail`: the `x ≥ 0` with
/// `P(T > x) = tail`, `0 < tail ≤ ½`, for `df` degrees of freedom.
///
/// Start: the Cornish–Fisher expansion of the normal quantile to `1/df³`;
/// then Newton steps on `ln P(T > x)` (whose slope is `−f(x)/P(T > x)`),
/// kept inside a bracket that every evaluation narrows (a step leaving it
/// is replaced by bisection), until the step is below 4 ulps.
pub(crate) fn t_upper_quantile(tail: f64, df: f64) -> f64 {
    if !(tail > 0.0 && tail <= 0.5) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    let z = -z_quantile(tail);
    if df.is_infinite() || tail == 0.5 {
        return z;
    }
    let (z2, n) = (z * z, df);
    let g1 = z * (z2 + 1.0) / 4.0;
    let g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    let g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    let start = z + (g1 + (g2 + g3 / n) / n) / n;
    let target = tail.ln();
    // Bracket: P(T > lo) ≥ tail ≥ P(T > hi).
    let (mut lo, mut hi) = (0.0_f64, f64::INFINITY);
    let mut x = if start.is_finite() && start > 0.0 {
        start
    } else {
        z.max(1.0)
    };
    for _ in 0..200 {
        let upper = t_upper_tail(x, df);
        if upper >= tail {
            lo = lo.max(x);
        } else {
            hi = hi.min(x);
        }
        let density = t_pdf(x, df);
        let newton = x + (upper.ln() - target) * upper / density;
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else if hi.is_finite() {
            0.5 * (lo + hi)
        } else {
            2.0 * x.max(1.0)
        };
        let converged = (next - x).abs() <= 4.0 * f64::EPSILON * x.abs();
        x = next;
        if converged || (hi.is_finite() && hi - lo <= 4.0 * f64::EPSILON * hi) {
            break;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kronrod_is_exact_for_polynomials_up_to_degree_22() {
        for k in 0..=22 {
            let (v, _) = gk15(&mut |x: f64| x.powi(k), 0.0, 1.0);
            let exact = 1.0 / f64::from(k + 1);
            assert!((v - exact).abs() < 1e-14, "degree {k}: {v} vs {exact}");
        }
    }

    #[test]
    fn gauss_part_is_exact_to_degree_13() {
        // The Kronrod−Gauss difference vanishes for low-degree polynomials.
        for k in 0..=13 {
            let (_, e) = gk15(&mut |x: f64| x.powi(k), -0.3, 0.9);
            assert!(e < 1e-14, "degree {k}: {e}");
        }
    }

    #[test]
    fn adaptive_handles_endpoint_singularity() {
        // ∫_0^1 x^{-1/2} dx = 2.
        let v = integrate(|x| x.powf(-0.5), &[0.0, 1.0], 1e-13, 1e-12);
        assert!((v - 2.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn half_ratio_series_meets_ln_gamma() {
        use statrs::function::gamma::ln_gamma;
        // At a = 10..60 both forms are accurate; they must agree.
        for a in [10.0, 12.5, 30.0, 60.0] {
            let direct = ln_gamma(a + 0.5) - ln_gamma(a);
            assert!((ln_gamma_half_ratio(a) - direct).abs() < 1e-13, "{a}");
        }
    }

    #[test]
    fn t_tail_matches_statrs_where_statrs_is_well_conditioned() {
        // For small df, statrs' incomplete beta is accurate (condition ~ df·ε).
        for df in [1.0, 1.5, 2.0, 3.0, 7.0, 30.0, 200.0] {
            for t in [0.0, 0.3, 1.0, 2.5, 6.0, 40.0] {
                let x = df / (df + t * t);
                let beta = 0.5 * statrs::function::beta::beta_reg(0.5 * df, 0.5, x);
                let ours = t_upper_tail(t, df);
                assert!(
                    (ours - beta).abs() <= 1e-12 * beta,
                    "df {df} t {t}: {ours:e} vs {beta:e}"
                );
            }
        }
        // Cauchy: P(T > t) = atan(1/t)/π.
        for t in [0.1_f64, 1.0, 10.0, 1e6, 1e12] {
            let exact = (1.0 / t).atan() / std::f64::consts::PI;
            assert!((t_upper_tail(t, 1.0) - exact).abs() <= 1e-13 * exact);
        }
    }

    /// The mpmath table of `tests/fixtures/reference.json` (generated by
    /// `analysis/reference/generate.py`, cross-checked there with scipy).
    #[test]
    fn student_t_matches_the_mpmath_reference() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/reference.json")).unwrap();
        let table = &fixture["studentT"];
        let num = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        let tails = table["tails"].as_array().unwrap();
        assert!(tails.len() >= 100);
        for row in tails {
            let (df, t, want) = (num(row, "df"), num(row, "t"), num(row, "upperTail"));
            let got = t_upper_tail(t, df);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "df {df} t {t}: {got:e} vs {want:e}"
            );
        }
        for row in table["quantiles"].as_array().unwrap() {
            let (df, tail, want) = (num(row, "df"), num(row, "tail"), num(row, "quantile"));
            let got = t_upper_quantile(tail, df);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "df {df} tail {tail}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn t_quantile_inverts_the_tail_for_any_df() {
        for &df in &[1.0, 2.5, 7.0, 30.0, 999.0, 1e4, 5e5, 2e6, 1e9, 1e13, 1e19] {
            for &tail in &[0.5, 0.2, 0.025, 5e-4, 1e-9, 1e-30] {
                let x = t_upper_quantile(tail, df);
                let upper = t_upper_tail(x, df);
                assert!(
                    (upper - tail).abs() < 1e-11 * tail,
                    "df {df} tail {tail}: x {x}, P(T > x) = {upper:e}"
                );
            }
        }
    }
}
