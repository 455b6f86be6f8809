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

/// Degrees of freedom above which Student's t is treated as normal.
pub(crate) const NORMAL_DF: f64 = 1e6;

/// Two-sided Student t p-value `2 P(T > |t|)` for `df` degrees of freedom,
/// `I_{df/(df+t²)}(df/2, 1/2)`, accurate in the tail.
///
/// Above `NORMAL_DF` degrees of freedom the standard normal is used instead
/// (statrs' incomplete beta becomes very slow there; the relative difference
/// of the two tails is about `t⁴/(4 df)`, below 2e-4 for `|t| ≤ 5`).
pub(crate) fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if df > NORMAL_DF {
        return 2.0 * phi_cdf(-t.abs());
    }
    let x = df / (df + t * t);
    statrs::function::beta::beta_reg(0.5 * df, 0.5, x)
}

/// Student t density for `df` degrees of freedom, through `ln Γ` so it
/// stays finite for any `df` (statrs' direct gamma ratio overflows for
/// `df` above about 340).
fn t_pdf(x: f64, df: f64) -> f64 {
    if df > NORMAL_DF {
        return phi_pdf(x);
    }
    use statrs::function::gamma::ln_gamma;
    (ln_gamma(0.5 * (df + 1.0))
        - ln_gamma(0.5 * df)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - 0.5 * (df + 1.0) * (x * x / df).ln_1p())
    .exp()
}

/// Student t quantile `F⁻¹(p)`, `0.5 ≤ p < 1`, for `df` degrees of freedom:
/// a starting value refined by Newton
/// steps on the upper tail `P(T > x) = ½ I_{df/(df+x²)}(df/2, 1/2)`, so it
/// matches reference implementations to near machine precision.
pub(crate) fn t_quantile(p: f64, df: f64) -> f64 {
    use statrs::distribution::StudentsT;
    let tail = 1.0 - p;
    let start = StudentsT::new(0.0, 1.0, df)
        .map(|d| d.inverse_cdf(p))
        .unwrap_or(f64::NAN);
    let mut x = if start.is_finite() && start >= 0.0 {
        start
    } else {
        z_quantile(p)
    };
    for _ in 0..50 {
        let upper = 0.5 * t_two_sided_p(x, df);
        let density = t_pdf(x, df);
        if density.is_nan() || density <= 0.0 {
            break;
        }
        let next = (x + (upper - tail) / density).max(0.5 * x);
        if !next.is_finite() {
            break;
        }
        let converged = (next - x).abs() <= 4.0 * f64::EPSILON * x.abs();
        x = next;
        if converged {
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
    fn t_quantile_inverts_the_cdf() {
        for &df in &[1.0, 2.5, 7.0, 30.0, 999.0, 1e4, 5e5, 2e6] {
            for &p in &[0.5, 0.8, 0.975, 0.9995, 1.0 - 1e-9] {
                let x = t_quantile(p, df);
                let upper = 0.5 * t_two_sided_p(x, df);
                // statrs' incomplete beta near x = 1 limits this to about
                // 1e-9 at huge df.
                assert!(
                    (upper - (1.0 - p)).abs() < 1e-8 * (1.0 - p),
                    "df {df} p {p}: {upper}"
                );
            }
        }
    }
}
