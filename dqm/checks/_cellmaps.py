"""Expected counts per channel of a cell map, from a reference or from the map itself.

A calorimeter cell map is peaked: the muon beam spot puts most hits in the central
cells, so "compare with the neighbours" or "compare with the median" only works on
flat maps (VETO counters, HCAL modules). For peaked maps use, in order of
preference, the certified reference scaled to the same total, or — without a
reference — the separable beam-spot model (the map as a product of an x and a y
profile, fitted without the cell under test).
"""

from __future__ import annotations

import itertools
from typing import Literal

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

__all__ = ["Method", "channel_map", "channel_ids", "expected_counts"]

Method = Literal["reference", "separable", "neighbours", "median"]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def channel_map(h: bh.Histogram) -> tuple[FloatArray, list[bh.axis.Axis]]:
    """Counts per channel: summed over every non-Integer axis (energy, time …).

    Returns:
        ``(counts, channel_axes)``; the channel axes are the Integer axes, or all
        axes when the histogram has none.
    """
    channel_axes = [i for i, a in enumerate(h.axes) if isinstance(a, bh.axis.Integer)]
    if not channel_axes or len(channel_axes) == h.ndim:
        return np.asarray(h.values(), dtype=float), list(h.axes)
    projected = h.project(*channel_axes)
    return np.asarray(projected.values(), dtype=float), list(projected.axes)


def channel_ids(axes: list[bh.axis.Axis]) -> list[tuple[int, ...]]:
    """Channel tuple per cell, C order: Integer-axis values, else bin indices."""
    ranges = [
        [int(v) for v in a.edges[:-1]] if isinstance(a, bh.axis.Integer) else list(range(a.size))
        for a in axes
    ]
    return list(itertools.product(*ranges))


def _separable_loo(values: FloatArray, excluded: BoolArray, iterations: int = 300) -> FloatArray:
    """Leave-one-out quasi-independence fit ``μᵢⱼ = aᵢ·bⱼ`` of a 2D map.

    For every cell, the Poisson maximum-likelihood rank-1 model is fitted by
    iterative proportional fitting over the non-excluded cells *other than that
    cell*, and its prediction for the cell is returned. All fits run at once.

    References:
        Goodman, JASA 63 (1968) 1091 (quasi-independence, incomplete tables);
        Bishop, Fienberg & Holland, Discrete Multivariate Analysis, ch. 5.
    """
    n_rows, n_cols = values.shape
    n_cells = values.size
    include = np.broadcast_to(~excluded, (n_cells, n_rows, n_cols)).copy()
    include.reshape(n_cells, n_cells)[np.arange(n_cells), np.arange(n_cells)] = False
    data = np.where(include, values, 0.0)
    row_sum, col_sum = data.sum(axis=2), data.sum(axis=1)
    a = np.ones((n_cells, n_rows))
    b = np.ones((n_cells, n_cols))
    model = a[:, :, None] * b[:, None, :]
    for _ in range(iterations):
        denom_a = np.einsum("kij,kj->ki", include, b)
        a_new = np.divide(row_sum, denom_a, out=np.zeros_like(row_sum), where=denom_a > 0)
        denom_b = np.einsum("kij,ki->kj", include, a_new)
        b_new = np.divide(col_sum, denom_b, out=np.zeros_like(col_sum), where=denom_b > 0)
        new_model = a_new[:, :, None] * b_new[:, None, :]
        # np.allclose(new_model, model, rtol=1e-9, atol=1e-9), without its per-call overhead
        done = bool((np.abs(new_model - model) <= 1e-9 + 1e-9 * np.abs(model)).all())
        a, b, model = a_new, b_new, new_model
        if done:
            break
    cell = np.arange(n_cells)
    return (a[cell, cell // n_cols] * b[cell, cell % n_cols]).reshape(n_rows, n_cols)


def _neighbour_median(values: FloatArray, excluded: BoolArray) -> FloatArray:
    """Median of the non-excluded cells within ±1 in every index (edge-aware)."""
    expected = np.full(values.shape, np.nan)
    for index in np.ndindex(values.shape):
        window = tuple(slice(max(i - 1, 0), i + 2) for i in index)
        usable = ~excluded[window]
        usable[tuple(i - s.start for i, s in zip(index, window, strict=False))] = False
        if usable.any():
            expected[index] = float(np.median(values[window][usable]))
    return expected


def expected_counts(
    values: FloatArray,
    excluded: BoolArray,
    method: Method,
    reference: FloatArray | None = None,
) -> FloatArray:
    """Expected counts per channel under "this channel is healthy".

    Args:
        values: this spill's counts per channel.
        excluded: channels not to be used as evidence (masked, or already found
            anomalous in a first pass).
        method: ``"reference"`` (reference scaled to this spill's total over the
            usable channels), ``"separable"`` (2D maps of at least 3×3; others
            fall back to the median), ``"neighbours"`` or ``"median"`` (flat maps only).
        reference: reference counts per channel, for ``"reference"``.

    Returns:
        Expected counts, NaN where no expectation can be formed.
    """
    if method == "reference":
        if reference is None:
            raise ValueError("method 'reference' needs reference counts")
        usable = ~excluded & (reference > 0)
        ref_total = reference[usable].sum()
        if ref_total <= 0:
            return np.full(values.shape, np.nan)
        return reference * (values[usable].sum() / ref_total)
    # A rank-1 fit needs redundancy: with 2 cells in a row, leaving one out leaves
    # the row's scale fixed by a single cell — fragile; such small maps use the median.
    if method == "separable" and values.ndim == 2 and min(values.shape) >= 3:
        return _separable_loo(values, excluded)
    if method == "neighbours":
        return _neighbour_median(values, excluded)
    usable = ~excluded
    if not usable.any():
        return np.full(values.shape, np.nan)
    return np.full(values.shape, float(np.median(values[usable])))
