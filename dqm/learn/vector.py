"""A spill's histograms of one subsystem as one vector: each normalised to unit area.

Normalising removes the spill's intensity (a shorter spill is not a different shape);
what the model learns is the shapes and how they vary together from spill to spill.
The layout (names, binning) travels with the model, so a spill filled with other binning
is refused rather than compared bin by bin with something else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

__all__ = ["HistogramLayout", "layout_of", "vectorise", "bin_words"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class HistogramLayout:
    """One histogram's place in the vector: its name, shape and bin edges per axis.

    ``integer`` marks axes whose bins are cells or channels (named by index, "(2,3)"),
    the others are ranges of a quantity ("10–12 GeV").
    """

    name: str
    shape: tuple[int, ...]
    edges: tuple[tuple[float, ...], ...]
    integer: tuple[bool, ...]
    labels: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "edges": [list(e) for e in self.edges],
            "integer": list(self.integer),
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistogramLayout:
        return cls(
            str(data["name"]),
            tuple(int(n) for n in data["shape"]),
            tuple(tuple(float(x) for x in e) for e in data["edges"]),
            tuple(bool(b) for b in data["integer"]),
            tuple(str(s) for s in data.get("labels", ())),
        )


def layout_of(name: str, h: bh.Histogram) -> HistogramLayout:
    """The layout of histogram ``h`` stored under ``name``."""
    return HistogramLayout(
        name,
        tuple(int(n) for n in h.axes.size),
        tuple(tuple(float(x) for x in ax.edges) for ax in h.axes),
        tuple(isinstance(ax, bh.axis.Integer) for ax in h.axes),
        tuple(str(getattr(ax, "label", "") or "") for ax in h.axes),
    )


def vectorise(hists: Mapping[str, bh.Histogram], layout: Sequence[HistogramLayout]) -> FloatArray:
    """The spill's vector in ``layout`` order.

    Each histogram's in-range bins are divided by their sum (unit area); a missing or
    empty histogram contributes zeros (it has no shape, which the model will see).

    Args:
        hists: the spill's histograms by name.
        layout: the model's layout.

    Returns:
        The concatenated normalised bins.

    Raises:
        ValueError: a histogram's binning differs from the layout's.
    """
    parts: list[FloatArray] = []
    for item in layout:
        h = hists.get(item.name)
        if h is None:
            parts.append(np.zeros(item.size))
            continue
        values = np.asarray(h.values(), dtype=float)
        if values.shape != item.shape:
            raise ValueError(
                f"{item.name} has bins {values.shape}, the model was trained on {item.shape}"
            )
        total = float(values.sum())
        parts.append((values / total).ravel() if total > 0 else np.zeros(item.size))
    return np.concatenate(parts) if parts else np.zeros(0)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _axis_range(item: HistogramLayout, axis: int, i: int) -> str:
    """``"E_ECAL 2–4 GeV"`` from the axis label ``"E_ECAL [GeV]"`` (bare range without one)."""
    span = f"{_fmt(item.edges[axis][i])}–{_fmt(item.edges[axis][i + 1])}"
    label = item.labels[axis] if axis < len(item.labels) else ""
    name, _, unit = label.partition("[")
    name, unit = name.strip(), unit.rstrip("]").strip()
    return " ".join(part for part in (name, span, unit) if part)


def bin_words(item: HistogramLayout, flat_index: int) -> str:
    """A bin of ``item`` in words: ``"(2,3)"`` for cells, ``"E_ECAL 10–12 GeV"`` for a range.

    Mixed axes (a channel × energy histogram) give ``"2 at E 10–12 GeV"``.
    """
    index = np.unravel_index(flat_index, item.shape)
    cells = [str(int(i)) for i, is_int in zip(index, item.integer, strict=True) if is_int]
    ranges = [_axis_range(item, a, int(i)) for a, i in enumerate(index) if not item.integer[a]]
    where = f"({','.join(cells)})" if len(cells) > 1 else (cells[0] if cells else "")
    if ranges:
        span = ranges[0] if len(ranges) == 1 else f"({', '.join(ranges)})"
        return f"{where} at {span}" if where else span
    return where
