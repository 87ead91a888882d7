"""Shape checks against the reference: χ², Kolmogorov–Smirnov, pulls.

Both histograms are Poisson samples of (hopefully) the same shape with different
totals, so every statistic compares *normalised* shapes with errors on both
(:mod:`dqm.checks.stats`). Bins are the in-range bins the shifter sees.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import register_check
from dqm.checks._util import axis_label, counts, describe_bin, grade, require_same_binning
from dqm.checks.stats import (
    chi2_unweighted,
    ks_binned,
    merge_sparse_bins,
    poisson_pulls,
    poisson_significance,
)

__all__ = ["bin_deviations", "check_chi2", "check_ks", "check_max_pull", "check_bins_beyond"]

PullMethod = Literal["exact", "pooled", "observed"]

_P_PARAMS = {
    "p_warning": (float, 1e-3, "WARNING when the p-value is below this"),
    "p_bad": (float, 1e-6, "BAD when the p-value is below this"),
}
_PULL_METHOD = (
    "method",
    (
        str,
        "exact",
        "per-bin significance: 'exact' (binomial test of two "
        "Poisson counts), 'pooled' or 'observed' Gaussian pulls",
        ("exact", "pooled", "observed"),
    ),
)


def _pair(context: CheckContext, axis: int | None = None) -> tuple[NDArray[np.float64], ...]:
    assert context.histogram is not None and context.reference is not None
    require_same_binning(context.histogram, context.reference)
    return counts(context.histogram, axis), counts(context.reference, axis)


def bin_deviations(
    n: NDArray[np.float64], r: NDArray[np.float64], method: PullMethod = "exact"
) -> NDArray[np.float64]:
    """Signed per-bin significance of ``n`` against the scaled reference ``r``."""
    if method == "exact":
        return poisson_significance(n, r)
    return poisson_pulls(n, r, variance=method)


def _worst_bins(
    context: CheckContext,
    n: NDArray[np.float64],
    r: NDArray[np.float64],
    z: NDArray[np.float64],
    mask: NDArray[np.bool_] | None = None,
    limit: int = 3,
) -> tuple[str, list[dict[str, object]]]:
    """Name the most deviating bins: position, observed vs expected, significance."""
    assert context.histogram is not None
    scale = n.sum() / r.sum()
    order = np.argsort(-np.abs(z), axis=None)
    if mask is not None:
        order = np.array([i for i in order if mask.ravel()[i]], dtype=int)
    bins, phrases = [], []
    for flat in order[:limit]:
        index = np.unravel_index(flat, n.shape)
        where = describe_bin(list(context.histogram.axes), [int(i) for i in index])
        bins.append(
            {
                "index": [int(i) for i in index],
                "where": where,
                "observed": float(n[index]),
                "expected": float(scale * r[index]),
                "significance": float(z[index]),
            }
        )
        phrases.append(
            f"{where}: {n[index]:.0f} vs {scale * r[index]:.1f} expected ({z[index]:+.1f}σ)"
        )
    return "; ".join(phrases), bins


def _p_quality(p: float, p_warning: float, p_bad: float) -> Quality:
    if p < p_bad:
        return Quality.BAD
    return Quality.WARNING if p < p_warning else Quality.GOOD


@register_check(
    "chi2",
    params={
        **_P_PARAMS,
        "min_expected": (float, 5.0, "neighbouring bins expecting fewer counts are merged first"),
    },
    needs_histogram=True,
    needs_reference=True,
    ordered=(("p_bad", "p_warning"),),
)
def check_chi2(
    context: CheckContext, *, p_warning: float, p_bad: float, min_expected: float
) -> CheckResult:
    """χ² shape comparison with the reference (ROOT "UU" test); value = p-value.

    Sparse bins are merged first (:func:`merge_sparse_bins`): without it, tails
    expecting < 1 event make healthy spills fail at 20× the nominal rate.
    """
    n, r = _pair(context)
    chi2, ndf, p = chi2_unweighted(*merge_sparse_bins(n, r, min_expected))
    quality = _p_quality(p, p_warning, p_bad)
    z = poisson_significance(n, r)  # exact: a lone event in an empty tail is not a driver
    drivers, bins = _worst_bins(context, n, r, z)
    explanation = f"χ²/ndf = {chi2:.1f}/{ndf} against the reference, p = {p:.2g}"
    if quality != Quality.GOOD:
        explanation += f"; largest contributions: {drivers}"
    return CheckResult(
        quality,
        p,
        {"warning": p_warning, "bad": p_bad},
        explanation,
        {
            "chi2": chi2,
            "ndf": ndf,
            "p_value": p,
            "bins": bins,
            "merged_bins": int(n.size - ndf - 1),
        },
    )


@register_check(
    "ks",
    params={
        **_P_PARAMS,
        "axis": (int, 0, "axis of a 2D histogram to project on (1D: ignored)"),
    },
    needs_histogram=True,
    needs_reference=True,
    ordered=(("p_bad", "p_warning"),),
)
def check_ks(context: CheckContext, *, p_warning: float, p_bad: float, axis: int) -> CheckResult:
    """Kolmogorov–Smirnov comparison of cumulative shapes; value = p-value.

    More sensitive than χ² to a shift of the whole distribution (a momentum scale
    change), less to a single spiky bin.
    """
    assert context.histogram is not None
    n, r = _pair(context, axis)
    distance, p = ks_binned(n, r)
    gap = np.abs(np.cumsum(n) / n.sum() - np.cumsum(r) / r.sum())
    edge = float(context.histogram.axes[axis].edges[int(np.argmax(gap)) + 1])
    name = axis_label(context.histogram.axes[axis], f"axis {axis}")
    n_eff = n.sum() * r.sum() / (n.sum() + r.sum())
    explanation = (
        f"KS distance D = {distance:.3g} against the reference (largest at "
        f"{name} = {edge:.4g}), N_eff = {n_eff:.0f}, p = {p:.2g}"
    )
    return CheckResult(
        _p_quality(p, p_warning, p_bad),
        p,
        {"warning": p_warning, "bad": p_bad},
        explanation,
        {"D": distance, "p_value": p, "n_eff": n_eff, "location": edge},
    )


@register_check(
    "max_pull",
    params={
        "pull_warning": (float, 4.0, "WARNING when the largest |pull| reaches this (σ)"),
        "pull_bad": (float, 6.0, "BAD when the largest |pull| reaches this (σ)"),
        _PULL_METHOD[0]: _PULL_METHOD[1],
    },
    needs_histogram=True,
    needs_reference=True,
    ordered=(("pull_warning", "pull_bad"),),
)
def check_max_pull(
    context: CheckContext, *, pull_warning: float, pull_bad: float, method: PullMethod
) -> CheckResult:
    """Largest single-bin deviation from the scaled reference, in σ."""
    n, r = _pair(context)
    z = bin_deviations(n, r, method)
    largest = float(np.max(np.abs(z)))
    drivers, bins = _worst_bins(context, n, r, z)
    return CheckResult(
        grade(largest, pull_warning, pull_bad),
        largest,
        {"warning": pull_warning, "bad": pull_bad},
        f"largest pull {largest:.1f}σ against the reference; worst bins: {drivers}",
        {"bins": bins, "method": method},
    )


@register_check(
    "bins_beyond",
    params={
        "nsigma": (float, 3.0, "a bin counts when its |pull| reaches this (σ)"),
        "max_bins_warning": (int, 2, "WARNING when MORE than this many bins are beyond nsigma"),
        "max_bins_bad": (int, 5, "BAD when MORE than this many bins are beyond nsigma"),
        _PULL_METHOD[0]: _PULL_METHOD[1],
    },
    needs_histogram=True,
    needs_reference=True,
    ordered=(("max_bins_warning", "max_bins_bad"),),
)
def check_bins_beyond(
    context: CheckContext,
    *,
    nsigma: float,
    max_bins_warning: int,
    max_bins_bad: int,
    method: PullMethod,
) -> CheckResult:
    """Number of bins deviating by ≥ ``nsigma`` from the scaled reference.

    Catches broad shape changes no single bin shows strongly. Under a good
    reference about 0.27 % of bins pass 3σ by chance: scale the limits to the
    number of bins (or raise ``nsigma``) for large 2D histograms.
    """
    n, r = _pair(context)
    z = bin_deviations(n, r, method)
    beyond = np.abs(z) >= nsigma
    n_beyond = int(beyond.sum())
    quality = grade(n_beyond, max_bins_warning + 1, max_bins_bad + 1)
    drivers, bins = _worst_bins(context, n, r, z, beyond, limit=5)
    explanation = f"{n_beyond} of {n.size} bins beyond {nsigma:g}σ from the reference"
    if n_beyond:
        explanation += f": {drivers}"
    return CheckResult(
        quality,
        float(n_beyond),
        {"nsigma": nsigma, "warning": float(max_bins_warning), "bad": float(max_bins_bad)},
        explanation,
        {"bins": bins, "method": method},
    )
