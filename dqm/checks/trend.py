"""Change detection along the run: CUSUM and EWMA on a per-spill summary series.

A single-spill window check cannot see a slow drift (a momentum scale creeping by
0.1 % per spill stays inside a 1 % window for ten spills); accumulating the
evidence over spills can. The in-control mean μ₀ and per-spill σ come from the
spec or from the first ``n_baseline`` spills of the run, which are then not
monitored themselves (Phase I / Phase II, Montgomery ch. 9).

An estimated baseline is itself uncertain, and textbook limits (CUSUM h = 5,
EWMA L = 3) then fire in 20–45 % of stationary 100-spill runs. So each new point
is standardised with the *prediction* error ``s·√(1 + 1/n)`` and mapped through
the Student-t CDF (n − 1 dof) to a normal quantile — its marginal in-control law
is then exactly N(0, 1) — and the default limits were chosen by simulation
(20 baseline + 100 monitored spills, 6 000 runs): CUSUM k = 1, h = 10 (warning 8)
fires in 0.13 % (0.27 %) of runs, EWMA λ = 0.2, L = 5.75 (warning 5.25) in 0.08 %
(0.32 %). The price: a 2σ step is flagged after ≈ 12–15 spills, a 3σ step after
≈ 7, a 0.1 %-per-spill momentum drift (4σ per spill) after 2–3. With ``mu0`` and
``sigma`` given (no estimation) the same limits are far more conservative.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats as _st

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import REQUIRED, register_check
from dqm.checks._util import fmt_judged, fmt_limit, grade, no_data, series, symmetric
from dqm.checks.stats import cusum, ewma, ewma_half_width

__all__ = ["check_cusum", "check_ewma"]

_BASELINE = {
    "quantity": (str, REQUIRED, "summary key to follow, e.g. 'p_ms2_mean'"),
    "n_baseline": (int, 20, "spills at the start of the run used to estimate μ0 and σ"),
    "mu0": (float, None, "in-control mean (default: mean of the baseline spills)"),
    "sigma": (float, None, "in-control per-spill σ (default: std of the baseline spills)"),
}


def _standardise(
    values: NDArray[np.float64], n_baseline: int, mu0: float | None, sigma: float | None
) -> tuple[float, float, NDArray[np.float64], int] | str:
    """``(μ₀, σ, monitored points, index of the first one)`` or why it is impossible."""
    given = mu0 is not None and sigma is not None
    start = 0 if given else n_baseline
    if len(values) <= start:
        return f"collecting the baseline: {len(values)} of {n_baseline + 1} spills"
    baseline = values[:n_baseline]
    mean = float(np.mean(baseline)) if mu0 is None else mu0
    spread = float(np.std(baseline, ddof=1)) if sigma is None and len(baseline) > 1 else sigma
    if spread is None or not np.isfinite(spread) or spread <= 0:
        return f"baseline spread is {spread}: give 'sigma' explicitly"
    z = (values[start:] - mean) / spread
    if not given:
        # Prediction-error standardisation, then t → normal (see the module docstring).
        # Tails via sf/isf keep precision far out (cdf rounds to 1 beyond ~8σ).
        t_score = np.abs(z) / np.sqrt(1.0 + 1.0 / len(baseline))
        z = np.sign(z) * np.minimum(_st.norm.isf(_st.t.sf(t_score, len(baseline) - 1)), 40.0)
    return mean, spread, z, start


def _since(statistic: NDArray[np.float64]) -> int:
    """Points since the statistic last left zero (the change-point estimate)."""
    zeros = np.flatnonzero(statistic == 0)
    return len(statistic) - (int(zeros[-1]) + 1 if zeros.size else 0)


@register_check(
    "cusum",
    params={
        **_BASELINE,
        "k": (float, 1.0, "allowance in σ (half the shift to detect fastest)"),
        "h": (float, 10.0, "BAD when the CUSUM reaches this (σ)"),
        "h_warning": (float, 8.0, "WARNING when the CUSUM reaches this (σ)"),
    },
    ordered=(("h_warning", "h"),),
)
def check_cusum(
    context: CheckContext,
    *,
    quantity: str,
    n_baseline: int,
    mu0: float | None,
    sigma: float | None,
    k: float,
    h: float,
    h_warning: float,
) -> CheckResult:
    """Two-sided tabular CUSUM of ``quantity`` over the run; value = current CUSUM (σ).

    Accumulates small persistent deviations: a momentum scale creeping 0.1 % per
    spill (4σ of a 20 000-event mean per spill) is flagged after 2–3 spills.
    """
    values = series(context, quantity)
    prepared = _standardise(values, n_baseline, mu0, sigma)
    if isinstance(prepared, str):
        return no_data(f"{quantity}: {prepared}")
    mean, spread, z, start = prepared
    c_plus, c_minus = cusum(z, k)
    upward = c_plus[-1] >= c_minus[-1]
    statistic = c_plus if upward else c_minus
    value = float(statistic[-1])
    quality = grade(value, h_warning, h)
    current = float(values[-1])
    direction = "upward" if upward else "downward"
    # a percentage only means something for a quantity far from zero (p_ms2_mean, not dp_mean)
    shift = (
        f"{100 * (current / mean - 1):+.2f} %"
        if abs(mean) > 10 * spread
        else f"{(current - mean) / spread:+.1f}σ"
    )
    explanation = (
        f"{quantity}: {direction} CUSUM {fmt_judged(value, h_warning, h, decimals=1)}σ (warning ≥ "
        f"{fmt_limit(h_warning)}, bad ≥ {fmt_limit(h)}); now {current:.6g} vs baseline "
        f"{mean:.6g} ± {spread:.3g} ({shift})"
    )
    if quality != Quality.GOOD:
        explanation += f", accumulating over the last {_since(statistic)} spill(s)"
    return CheckResult(
        quality,
        value,
        {"warning": h_warning, "bad": h, "k": k},
        explanation,
        {
            "observed": current,
            "expected": mean,
            "sigma": spread,
            "direction": direction,
            "first_monitored": start,
            "spills_since_change": _since(statistic),
            "c_plus": c_plus.tolist(),
            "c_minus": c_minus.tolist(),
        },
    )


@register_check(
    "ewma",
    params={
        **_BASELINE,
        "lam": (float, 0.2, "EWMA smoothing λ in (0, 1]: small λ remembers longer"),
        "L": (float, 5.75, "BAD when the EWMA is beyond L of its σ from μ0"),
        "L_warning": (float, 5.25, "WARNING when the EWMA is beyond this many of its σ"),
    },
    ordered=(("L_warning", "L"),),
)
def check_ewma(  # noqa: N803 — L is the control-chart literature's name
    context: CheckContext,
    *,
    quantity: str,
    n_baseline: int,
    mu0: float | None,
    sigma: float | None,
    lam: float,
    L: float,
    L_warning: float,
) -> CheckResult:
    """EWMA of ``quantity`` against exact time-varying limits; value = deviation in its σ.

    Smooths spill-to-spill noise; reacts to a sustained shift within a few spills
    and, unlike CUSUM, forgets old deviations at a fixed rate (1 − λ per spill).
    """
    values = series(context, quantity)
    prepared = _standardise(values, n_baseline, mu0, sigma)
    if isinstance(prepared, str):
        return no_data(f"{quantity}: {prepared}")
    mean, spread, z, start = prepared
    smoothed = ewma(z, lam, 0.0)
    deviation = smoothed / ewma_half_width(1.0, lam, 1.0, len(z))
    value = float(abs(deviation[-1]))
    quality = grade(value, L_warning, L)
    level = float(ewma(values[start:], lam, mean)[-1])  # in the quantity's own units
    now = fmt_judged(float(deviation[-1]), *symmetric(L_warning, L), decimals=1, signed=True)
    explanation = (
        f"{quantity}: EWMA ≈ {level:.6g} is {now} of its σ from the baseline {mean:.6g} "
        f"(warning ±{fmt_limit(L_warning)}, bad ±{fmt_limit(L)}); per-spill σ "
        f"{spread:.3g}, λ = {lam:g}"
    )
    return CheckResult(
        quality,
        value,
        {"warning": L_warning, "bad": L, "lam": lam},
        explanation,
        {
            "observed": float(values[-1]),
            "expected": mean,
            "sigma": spread,
            "deviation": deviation.tolist(),
            "first_monitored": start,
        },
    )
