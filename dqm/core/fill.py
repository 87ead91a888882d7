"""Fill boost-histogram objects from whole event batches — the worker's hot loop.

Each spec is compiled once into a ``book`` (make an empty histogram) and a ``fill``
(add one batch) function. All storages are integers (``Int64``): counts, or cell
energies summed in integer MeV. Integer sums are exact and order-independent, which
is what makes "histograms from N workers == histograms from one process, bin by bin"
a true statement rather than a floating-point approximation.

Cell maps are not filled event by event: the batch's hits (cells above threshold, within
an optional window) are found in one pass, and the per-cell occupancy, energy or squared
energy is one ``bincount`` over them, added to the histogram's view.
"""

from __future__ import annotations

from collections.abc import Callable

import boost_histogram as bh
import numpy as np

from dqm.core.events import empty_columns
from dqm.core.specs import HistogramSpec, SpecSet
from dqm.core.variables import BatchView

__all__ = ["Filler", "book_histogram"]

_FillFn = Callable[[bh.Histogram, BatchView], None]


def _regular(axis, label: str) -> bh.axis.Regular:
    ax = bh.axis.Regular(axis.bins, axis.lo, axis.hi)
    ax.label = label
    return ax


def _integer(n: int, label: str) -> bh.axis.Integer:
    ax = bh.axis.Integer(0, n, underflow=False, overflow=False)
    ax.label = label
    return ax


def _probe_shape(spec: HistogramSpec) -> tuple[int, ...]:
    """Per-event shape of a spec's ``values`` (evaluated on a one-event dummy batch)."""
    assert spec.values is not None
    return tuple(np.asarray(spec.values.fn(BatchView(empty_columns(1)))).shape[1:])


def book_histogram(spec: HistogramSpec) -> bh.Histogram:
    """An empty histogram with the spec's axes, labels and title as metadata."""
    if spec.kind in ("h1", "h2"):
        axes = [_regular(spec.x, spec.x.label)]
        if spec.kind == "h2":
            axes.append(_regular(spec.y, spec.y.label))
    elif spec.kind == "channels":
        shape = _probe_shape(spec)
        axes = [_integer(int(np.prod(shape)), spec.channel_label), _regular(spec.y, spec.y.label)]
    else:  # cellmap
        shape = _probe_shape(spec)
        if len(shape) == 1:
            axes = [_integer(shape[0], spec.x_label)]
        elif len(shape) == 2:
            axes = [_integer(shape[0], spec.x_label), _integer(shape[1], spec.y_label)]
        else:
            raise ValueError(
                f"cellmap '{spec.name}': values must be (n, k) or (n, nx, ny), got (n, {shape})"
            )
    h = bh.Histogram(*axes, storage=bh.storage.Int64())
    h.name = spec.name
    h.title = spec.title
    return h


def _rows(view: BatchView, spec: HistogramSpec) -> np.ndarray | None:
    return None if spec.selection is None else view.evaluate(spec.selection)


def _select(arr: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return arr if mask is None else arr[mask]


def _hits(view: BatchView, spec: HistogramSpec, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Cell index and value of every hit of a cellmap in this batch (memoised under ``key``).

    A hit is a cell value above ``threshold_gev`` (and at most ``max_gev``); the maps of
    one layer with the same window share the list.
    """
    found: dict[str, np.ndarray] = {}

    def find() -> np.ndarray:
        cells = _select(view.evaluate(spec.values), _rows(view, spec))
        flat = cells.reshape(cells.shape[0], -1)
        hit = flat > spec.threshold_gev
        if np.isfinite(spec.max_gev):
            hit &= flat <= spec.max_gev
        # flatnonzero, not nonzero: ~15x faster on a 2D mask
        events, cell = np.divmod(np.flatnonzero(hit), flat.shape[1])
        found["values"] = flat[events, cell]
        return cell

    cell = view.memo("cells" + key, find)
    return cell, view.memo("values" + key, lambda: found["values"])


def _compile_fill(spec: HistogramSpec) -> _FillFn:
    if spec.kind == "h1":

        def fill_h1(h: bh.Histogram, view: BatchView) -> None:
            h.fill(_select(view.evaluate(spec.x.expr), _rows(view, spec)).ravel())

        return fill_h1
    if spec.kind == "h2":

        def fill_h2(h: bh.Histogram, view: BatchView) -> None:
            mask = _rows(view, spec)
            x = _select(view.evaluate(spec.x.expr), mask)
            y = _select(view.evaluate(spec.y.expr), mask)
            x, y = np.broadcast_arrays(x, y)
            h.fill(x.ravel(), y.ravel())

        return fill_h2
    if spec.kind == "channels":

        def fill_channels(h: bh.Histogram, view: BatchView) -> None:
            values = _select(view.evaluate(spec.values), _rows(view, spec))
            values = values.reshape(values.shape[0], -1)
            channel = np.broadcast_to(np.arange(values.shape[1]), values.shape)
            h.fill(channel.ravel(), values.ravel())

        return fill_channels
    threshold, ceiling, stat = spec.threshold_gev, spec.max_gev, spec.stat
    # the maps of one layer (occupancy, MIP hits, energy, energy²) share the batch's hit
    # list through its memo: one comparison pass over the cells, then work per hit only
    window = f"|{spec.values.source}|{spec.selection.source if spec.selection else ''}"
    window += f"|{threshold!r}|{ceiling!r}"

    def fill_cellmap(h: bh.Histogram, view: BatchView) -> None:
        n_cells = h.view().size
        if stat == "occupancy" and not np.isfinite(ceiling):
            # a plain occupancy (possibly dense, e.g. DAQ sources): ones @ mask in BLAS;
            # every partial sum is an integer below 2**24, so float32 is exact
            cells = _select(view.evaluate(spec.values), _rows(view, spec))
            mask = cells.reshape(cells.shape[0], -1) > threshold
            add = np.ones(mask.shape[0], dtype=np.float32) @ mask.astype(np.float32)
            h.view()[...] += add.astype(np.int64).reshape(h.view().shape)
            return
        cell, values = _hits(view, spec, window)
        # bincount adds in float64 one hit after the other: every partial sum is an integer
        # below 2**53 (counts, MeV, MeV² — (4·10⁵ MeV)² · 2·10⁴ hits of a cell included),
        # so the result is exact and does not depend on how the spill was split in batches
        if stat == "occupancy":
            add = np.bincount(cell, minlength=n_cells)
        else:
            # MeV as before: rounded in float32 (the column's precision), then exact in float64
            mev = view.memo(
                "mev" + window, lambda: np.rint(values * np.float32(1000.0)).astype(np.float64)
            )
            weights = mev * mev if stat == "energy2" else mev
            add = np.bincount(cell, weights=weights, minlength=n_cells)
        h.view()[...] += add.astype(np.int64).reshape(h.view().shape)

    return fill_cellmap


class Filler:
    """Books and fills every histogram of a :class:`SpecSet`."""

    def __init__(self, specs: SpecSet) -> None:
        self.specs = specs
        self._fills: list[tuple[str, _FillFn]] = [(s.name, _compile_fill(s)) for s in specs]
        self._templates = {s.name: book_histogram(s) for s in specs}

    def book(self) -> dict[str, bh.Histogram]:
        """Fresh empty histograms: shallow copies of prebuilt templates (new storage, shared
        metadata) — several times cheaper than booking or deep-copying."""
        return {name: h.copy(deep=False) for name, h in self._templates.items()}

    def fill(self, hists: dict[str, bh.Histogram], view: BatchView) -> None:
        for name, fn in self._fills:
            fn(hists[name], view)
