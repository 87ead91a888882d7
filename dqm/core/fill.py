"""Fill boost-histogram objects from whole event batches — the worker's hot loop.

Each spec is compiled once into a ``book`` (make an empty histogram) and a ``fill``
(add one batch) function. All storages are integers (``Int64``): counts, or cell
energies summed in integer MeV. Integer sums are exact and order-independent, which
is what makes "histograms from N workers == histograms from one process, bin by bin"
a true statement rather than a floating-point approximation.

Cell maps are not filled event by event: the batch's hits (cells above threshold, within
an optional window) are found in one pass, and the per-cell occupancy, energy or squared
energy is one ``bincount`` over them (a plain occupancy, possibly dense, one BLAS
``ones @ mask``), added to the histogram's view.

Only events that carry every DAQ source a histogram requires are filled into it: a
source missing from an event leaves zeros in its columns, and zeros filled as data put a
spike at x = 0, p_MS2 = 0 in the signal region, a "gain drop" on every HCAL module. The
selection is one vectorised AND on the ``daq_sources`` word per distinct set of sources
and batch (:meth:`~dqm.core.variables.BatchView.with_sources`), and none at all when
every event has them, which is the normal case.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import boost_histogram as bh
import numpy as np

from dqm.core.events import empty_columns
from dqm.core.histio import empty_copy
from dqm.core.specs import AxisSpec, HistogramSpec, SpecSet
from dqm.core.variables import BatchView, Expression

__all__ = ["Filler", "book_histogram"]

_FillFn = Callable[[bh.Histogram, BatchView], None]


def _regular(axis: AxisSpec, label: str) -> bh.axis.Regular:
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
    axes: list[bh.axis.Axis]
    if spec.kind in ("h1", "h2"):
        axes = [_regular(_axis(spec.x), _axis(spec.x).label)]
        if spec.kind == "h2":
            axes.append(_regular(_axis(spec.y), _axis(spec.y).label))
    elif spec.kind == "channels":
        shape = _probe_shape(spec)
        y = _axis(spec.y)
        axes = [_integer(int(np.prod(shape)), spec.channel_label), _regular(y, y.label)]
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
    # name and title ride along as metadata (h.name, h.title), as boost-histogram keeps them
    return bh.Histogram(
        *axes, storage=bh.storage.Int64(), __dict__={"name": spec.name, "title": spec.title}
    )


def _axis(axis: AxisSpec | None) -> AxisSpec:
    """The spec's axis; the loader guarantees it for the kinds that use it."""
    if axis is None:
        raise ValueError("this kind of histogram needs the axis its spec left out")
    return axis


def _expr(expr: Expression | None) -> Expression:
    """The spec's expression; the loader guarantees it for the kinds that use it."""
    if expr is None:
        raise ValueError("this kind of histogram needs the expression its spec left out")
    return expr


def _compile_rows(spec: HistogramSpec) -> Callable[[BatchView], np.ndarray | None]:
    """Events to fill: those with the required DAQ sources, passing the selection (None: all).

    Compiled per spec so the hot loop pays nothing for a histogram that needs neither.
    """
    bits, selection = spec.source_bits, spec.selection
    if selection is None:
        return (lambda view: view.with_sources(bits)) if bits else (lambda view: None)

    def rows(view: BatchView) -> np.ndarray | None:
        selected = view.evaluate(selection)
        present = view.with_sources(bits) if bits else None
        return selected if present is None else selected & present

    return rows


def _counts(h: bh.Histogram) -> np.ndarray:
    """The histogram's bin counts as a writable array sharing its memory (no flow bins).

    ``h.view()`` builds its array through pybind11's PEP 3118 format parsing in Python,
    ~9 µs a call: on 2000-event batches that was a third of the fill stage. The buffer
    protocol gives the same memory in < 1 µs. Cell maps have integer axes without flow
    bins, so this is their whole storage.
    """
    return np.asarray(h._hist)


def _fill(h: bh.Histogram, *coords: np.ndarray) -> None:
    """``h.fill(*coords)`` without the Python wrapper (threads, weights, samples: unused
    here), which costs as much as filling a 2000-event batch into a 1D histogram."""
    h._hist.fill(*coords)


