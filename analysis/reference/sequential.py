#!/usr/bin/env python3
"""Independent reference values for bunting_analysis::sequential (mSPRT).

Regenerate the committed fixture with (needs mpmath: `pip install mpmath`):

    python3 analysis/reference/sequential.py > analysis/tests/fixtures/sequential.json

Everything is computed with mpmath at 50 significant digits. The closed
forms are checked here against direct numerical integration of the mixture
likelihood ratio, and the confidence-sequence ends against the test's
threshold, so the fixture does not merely restate the Rust formulas.

The "results" section replays what origin/src/results.rs reports for
experiments: running sums (n, sum y, sum y^2) per arm as looks, the default
standardized-effect mixing, the two-sided test for a mean primary metric
over its daily cumulative series, and the one-sided harm test with the
guardrail's tolerance (the monitor's test) for a mean and a conversion
guardrail (per-user 0/1 values: sum y^2 = sum y, sample variance).
"""

import json

import mpmath as mp

mp.mp.dps = 50


def lr_ratio(d, v, theta):
    """Gaussian likelihood ratio of mean theta against 0 for an estimate d
    with variance v (the null value is folded into d)."""
    return mp.exp((theta * d - theta**2 / 2) / v)


def two_sided_ln_lr(est, v, tau2, null):
    d = est - null
    return mp.log(mp.sqrt(v / (v + tau2))) + d**2 * tau2 / (2 * v * (v + tau2))


def two_sided_ln_lr_integral(est, v, tau2, null):
    d = est - null
    tau = mp.sqrt(tau2)
    f = lambda t: lr_ratio(d, v, t) * mp.npdf(t, 0, tau)
    peak = d * tau2 / (v + tau2)
    return mp.log(mp.quad(f, [-mp.inf, peak - 10 * tau, peak, peak + 10 * tau, mp.inf]))


def one_sided_ln_lr(est, v, tau2, null):
    d = est - null
    x = d * mp.sqrt(tau2) / mp.sqrt(v * (v + tau2))
    return mp.log(2) + mp.log(mp.ncdf(x)) + two_sided_ln_lr(est, v, tau2, null)


def one_sided_ln_lr_integral(est, v, tau2, null):
    d = est - null
    tau = mp.sqrt(tau2)
    f = lambda t: lr_ratio(d, v, t) * 2 * mp.npdf(t, 0, tau)
    peak = max(d * tau2 / (v + tau2), mp.mpf(0))
    return mp.log(mp.quad(f, [0, peak, peak + 10 * tau, mp.inf]))


def half_width(v, tau2, alpha):
    return mp.sqrt(v * (v + tau2) / tau2 * (mp.log((v + tau2) / v) - 2 * mp.log(alpha)))


def one_sided_lower(est, v, tau2, alpha):
    target = -mp.log(alpha)
    g = lambda theta: one_sided_ln_lr(est, v, tau2, theta) - target
    # Λ⁺ decreases in θ0: bracket, then bisect to 50 digits.
    lo, hi = est - 1, est
    while g(lo) < 0:
        lo = est - 2 * (est - lo)
    while g(hi) > 0:
        hi = hi + (hi - lo)
    for _ in range(400):
        mid = (lo + hi) / 2
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def optimal_ratio(alpha):
    c = -2 * mp.log(alpha)
    return mp.findroot(lambda r: r - mp.log(1 + r) - c, 8)


def p_value(ln_lr):
    return min(mp.mpf(1), mp.exp(-ln_lr))


def close(a, b, rel=mp.mpf("1e-30")):
    assert abs(a - b) <= rel * max(abs(a), abs(b), mp.mpf(1)), (a, b)


def f(x):
    return float(x)


CASES = [
    # estimate, variance, tau², alpha, null
    ("0.01", "1e-5", "1e-4", "0.05", "0"),
    ("0.004", "1.89e-5", "1.55e-4", "0.05", "0"),
    ("-0.023", "4e-5", "2.5e-5", "0.01", "0"),
    ("0.31", "0.02", "0.5", "0.1", "0.05"),
    ("-1.5", "0.25", "0.04", "0.05", "-0.4"),
    ("0.0002", "3e-7", "9e-6", "0.05", "0.0001"),
]


def cases():
    out = []
    for est, v, tau2, alpha, null in CASES:
        est, v, tau2, alpha, null = map(mp.mpf, (est, v, tau2, alpha, null))
        two = two_sided_ln_lr(est, v, tau2, null)
        close(two, two_sided_ln_lr_integral(est, v, tau2, null), mp.mpf("1e-20"))
        one = one_sided_ln_lr(est, v, tau2, null)
        close(one, one_sided_ln_lr_integral(est, v, tau2, null), mp.mpf("1e-20"))
        w = half_width(v, tau2, alpha)
        for edge in (est - w, est + w):
            close(two_sided_ln_lr(est, v, tau2, edge), -mp.log(alpha))
        lower = one_sided_lower(est, v, tau2, alpha)
        close(one_sided_ln_lr(est, v, tau2, lower), -mp.log(alpha), mp.mpf("1e-25"))
        out.append(
            {
                "estimate": f(est),
                "variance": f(v),
                "tauSquared": f(tau2),
                "alpha": f(alpha),
                "nullValue": f(null),
                "logLikelihoodRatio": f(two),
                "pValue": f(p_value(two)),
                "halfWidth": f(w),
                "oneSidedLogLikelihoodRatio": f(one),
                "oneSidedPValue": f(p_value(one)),
                "oneSidedLowerBound": f(lower),
            }
        )
    return out


