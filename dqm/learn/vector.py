"""A spill's histograms of one subsystem as one vector: each normalised to unit area.

Normalising removes the spill's intensity (a shorter spill is not a different shape);
what the model learns is the shapes and how they vary together from spill to spill.
The layout (names, binning) travels with the model, so a spill filled with other binning
is refused rather than compared bin by bin with something else.

A cell's gain is a *ratio* — energy per hit — and a normalised energy map cannot show it:
the map follows the cell's hit count, whose Poisson noise (1–2 % for a beam cell) hides a
gain change of a few %. So a layout item may be a **response map**: the energy map divided
bin by bin by its hit map (``per``), the mean response per hit of each cell, kept only for
the cells (``cells``) that had enough hits in every training spill. A few % lower gain in
a group of cells is then several standard deviations in each of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

__all__ = ["HistogramLayout", "layout_of", "response_of", "vectorise", "bin_words"]

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
    #: a response map: this item is ``name`` divided bin by bin by the histogram ``per``
    per: str = ""
    #: a response map's kept bins (flat indices into ``shape``), those with enough hits
    cells: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return len(self.cells) if self.per else int(np.prod(self.shape))

    @property
    def title(self) -> str:
        """How the words name it: ``"ecal_energy_map per ecal_mip_hits"`` for a response map."""
        return f"{self.name} per {self.per}" if self.per else self.name

    def bin_index(self, i: int) -> int:
        """The histogram's flat bin of the item's ``i``-th value."""
        return self.cells[i] if self.per else i

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "edges": [list(e) for e in self.edges],
            "integer": list(self.integer),
            "labels": list(self.labels),
            **({"per": self.per, "cells": list(self.cells)} if self.per else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistogramLayout:
        return cls(
            str(data["name"]),
            tuple(int(n) for n in data["shape"]),
            tuple(tuple(float(x) for x in e) for e in data["edges"]),
            tuple(bool(b) for b in data["integer"]),
            tuple(str(s) for s in data.get("labels", ())),
            str(data.get("per", "")),
            tuple(int(i) for i in data.get("cells", ())),
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


def response_of(name: str, per: str, h: bh.Histogram) -> HistogramLayout:
    """A response map: ``name`` (energy) divided by ``per`` (hits), every bin kept until
    :func:`dqm.learn.train.train_model` keeps those with enough hits."""
    base = layout_of(name, h)
    return HistogramLayout(
        name, base.shape, base.edges, base.integer, base.labels, per, tuple(range(base.size))
    )


def _response(hists: Mapping[str, bh.Histogram], item: HistogramLayout) -> FloatArray:
    """Mean energy per hit of the item's cells (0 where a cell has no hit)."""
    energy, hits = hists.get(item.name), hists.get(item.per)
    if energy is None or hits is None:
        return np.zeros(item.size)
    e = np.asarray(energy.values(), dtype=float)
    n = np.asarray(hits.values(), dtype=float)
    if e.shape != item.shape or n.shape != item.shape:
        raise ValueError(
            f"{item.title} has bins {e.shape}/{n.shape}, the model was trained on {item.shape}"
        )
    e, n = e.ravel()[list(item.cells)], n.ravel()[list(item.cells)]
    return np.divide(e, n, out=np.zeros_like(e), where=n > 0)


def vectorise(hists: Mapping[str, bh.Histogram], layout: Sequence[HistogramLayout]) -> FloatArray:
    """The spill's vector in ``layout`` order.

    Each histogram's in-range bins are divided by their sum (unit area); a missing or
    empty histogram contributes zeros (it has no shape, which the model will see). A
    response map contributes each kept cell's energy per hit (:func:`response_of`).

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
        if item.per:
            parts.append(_response(hists, item))
            continue
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
    index = np.unravel_index(item.bin_index(flat_index), item.shape)
    cells = [str(int(i)) for i, is_int in zip(index, item.integer, strict=True) if is_int]
    ranges = [_axis_range(item, a, int(i)) for a, i in enumerate(index) if not item.integer[a]]
    where = f"({','.join(cells)})" if len(cells) > 1 else (cells[0] if cells else "")
    if ranges:
        span = ranges[0] if len(ranges) == 1 else f"({', '.join(ranges)})"
        return f"{where} at {span}" if where else span
    return where
