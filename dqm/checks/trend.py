"""Change detection along the run: CUSUM and EWMA on a per-spill summary series.

A single-spill window check cannot see a slow drift (a momentum scale creeping by
0.1 % per spill stays inside a 1 % window for ten spills); accumulating the evidence
over spills can. Three rules make the alarms mean what they say:

**Anchored baseline.** μ₀ and the per-spill σ come from the reference run's certified
spills, or from this run's first ``n_baseline`` certified spills (Phase I / Phase II,
Montgomery ch. 9) — never from the sliding history window, so a persistent change
cannot become its own baseline; spills whose subsystem was flagged are left out of it
(:mod:`dqm.checks._baseline`). Each spill is standardised with the *prediction* error
``σ·√(1 + 1/n)`` and its t(n − 1) score mapped to a normal quantile, so its in-control
law is N(0, 1) whatever n.

**Bounded influence.** A spill's score enters the recursion clipped at ±``clip_sigma``
(winsorised CUSUM, D. M. Hawkins, J. Qual. Technol. 25 (1993) 248). A one-spill glitch
— flagged on its own spill by the window checks — then moves the CUSUM by at most
``clip_sigma − k`` = 3σ and the EWMA by ``λ·clip_sigma`` = 2.4 of its σ, both below
their warning limits, and leaves no trail of "drifting" flags. Chosen over the
alternatives: leaving flagged spills out of the recursion would also leave out every
spill the trend check flagged itself (the alarm would freeze), and restarting after an
outlier needs a rule for "isolated" that a persistent step defeats. Clipping costs one
spill on a fast drift (see below) and nothing on steps below 4σ.

**Held at the limit.** The CUSUM is capped at ``h`` and the EWMA at its BAD limit: the
first alarm comes exactly as without a cap, the alarm stays up for as long as the change
lasts, and it ends within two spills of the change ending (instead of after all the
excess evidence has drained, 40+ spills after a 1 % step).

Limits, set by simulation (``python -m dqm.sim.trend_limits --runs 6000``: 6 000 runs of
20 anchor + 100 monitored spills of N(0, 1) each, judged over the live 60-spill history
window; glitch, steps and drift start at monitored spill 50; same runs in every row)::

                                          CUSUM k=1, h=10 (warn 8)  EWMA λ=0.2, L=5.75 (5.25)
    in control: runs with a BAD / WARNING  0.12 % / 0.23 %           0.07 % / 0.27 %
    one 40σ glitch: runs flagged in the    0.25 % (0.12 % without    0.22 % (0.10 % without
      20 spills after it                   the glitch)               the glitch)
    persistent 40σ step (1 % of p_MS2)     BAD from its 4th spill,   BAD from its 3rd spill,
                                           then on 100 % of spills   then on 100 % of spills
    persistent 3σ / 2σ step: median        7 / 12; then flagged on   6 / 13 (85 % found);
      spills to BAD                        ≥ 99 % of spills          then flagged 93 % / 59 %
    drift 4σ per spill (0.1 % of p_MS2)    BAD on its 4th spill      BAD on its 4th spill
    a 20-spill 40σ step ends: spills       2.0 (as WARNING)          0.2
      still flagged after it, mean

Without clipping a 40σ glitch leaves 28 % (CUSUM) and 8 % (EWMA) of runs flagged in the
next 20 spills (``--clip 100``); without the hold the CUSUM stays flagged for all 20
spills after a 20-spill step ends, the EWMA for 3.3 on average (``--no-hold``). The same
table is in ``docs/checks-trends-cells.md``; ``tests/unit/test_trend_limits.py`` re-runs a
smaller study and checks these properties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from dqm.checks._baseline import ANCHORS, Baseline, choose_baseline, monitored_points
from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import REQUIRED, register_check
from dqm.checks._util import fmt_judged, fmt_limit, grade, no_data, symmetric
from dqm.checks.stats import cusum, ewma, ewma_half_width

__all__ = ["check_cusum", "check_ewma", "trend_path"]

_BASELINE = {
    "quantity": (str, REQUIRED, "summary key to follow, e.g. 'dp_mean'"),
    "error_key": (
        str,
        "",
        "summary key of the quantity's per-spill statistical error (e.g. 'dp_mean_err'): "
        "each spill is then standardised with its own error ('' = one σ for all)",
    ),
    "anchor": (
        str,
        "auto",
        "baseline from the reference run's certified spills ('reference'), this run's first "
        "n_baseline certified spills ('run_start'), or the reference when it has enough ('auto')",
        ANCHORS,
    ),
    "n_baseline": (int, 20, "certified spills needed to estimate μ0 and σ"),
    "mu0": (float, None, "in-control mean (default: from the anchor spills)"),
    "sigma": (float, None, "in-control per-spill σ (default: from the anchor spills)"),
    "clip_sigma": (
        float,
        4.0,
        "a spill's standardised deviation enters the statistic clipped at ±this many σ "
        "(one glitch cannot build up a trail of flags)",
    ),
}


@dataclass(frozen=True)
class _Monitored:
    """The quantity's monitored spills against its anchored baseline.

    ``values`` the monitored spills' values (this spill last), ``z`` their normal scores,
    ``spread`` this spill's per-spill σ (its own statistical error when it has one).
    """

    quantity: str
    baseline: Baseline
    values: np.ndarray
    z: np.ndarray
    spread: float


def _anchored_chart(
    context: CheckContext,
    chart: Callable[[_Monitored], CheckResult],
    *,
    quantity: str,
    error_key: str,
    anchor: str,
    n_baseline: int,
    mu0: float | None,
    sigma: float | None,
) -> CheckResult:
    """What CUSUM and EWMA share: the anchored baseline, the monitored scores, NO_DATA while
    there is none yet, and the evidence every chart reports (observed, expected, σ, z).

    ``chart`` computes its statistic from the scores and words the result.
    """
    if not np.isfinite(float((context.summary or {}).get(quantity, np.nan))):
        return no_data(f"{quantity}: {quantity} is not in this spill's summary")
    baseline = choose_baseline(
        context,
        quantity=quantity,
        error_key=error_key,
        anchor=anchor,
        n_baseline=n_baseline,
        mu0=mu0,
        sigma=sigma,
    )
    if isinstance(baseline, str):
        return no_data(f"{quantity}: {baseline}")
    values, errors = monitored_points(context, quantity, error_key, baseline)
    z = baseline.standardise(values, errors)
    error = float((context.summary or {}).get(error_key, np.nan)) if error_key else np.nan
    series = _Monitored(quantity, baseline, values, z, baseline.sigma(error))
    result = chart(series)
    evidence = {
        "observed": float(values[-1]),
        "expected": baseline.mean,
        "sigma": series.spread,
        "baseline": baseline.source,
        "z": z.tolist(),
    }
    return replace(result, details={**evidence, **result.details})


def trend_path(
    z: np.ndarray,
    *,
    statistic: str,
    clip_sigma: float,
    k: float = 1.0,
    h: float = 10.0,
    lam: float = 0.2,
    L: float = 5.75,  # noqa: N803 — the control-chart literature's name
) -> np.ndarray:
    """The decision statistic at every monitored spill, in σ (as the checks compute it).

    ``"cusum"``: ``max(C⁺, C⁻)`` of the clipped scores, held at ``h``; ``"ewma"``: the
    EWMA of the clipped scores in units of its exact σ, held at ``L``. Shared with the
    limit study (:mod:`dqm.sim.trend_limits`), so the study measures this code.
    """
    clipped = np.clip(z, -clip_sigma, clip_sigma)
    if statistic == "cusum":
        c_plus, c_minus = cusum(clipped, k, ceiling=h)
        return np.maximum(c_plus, c_minus)
    half = ewma_half_width(1.0, lam, 1.0, len(clipped))
    return ewma(clipped, lam, 0.0, bound=L * half) / half


def _shift(current: float, baseline: Baseline, sigma: float) -> str:
    # a percentage only means something for a quantity far from zero (p_ms2_mean, not dp_mean)
    if abs(baseline.mean) > 10 * sigma:
        return f"{100 * (current / baseline.mean - 1):+.2f} %"
    return f"{(current - baseline.mean) / sigma:+.1f}σ"


def _since(statistic: np.ndarray) -> int:
    """Points since the statistic last left zero (the change-point estimate)."""
    zeros = np.flatnonzero(statistic == 0)
    return len(statistic) - (int(zeros[-1]) + 1 if zeros.size else 0)


@register_check(
    "cusum",
    params={
        **_BASELINE,
        "k": (float, 1.0, "allowance in σ (half the shift to detect fastest)"),
        "h": (float, 10.0, "BAD when the CUSUM reaches this (σ); the CUSUM is held there"),
        "h_warning": (float, 8.0, "WARNING when the CUSUM reaches this (σ)"),
    },
    ordered=(("h_warning", "h"),),
)
def check_cusum(
    context: CheckContext,
    *,
    quantity: str,
    error_key: str,
    anchor: str,
    n_baseline: int,
    mu0: float | None,
    sigma: float | None,
    clip_sigma: float,
    k: float,
    h: float,
    h_warning: float,
) -> CheckResult:
    """Two-sided tabular CUSUM of ``quantity`` against an anchored baseline; value in σ.

    Accumulates small persistent deviations: a momentum scale creeping 0.1 % per
    spill (4σ of a 20 000-event mean per spill) is flagged after 4 spills, and a
    persistent 1 % step stays BAD for as long as it lasts.
    """

    def chart(series: _Monitored) -> CheckResult:
        c_plus, c_minus = cusum(np.clip(series.z, -clip_sigma, clip_sigma), k, ceiling=h)
        upward = c_plus[-1] >= c_minus[-1]
        statistic = c_plus if upward else c_minus
        value = float(statistic[-1])
        quality = grade(value, h_warning, h)
        current, baseline = float(series.values[-1]), series.baseline
        direction = "upward" if upward else "downward"
        explanation = (
            f"{quantity}: {direction} CUSUM {fmt_judged(value, h_warning, h, decimals=1)}σ "
            f"(warning ≥ {fmt_limit(h_warning)}, bad ≥ {fmt_limit(h)}); now {current:.6g} vs "
            f"baseline {baseline.mean:.6g} ± {series.spread:.3g} from {baseline.source} "
            f"({_shift(current, baseline, series.spread)})"
        )
        if quality != Quality.GOOD:
            explanation += f", accumulating over the last {_since(statistic)} spill(s)"
        return CheckResult(
            quality,
            value,
            {"warning": h_warning, "bad": h, "k": k},
            explanation,
            {
                "direction": direction,
                "spills_since_change": _since(statistic),
                "c_plus": c_plus.tolist(),
                "c_minus": c_minus.tolist(),
            },
        )

    return _anchored_chart(
        context,
        chart,
        quantity=quantity,
        error_key=error_key,
        anchor=anchor,
        n_baseline=n_baseline,
        mu0=mu0,
        sigma=sigma,
    )


@register_check(
    "ewma",
    params={
        **_BASELINE,
        "lam": (float, 0.2, "EWMA smoothing λ in (0, 1]: small λ remembers longer"),
        "L": (float, 5.75, "BAD when the EWMA is beyond L of its σ from μ0 (it is held there)"),
        "L_warning": (float, 5.25, "WARNING when the EWMA is beyond this many of its σ"),
    },
    ordered=(("L_warning", "L"),),
)
def check_ewma(  # noqa: N803 — L is the control-chart literature's name
    context: CheckContext,
    *,
    quantity: str,
    error_key: str,
    anchor: str,
    n_baseline: int,
    mu0: float | None,
    sigma: float | None,
    clip_sigma: float,
    lam: float,
    L: float,
    L_warning: float,
) -> CheckResult:
    """EWMA of ``quantity`` against exact time-varying limits; value = deviation in its σ.

    Smooths spill-to-spill noise; reacts to a sustained shift within a few spills
    and, unlike CUSUM, forgets old deviations at a fixed rate (1 − λ per spill).
    """

    def chart(series: _Monitored) -> CheckResult:
        deviation = trend_path(series.z, statistic="ewma", clip_sigma=clip_sigma, lam=lam, L=L)
        signed = float(deviation[-1])
        value = abs(signed)
        baseline = series.baseline
        level = float(ewma(series.values, lam, baseline.mean)[-1])  # in the quantity's units
        now = fmt_judged(signed, *symmetric(L_warning, L), decimals=2, signed=True)
        explanation = (
            f"{quantity}: EWMA ≈ {level:.6g} is {now} of its σ from the baseline "
            f"{baseline.mean:.6g} (warning ±{fmt_limit(L_warning)}, bad ±{fmt_limit(L)}) from "
            f"{baseline.source}; per-spill σ {series.spread:.3g}, λ = {lam:g}"
        )
        return CheckResult(
            grade(value, L_warning, L),
            value,
            {"warning": L_warning, "bad": L, "lam": lam},
            explanation,
            {"deviation": deviation.tolist()},
        )

    return _anchored_chart(
        context,
        chart,
        quantity=quantity,
        error_key=error_key,
        anchor=anchor,
        n_baseline=n_baseline,
        mu0=mu0,
        sigma=sigma,
    )