def monitor(looks, tau2, alpha, harm_tolerance=None, higher_is_better=True, min_n=100):
    """Replays a SequentialTest on cumulative proportions (control, treatment)."""
    tau2, alpha = mp.mpf(tau2), mp.mpf(alpha)
    min_p, lower, upper, decision, decided = mp.mpf(1), None, None, "continue", None
    results = []
    for i, (xc, nc, xt, nt) in enumerate(looks, start=1):
        pc, pt = mp.mpf(xc) / nc, mp.mpf(xt) / nt
        est = pt - pc
        v = pc * (1 - pc) / nc + pt * (1 - pt) / nt
        informative = min(nc, nt) >= min_n and v > 0
        ln_lr = None
        if informative:
            if harm_tolerance is None:
                ln_lr = two_sided_ln_lr(est, v, tau2, 0)
                w = half_width(v, tau2, alpha)
                lo, hi = est - w, est + w
            else:
                sign = -1 if higher_is_better else 1
                ln_lr = one_sided_ln_lr(sign * est, v, tau2, mp.mpf(harm_tolerance))
                bound = one_sided_lower(sign * est, v, tau2, alpha)
                lo, hi = (None, -bound) if higher_is_better else (bound, None)
            min_p = min(min_p, p_value(ln_lr))
            if lo is not None:
                lower = lo if lower is None else max(lower, lo)
            if hi is not None:
                upper = hi if upper is None else min(upper, hi)
            if decision == "continue" and min_p <= alpha:
                improved = harm_tolerance is None and ((est > 0) == higher_is_better)
                decision = "treatmentBetter" if improved else "treatmentWorse"
                decided = i
        results.append(
            {
                "informative": bool(informative),
                "estimate": f(est),
                "variance": f(v),
                "logLikelihoodRatio": None if ln_lr is None else f(ln_lr),
                "pValue": f(min_p),
                "lower": None if lower is None else f(lower),
                "upper": None if upper is None else f(upper),
                "decision": decision,
                "decidedAtLook": decided,
            }
        )
    return results


TWO_SIDED_LOOKS = [
    (9, 80, 11, 80),
    (52, 500, 61, 500),
    (101, 1000, 118, 1000),
    (198, 2000, 241, 2000),
    (305, 3000, 372, 3000),
    (401, 4000, 497, 4000),
    (499, 5000, 611, 5000),
]

HARM_LOOKS = [
    (210, 1000, 200, 1000),
    (400, 2000, 371, 2000),
    (615, 3000, 548, 3000),
    (803, 4000, 707, 4000),
    (1004, 5000, 851, 5000),
]


def sums_summary(n, s, q):
    """Count, mean and sample variance (n - 1) from the running sums the
    origin aggregates (n, sum y, sum y^2), exactly (mpmath) from the floats."""
    n, s, q = mp.mpf(n), mp.mpf(s), mp.mpf(q)
    mean = s / n
    return n, mean, (q - s * mean) / (n - 1)


def results_monitor(looks, alpha, harm_tolerance=None, higher_is_better=True, effect_size="0.05", min_n=100):
    """The sequential test the results page runs: looks of running sums
    (control n, sum, sum_sq, treatment n, sum, sum_sq), default mixing
    tau = effect_size * sigma, sigma^2 the pooled per-user variance
    (n_c s_c^2 + n_t s_t^2)/(n_c + n_t) at the first informative look;
    two-sided, or one-sided harm with a tolerance. Returns the last look."""
    alpha, es = mp.mpf(alpha), mp.mpf(effect_size)
    tau2, min_p, lower, upper, decision, decided = None, mp.mpf(1), None, None, "continue", None
    est = None
    for i, (nc, sc, qc, nt, st, qt) in enumerate(looks, start=1):
        nc, mc, vc = sums_summary(nc, sc, qc)
        nt, mt, vt = sums_summary(nt, st, qt)
        est = mt - mc
        v = vc / nc + vt / nt
        enough = min(nc, nt) >= min_n
        if enough and tau2 is None:
            tau2 = es**2 * (nc * vc + nt * vt) / (nc + nt)
        if not (enough and v > 0):
            continue
        if harm_tolerance is None:
            ln_lr = two_sided_ln_lr(est, v, tau2, 0)
            w = half_width(v, tau2, alpha)
            lo, hi = est - w, est + w
        else:
            sign = -1 if higher_is_better else 1
            ln_lr = one_sided_ln_lr(sign * est, v, tau2, mp.mpf(harm_tolerance))
            bound = one_sided_lower(sign * est, v, tau2, alpha)
            lo, hi = (None, -bound) if higher_is_better else (bound, None)
        min_p = min(min_p, p_value(ln_lr))
        if lo is not None:
            lower = lo if lower is None else max(lower, lo)
        if hi is not None:
            upper = hi if upper is None else min(upper, hi)
        if decision == "continue" and min_p <= alpha:
            improved = harm_tolerance is None and ((est > 0) == higher_is_better)
            decision = "treatmentBetter" if improved else "treatmentWorse"
            decided = i
    return {
        "looks": len(looks),
        "estimate": f(est),
        "tauSquared": f(tau2),
        "pValue": f(min_p),
        "lower": None if lower is None else f(lower),
        "upper": None if upper is None else f(upper),
        "decision": decision,
        "decidedAtLook": decided,
    }


