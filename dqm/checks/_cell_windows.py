"""Spill windows of a cell map: this spill, and this spill plus the last 1, 2, … spills.

Private to :mod:`dqm.checks.channels` (through :mod:`dqm.checks._cells`, which assesses one
map).

A cell that expects a few hits per spill cannot be called dead from one spill: zero hits
where 7 are expected happens once in a thousand healthy spills. Added up over the last
k spills it can (zero where 28 are expected cannot). So a map is assessed over nested
*windows* — this spill, and this spill plus the last 1, 2, … (``spills`` − 1) spills —
each against the reference share times that window's total, and each cell is judged on
the window where its evidence is strongest. Choosing among W windows is one more place
to look: the look-elsewhere correction counts ``cells × W`` trials (conservative, the
windows overlap). A hot or dead cell that one spill shows is still flagged on that spill.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm.checks._cellmaps import Method, channel_map
from dqm.checks._cells import CellAssessment, assess_cells, global_z, two_poisson_z
from dqm.checks._core import CheckContext

__all__ = ["Windows", "assess_windows", "strongest", "windows"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def windows(spills: int, available: int) -> list[int]:
    """Window lengths 1, 2, … ``spills``, as far as the ``available`` earlier spills allow.

    Every length, not a geometric series: a cell dead for 3 spills is seen over exactly
    those 3 (a 4-spill window would hold one healthy spill and not look dead at all).
    """
    return list(range(1, min(spills, available + 1) + 1))


def _available(context: CheckContext) -> int:
    """How many of the latest earlier spills have this histogram (a gap ends the run-up)."""
    assert context.histogram is not None
    shape = context.histogram.shape  # from the axes: cheaper than building a view
    count = 0
    for h in reversed(context.recent):
        if h is None or h.shape != shape:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Windows:
    """A map assessed over every window at once: arrays with the window as first axis.

    ``first`` is this spill alone (or the no-reference fallback, which has one window);
    ``observed``, ``expected`` and ``significance`` have shape ``(W, *cells)``, window k
    (0-based) adding up this spill and the last k earlier spills.
    """

    first: CellAssessment
    observed: FloatArray
    expected: FloatArray
    significance: FloatArray

    @property
    def count(self) -> int:
        return int(self.observed.shape[0])

    @property
    def masked(self) -> BoolArray:
        return self.first.masked


#: Channel counts of earlier spills' maps, by histogram object. The judge of the next spill
#: gets the same (cached, never refilled) histograms of the earlier spills again, so each map
#: is projected once, not once per check per spill. A memo, not state: an entry is used only
#: for the very object it was made from (kept referenced, so its id cannot be reused) with
#: an unchanged total; bounded.
_COUNTS: OrderedDict[int, tuple[bh.Histogram, float, FloatArray]] = OrderedDict()
_COUNTS_SIZE = 2048


def _counts(h: bh.Histogram) -> FloatArray:
    total = float(h.sum(flow=True))
    hit = _COUNTS.get(id(h))
    if hit is not None and hit[0] is h and hit[1] == total:
        return hit[2]
    counts = channel_map(h)[0]
    _COUNTS[id(h)] = (h, total, counts)
    try:
        while len(_COUNTS) > _COUNTS_SIZE:
            _COUNTS.popitem(last=False)
    except KeyError:  # another thread trimmed it first
        pass
    return counts


def assess_windows(
    context: CheckContext, *, spills: int, use_reference: bool, method: Method, min_sigma: float
) -> Windows:
    """Every window at once: this spill, then this spill plus the last k − 1.

    Windows need a reference (the map's own smooth fit is refitted per spill, and a
    dead cell would be fitted away over many): without one only this spill is judged.
    The cells left out of this spill's ratio (:func:`robust_scale`) are left out of
    every window's; all windows are then tested in one array operation.
    """
    assert context.histogram is not None
    first = assess_cells(
        context.histogram,
        context.reference,
        context.masked,
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
    )
    lengths = windows(spills, _available(context))
    if first.reference is None or len(lengths) == 1:
        return Windows(first, first.observed[None], first.expected[None], first.significance[None])
    earlier = [_counts(h) for h in context.recent[::-1][: len(lengths) - 1] if h is not None]
    observed = np.cumsum(np.stack([first.observed, *earlier]), axis=0)  # window k at k − 1
    reference = first.reference
    usable = ~first.masked & (reference > 0)
    if first.left_out is not None:
        usable &= ~first.left_out
    scale = observed[:, usable].sum(axis=1) / reference[usable].sum()
    shape = (len(lengths),) + (1,) * reference.ndim
    expected = reference[None] * scale.reshape(shape)
    z = two_poisson_z(observed, reference[None], scale.reshape(shape))
    z[0] = first.significance  # this spill alone: as assessed (same test, same ratio)
    return Windows(first, observed, expected, z)


def strongest(
    assessed: Windows, candidate: BoolArray, sign: int
) -> tuple[CellAssessment, BoolArray]:
    """Per cell, the window with the strongest evidence in direction ``sign`` among those
    where it is a candidate; the global significance then counts cells × windows.

    Args:
        assessed: the map over its windows.
        candidate: shape ``(W, *cells)``: where each window's cell is a candidate.
        sign: −1 for a deficit (dead), +1 for an excess (hot).

    Returns:
        The combined assessment and the cells that are a candidate in their chosen window.
    """
    first = assessed.first
    if assessed.count == 1:
        return first, candidate[0]
    scores = np.where(candidate, sign * assessed.significance, -np.inf)
    best = np.argmax(scores, axis=0)[None]
    pick = np.take_along_axis
    observed = pick(assessed.observed, best, axis=0)[0]
    expected = pick(assessed.expected, best, axis=0)[0]
    significance = pick(assessed.significance, best, axis=0)[0]
    judged = ~first.masked & np.isfinite(expected)
    trials = first.n_judged * assessed.count
    combined = replace(
        first,
        observed=observed,
        expected=expected,
        significance=significance,
        global_significance=global_z(significance, judged, trials),
        spills=best[0] + 1,
        n_trials=trials,
    )
    return combined, pick(candidate, best, axis=0)[0]
