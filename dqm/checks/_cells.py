"""Cell statistics behind the dead/hot/noisy checks: expectation and significance per cell.

Private to :mod:`dqm.checks.channels`, which registers the checks and words their results.
One map is assessed here (:func:`assess_cells`): each cell's count against the reference
share times this spill's total (or the map's own model), as a signed Poisson significance
with the look-elsewhere correction over the cells. Adding up the run's last spills for cells
that expect few hits per spill is :mod:`dqm.checks._cell_windows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm._lazy import lazy_module
from dqm.checks._cellmaps import Method, channel_ids, channel_map, expected_counts
from dqm.checks._util import require_same_binning
from dqm.checks.stats import look_elsewhere, p_to_sigma, poisson_tail_sigma

_sp = lazy_module("scipy.special")

__all__ = [
    "CellAssessment",
    "assess_cells",
    "global_z",
    "two_poisson_z",
    "robust_scale",
    "channel_label",
    "expected_count",
    "dead_reach",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class CellAssessment:
    """Observed vs expected counts per channel over a window of spills.

    ``significance`` is the signed local Z (excess > 0); ``global_significance`` the
    same direction's one-sided Z after the look-elsewhere correction over ``n_trials``
    (cells × windows); ``spills`` the window each cell was judged on.
    """

    ids: list[tuple[int, ...]]
    observed: FloatArray
    expected: FloatArray
    significance: FloatArray
    global_significance: FloatArray
    masked: BoolArray
    method: Method
    n_judged: int
    spills: NDArray[np.int_]
    n_trials: int
    reference: FloatArray | None = None
    left_out: BoolArray | None = None
    note: str = ""


def two_poisson_z(observed: FloatArray, reference: FloatArray, scale: float) -> FloatArray:
    """Signed Z of each cell's count against its reference count times ``scale``.

    The exact conditional test of :func:`dqm.checks.stats.poisson_significance` —
    ``n ~ Binomial(n + r, s/(1 + s))`` — cell by cell, defined for any counts (a cell
    with no hit at all is exactly the case a dead-cell test is about).
    """
    n = np.asarray(observed, dtype=float)
    r = np.asarray(reference, dtype=float)
    fraction = np.broadcast_to(np.asarray(scale, dtype=float) / (1.0 + scale), np.shape(n + r))
    total = n + r
    excess = n > total * fraction
    # binomial tails through scipy.special (what scipy.stats.binom calls, without its
    # per-call argument checking): P(X ≥ n) = bdtrc(n − 1), P(X ≤ n) = bdtr(n)
    k = np.rint(n).astype(np.int64)  # counts: integers (scipy.special wants them typed so)
    trials = np.rint(total).astype(np.int64)
    with np.errstate(invalid="ignore"):
        p_up = np.where(k >= 1, _sp.bdtrc(np.maximum(k - 1, 0), trials, fraction), 1.0)
        p_down = _sp.bdtr(k, trials, fraction)
    z = np.where(excess, p_to_sigma(p_up), -p_to_sigma(p_down))
    return np.where(total > 0, z, 0.0)


def _significance(
    observed: FloatArray, expected: FloatArray, reference: FloatArray | None
) -> FloatArray:
    """Signed local Z: exact two-Poisson test against a reference, else Poisson tails.

    Without a reference the expectation is taken as exact, floored at one count so
    a few hits where "nothing" is expected are not infinitely significant.
    """
    valid = np.isfinite(expected)
    expected = np.where(valid, expected, 0.0)
    if reference is not None and reference.sum() > 0:
        usable = reference > 0
        scale = expected[usable].sum() / reference[usable].sum() if usable.any() else 1.0
        z = two_poisson_z(observed, reference, scale)
    else:
        z_up = poisson_tail_sigma(observed, np.maximum(expected, 1.0), upper=True)
        z_down = poisson_tail_sigma(observed, expected, upper=False)
        z = np.where(observed >= expected, z_up, -z_down)
    return np.where(valid, z, 0.0)


def global_z(z_local: FloatArray, judged: BoolArray, n_trials: int) -> FloatArray:
    """Look-elsewhere corrected significance over ``n_trials``, signed like ``z_local``."""
    p_local = _sp.ndtr(-np.abs(z_local))  # the normal upper tail
    z = p_to_sigma(look_elsewhere(p_local, n_trials))
    return np.where(judged, np.sign(z_local) * z, 0.0)


def _odds_ratio_z(
    cell: float, rest: float, ref_cell: float, ref_rest: float, cluster: float = 1.0
) -> float:
    """Z of the log odds ratio of a 2×2 table (this cell vs the rest, spill vs reference).

    Woolf's test with Haldane's ½ added to every count, so a cell with no hit is defined:
    ``ln((a/b)/(c/d)) / √(1/a + φ/b + 1/c + φ/d)``. The rest's hits may come in clusters
    (one shower lights every outer cell of an HCAL module at once): an event gives at most
    one hit per cell, so the variance of the rest is at most ``φ = cells − 1`` times
    Poisson's, and ``cluster`` is that bound. B. Woolf, Ann. Hum. Genet. 19 (1955) 251;
    J. B. S. Haldane, Ann. Hum. Genet. 20 (1956) 309.
    """
    a, b, c, d = (x + 0.5 for x in (cell, rest, ref_cell, ref_rest))
    variance = 1 / a + cluster / b + 1 / c + cluster / d
    return math.log((a / b) / (c / d)) / math.sqrt(variance)


def robust_scale(
    observed: FloatArray, reference: FloatArray, excluded: BoolArray, bar_sigma: float = 3.0
) -> tuple[float, BoolArray]:
    """Ratio of this spill to the reference, from the cells that agree with each other.

    ``Σ observed / Σ reference`` over every cell is the efficient estimate when all cells
    are healthy, but one dominant cell (the HCAL cell the beam crosses holds 99 % of its
    module's hits) drags it anywhere when it dies, and then every healthy cell looks
    anomalous. So cells are left out one at a time — the one whose removal makes the
    others agree best (smallest Σ pull² of the rest under the rest's ratio) — for as long
    as that cell is itself off against the rest (2×2 odds-ratio test, which counts the
    rest's own few, possibly clustered hits too; ≥ ``bar_sigma`` after the look-elsewhere
    correction), at most half of them (backward elimination on influence; A. C. Atkinson & M. Riani,
    Robust Diagnostic Regression Analysis, Springer 2000).

    Returns:
        The ratio and the cells left out of it.
    """
    out = excluded | (reference <= 0)
    for _ in range(max(1, int((~out).sum()) // 2)):
        index = np.flatnonzero(~out)
        obs, ref = observed.flat[index], reference.flat[index]
        if index.size < 3:
            break
        # the rest's ratio for each candidate k, and every cell's pooled pull under it
        rest = (obs.sum() - obs) / (ref.sum() - ref)
        variance = rest[:, None] * (obs + ref)[None, :]
        pulls = np.divide(
            obs[None, :] - rest[:, None] * ref[None, :],
            np.sqrt(variance),
            out=np.zeros_like(variance),
            where=variance > 0,
        )
        np.fill_diagonal(pulls, 0.0)
        k = int(np.argmin((pulls**2).sum(axis=1)))
        cluster = float(index.size - 1)
        rest_obs, rest_ref = obs.sum() - obs[k], ref.sum() - ref[k]
        z = np.array([_odds_ratio_z(obs[k], rest_obs, ref[k], rest_ref, cluster)])
        if abs(float(global_z(z, np.ones(1, dtype=bool), index.size)[0])) < bar_sigma:
            break
        out.flat[index[k]] = True
    usable = ~out
    total = reference[usable].sum()
    return (observed[usable].sum() / total if total > 0 else float("nan")), out & ~excluded


def assess_cells(
    histogram: bh.Histogram,
    reference_hist: bh.Histogram | None,
    masked_ids: frozenset[tuple[int, ...]],
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    spills: int = 1,
) -> CellAssessment:
    """Expected counts and significances for every channel of one (summed) map."""
    observed, axes = channel_map(histogram)
    ids = channel_ids(axes)
    masked = np.array([cid in masked_ids for cid in ids]).reshape(observed.shape)
    reference = None
    if use_reference and reference_hist is not None and float(reference_hist.values().sum()) > 0:
        require_same_binning(histogram, reference_hist)
        reference, _ = channel_map(reference_hist)
        method = "reference"
    left_out = None
    if reference is not None:
        # the reference share of each cell times this spill's total over the cells that
        # agree with each other (see robust_scale)
        scale, left_out = robust_scale(observed, reference, masked)
        expected = reference * scale if np.isfinite(scale) else np.full(observed.shape, np.nan)
        judged = ~masked & np.isfinite(expected)
        z = _significance(observed, expected, reference)
    elif method == "separable" and (peak := _single_cell_spot(observed, masked)):
        # a smooth (rank-1) beam-spot model cannot describe a map whose hits sit in one
        # cell (the HCAL cell the beam crosses): its predictions for every cell are wrong
        return CellAssessment(
            ids,
            observed,
            np.full(observed.shape, np.nan),
            np.zeros(observed.shape),
            np.zeros(observed.shape),
            masked,
            method,
            0,
            np.ones(observed.shape, dtype=int),
            0,
            note=peak,
        )
    else:
        # the map's own model: two passes, so that a cell clearly off in the first does
        # not distort the second's expectation for its neighbours
        expected = expected_counts(observed, masked, method, None)
        judged = ~masked & np.isfinite(expected)
        z = _significance(observed, expected, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = observed / expected
        clearly_off = judged & (np.abs(global_z(z, judged, int(judged.sum()))) >= min_sigma)
        clearly_off &= (ratio < 0.5) | (ratio > 2.0)
        if clearly_off.any():
            expected = expected_counts(observed, masked | clearly_off, method, None)
            judged = ~masked & np.isfinite(expected)
            z = _significance(observed, expected, None)
    m = int(judged.sum())
    return CellAssessment(
        ids,
        observed,
        expected,
        z,
        global_z(z, judged, m),
        masked,
        method,
        m,
        np.full(observed.shape, spills),
        m,
        reference,
        left_out,
    )


def _single_cell_spot(observed: FloatArray, masked: BoolArray) -> str:
    """Why the smooth fit does not apply ('' when it does): one cell holds most hits."""
    usable = np.where(masked, 0.0, observed)
    total = float(usable.sum())
    if total <= 0 or usable.ndim != 2:
        return ""
    share = float(usable.max()) / total
    if share <= 0.5:
        return ""
    cell = tuple(int(i) for i in np.unravel_index(int(np.argmax(usable)), usable.shape))
    return (
        f"no reference, and {100 * share:.0f} % of the hits are in cell "
        f"({','.join(map(str, cell))}): the map has no smooth shape to judge the cells "
        "against — set a reference run"
    )


def channel_label(channel: tuple[int, ...]) -> str:
    """``(1, 0)`` → ``"(1,0)"``; a 1D channel is its bare index."""
    return f"({','.join(map(str, channel))})" if len(channel) > 1 else str(channel[0])


def expected_count(value: float) -> str:
    """An expected count as a shifter reads it: 2290, 14.2, 0.35."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def dead_reach(n_trials: int, min_sigma: float) -> float:
    """Expected hits above which zero hits reach ``min_sigma`` after the look-elsewhere
    correction: ``p(0 | μ) = e^{−μ}`` must be below the per-trial Šidák threshold."""
    p_global = float(_sp.ndtr(-min_sigma))  # the normal upper tail
    per_trial = -math.expm1(math.log1p(-p_global) / max(n_trials, 1))
    return -math.log(per_trial)
