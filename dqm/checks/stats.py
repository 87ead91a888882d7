"""Statistics for data-quality checks: pure, typed functions over count arrays.

No histograms, no plotting, no I/O — numpy arrays in, numbers or arrays out, so
each formula can be tested against scipy (or ROOT) on its own. Counts are Poisson;
the reference is summed over a certified run and usually has many more entries, so
every two-sample statistic here treats *both* inputs as Poisson samples — or, for a
weighted or normalised reference, as a weighted histogram with its own errors.

The χ² and Kolmogorov–Smirnov tests are ROOT's (``TH1::Chi2Test``,
``TH1::KolmogorovTest``), implemented in :mod:`dqm.checks.homogeneity` and
re-exported here; ``docs/statistics.md`` states every convention.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dqm._lazy import lazy_module
from dqm.checks._control import cusum, ewma, ewma_half_width
from dqm.checks.homogeneity import (
    Chi2Test,
    KsTest,
    chi2_prob,
    chi2_test,
    kolmogorov_prob,
    ks_test,
)

_sp = lazy_module("scipy.special")
_st = lazy_module("scipy.stats")

__all__ = [
    "MAX_SIGMA",
    "p_to_sigma",
    "Chi2Test",
    "KsTest",
    "chi2_test",
    "chi2_prob",
    "ks_test",
    "kolmogorov_prob",
    "effective_counts",
    "chi2_unweighted",
    "sparse_bin_groups",
    "merge_sparse_bins",
    "ks_binned",
    "poisson_pulls",
    "poisson_significance",
    "poisson_tail_sigma",
    "look_elsewhere",
    "binomial_error",
    "wilson_interval",
    "clopper_pearson_interval",
    "cusum",
    "ewma",
    "ewma_half_width",
]

_SMALLEST_P = 1e-300
MAX_SIGMA = 37.0470962993612
"""Largest significance reported (≈ 37.05σ, p = 1e-300): beyond it double precision ends.

