#!/usr/bin/env python3
"""Independent reference values for bunting-analysis's fixed-horizon,
Bayesian, SRM, CUPED and Holm methods.

Regenerate the committed fixture (from the repository root) with:

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install numpy==2.4.6 scipy==1.17.1 statsmodels==0.15.0 mpmath==1.4.1
    /tmp/refenv/bin/python analysis/reference/generate.py > analysis/tests/fixtures/reference.json

Versions used for the committed fixture (also recorded in it): Python 3.11.7,
numpy 2.4.6, scipy 1.17.1, statsmodels 0.15.0, mpmath 1.4.1.

Every value comes from the library the method is defined against:
statsmodels' proportions_ztest and confint_proportions_2indep (z-test),
scipy.stats.ttest_ind / ttest_ind_from_stats (Welch), scipy.stats.beta.ppf
(credible intervals), scipy.integrate.quad (chance to beat control and
expected loss, cross-checked here against Evan Miller's exact sum evaluated
with mpmath at 40 digits and against Monte Carlo), scipy.stats.chisquare
(SRM), numpy (CUPED) and statsmodels' multipletests (Holm). The delta-method
relative lift has no library implementation; it is computed from the
documented formula on the library's standard errors, with the test's own
critical value (scipy.stats.t.ppf at the Welch-Satterthwaite df for Welch).
Student t tails and quantiles (the "studentT" table and every Welch case)
are computed with mpmath's regularized incomplete beta at 40 digits and
cross-checked against scipy.stats.t (1e-11 tails, 1e-12 quantiles), for
degrees of freedom from 1 to 1e19. The Rust
test analysis/tests/reference.rs compares every number to 1e-6 relative.
"""

import json
import math
import platform
import sys
import warnings

import mpmath
import numpy as np
import scipy
import statsmodels
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

mpmath.mp.dps = 40
# scipy warns that the "constant control" Welch case has (exactly) no spread.
warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation")
RNG = np.random.default_rng(20261125)


def f(x):
    """A plain float for JSON (no numpy scalars; NaN/inf are refused)."""
    x = float(x)
    assert math.isfinite(x), x
    return x


def interval(estimate, se, low, high):
    return {"estimate": f(estimate), "se": f(se), "ciLow": f(low), "ciHigh": f(high)}


def delta_relative(t, c, var_t, var_c, critical):
    """(t - c)/c with Var(t/c) ~ var_t/c^2 + t^2 var_c/c^4 and the test's
    critical value (normal for the z-test, Student t at the Welch df)."""
    if c == 0:
        return None
    se = math.sqrt(var_t / c**2 + t**2 * var_c / c**4)
    est = t / c - 1
    return interval(est, se, est - critical * se, est + critical * se)


def mp_t_tail(t, df):
    """P(T > t), t >= 0, with mpmath at 40 digits: I_{df/(df+t^2)}(df/2, 1/2)/2."""
    t, df = mpmath.mpf(t), mpmath.mpf(df)
    return mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, df / (df + t * t), regularized=True) / 2


def mp_t_quantile(tail, df):
    """The x with P(T > x) = tail, by mpmath's root finder on mp_t_tail
    (started at scipy's value, which the root does not depend on)."""
    start = mpmath.mpf(stats.t.isf(float(tail), df))
    return mpmath.findroot(lambda x: mp_t_tail(x, df) - tail, start, tol=mpmath.mpf(10) ** -30 * tail**2)


def t_critical(alpha, df):
    """scipy's Student t critical value, checked against mpmath."""
    q = stats.t.ppf(1 - alpha / 2, df)
    assert math.isclose(q, float(mp_t_quantile(mpmath.mpf(alpha) / 2, df)), rel_tol=1e-12), (alpha, df, q)
    return q


# ---------------------------------------------------------------- z-test
def z_test_case(name, control, treatment, alpha):
    nc, kc = control
    nt, kt = treatment
    case = {
        "name": name,
        "control": {"n": nc, "conversions": kc},
        "treatment": {"n": nt, "conversions": kt},
        "alpha": alpha,
    }
    if kc + kt in (0, nc + nt):
        case["error"] = "ZeroVariance"  # statsmodels returns nan: pooled SE is 0
        return case
    stat, p = proportions_ztest(np.array([kt, kc]), np.array([nt, nc]))
    pt, pc = kt / nt, kc / nc
    var_t, var_c = pt * (1 - pt) / nt, pc * (1 - pc) / nc
    low, high = confint_proportions_2indep(kt, nt, kc, nc, method="wald", compare="diff", alpha=alpha)
    case["expected"] = {
        "controlMean": f(pc),
        "treatmentMean": f(pt),
        "statistic": f(stat),
        "pValue": f(p),
        "absolute": interval(pt - pc, math.sqrt(var_t + var_c), low, high),
        "relative": delta_relative(pt, pc, var_t, var_c, stats.norm.ppf(1 - alpha / 2)),
    }
    return case


