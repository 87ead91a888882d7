"""The shape of a beam profile, apart from where the beam is.

A beam that moves by half a millimetre changes every bin of a 1 mm-binned profile by
a few per cent: at 20 000 muons a bin-by-bin comparison with the reference (``max_pull``,
``bins_beyond``) calls that a different shape, below the centroid window, and during a
slow drift the verdict flickers around its limit from one spill to the next. Where the
beam is, is the centroid check's question (``beam_centroid``, with its windows); this
check asks whether the *shape* differs: the reference profile is moved to this spill's
centroid before the bins are compared. Likewise, how wide the beam is, is the width check's
question (``beam_width``, with its tolerance: ± 10 % WARNING, ± 20 % BAD): at 20 000 muons
a width change of 6 %, well inside that tolerance, puts a dozen bins beyond 3σ, so the
reference is also stretched to this spill's width (the ratio of the interquartile ranges,
which tails and second peaks hardly move) before the bins are compared. A tail, a second
peak, a hole, an asymmetry are shape changes and stay visible; a move or a width change
within the width check's tolerance is not one.

Moving the reference: its cumulative distribution at the bin edges is interpolated
monotonically (PCHIP, F. N. Fritsch & R. E. Carlson, SIAM J. Numer. Anal. 17 (1980) 238)
and evaluated at the edges shifted by the difference of the two binned means (and, to
stretch it, scaled about the reference's mean); the moved reference has the same total in
range up to what moves across the range's ends.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

from dqm._lazy import lazy_module
from dqm.checks._core import CheckContext, CheckResult, worst
from dqm.checks._registry import register_check
from dqm.checks._util import (
    axis_label,
    counts,
    fmt_judged,
    fmt_limit,
    grade,
    no_data,
    require_same_binning,
    symmetric,
)
from dqm.checks.stats import poisson_significance

_interpolate = lazy_module("scipy.interpolate")

__all__ = ["recentred", "check_beam_profile"]

FloatArray = NDArray[np.float64]


def recentred(
    reference: FloatArray, edges: FloatArray, shift: float, stretch: float = 1.0
) -> FloatArray:
    """The reference counts of a profile moved by ``shift`` and stretched by ``stretch``.

    Args:
        reference: counts per bin.
        edges: the bin edges (one more than the counts).
        shift: how far to move it (positive: towards higher values), in the axis' unit.
        stretch: width factor about the reference's own mean (1: the same width).

    Returns:
        Counts per bin of the moved profile (not integers).
    """
    cumulative = np.concatenate([[0.0], np.cumsum(reference, dtype=float)])
    curve = _interpolate.PchipInterpolator(edges, cumulative, extrapolate=False)
    mean = _mean(np.asarray(reference, dtype=float), (edges[1:] + edges[:-1]) / 2)
    source = edges - shift if stretch == 1.0 else mean + (edges - mean - shift) / stretch
    moved = np.nan_to_num(curve(np.clip(source, edges[0], edges[-1])), nan=0.0)
    return np.maximum(np.diff(moved), 0.0)


def _iqr(values: FloatArray, edges: FloatArray) -> float:
    """Interquartile range of a binned profile (linear within bins); NaN when empty."""
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    total = cumulative[-1]
    if total <= 0:
        return float("nan")
    q1, q3 = np.interp([0.25 * total, 0.75 * total], cumulative, edges)
    return float(q3 - q1)


def _name_and_unit(label: str) -> tuple[str, str]:
    """``"x [mm]"`` → ``("x", " mm")``: a shift or a position is printed with its unit."""
    match = re.fullmatch(r"\s*(.*?)\s*\[(.+)\]\s*", label)
    return (match.group(1) or label, f" {match.group(2)}") if match else (label, "")


def _mean(values: FloatArray, centres: FloatArray) -> float:
    total = values.sum()
    return float(values @ centres / total) if total > 0 else float("nan")


@register_check(
    "beam_profile",
    params={
        "recentre": (
            bool,
            True,
            "compare with the reference moved to this spill's centroid (a move is the "
            "centroid check's to judge; this one judges the shape)",
        ),
        "rescale": (
            bool,
            True,
            "compare with the reference also stretched to this spill's width (interquartile "
            "range): a width change is the width check's to judge, within its tolerance",
        ),
        "pull_warning": (float, 5.0, "WARNING when a bin's pull reaches this (σ)"),
        "pull_bad": (float, 7.0, "BAD when a bin's pull reaches this (σ)"),
        "nsigma": (float, 3.0, "a bin counts as off when its |pull| reaches this (σ)"),
        "max_bins_warning": (int, 3, "WARNING when MORE than this many bins are off"),
        "max_bins_bad": (int, 8, "BAD when MORE than this many bins are off"),
    },
    needs_histogram=True,
    needs_reference=True,
    ordered=(("pull_warning", "pull_bad"), ("max_bins_warning", "max_bins_bad")),
)
def check_beam_profile(
    context: CheckContext,
    *,
    recentre: bool,
    rescale: bool,
    pull_warning: float,
    pull_bad: float,
    nsigma: float,
    max_bins_warning: int,
    max_bins_bad: int,
) -> CheckResult:
    """Shape of a 1D beam profile against the reference moved to this spill's centroid.

    Per bin, the exact significance of the spill's count against the (moved, scaled)
    reference (:func:`dqm.checks.stats.poisson_significance`);
    the worse of "largest pull" and "bins beyond ``nsigma``" decides.
    """
    h, ref = context.histogram, context.reference
    assert h is not None and ref is not None
    if h.ndim != 1:
        return no_data(f"beam_profile judges a 1D profile, not a {h.ndim}D histogram")
    require_same_binning(h, ref)
    n, r = counts(h), counts(ref)
    edges = np.asarray(h.axes[0].edges, dtype=float)
    centres = np.asarray(h.axes[0].centers, dtype=float)
    if n.sum() <= 0 or r.sum() <= 0:
        return no_data("no entries in range to compare the profile's shape")
    shift = _mean(n, centres) - _mean(r, centres) if recentre else 0.0
    stretch = _iqr(n, edges) / _iqr(r, edges) if rescale else 1.0
    if not (np.isfinite(stretch) and stretch > 0):
        stretch = 1.0  # a profile with no spread (all in one bin): nothing to stretch
    moved = recentred(r, edges, shift, stretch) if shift or stretch != 1.0 else r
    scale = n.sum() / moved.sum()
    # the exact two-Poisson test per bin (the tails hold a few counts: Gaussian pulls would
    # call 9 where 4 are expected a 5σ excess); the moved reference rounded to whole counts
    pulls = poisson_significance(n, np.rint(moved), scale=scale)
    largest = int(np.argmax(np.abs(pulls)))
    pull = float(abs(pulls[largest]))
    off = np.abs(pulls) >= nsigma
    n_off = int(off.sum())
    quality = worst(
        [grade(pull, pull_warning, pull_bad), grade(n_off, max_bins_warning + 1, max_bins_bad + 1)]
    )
    coordinate, unit = _name_and_unit(axis_label(h.axes[0], "x"))
    moved_by = f" moved by {shift:+.2f}{unit}" if recentre else ""
    if rescale:
        moved_by += f"{' and' if recentre else ''} stretched ×{stretch:.3f}"
    if recentre or rescale:
        on = " and ".join(w for w, on in (("centroid", recentre), ("width", rescale)) if on)
        moved_by += f" onto this spill's {on}"
    limits = symmetric(pull_warning, pull_bad)
    largest_pull = fmt_judged(float(pulls[largest]), *limits, decimals=1, signed=True)
    explanation = (
        f"profile shape against the reference{moved_by}: {n_off} of {n.size} bins beyond "
        f"{fmt_limit(nsigma)}σ (warning > {max_bins_warning}, bad > {max_bins_bad}), largest "
        f"pull {largest_pull}σ (warning ≥ {fmt_limit(pull_warning)}, bad ≥ "
        f"{fmt_limit(pull_bad)}) at {coordinate} ≈ {centres[largest]:.4g}{unit}"
    )
    worst_bins = np.argsort(-np.abs(pulls))[:5]
    return CheckResult(
        quality,
        pull,
        {
            "warning": pull_warning,
            "bad": pull_bad,
            "nsigma": nsigma,
            "max_bins_warning": max_bins_warning,
            "max_bins_bad": max_bins_bad,
        },
        explanation,
        {
            "shift": shift,
            "stretch": stretch,
            "bins_beyond": n_off,
            "bins": [
                {
                    "centre": float(centres[i]),
                    "observed": float(n[i]),
                    "expected": float(scale * moved[i]),
                    "pull": float(pulls[i]),
                }
                for i in worst_bins
            ],
        },
    )