``scipy.stats.norm.isf(1e-300)``, written as a literal so that importing the checks does not
import SciPy (a unit test compares the two)."""

FloatArray = NDArray[np.float64]


def p_to_sigma(p: ArrayLike) -> FloatArray:
    """One-sided Gaussian significance of a p-value, clipped to ``[0, MAX_SIGMA]``.

    Args:
        p: one-sided tail probabilities.

    Returns:
        ``Z = Φ⁻¹(1 - p)``; p ≥ 0.5 gives 0 (no excess), p = 0 gives ``MAX_SIGMA``.
    """
    p = np.clip(np.asarray(p, dtype=float), _SMALLEST_P, 0.5)
    return np.asarray(-_sp.ndtri(p), dtype=float)  # = norm.isf(p), without its overhead


def _counts(n: ArrayLike, r: ArrayLike) -> tuple[FloatArray, FloatArray]:
    n_arr = np.asarray(n, dtype=float).ravel()
    r_arr = np.asarray(r, dtype=float).ravel()
    if n_arr.shape != r_arr.shape:
        raise ValueError(f"bin counts differ in shape: {n_arr.shape} vs {r_arr.shape}")
    if n_arr.sum() <= 0 or r_arr.sum() <= 0:
        raise ValueError("both histograms need entries to compare shapes")
    return n_arr, r_arr


def chi2_unweighted(n: ArrayLike, r: ArrayLike) -> tuple[float, int, float]:
    """ROOT's "UU" χ² test of two unweighted histograms: ``(chi2, ndf, p_value)``.

    ``χ² = 1/(N·M) Σ (M·nᵢ − N·rᵢ)² / (nᵢ + rᵢ)`` over bins with ``nᵢ + rᵢ > 0``,
    ``ndf = (non-empty bins) − 1``; it equals Pearson's χ² of the 2×k contingency
    table. ``p = TMath::Prob(chi2, ndf)``, so 0 when ``ndf`` is 0 (as ROOT).
    See :func:`chi2_test` for weighted histograms.

    References:
        N. D. Gagunashvili, arXiv:physics/0605123; ROOT ``TH1::Chi2Test`` option "UU".
    """
    n_arr, r_arr = _counts(n, r)
    result = chi2_test(n_arr, r_arr)
    return result.chi2, result.ndf, result.p_value


def effective_counts(values: ArrayLike, variances: ArrayLike) -> FloatArray:
    """Effective entries per bin of a weighted histogram: ``⌊w²/σ² + ½⌋`` (0 where σ² = 0).

    ROOT's "NORM" convention (``TH1::Chi2Test``): for a histogram of counts scaled by
    any factor (a normalised reference) it gives back the counts exactly, so the
    Poisson-based checks (pulls, per-bin significance, channel maps) can use such a
    reference as if it had never been normalised.

    References:
        ROOT ``TH1::Chi2Test`` option "NORM"; Gagunashvili, NIM A 614 (2010) 287.
    """
    w = np.asarray(values, dtype=float)
    v = np.asarray(variances, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = np.floor(np.where(v > 0, w * w / np.where(v > 0, v, 1.0), 0.0) + 0.5)
    return np.where(v > 0, eff, 0.0)


def sparse_bin_groups(expected: ArrayLike, min_expected: float = 5.0) -> NDArray[np.int_]:
    """Group ids merging neighbouring bins (flat C order) until each expects ≥ ``min_expected``.

    The χ² distribution of the statistic is an asymptotic result; bins expecting
    a fraction of an event (momentum tails) make p-values far too small — with a
    100-bin 160 GeV momentum histogram, 2 % of healthy spills get p < 1e-3.
    Merging keeps the test valid (any partition is) at the price of resolution
    in the sparse region. ``min_expected = 0`` merges nothing (ROOT's plain test).

    Args:
        expected: expected observed counts per bin (the reference scaled to the
            spill's total), so the grouping does not depend on the data tested.
        min_expected: minimum expected count per group.

    Returns:
        One group id per bin, ``0 … k−1``; the last group absorbs a sparse remainder.

    References:
        W. G. Cochran, Ann. Math. Statist. 23 (1952) 315 (the "≥ 5 expected" rule).
    """
    e = np.asarray(expected, dtype=float).ravel()
    group_ids = np.empty(e.size, dtype=int)
    group, accumulated = 0, 0.0
    for i, value in enumerate(e):
        group_ids[i] = group
        accumulated += value
        if accumulated >= min_expected:
            group, accumulated = group + 1, 0.0
    if accumulated < min_expected and group > 0:
        group_ids[group_ids == group] = group - 1
    return group_ids


def merge_sparse_bins(
    n: ArrayLike, r: ArrayLike, min_expected: float = 5.0
) -> tuple[FloatArray, FloatArray]:
    """Sum neighbouring bins per :func:`sparse_bin_groups` of the scaled reference.

    Args:
        n: observed counts.
        r: reference counts, same shape.
        min_expected: minimum expected observed count per merged bin.

    Returns:
        ``(n_merged, r_merged)``.
    """
    n_arr, r_arr = _counts(n, r)
    ids = sparse_bin_groups(r_arr * (n_arr.sum() / r_arr.sum()), min_expected)
    k = int(ids.max()) + 1
    return np.bincount(ids, n_arr, k).astype(float), np.bincount(ids, r_arr, k).astype(float)


def ks_binned(n: ArrayLike, r: ArrayLike) -> tuple[float, float]:
    """ROOT's ``TH1::KolmogorovTest`` of two unweighted 1D histograms: ``(D, p_value)``.

    ``D = max |F_n − F_r|`` over the bin edges of the normalised cumulative sums,
    ``p = TMath::KolmogorovProb(D·√(N·M/(N+M)))``. Binning can only hide differences
    inside a bin, so D is ≤ the unbinned D and the p-value conservative. See
    :func:`ks_test` for weighted histograms and the details.

    References:
        ROOT ``TH1::KolmogorovTest``, ``TMath::KolmogorovProb``; Eadie et al. (1971).
    """
    n_arr, r_arr = _counts(n, r)
    result = ks_test(n_arr, r_arr)
    return result.distance, result.p_value


def poisson_pulls(
    n: ArrayLike, r: ArrayLike, *, variance: Literal["pooled", "observed"] = "pooled"
) -> FloatArray:
    """Per-bin pulls of observed counts against the reference scaled to the same total.

    With ``s = N/M`` the pull is ``(nᵢ − s·rᵢ)/σᵢ`` with Poisson errors on both:

    * ``"observed"``: ``σᵢ² = nᵢ + s²·rᵢ`` (each count's own variance). It blows up
      for an empty data bin against a big reference (σ → s·√rᵢ), so a 0 where
      0.5 is expected reads as a −7σ pull.
    * ``"pooled"`` (default): both counts estimated under H0 from ``nᵢ + rᵢ``,
      ``σᵢ² = s·(nᵢ + rᵢ)``. The two agree near H0; Σ pull² is then exactly
      :func:`chi2_unweighted`'s χ².

    Args:
        n: observed counts.
        r: reference counts, same shape.
        variance: which variance estimate to use (see above).

    Returns:
        Pulls with the shape of ``n``; 0 where both counts are 0.
    """
    shape = np.shape(n)
    n_arr, r_arr = _counts(n, r)
    scale = n_arr.sum() / r_arr.sum()
    if variance == "pooled":
        var = scale * (n_arr + r_arr)
    elif variance == "observed":
        var = n_arr + scale**2 * r_arr
    else:
        raise ValueError(f"variance must be 'pooled' or 'observed', not {variance!r}")
    diff = n_arr - scale * r_arr
    pulls = np.divide(diff, np.sqrt(var), out=np.zeros_like(diff), where=var > 0)
    return pulls.reshape(shape)


def poisson_significance(n: ArrayLike, r: ArrayLike, *, scale: float | None = None) -> FloatArray:
    """Exact signed significance of each bin's excess or deficit against the reference.

    Conditional on ``tᵢ = nᵢ + rᵢ``, two Poisson counts with the same shape give
    ``nᵢ ~ Binomial(tᵢ, N/(N+M))``; the one-sided binomial tail is converted to a
    Gaussian Z (sign = direction). Unlike Gaussian pulls this stays honest for a
    handful of counts (one event where the reference has none is not 10σ).

    Args:
        n: observed counts.
        r: reference counts, same shape.
        scale: expected ratio of observed to reference counts; default ``N/M``
            (pass a robust one when some bins are known to be anomalous).

    Returns:
        Signed Z per bin (shape of ``n``), 0 for bins with ``tᵢ = 0``.

    References:
        Cousins, Linnemann & Tucker, NIM A 595 (2008) 480 ("Z_Bi");
        Przyborowski & Wilenski, Biometrika 31 (1940) 313.
    """
    shape = np.shape(n)
    n_arr, r_arr = _counts(n, r)
    ratio = n_arr.sum() / r_arr.sum() if scale is None else scale
    fraction = ratio / (1.0 + ratio)
    total = n_arr + r_arr
    excess = n_arr > total * fraction
    p_excess = _st.binom.sf(n_arr - 1, total, fraction)
    p_deficit = _st.binom.cdf(n_arr, total, fraction)
    z = np.where(excess, p_to_sigma(p_excess), -p_to_sigma(p_deficit))
    return np.where(total > 0, z, 0.0).reshape(shape)


def poisson_tail_sigma(observed: ArrayLike, expected: ArrayLike, *, upper: bool) -> FloatArray:
    """One-sided Poisson significance of ``observed`` counts against a known mean.

    Args:
        observed: observed counts.
        expected: Poisson means (taken as exact, e.g. a high-statistics reference).
        upper: ``True`` → significance of an excess ``P(X ≥ n)``; ``False`` → of a
            deficit ``P(X ≤ n)``.

    Returns:
        Z ≥ 0 per element (0 when there is no excess/deficit).
    """
    obs = np.asarray(observed, dtype=float)
    mean = np.asarray(expected, dtype=float)
    p = _st.poisson.sf(obs - 1, mean) if upper else _st.poisson.cdf(obs, mean)
    return p_to_sigma(p)


def look_elsewhere(p_local: ArrayLike, n_trials: int) -> FloatArray:
    """Global p-value of the smallest of ``n_trials`` independent local p-values (Šidák).

    ``p_global = 1 − (1 − p)^m``, computed as ``−expm1(m·log1p(−p))`` so that tiny local
    p-values (a dead cell at 10σ) keep their precision.

    Args:
        p_local: local p-values.
        n_trials: how many places were looked at (e.g. the cells of a map).

    Returns:
        Global p-values, same shape.

    References:
        Z. Šidák, JASA 62 (1967) 626; E. Gross & O. Vitells, Eur. Phys. J. C 70 (2010)
        525 (the look-elsewhere effect in HEP).
    """
    p = np.clip(np.asarray(p_local, dtype=float), 0.0, 1.0)
    return np.asarray(-np.expm1(max(n_trials, 1) * np.log1p(-np.minimum(p, 1.0 - 1e-16))))


def binomial_error(k: float, n: float) -> float:
    """Standard error of a binomial fraction ``k/n``: ``√(f(1−f)/n)``.

    Zero at ``k = 0`` — use :func:`wilson_interval` or
    :func:`clopper_pearson_interval` when ``k`` is small.
    """
    if n <= 0:
        raise ValueError("binomial_error needs n > 0")
    fraction = k / n
    return math.sqrt(max(fraction * (1.0 - fraction), 0.0) / n)


def wilson_interval(k: float, n: float, cl: float = 0.6827) -> tuple[float, float]:
    """Wilson score interval of a binomial fraction (well behaved at ``k = 0``).

    References:
        E. B. Wilson, JASA 22 (1927) 209.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    z = float(_st.norm.isf((1.0 - cl) / 2.0))
    fraction = k / n
    centre = (fraction + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(fraction * (1 - fraction) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def clopper_pearson_interval(k: float, n: float, cl: float = 0.6827) -> tuple[float, float]:
    """Exact (conservative) Clopper–Pearson interval of a binomial fraction.

    References:
        Clopper & Pearson, Biometrika 26 (1934) 404.
    """
    if n <= 0:
        raise ValueError("clopper_pearson_interval needs n > 0")
    alpha = 1.0 - cl
    low = float(_st.beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    high = float(_st.beta.isf(alpha / 2, k + 1, n - k)) if k < n else 1.0
    return low, high
