"""Shape checks against the reference: χ², Kolmogorov–Smirnov, pulls.

Both histograms are Poisson samples of (hopefully) the same shape with different
totals, so every statistic compares *normalised* shapes with errors on both
(:mod:`dqm.checks.stats`). Bins are the in-range bins the shifter sees, as ROOT
compares them by default. χ² and KS take a weighted or normalised reference with
its errors (ROOT's "UW" χ² and effective entries in KS); the pull checks get it as
effective counts (see :func:`dqm.checks.register_check`).

Entries that fall outside the axis range are a finding, not an error: a spill whose
entries are all below or above the range (a beam at another momentum) is BAD and
says so, and so is a spill with entries in range against a reference with none
there (:func:`range_finding`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import register_check
from dqm.checks._util import (
    axis_label,
    contents,
    counts,
    describe_bin,
    describe_out_of_range,
    fmt_judged,
    fmt_limit,
    grade,
    require_same_binning,
    symmetric,
)
from dqm.checks.stats import (
    chi2_test,
    effective_counts,
    ks_test,
    poisson_pulls,
    poisson_significance,
    sparse_bin_groups,
)

__all__ = [
    "bin_deviations",
    "range_finding",
    "check_chi2",
    "check_ks",
    "check_max_pull",
    "check_bins_beyond",
]

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


def range_finding(
    context: CheckContext, value: float, limits: dict[str, float], axis: int | None = None
) -> CheckResult | None:
    """The result when a spill or its reference has no entries inside the axis range.

    Out of range is itself a finding, never an error: all of a spill's entries below
    the momentum range (a beam at another momentum) is BAD; entries in range against
    a reference with none there is BAD too (one of the two does not describe this
    run); both outside is a WARNING that the histogram's range does not cover the
    data. ``None`` when both have entries inside: compare the shapes.

    Args:
        context: the check's context (histogram and reference present).
        value: the value to report (the statistic's "worst": p = 0, pull = ∞ …).
        limits: the check's thresholds, stored with the result.
        axis: the axis the check projects on, if any.
    """
    assert context.histogram is not None and context.reference is not None
    h, ref = context.histogram, context.reference
    inside = float(np.sum(counts(h, axis)))
    ref_inside = float(np.sum(counts(ref, axis)))
    if inside > 0 and ref_inside > 0:
        return None
    details = {"entries_in_range": inside, "reference_entries_in_range": ref_inside}
    if inside == 0 and ref_inside == 0:
        return CheckResult(
            Quality.WARNING,
            None,
            limits,
            f"{describe_out_of_range(h, axis)}, and so are the reference's: the histogram's "
            "range does not cover these conditions, the shape cannot be compared",
            details,
        )
    if inside == 0:
        return CheckResult(
            Quality.BAD,
            value,
            limits,
            f"{describe_out_of_range(h, axis)}, where the reference has "
            f"{ref_inside:,.0f} of its entries in range".replace(",", " "),
            details,
        )
    return CheckResult(
        Quality.BAD,
        value,
        limits,
        f"the reference has no entries in range ({describe_out_of_range(ref, axis)}) while "
        f"this spill has {inside:,.0f}: the reference does not describe this run's "
        "conditions".replace(",", " "),
        details,
    )


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
    sigma_limits: tuple[float, ...] = (),
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
        sigma = fmt_judged(float(z[index]), *symmetric(*sigma_limits), decimals=1, signed=True)
        phrases.append(f"{where}: {n[index]:.0f} vs {scale * r[index]:.1f} expected ({sigma}σ)")
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
    weighted_reference=True,
)
def check_chi2(
    context: CheckContext, *, p_warning: float, p_bad: float, min_expected: float
) -> CheckResult:
    """χ² shape comparison with the reference (ROOT ``Chi2Test``); value = p-value.

    "UU" against a reference of counts, "UW" against a weighted or normalised one
    (its variances are used, never ignored). Sparse bins are merged first
    (:func:`dqm.checks.stats.sparse_bin_groups`, ``min_expected = 0`` turns it off):
    without it, tails expecting < 1 event make healthy spills fail at 20× the nominal
    rate.
    """
    assert context.histogram is not None and context.reference is not None
    limits = {"warning": p_warning, "bad": p_bad}
    require_same_binning(context.histogram, context.reference)
    finding = range_finding(context, 0.0, limits)
    if finding is not None:
        return finding
    n = counts(context.histogram)
    r, r_var = contents(context.reference)
    ids = sparse_bin_groups(r * (n.sum() / r.sum()), min_expected).reshape(n.shape)
    k = int(ids.max()) + 1
    merged = [np.bincount(ids.ravel(), a.ravel(), k) for a in (n, r)]
    var = None if r_var is None else np.bincount(ids.ravel(), r_var.ravel(), k)
    test = chi2_test(merged[0], merged[1], var2=var)
    if test.ndf <= 0:
        return CheckResult(
            Quality.NO_DATA,
            None,
            limits,
            f"only one bin left to compare after merging bins expecting < {min_expected:g} "
            "entries: too few entries for a shape comparison",
            {"chi2": test.chi2, "ndf": test.ndf, "mode": test.mode},
        )
    quality = _p_quality(test.p_value, p_warning, p_bad)
    r_counts = r if r_var is None else effective_counts(r, r_var)
    z = poisson_significance(n, r_counts)  # exact: a lone event in an empty tail is no driver
    drivers, bins = _worst_bins(context, n, r_counts, z)
    p_text = fmt_judged(test.p_value, p_warning, p_bad)
    explanation = (
        f"χ²/ndf = {test.chi2:.1f}/{test.ndf} against the reference, p = {p_text} "
        f"(warning < {fmt_limit(p_warning)}, bad < {fmt_limit(p_bad)})"
    )
    if test.mode != "UU":
        explanation += " (weighted reference)"
    if quality != Quality.GOOD:
        explanation += f"; largest contributions: {drivers}"
    return CheckResult(
        quality,
        test.p_value,
        limits,
        explanation,
        {
            "chi2": test.chi2,
            "ndf": test.ndf,
            "p_value": test.p_value,
            "mode": test.mode,
            "igood": test.igood,
            "bins": bins,
            "merged_bins": int(n.size - k),
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
    weighted_reference=True,
)
def check_ks(context: CheckContext, *, p_warning: float, p_bad: float, axis: int) -> CheckResult:
    """Kolmogorov–Smirnov comparison of cumulative shapes (ROOT ``KolmogorovTest``).

    Value = ROOT's probability ``KolmogorovProb(D·√N_eff)``, effective entries for a
    weighted reference. More sensitive than χ² to a shift of the whole distribution
    (a momentum scale change), less to a single spiky bin. On binned data it is
    conservative (``docs/statistics.md``).
    """
    assert context.histogram is not None and context.reference is not None
    limits = {"warning": p_warning, "bad": p_bad}
    require_same_binning(context.histogram, context.reference)
    axis = axis if context.histogram.ndim > 1 else 0
    finding = range_finding(context, 0.0, limits, axis if context.histogram.ndim > 1 else None)
    if finding is not None:
        return finding
    n = counts(context.histogram, axis)
    r, r_var = contents(context.reference, axis)
    test = ks_test(n, r, var2=r_var)
    gap = np.abs(np.cumsum(n) / n.sum() - np.cumsum(r) / r.sum())
    edge = float(context.histogram.axes[axis].edges[int(np.argmax(gap)) + 1])
    name = axis_label(context.histogram.axes[axis], f"axis {axis}")
    explanation = (
        f"KS distance D = {test.distance:.3g} against the reference (largest at "
        f"{name} = {edge:.4g}), N_eff = {test.n_eff:.0f}, "
        f"p = {fmt_judged(test.p_value, p_warning, p_bad)} "
        f"(warning < {fmt_limit(p_warning)}, bad < {fmt_limit(p_bad)})"
    )
    return CheckResult(
        _p_quality(test.p_value, p_warning, p_bad),
        test.p_value,
        limits,
        explanation,
        {
            "D": test.distance,
            "z": test.z,
            "p_value": test.p_value,
            "n_eff": test.n_eff,
            "location": edge,
            "weighted_reference": r_var is not None,
        },
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
    limits = {"warning": pull_warning, "bad": pull_bad}
    finding = range_finding(context, float("inf"), limits)
    if finding is not None:
        return finding
    n, r = _pair(context)
    z = bin_deviations(n, r, method)
    largest = float(np.max(np.abs(z)))
    drivers, bins = _worst_bins(context, n, r, z, sigma_limits=(pull_warning, pull_bad))
    return CheckResult(
        grade(largest, pull_warning, pull_bad),
        largest,
        limits,
        f"largest pull {fmt_judged(largest, pull_warning, pull_bad, decimals=1)}σ against the "
        f"reference (warning ≥ {fmt_limit(pull_warning)}, bad ≥ {fmt_limit(pull_bad)}); "
        f"worst bins: {drivers}",
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
    limits = {"nsigma": nsigma, "warning": float(max_bins_warning), "bad": float(max_bins_bad)}
    finding = range_finding(
        context, float(context.histogram.size if context.histogram else 0), limits
    )
    if finding is not None:
        return finding
    n, r = _pair(context)
    z = bin_deviations(n, r, method)
    beyond = np.abs(z) >= nsigma
    n_beyond = int(beyond.sum())
    quality = grade(n_beyond, max_bins_warning + 1, max_bins_bad + 1)
    drivers, bins = _worst_bins(context, n, r, z, beyond, limit=5, sigma_limits=(nsigma,))
    explanation = (
        f"{n_beyond} of {n.size} bins beyond {fmt_limit(nsigma)}σ from the reference "
        f"(warning > {max_bins_warning}, bad > {max_bins_bad})"
    )
    if n_beyond:
        explanation += f": {drivers}"
    return CheckResult(
        quality, float(n_beyond), limits, explanation, {"bins": bins, "method": method}
    )