def _select(arr: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return arr if mask is None else arr[mask]


def _per_event(values: np.ndarray) -> int:
    """Values per event (cells, channels); ``reshape(n, -1)`` cannot infer it when n = 0."""
    return math.prod(values.shape[1:])


def _hits(
    view: BatchView, cells_of: Callable[[], np.ndarray], key: str, threshold: float, ceiling: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cell index and value of every hit of a cellmap in this batch (memoised under ``key``).

    A hit is a cell value above ``threshold`` (and at most ``ceiling``); the maps of one
    layer with the same window, sources and selection share the list.
    """
    found: dict[str, np.ndarray] = {}

    def find() -> np.ndarray:
        cells = cells_of()
        flat = cells.reshape(cells.shape[0], _per_event(cells))
        hit = flat > threshold
        if np.isfinite(ceiling):
            hit &= flat <= ceiling
        # flatnonzero, not nonzero: ~15x faster on a 2D mask; a 1D take from a contiguous
        # block, not a 2D fancy index: 2x faster again
        index = np.flatnonzero(hit)
        k = flat.shape[1]
        cell = index % k
        if flat.flags.c_contiguous:
            found["values"] = flat.ravel()[index]
        else:  # a slice of a wider column (one ECAL layer): ravel would copy it all
            found["values"] = flat[index // k, cell]
        return cell

    cell = view.memo("cells" + key, find)
    return cell, view.memo("values" + key, lambda: found["values"])


def _compile_fill(spec: HistogramSpec) -> _FillFn:
    _rows = _compile_rows(spec)
    if spec.kind == "h1":
        x_expr = _expr(_axis(spec.x).expr)

        def fill_h1(h: bh.Histogram, view: BatchView) -> None:
            _fill(h, _select(view.evaluate(x_expr), _rows(view)).ravel())

        return fill_h1
    if spec.kind == "h2":
        x_expr, y_expr = _expr(_axis(spec.x).expr), _expr(_axis(spec.y).expr)

        def fill_h2(h: bh.Histogram, view: BatchView) -> None:
            mask = _rows(view)
            x = _select(view.evaluate(x_expr), mask)
            y = _select(view.evaluate(y_expr), mask)
            x, y = np.broadcast_arrays(x, y)
            _fill(h, x.ravel(), y.ravel())

        return fill_h2
    values_expr = _expr(spec.values)
    if spec.kind == "channels":

        def fill_channels(h: bh.Histogram, view: BatchView) -> None:
            values = _select(view.evaluate(values_expr), _rows(view))
            values = values.reshape(values.shape[0], _per_event(values))
            channel = np.broadcast_to(np.arange(values.shape[1]), values.shape)
            _fill(h, channel.ravel(), values.ravel())

        return fill_channels
    threshold, ceiling, stat = spec.threshold_gev, spec.max_gev, spec.stat
    # the maps of one layer (occupancy, MIP hits, energy, energy²) share the batch's hit
    # list through its memo: one comparison pass over the cells, then work per hit only
    key = f"|{values_expr.source}|{spec.selection.source if spec.selection else ''}"
    key += f"|{spec.source_bits}|{threshold!r}|{ceiling!r}"

    def fill_cellmap(h: bh.Histogram, view: BatchView) -> None:
        def cells_of() -> np.ndarray:
            return _select(view.evaluate(values_expr), _rows(view))

        counts = _counts(h)
        add: np.ndarray
        if stat == "occupancy" and not np.isfinite(ceiling):
            # a plain occupancy (possibly dense, e.g. DAQ sources): ones @ mask in BLAS;
            # every partial sum is an integer below 2**24, so float32 is exact
            cells = cells_of()
            n, k = cells.shape[0], _per_event(cells)  # k explicit: a batch may select none
            mask = (cells > threshold).reshape(n, k).astype(np.float32)
            add = np.ones(n, dtype=np.float32) @ mask
        else:
            cell, values = _hits(view, cells_of, key, threshold, ceiling)
            # bincount adds in float64 one hit after the other: every partial sum is an
            # integer below 2**53 (counts, MeV, MeV² — (4·10⁵ MeV)² · 2·10⁴ hits of a cell
            # included), so the result is exact whatever the batches
            if stat == "occupancy":
                add = np.bincount(cell, minlength=counts.size)
            else:
                # MeV as before: rounded in float32 (the column's precision), then exact
                mev = view.memo(
                    "mev" + key,
                    lambda: np.rint(values * np.float32(1000.0)).astype(np.float64),
                )
                weights = mev * mev if stat == "energy2" else mev
                add = np.bincount(cell, weights=weights, minlength=counts.size)
        counts += add.astype(np.int64).reshape(counts.shape)

    return fill_cellmap


class Filler:
    """Books and fills every histogram of a :class:`SpecSet`."""

    def __init__(self, specs: SpecSet) -> None:
        self.specs = specs
        self._fills: list[tuple[str, _FillFn]] = [(s.name, _compile_fill(s)) for s in specs]
        self._templates = {s.name: book_histogram(s) for s in specs}

    def book(self) -> dict[str, bh.Histogram]:
        """Fresh empty histograms: the templates' C++ storage copied, their axes shared.

        A worker books a set per spill per commit; ``h.copy(deep=False)`` rebuilds the
        Python axis wrappers (~120 µs a histogram, 6 ms a set: more than filling a batch).
        Here each histogram gets a copy of the template's C++ histogram and the template's
        own (immutable in practice) axis objects and metadata values: ~5 µs. Nothing
        relabels a booked histogram's axes; an operation that rebuilds axes (``+=``,
        ``copy``) gives the histogram its own.
        """
        return {name: empty_copy(h) for name, h in self._templates.items()}

    def fill(self, hists: dict[str, bh.Histogram], view: BatchView) -> None:
        for name, fn in self._fills:
            fn(hists[name], view)