def cumulative(days):
    """Running sums per arm from per-day (n, mean, sd) of the users first
    exposed that day; sum y^2 = (n - 1) sd^2 + n mean^2 for each day."""
    out, n, s, q = [], 0, 0.0, 0.0
    for dn, dm, dsd in days:
        n += dn
        s += dn * dm
        q += (dn - 1) * dsd**2 + dn * dm**2
        out.append((n, s, q))
    return out


# Results scenarios (origin/src/results.rs tests): a mean primary metric
# with four days of cumulative series (each day a look, then the totals,
# equal to the last day, as the final look), a mean guardrail (lower is
# better, tolerance 0.25) and a conversion guardrail (higher is better,
# tolerance 0.01), each with one look at the totals.
MEAN_CONTROL = cumulative([(120, 10.0, 6.0), (900, 10.1, 6.5), (1500, 9.9, 6.2), (1800, 10.0, 6.4)])
MEAN_TREATMENT = cumulative([(130, 10.4, 6.1), (880, 10.7, 6.6), (1550, 10.6, 6.3), (1750, 10.5, 6.5)])
MEAN_LOOKS = [c + t for c, t in zip(MEAN_CONTROL, MEAN_TREATMENT)] + [MEAN_CONTROL[-1] + MEAN_TREATMENT[-1]]
LATENCY_LOOK = [(4000, 4000 * 250.0, 3999 * 40.0**2 + 4000 * 250.0**2, 4100, 4100 * 253.5, 4099 * 42.0**2 + 4100 * 253.5**2)]
ERRORS_LOOK = [(5000, 400.0, 400.0, 5000, 385.0, 385.0)]


def results_scenarios():
    return {
        "alpha": 0.05,
        "meanPrimary": {
            "looks": [list(map(float, l)) for l in MEAN_LOOKS],
            "expected": results_monitor(MEAN_LOOKS, "0.05"),
        },
        "meanGuardrail": {
            "tolerance": 0.25,
            "higherIsBetter": False,
            "looks": [list(map(float, l)) for l in LATENCY_LOOK],
            "expected": results_monitor(LATENCY_LOOK, "0.05", harm_tolerance="0.25", higher_is_better=False),
        },
        "conversionGuardrail": {
            "tolerance": 0.01,
            "higherIsBetter": True,
            "looks": [list(map(float, l)) for l in ERRORS_LOOK],
            "expected": results_monitor(ERRORS_LOOK, "0.05", harm_tolerance="0.01", higher_is_better=True),
        },
    }


def main():
    fixture = {
        "generatedBy": "python3 analysis/reference/sequential.py > analysis/tests/fixtures/sequential.json",
        "precision": "mpmath, 50 significant digits; closed forms checked against numerical integration of the mixture",
        "cases": cases(),
        "optimalMixingRatio": [
            {"alpha": a, "ratio": f(optimal_ratio(mp.mpf(a)))} for a in (0.01, 0.05, 0.1)
        ],
        "results": results_scenarios(),
        "monitors": [
            {
                "name": "two-sided, higher is better",
                "tauSquared": 1e-4,
                "alpha": 0.05,
                "hypothesis": {"kind": "twoSided"},
                "direction": "higherIsBetter",
                "looks": [list(l) for l in TWO_SIDED_LOOKS],
                "results": monitor(TWO_SIDED_LOOKS, "1e-4", "0.05"),
            },
            {
                "name": "harm, higher is better, tolerance 0.01",
                "tauSquared": 4e-4,
                "alpha": 0.05,
                "hypothesis": {"kind": "harm", "tolerance": 0.01},
                "direction": "higherIsBetter",
                "looks": [list(l) for l in HARM_LOOKS],
                "results": monitor(HARM_LOOKS, "4e-4", "0.05", harm_tolerance="0.01"),
            },
            {
                "name": "harm, lower is better, tolerance 0",
                "tauSquared": 4e-4,
                "alpha": 0.05,
                "hypothesis": {"kind": "harm", "tolerance": 0.0},
                "direction": "lowerIsBetter",
                "looks": [[xt, nt, xc, nc] for (xc, nc, xt, nt) in HARM_LOOKS],
                "results": monitor(
                    [(xt, nt, xc, nc) for (xc, nc, xt, nt) in HARM_LOOKS],
                    "4e-4",
                    "0.05",
                    harm_tolerance="0",
                    higher_is_better=False,
                ),
            },
        ],
    }
    print(json.dumps(fixture, indent=2))


if __name__ == "__main__":
    main()
