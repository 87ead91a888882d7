"""Two-sample tests of binned histograms exactly as ROOT computes them.

Pure, typed functions over bin contents (and, for weighted histograms, the bins' sums
of squared weights): no histograms objects, no I/O. They reproduce, to rounding,

* ``TH1::Chi2Test`` (``TH1::Chi2TestX``) with options ``"UU"``, ``"UW"`` and ``"WW"``:
  the homogeneity test of N. D. Gagunashvili for unweighted/unweighted,
  unweighted/weighted and weighted/weighted histograms;
* ``TH1::KolmogorovTest`` with its default options: the distance between the
  normalised cumulative sums, ``z = D·√(n₁n₂/(n₁+n₂))`` with *effective* entries
  ``n = (Σw)²/Σw²``, and ``TMath::KolmogorovProb(z)``.

The tests in ``tests/unit/test_root_conventions.py`` compare them with numbers that
ROOT itself produced (``tests/data/make_root_reference.py``). ``docs/statistics.md``
states the conventions and where the DQM departs from them (and why).

References:
    N. D. Gagunashvili, "Comparison of weighted and unweighted histograms",
    PoS ACAT (2007) 054, arXiv:physics/0605123; N. D. Gagunashvili, "Chi-square tests
    for comparing weighted histograms", Nucl. Instrum. Meth. A 614 (2010) 287.
    ROOT reference guide: ``TH1::Chi2Test``, ``TH1::KolmogorovTest``,
    ``TMath::KolmogorovProb``. W. T. Eadie et al., "Statistical Methods in
    Experimental Physics" (1971), §11.5 (Kolmogorov test on binned data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dqm._lazy import lazy_module

_st = lazy_module("scipy.stats")

__all__ = ["Chi2Test", "KsTest", "chi2_test", "ks_test", "kolmogorov_prob", "chi2_prob"]

FloatArray = NDArray[np.float64]
Chi2Mode = Literal["UU", "UW", "WW"]


@dataclass(frozen=True)
class Chi2Test:
    """Result of :func:`chi2_test`.

    Attributes:
        chi2: the statistic.
        ndf: degrees of freedom: compared bins − 1, less one per bin empty in both.
        p_value: ``TMath::Prob(chi2, ndf)`` (0 when ``ndf`` ≤ 0, as in ROOT).
        mode: ``"UU"``, ``"UW"`` or ``"WW"``.
        igood: ROOT's quality code: +1 if the first histogram has a bin with < 1 entry
            (UU, UW) or < 10 effective entries (WW), +2 likewise for the second (UU:
            < 1, UW/WW: < 10 effective) — the χ² approximation is then rougher.
    """

    chi2: float
    ndf: int
    p_value: float
    mode: Chi2Mode
    igood: int = 0


@dataclass(frozen=True)
class KsTest:
    """Result of :func:`ks_test`.

    Attributes:
        distance: largest difference of the normalised cumulative sums (ROOT option "M").
        z: ``distance · √(n₁n₂/(n₁+n₂))`` with effective entries.
        p_value: ``TMath::KolmogorovProb(z)``.
        n_eff: ``n₁n₂/(n₁+n₂)`` (or the other histogram's effective entries when one
            has no errors at all, ROOT's "compare to a function").
    """

    distance: float
    z: float
    p_value: float
    n_eff: float


def chi2_prob(chi2: float, ndf: int) -> float:
    """``TMath::Prob``: upper tail probability of χ² with ``ndf`` degrees of freedom."""
    if ndf <= 0:
        return 0.0
    return float(_st.chi2.sf(chi2, ndf)) if chi2 > 0 else 1.0


def _arrays(*arrays: ArrayLike | None) -> list[FloatArray | None]:
    out = [None if a is None else np.asarray(a, dtype=float).ravel() for a in arrays]
    sizes = {a.size for a in out if a is not None}
    if len(sizes) > 1:
        raise ValueError(f"bin arrays differ in size: {sorted(sizes)}")
    return out


def chi2_test(
    n1: ArrayLike,
    n2: ArrayLike,
    *,
    var1: ArrayLike | None = None,
    var2: ArrayLike | None = None,
) -> Chi2Test:
    """χ² homogeneity test of two histograms, ROOT's ``TH1::Chi2Test``.

    The mode follows from which variances are given: none → ``"UU"`` (both are
    counts); ``var2`` only → ``"UW"`` (the second is weighted, e.g. a normalised
    reference); both → ``"WW"``. (``var1`` only is ``"UW"`` with the roles swapped.)
    Bins are compared in flat C order (x outer), as ROOT loops.

    Args:
        n1: contents of the first histogram (e.g. this spill's counts).
        n2: contents of the second (e.g. the reference), same number of bins.
        var1: per-bin Σw² of the first (weighted histograms only).
        var2: per-bin Σw² of the second.

    Returns:
        :class:`Chi2Test`.

    Raises:
        ValueError: a histogram without content in the compared bins, or (UW/WW) a
            bin that ROOT cannot treat (content but zero errors on both sides).
    """
    a, b, va, vb = _arrays(n1, n2, var1, var2)
    assert a is not None and b is not None
    if va is not None and vb is None:
        swapped = chi2_test(b, a, var2=va)
        return Chi2Test(swapped.chi2, swapped.ndf, swapped.p_value, "UW", _swap(swapped.igood))
    if a.sum() == 0 or b.sum() == 0:
        raise ValueError("one histogram is empty in the compared bins")
    if vb is None:
        return _chi2_uu(a, b)
    if va is None:
        return _chi2_uw(a, b, vb)
    return _chi2_ww(a, b, va, vb)


def _swap(igood: int) -> int:
    return ((igood & 1) << 1) | ((igood & 2) >> 1)


def _chi2_uu(n1: FloatArray, n2: FloatArray) -> Chi2Test:
    """Both unweighted: ``χ² = 1/(N₁N₂) Σ (N₂n₁ᵢ − N₁n₂ᵢ)²/(n₁ᵢ + n₂ᵢ)``."""
    used = (n1 != 0) | (n2 != 0)
    a, b = n1[used], n2[used]
    sum1, sum2 = a.sum(), b.sum()
    chi2 = float(np.sum((sum2 * a - sum1 * b) ** 2 / (a + b)) / (sum1 * sum2))
    ndf = int(used.sum()) - 1
    igood = (1 if np.any(a < 1) else 0) + (2 if np.any(b < 1) else 0)
    return Chi2Test(chi2, ndf, chi2_prob(chi2, ndf), "UU", igood)


def _chi2_uw(n1: FloatArray, w2: FloatArray, e2sq: FloatArray) -> Chi2Test:
    """Unweighted against weighted (Gagunashvili 2006, eq. 6), bin by bin as ROOT does.

    A bin loop rather than array arithmetic on purpose: where the estimate of the
    bin probability degenerates (``n₁ᵢ = 0`` and a small weighted bin) ROOT adds one
    event to the first histogram, and that changes ``N₁`` for every later bin.
    """
    sum1, sum2, sumw2 = float(n1.sum()), float(w2.sum()), float(e2sq.sum())
    chi2, ndf, m, n = 0.0, n1.size - 1, 0, 0
    for cnt1, cnt2, var in zip(n1.tolist(), w2.tolist(), e2sq.tolist(), strict=True):
        if cnt1 * cnt1 == 0 and cnt2 * cnt2 == 0:
            ndf -= 1
            continue
        if cnt2 * cnt2 == 0 and var == 0:
            if sumw2 <= 0:
                raise ValueError("the weighted histogram has a bin with zero content and error")
            var = sumw2 / sum2  # an error of one average weight
        if cnt1 < 1:
            m += 1
        if var > 0 and cnt2 * cnt2 / var < 10:
            n += 1
        var1 = sum2 * cnt2 - sum1 * var
        var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * var
        while var1 * var1 + cnt1 == 0 or var1 + var2 == 0:
            sum1, cnt1 = sum1 + 1, cnt1 + 1
            var1 = sum2 * cnt2 - sum1 * var
            var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * var
        var2 = math.sqrt(var2)
        while var1 + var2 == 0:
            sum1, cnt1 = sum1 + 1, cnt1 + 1
            var1 = sum2 * cnt2 - sum1 * var
            var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * var
            while var1 * var1 + cnt1 == 0 or var1 + var2 == 0:
                sum1, cnt1 = sum1 + 1, cnt1 + 1
                var1 = sum2 * cnt2 - sum1 * var
                var2 = var1 * var1 + 4.0 * sum2 * sum2 * cnt1 * var
            var2 = math.sqrt(var2)
        probability = (var1 + var2) / (2.0 * sum2 * sum2)
        expected1, expected2 = probability * sum1, probability * sum2
        chi2 += (cnt1 - expected1) ** 2 / expected1
        if var > 0:
            chi2 += (cnt2 - expected2) ** 2 / var
    igood = (1 if m else 0) + (2 if n else 0)
    return Chi2Test(chi2, ndf, chi2_prob(chi2, ndf), "UW", igood)


def _chi2_ww(w1: FloatArray, w2: FloatArray, e1sq: FloatArray, e2sq: FloatArray) -> Chi2Test:
    """Both weighted: ``χ² = Σ (W₂w₁ᵢ − W₁w₂ᵢ)²/(W₁²s₂ᵢ² + W₂²s₁ᵢ²)`` (Gagunashvili eq. 8)."""
    used = (w1 * w1 != 0) | (w2 * w2 != 0)
    if np.any(used & (e1sq == 0) & (e2sq == 0)):
        raise ValueError("both histograms have a bin with content but zero errors")
    sum1, sum2 = w1.sum(), w2.sum()
    a, b, va, vb = w1[used], w2[used], e1sq[used], e2sq[used]
    chi2 = float(np.sum((sum2 * a - sum1 * b) ** 2 / (sum1 * sum1 * vb + sum2 * sum2 * va)))
    ndf = int(used.sum()) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.any((va > 0) & (a * a / np.where(va > 0, va, 1) < 10))
        n = np.any((vb > 0) & (b * b / np.where(vb > 0, vb, 1) < 10))
    return Chi2Test(chi2, ndf, chi2_prob(chi2, ndf), "WW", (1 if m else 0) + (2 if n else 0))


def kolmogorov_prob(z: float) -> float:
    """``TMath::KolmogorovProb``: P(K > z) of the asymptotic Kolmogorov distribution.

    ROOT's series with its cut-offs (1 below 0.2, 0 above 6.8116, four terms of the
    alternating series in between, the small-z expansion below 0.755), reproduced
    term by term so that the DQM's p-values are ROOT's.
    """
    u = abs(z)
    if u < 0.2:
        return 1.0
    if u < 0.755:
        v = 1.0 / (u * u)
        w = 2.50662827
        c1, c2, c3 = -1.2337005501361697, -11.103304951225528, -30.842513753404244
        return 1.0 - w * (math.exp(c1 * v) + math.exp(c2 * v) + math.exp(c3 * v)) / u
    if u < 6.8116:
        v = u * u
        maxj = max(1, round(3.0 / u))  # TMath::Nint rounds half away from zero; 3/u ≠ k+½ here
        r = [math.exp(f * v) if j < maxj else 0.0 for j, f in enumerate((-2, -8, -18, -32))]
        return 2.0 * (r[0] - r[1] + r[2] - r[3])
    return 0.0


def ks_test(
    n1: ArrayLike,
    n2: ArrayLike,
    *,
    var1: ArrayLike | None = None,
    var2: ArrayLike | None = None,
) -> KsTest:
    """Kolmogorov–Smirnov test of two 1D histograms, ROOT's ``TH1::KolmogorovTest``.

    Default options (no "U"/"O": the caller passes the bins to compare; no "N": the
    totals are not compared — a spill is always smaller than its reference; no
    "X": no pseudo-experiments). Effective entries ``(Σw)²/Σw²`` replace the entries
    of a weighted histogram; without ``var`` a histogram is counts (Σw² = Σw).

    Binned data make the test conservative: the distance can only shrink inside a
    bin, so p-values are too large under H0 (fewer false alarms, less power) —
    ROOT's documentation says so too; the DQM thresholds are set with that in mind.

    Args:
        n1: contents of the first histogram, in axis order.
        n2: contents of the second.
        var1: per-bin Σw² of the first (weighted only).
        var2: per-bin Σw² of the second (weighted only).

    Returns:
        :class:`KsTest`.

    Raises:
        ValueError: an empty histogram, or both with all errors zero.
    """
    a, b, va, vb = _arrays(n1, n2, var1, var2)
    assert a is not None and b is not None
    sum1, sum2 = float(a.sum()), float(b.sum())
    if sum1 == 0 or sum2 == 0:
        raise ValueError("one histogram is empty in the compared bins")
    w1 = float((a if va is None else va).sum())
    w2 = float((b if vb is None else vb).sum())
    if w1 <= 0 and w2 <= 0:
        raise ValueError("errors are zero for both histograms")
    esum1 = sum1 * sum1 / w1 if w1 > 0 else 0.0
    esum2 = sum2 * sum2 / w2 if w2 > 0 else 0.0
    distance = float(np.max(np.abs(np.cumsum(a / sum1) - np.cumsum(b / sum2))))
    if w1 <= 0:
        n_eff = esum2
    elif w2 <= 0:
        n_eff = esum1
    else:
        n_eff = esum1 * esum2 / (esum1 + esum2)
    z = distance * math.sqrt(n_eff)
    return KsTest(distance, z, kolmogorov_prob(z), n_eff)