Z_CASES = [
    z_test_case("typical", (10000, 1000), (10000, 1080), 0.05),
    z_test_case("unequal n", (100, 7), (100000, 9100), 0.05),
    z_test_case("tiny n", (5, 1), (4, 3), 0.05),
    z_test_case("zero conversions in control", (800, 0), (750, 6), 0.05),
    z_test_case("zero conversions in treatment", (800, 9), (820, 0), 0.1),
    z_test_case("all converted in one arm", (50, 50), (60, 41), 0.05),
    z_test_case("large n small effect", (2000000, 61000), (2000000, 61850), 0.01),
    z_test_case("no difference", (1000, 200), (1000, 200), 0.05),
    z_test_case("extreme difference", (5000, 50), (5000, 400), 0.05),
    z_test_case("no conversions at all", (100, 0), (120, 0), 0.05),
]


# ---------------------------------------------------------------- Welch
def welch_from_raw(name, control, treatment, alpha):
    res = stats.ttest_ind(treatment, control, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    mt, mc = np.mean(treatment), np.mean(control)
    vt, vc = np.var(treatment, ddof=1), np.var(control, ddof=1)
    var_t, var_c = vt / len(treatment), vc / len(control)
    return {
        "name": name,
        "controlValues": [f(v) for v in control],
        "treatmentValues": [f(v) for v in treatment],
        "control": {"n": len(control), "mean": f(mc), "variance": f(vc)},
        "treatment": {"n": len(treatment), "mean": f(mt), "variance": f(vt)},
        "alpha": alpha,
        "expected": {
            "controlMean": f(mc),
            "treatmentMean": f(mt),
            "statistic": f(res.statistic),
            "df": f(res.df),
            "pValue": f(res.pvalue),
            "absolute": interval(mt - mc, math.sqrt(var_t + var_c), ci.low, ci.high),
            "relative": delta_relative(mt, mc, var_t, var_c, t_critical(alpha, res.df)),
        },
    }


def welch_from_stats(name, control, treatment, alpha):
    (nc, mc, vc), (nt, mt, vt) = control, treatment
    res = stats.ttest_ind_from_stats(mt, math.sqrt(vt), nt, mc, math.sqrt(vc), nc, equal_var=False)
    var_t, var_c = vt / nt, vc / nc
    # Welch-Satterthwaite; ttest_ind_from_stats does not return df, so the
    # formula is written out here and checked against the p-value scipy gives.
    df = (var_t + var_c) ** 2 / (var_t**2 / (nt - 1) + var_c**2 / (nc - 1))
    assert math.isclose(2 * stats.t.sf(abs(res.statistic), df), res.pvalue, rel_tol=1e-9)
    # Independent check of scipy's t tail at this df (matters at huge df).
    assert math.isclose(2 * float(mp_t_tail(abs(res.statistic), df)), res.pvalue, rel_tol=1e-11)
    critical = t_critical(alpha, df)
    half = critical * math.sqrt(var_t + var_c)
    d = mt - mc
    return {
        "name": name,
        "control": {"n": nc, "mean": f(mc), "variance": f(vc)},
        "treatment": {"n": nt, "mean": f(mt), "variance": f(vt)},
        "alpha": alpha,
        "expected": {
            "controlMean": f(mc),
            "treatmentMean": f(mt),
            "statistic": f(res.statistic),
            "df": f(df),
            "pValue": f(res.pvalue),
            "absolute": interval(d, math.sqrt(var_t + var_c), d - half, d + half),
            "relative": delta_relative(mt, mc, var_t, var_c, critical),
        },
    }


def raw(n, mean, sd):
    return [round(float(v), 6) for v in RNG.normal(mean, sd, n)]


WELCH_CASES = [
    welch_from_raw("smallest n", raw(2, 10.0, 2.0), raw(2, 12.0, 2.0), 0.05),
    welch_from_raw("tiny n unequal", raw(3, 5.0, 1.0), raw(7, 6.0, 3.0), 0.05),
    welch_from_raw("unequal variances", raw(40, 100.0, 5.0), raw(25, 104.0, 20.0), 0.05),
    welch_from_raw("skewed revenue", [round(float(v), 4) for v in RNG.lognormal(2.0, 1.0, 300)],
                   [round(float(v), 4) for v in RNG.lognormal(2.1, 1.0, 280)], 0.1),
    welch_from_raw("constant control", [3.0, 3.0, 3.0, 3.0], raw(6, 3.5, 0.5), 0.05),
    welch_from_raw("negative control mean", raw(30, -2.0, 1.0), raw(30, -1.5, 1.0), 0.01),
    welch_from_stats("large n summaries", (250000, 31.7, 412.0), (249000, 31.9, 430.5), 0.05),
    welch_from_stats("very unequal n", (50, 12.0, 9.0), (90000, 12.4, 16.0), 0.05),
    welch_from_stats("huge effect", (1000, 1.0, 1.0), (1000, 1.5, 1.0), 0.05),
    # Degrees of freedom far beyond 1e6 (statrs' Student t hung from about
    # 1e8; the normal approximation used to start at 1e6).
    welch_from_stats("df about 2e6", (1000000, 20.0, 90.0), (1000003, 20.02, 110.0), 0.05),
    welch_from_stats("df about 1e9, t about 5", (500000000, 3.0, 4.0), (500000000, 3.0006, 4.0), 0.05),
    welch_from_stats("df about 4e12, large t", (2000000000000, 1.0, 1.0), (2000000000000, 1.00002, 1.0), 0.01),
    welch_from_stats("df about 1e18", (500000000000000000, 7.0, 2.0), (600000000000000000, 7.0, 3.0), 0.05),
    welch_from_stats("tiny arms, relative lift", (3, 10.0, 4.0), (4, 13.0, 9.0), 0.05),
]


# ---------------------------------------------------------------- Student t
def t_row(df, t):
    tail = mp_t_tail(t, df)
    # scipy (Boost) agrees to 1e-11 relative, except that Boost uses the
    # normal above df = 1/eps, off by about t^4/(4 df); mpmath is the reference.
    assert math.isclose(stats.t.sf(t, df), float(tail), rel_tol=1e-11 + t**4 / df), (df, t, stats.t.sf(t, df), tail)
    return {"df": df, "t": t, "upperTail": f(tail)}


def q_row(df, tail):
    x = mp_t_quantile(mpmath.mpf(tail), df)
    assert math.isclose(stats.t.isf(tail, df), float(x), rel_tol=1e-12), (df, tail)
    return {"df": df, "tail": tail, "quantile": f(x)}


T_DFS = [1.0, 1.5, 2.0, 3.0, 7.5, 30.0, 1e3, 1e5, 1e6, 2e6, 1e8, 1e10, 1e13, 1e16, 1e19]
STUDENT_T = {
    "tails": [t_row(df, t) for df in T_DFS for t in (0.0, 0.3, 1.0, 1.96, 3.5, 8.0, 20.0, 37.0)],
    "quantiles": [q_row(df, q) for df in T_DFS for q in (0.25, 0.025, 0.005, 1e-6, 1e-15)],
}


# ---------------------------------------------------------------- Bayesian
PROBS = [1e-13, 1e-6, 1e-3, 0.05, 0.25, 0.5, 0.75, 0.95, 0.999, 1 - 1e-6, 1 - 1e-13]


def quad(fun, a_params, b_params):
    points = sorted({float(stats.beta.ppf(p, *prm)) for prm in (a_params, b_params) for p in PROBS})
    points = [p for p in points if 0 < p < 1]
    value, err = integrate.quad(fun, 0, 1, points=points, limit=1000, epsabs=1e-15, epsrel=1e-13)
    return value


def miller_prob_b_beats_a(a, b):
    """Exact P(X_B > X_A) for X ~ Beta, B's first parameter an integer
    (Evan Miller, "Formulas for Bayesian A/B testing"), at 40 digits."""
    (aa, ba), (ab, bb) = [tuple(mpmath.mpf(v) for v in prm) for prm in (a, b)]
    assert ab == int(ab)
    total = mpmath.mpf(0)
    for i in range(int(ab)):
        total += mpmath.exp(
            mpmath.log(mpmath.beta(aa + i, ba + bb))
            - mpmath.log(bb + i)
            - mpmath.log(mpmath.beta(1 + i, bb))
            - mpmath.log(mpmath.beta(aa, ba))
        )
    return total


def beta_case(name, control, treatment, prior, alpha):
    (nc, kc), (nt, kt) = control, treatment
    pa, pb = prior
    c = (pa + kc, pb + nc - kc)
    t = (pa + kt, pb + nt - kt)
    prob = quad(lambda x: stats.beta.pdf(x, *c) * stats.beta.sf(x, *t), c, t)

    def shortfall(a, b):
        """E[max(A - B, 0)] = int f_B(x) (E[A] P(A+ > x) - x P(A > x)) dx, A+ ~ Beta(a1 + 1, a2)."""
        mean_a = a[0] / (a[0] + a[1])
        return quad(
            lambda x: stats.beta.pdf(x, *b) * (mean_a * stats.beta.sf(x, a[0] + 1, a[1]) - x * stats.beta.sf(x, *a)),
            a,
            b,
        )

    loss_t = shortfall(c, t)  # E[max(C - T, 0)]
    loss_c = shortfall(t, c)  # E[max(T - C, 0)]
    mean_c, mean_t = c[0] / sum(c), t[0] / sum(t)
    # Cross-checks that do not share the integration.
    assert math.isclose(loss_c - loss_t, mean_t - mean_c, rel_tol=1e-9, abs_tol=1e-14)
    if t[0] == int(t[0]) and c[0] == int(c[0]):
        exact = miller_prob_b_beats_a(c, t)
        assert abs(prob - float(exact)) < 1e-12 * max(prob, 1e-3), (name, prob, exact)
        # E[(C - T)+] = E[C] P(C+ > T) - E[T] P(C > T+)
        exact_loss = mean_c * miller_prob_b_beats_a(t, (c[0] + 1, c[1])) - mean_t * miller_prob_b_beats_a(
            (t[0] + 1, t[1]), c
        )
        assert abs(loss_t - float(exact_loss)) < 1e-12 * max(loss_t, 1e-6), (name, loss_t, exact_loss)
    draws_c = RNG.beta(*c, 400000)
    draws_t = RNG.beta(*t, 400000)
    assert abs(np.mean(draws_t > draws_c) - prob) < 0.005
    assert abs(np.mean(np.maximum(draws_c - draws_t, 0)) - loss_t) < 0.05 * loss_t + 1e-5

    def arm(params):
        return {
            "mean": f(params[0] / sum(params)),
            "ciLow": f(stats.beta.ppf(alpha / 2, *params)),
            "ciHigh": f(stats.beta.ppf(1 - alpha / 2, *params)),
        }

    return {
        "name": name,
        "control": {"n": nc, "conversions": kc},
        "treatment": {"n": nt, "conversions": kt},
        "prior": {"alpha": pa, "beta": pb},
        "alpha": alpha,
        "expected": {
            "control": arm(c),
            "treatment": arm(t),
            "probTreatmentBeatsControl": f(prob),
            "expectedLossTreatment": f(loss_t),
            "expectedLossControl": f(loss_c),
        },
    }


BETA_CASES = [
    beta_case("typical", (1000, 100), (1000, 130), (1, 1), 0.05),
    beta_case("no data in control", (0, 0), (3, 1), (1, 1), 0.05),
    beta_case("tiny n", (4, 1), (5, 3), (1, 1), 0.1),
    beta_case("zero conversions in one arm", (400, 0), (380, 4), (1, 1), 0.05),
    beta_case("Jeffreys prior, zero conversions", (300, 0), (320, 2), (0.5, 0.5), 0.05),
    beta_case("informative prior", (200, 30), (210, 25), (10, 90), 0.05),
    beta_case("large n small effect", (200000, 10000), (200000, 10400), (1, 1), 0.05),
    beta_case("unequal n", (150, 12), (20000, 1500), (1, 1), 0.2),
    beta_case("clear winner", (1000, 10), (1000, 60), (1, 1), 0.05),
    beta_case("all converted", (30, 30), (30, 28), (1, 1), 0.05),
]

BETA_QUANTILES = [
    {"alpha": a, "beta": b, "p": p, "quantile": f(stats.beta.ppf(p, a, b))}
    for a, b in [(1, 1), (0.5, 300.5), (1, 401), (3, 8), (10001, 190001), (45.5, 2.5), (31, 1)]
    for p in [1e-10, 0.001, 0.025, 0.3, 0.5, 0.975, 0.999999]
]


def normal_case(name, control, treatment, alpha):
    (nc, mc, vc), (nt, mt, vt) = control, treatment
    sc, st = math.sqrt(vc / nc), math.sqrt(vt / nt)
    sigma = math.hypot(sc, st)
    d = mt - mc
    prob = stats.norm.sf(0, loc=d, scale=sigma)  # P(D > 0)
    lo, hi = d - 40 * sigma, d + 40 * sigma
    # E[max(C - T, 0)] = E[max(-D, 0)], D ~ N(d, sigma^2), by quadrature.
    loss_t = integrate.quad(lambda x: -x * stats.norm.pdf(x, d, sigma), lo, min(0.0, hi), epsabs=1e-16, epsrel=1e-13,
                            limit=500, points=[p for p in (d - sigma, d, d + sigma) if lo < p < min(0.0, hi)] or None)[0] if lo < 0 else 0.0
    loss_c = integrate.quad(lambda x: x * stats.norm.pdf(x, d, sigma), max(0.0, lo), hi, epsabs=1e-16, epsrel=1e-13,
                            limit=500, points=[p for p in (d - sigma, d, d + sigma) if max(0.0, lo) < p < hi] or None)[0] if hi > 0 else 0.0

    def arm(m, s):
        # A point mass when the arm has no variance (scipy refuses scale 0).
        low, high = stats.norm.interval(1 - alpha, loc=m, scale=s) if s > 0 else (m, m)
        return {"mean": f(m), "ciLow": f(low), "ciHigh": f(high)}

    dlow, dhigh = stats.norm.interval(1 - alpha, loc=d, scale=sigma)
    return {
        "name": name,
        "control": {"n": nc, "mean": mc, "variance": vc},
        "treatment": {"n": nt, "mean": mt, "variance": vt},
        "alpha": alpha,
        "expected": {
            "control": arm(mc, sc),
            "treatment": arm(mt, st),
            "probTreatmentBeatsControl": f(prob),
            "expectedLossTreatment": f(loss_t),
            "expectedLossControl": f(loss_c),
            "difference": [f(dlow), f(dhigh)],
        },
    }


NORMAL_CASES = [
    normal_case("typical", (5000, 20.0, 100.0), (5000, 20.3, 110.0), 0.05),
    normal_case("no difference", (100, 5.0, 4.0), (100, 5.0, 4.0), 0.05),
    normal_case("treatment worse", (300, 1.2, 0.5), (280, 1.1, 0.7), 0.1),
    normal_case("tiny n", (2, 3.0, 2.0), (3, 4.5, 1.0), 0.05),
    normal_case("clear winner", (2000, 10.0, 1.0), (2000, 10.3, 1.0), 0.05),
    normal_case("one arm without variance", (10, 7.0, 0.0), (12, 7.4, 0.3), 0.05),
]


# ---------------------------------------------------------------- SRM
def srm_case(name, observed, weights):
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    res = stats.chisquare(observed, expected)
    return {
        "name": name,
        "observed": observed,
        "weights": weights,
        "expected": {
            "statistic": f(res.statistic),
            "df": len(observed) - 1,
            "pValue": f(res.pvalue),
            "expected": [f(e) for e in expected],
            "untrustworthy": bool(res.pvalue < 0.001),
        },
    }


SRM_CASES = [
    srm_case("balanced, fine", [50123, 49877], [0.5, 0.5]),
    srm_case("balanced, broken", [50700, 49300], [0.5, 0.5]),
    srm_case("unequal allocation", [1980, 8020], [0.2, 0.8]),
    srm_case("three arms", [3310, 3345, 3262], [1, 1, 1]),
    srm_case("four arms with mismatch", [2600, 2500, 2480, 2320], [25, 25, 25, 25]),
    srm_case("four arms uneven weights", [4100, 1950, 2020, 1930], [40, 20, 20, 20]),
    srm_case("tiny counts", [3, 9], [1, 1]),
    srm_case("near the threshold", [5170, 4830], [1, 1]),
    srm_case("extreme mismatch", [60000, 40000], [1, 1]),
]


# ---------------------------------------------------------------- CUPED
def cuped_case(name, arms):
    ys = np.concatenate([np.array([p[0] for p in a]) for a in arms])
    xs = np.concatenate([np.array([p[1] for p in a]) for a in arms])
    theta = np.cov(ys, xs, ddof=1)[0, 1] / np.var(xs, ddof=1)
    x_bar = np.mean(xs)
    out_arms = []
    for a in arms:
        y = np.array([p[0] for p in a])
        x = np.array([p[1] for p in a])
        adj = y - theta * (x - x_bar)
        vy = np.var(y, ddof=1)
        out_arms.append(
            {
                "unadjusted": {"n": len(y), "mean": f(np.mean(y)), "variance": f(vy)},
                "adjusted": {"n": len(y), "mean": f(np.mean(adj)), "variance": f(np.var(adj, ddof=1))},
                "varianceReduction": f(1 - np.var(adj, ddof=1) / vy),
            }
        )
    pooled_adj = ys - theta * (xs - x_bar)
    sums = [
        {
            "n": len(a),
            "sumY": f(math.fsum(p[0] for p in a)),
            "sumX": f(math.fsum(p[1] for p in a)),
            "sumYy": f(math.fsum(p[0] * p[0] for p in a)),
            "sumXx": f(math.fsum(p[1] * p[1] for p in a)),
            "sumXy": f(math.fsum(p[0] * p[1] for p in a)),
        }
        for a in arms
    ]
    return {
        "name": name,
        "arms": [[[f(y), f(x)] for y, x in a] for a in arms],
        "sums": sums,
        "expected": {
            "theta": f(theta),
            "covariateMean": f(x_bar),
            "varianceReduction": f(1 - np.var(pooled_adj, ddof=1) / np.var(ys, ddof=1)),
            "arms": out_arms,
        },
    }


def pairs(n, pre_mean, pre_sd, slope, intercept, noise, shift=0.0):
    x = RNG.normal(pre_mean, pre_sd, n)
    y = slope * x + intercept + shift + RNG.normal(0, noise, n)
    return [(round(float(a), 5), round(float(b), 5)) for a, b in zip(y, x)]


CUPED_CASES = [
    cuped_case("two arms, strong correlation", [pairs(200, 30, 8, 0.9, 3, 4), pairs(180, 30, 8, 0.9, 3, 4, 1.5)]),
    cuped_case(
        "three arms",
        [pairs(120, 10, 3, 0.5, 2, 2), pairs(130, 10, 3, 0.5, 2, 2, 0.3), pairs(110, 10, 3, 0.5, 2, 2, -0.2)],
    ),
    cuped_case("tiny arms", [[(3.0, 2.0), (5.0, 4.5)], [(4.0, 3.0), (7.5, 6.0), (2.0, 2.5)]]),
    cuped_case("negative correlation", [pairs(80, 50, 10, -0.4, 70, 3), pairs(90, 50, 10, -0.4, 70, 3, 2.0)]),
    cuped_case("weak correlation", [pairs(150, 5, 1, 0.05, 5, 2), pairs(150, 5, 1, 0.05, 5, 2, 0.1)]),
]


# ---------------------------------------------------------------- Holm
def holm_case(name, p_values, alpha):
    reject, adjusted, _, _ = multipletests(p_values, alpha=alpha, method="holm")
    return {
        "name": name,
        "pValues": p_values,
        "alpha": alpha,
        "expected": {"adjusted": [f(v) for v in adjusted], "reject": [bool(r) for r in reject]},
    }


HOLM_CASES = [
    holm_case("single comparison", [0.03], 0.05),
    holm_case("three treatments", [0.01, 0.04, 0.03], 0.05),
    holm_case("four treatments", [0.0021, 0.049, 0.0133, 0.2], 0.05),
    holm_case("ties", [0.02, 0.02, 0.5, 0.001], 0.05),
    holm_case("capped at one", [0.6, 0.45, 0.9], 0.1),
    holm_case("tiny p-values", [1e-12, 3.5e-9, 0.0004], 0.01),
]


fixture = {
    "generatedBy": "analysis/reference/generate.py (see its docstring for the command)",
    "versions": {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "statsmodels": statsmodels.__version__,
        "mpmath": mpmath.__version__,
    },
    "zTest": Z_CASES,
    "welch": WELCH_CASES,
    "studentT": STUDENT_T,
    "betaQuantiles": BETA_QUANTILES,
    "betaBinomial": BETA_CASES,
    "normalMeans": NORMAL_CASES,
    "srm": SRM_CASES,
    "cuped": CUPED_CASES,
    "holm": HOLM_CASES,
}
json.dump(fixture, sys.stdout, indent=1, allow_nan=False)
sys.stdout.write("\n")
