"""Expert 2D figures: this selection, the reference and their significance side by side; cell maps.

Why side by side on one colour scale: an expert compares a beam-profile map with its
reference by eye only if the same colour means the same fraction in both, and needs the
per-bin significance next to them to see *where* they differ. x–y maps (both axes in
the same unit) keep their true aspect: a round beam must look round.

Cell maps are coloured by the Poisson significance against the reference
(:mod:`dqm.checks.significance`), not by the raw ratio: a cell that expects 0.3 hits and
sees none is as expected (grey), a cell that expects 700 and sees none is deep blue.
Pure conversions to bokeh; no queries.
"""

from __future__ import annotations

import re
from typing import Any

import boost_histogram as bh
import numpy as np
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    LogColorMapper,
    Range1d,
    TapTool,
)
from bokeh.plotting import figure

from apps.expert_plots import HIGHLIGHT
from apps.plot_data import DIVERGING
from apps.plots import _style
from dqm.checks.significance import significance_vs_reference

__all__ = [
    "MapTriple",
    "CellMap",
    "map_triple",
    "cell_map",
    "map_size",
    "same_unit",
    "SIGNIFICANCE_RANGE",
]

#: the significance colour scale spans ±5σ (beyond: the end colour)
SIGNIFICANCE_RANGE = 5.0
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def same_unit(x_label: str, y_label: str) -> bool:
    """Both axes in one unit (``"x [mm]"``, ``"y [mm]"``): an x–y map, drawn to true aspect."""
    units = [re.search(r"\[([^\]]+)\]", label or "") for label in (x_label, y_label)]
    return all(units) and units[0].group(1) == units[1].group(1)  # type: ignore[union-attr]


def map_size(h: bh.Histogram, width: int = 380) -> tuple[int, int]:
    """Frame size of a 2D map: true aspect for an x–y map, else 380×300."""
    if not same_unit(h.axes[0].label, h.axes[1].label):
        return width, 300
    ex, ey = h.axes[0].edges, h.axes[1].edges
    ratio = float(ey[-1] - ey[0]) / float(ex[-1] - ex[0])
    return width, int(min(max(width * ratio, 120), 3 * width))


def usable_reference(h: bh.Histogram, ref: bh.Histogram | None) -> np.ndarray | None:
    """The reference's counts when it can be drawn beside ``h`` (same shape, not empty)."""
    if ref is None or ref.values().shape != h.values().shape:
        return None
    r = np.asarray(ref.values(), dtype=float)
    return r if float(r.sum()) > 0 else None


def _image_figure(size, ranges, mapper, bar_title, tooltip):
    """An image plot with its colour bar and hover; its source is refilled by :func:`_fill`."""
    fig = figure(
        frame_width=size[0],
        frame_height=size[1],
        tools=_TOOLS,
        x_range=ranges[0],
        y_range=ranges[1],
    )
    src = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
    fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=src, color_mapper=mapper)
    fig.add_layout(ColorBar(color_mapper=mapper, title=bar_title, width=12), "right")
    fig.add_tools(HoverTool(tooltips=[("x", "$x{0.00}"), ("y", "$y{0.00}"), (tooltip, "@image")]))
    fig.xgrid.visible = fig.ygrid.visible = False
    _style(fig, "light")
    return fig, src


def _fill(fig, src, h: bh.Histogram, z: np.ndarray, title: str) -> None:
    ex, ey = h.axes[0].edges, h.axes[1].edges
    fig.title.text = title
    fig.xaxis.axis_label, fig.yaxis.axis_label = h.axes[0].label, h.axes[1].label
    src.data = {
        "image": [z.T],
        "x": [ex[0]],
        "y": [ey[0]],
        "dw": [ex[-1] - ex[0]],
        "dh": [ey[-1] - ey[0]],
    }


class MapTriple:
    """[this, reference, significance] image plots of a 2D histogram, built once and refilled.

    Why refilled: three figures with colour bars cost the server ~0.3 s of CPU to build and
    the browser a full layout to render; another histogram of the same frame size (and
    with or without a reference) only needs new images, colour limits and titles. The
    three share their ranges (pan/zoom all three) and the first two one colour mapper.
    """

    def __init__(self, size: tuple[int, int], *, with_reference: bool, log_z: bool) -> None:
        self.log_z, self.with_reference = log_z, with_reference
        self.ranges = (Range1d(0, 1), Range1d(0, 1))
        scale = "fraction per bin" + (" (log)" if log_z else "")
        self.mapper: Any = (
            LogColorMapper(palette="Viridis256", low=1e-6, high=1.0, nan_color="rgba(0,0,0,0)")
            if log_z
            else LinearColorMapper(palette="Viridis256", low=0.0, high=1.0, nan_color="#ffffff")
        )
        self.parts = [_image_figure(size, self.ranges, self.mapper, scale, "fraction")]
        if with_reference:
            self.parts.append(_image_figure(size, self.ranges, self.mapper, scale, "fraction"))
            diverging = LinearColorMapper(
                palette=list(DIVERGING), low=-SIGNIFICANCE_RANGE, high=SIGNIFICANCE_RANGE
            )
            self.parts.append(_image_figure(size, self.ranges, diverging, "σ", "σ"))

    @property
    def figures(self) -> list:
        return [fig for fig, _ in self.parts]

    def update(
        self, h: bh.Histogram, ref: bh.Histogram | None, title: str, reference_label: str
    ) -> None:
        """Draw ``h`` (and ``ref``, when built with a reference) as fractions per bin."""
        z = np.asarray(h.values(), dtype=float)
        total = float(z.sum())
        frac = z / total if total > 0 else z
        r = usable_reference(h, ref) if self.with_reference else None
        shown = [frac] + ([r / r.sum()] if r is not None else [])
        positive = np.concatenate([a[a > 0] for a in shown]) if total > 0 else np.array([])
        high = float(positive.max()) if positive.size else 1.0
        low = float(positive.min()) if self.log_z and positive.size else (1e-6 if self.log_z else 0)
        self.mapper.update(low=min(low, high), high=high)
        ex, ey = h.axes[0].edges, h.axes[1].edges
        self.ranges[0].update(start=float(ex[0]), end=float(ex[-1]))
        self.ranges[1].update(start=float(ey[0]), end=float(ey[-1]))
        (fig, src), *rest = self.parts
        _fill(fig, src, h, np.where(frac > 0, frac, np.nan), f"{title}: selected spills")
        if not rest:
            return
        if r is None:  # built for a reference this selection does not have: blank panels
            r = np.zeros_like(z)
        rn = r / r.sum() if float(r.sum()) > 0 else r
        _fill(*rest[0], h, np.where(rn > 0, rn, np.nan), reference_label)
        _fill(*rest[1], h, significance_vs_reference(z, r), "significance vs reference")


def map_triple(
    h: bh.Histogram,
    ref: bh.Histogram | None,
    title: str,
    *,
    log_z: bool = False,
    reference_label: str = "reference",
) -> list:
    """[this, reference, significance] figures of a 2D histogram (just [this] without a
    reference): shapes as fraction per bin on one colour scale, the significance in σ
    (new figures; the explorer refills its own :class:`MapTriple`)."""
    maps = MapTriple(map_size(h), with_reference=usable_reference(h, ref) is not None, log_z=log_z)
    maps.update(h, ref, title, reference_label)
    return maps.figures


class CellMap:
    """A calorimeter cell map coloured by significance against the reference (occupancy per
    event without one), the cells a flag names outlined; tap selects a cell.

    Built once per shape (and with or without a reference: another colour scale) and
    refilled, like :class:`MapTriple`.
    """

    def __init__(self, shape: tuple[int, int], *, with_reference: bool) -> None:
        self.with_reference = with_reference
        nx, ny = shape
        ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        self._cells = (ix.ravel(), iy.ravel())
        nan = np.full(nx * ny, np.nan)
        self.source = ColumnDataSource(
            {
                "x": self._cells[0],
                "y": self._cells[1],
                "count": nan,
                "expected": nan,
                "occupancy": nan,
                "significance": nan,
                "shown": nan,
                "line": [None] * (nx * ny),
            }
        )
        side = 64
        self.fig = figure(frame_width=side * nx, frame_height=side * ny, tools=_TOOLS)
        if with_reference:
            mapper: Any = LinearColorMapper(
                palette=list(DIVERGING),
                low=-SIGNIFICANCE_RANGE,
                high=SIGNIFICANCE_RANGE,
                nan_color="#555555",
            )
            field, bar_title = "shown", "significance vs reference (σ)"
        else:
            mapper = LinearColorMapper(palette="Viridis256", low=0.0, nan_color="#555555")
            field, bar_title = "occupancy", "hits per event (no reference)"
        self.fig.rect(
            x="x",
            y="y",
            width=0.95,
            height=0.95,
            source=self.source,
            fill_color={"field": field, "transform": mapper},
            line_color="line",
            line_width=4,
        )
        self.fig.add_layout(ColorBar(color_mapper=mapper, title=bar_title, width=12), "right")
        self.fig.add_tools(
            HoverTool(
                tooltips=[
                    ("cell", "(@x, @y)"),
                    ("hits", "@count"),
                    ("expected", "@expected{0.0}"),
                    ("significance", "@significance{+0.0} σ"),
                    ("per event", "@occupancy{0.0000}"),
                ]
            ),
            TapTool(),
        )
        self.fig.xgrid.visible = self.fig.ygrid.visible = False
        _style(self.fig, "light")

    @staticmethod
    def has_reference(h: bh.Histogram, ref: bh.Histogram | None) -> bool:
        return usable_reference(h, ref) is not None and float(h.values().sum()) > 0

    def update(
        self,
        h: bh.Histogram,
        ref: bh.Histogram | None,
        title: str,
        *,
        x_label: str,
        y_label: str,
        n_events: float | None,
        highlight: list[tuple[int, int]] = (),  # type: ignore[assignment]
    ) -> ColumnDataSource:
        z = np.asarray(h.values(), dtype=float)
        occ = z / n_events if n_events else z / max(float(z.max()), 1.0)
        r = usable_reference(h, ref) if self.with_reference else None
        if r is not None and float(z.sum()) > 0:
            expected = r / r.sum() * z.sum()
            sig = significance_vs_reference(z, r)
        else:
            expected = np.full_like(z, np.nan)
            sig = np.full_like(z, np.nan)
        marked = {tuple(int(v) for v in c) for c in highlight}
        ix, iy = self._cells
        self.source.selected.indices = []
        self.source.data = {
            "x": ix,
            "y": iy,
            "count": z.ravel(),
            "expected": expected.ravel(),
            "occupancy": occ.ravel(),
            "significance": sig.ravel(),
            "shown": np.clip(sig, -SIGNIFICANCE_RANGE, SIGNIFICANCE_RANGE).ravel(),
            "line": [
                HIGHLIGHT if (int(a), int(b)) in marked else None
                for a, b in zip(ix, iy, strict=True)
            ],
        }
        self.fig.title.text = title
        self.fig.xaxis.axis_label, self.fig.yaxis.axis_label = x_label, y_label
        return self.source


def cell_map(
    h: bh.Histogram,
    ref: bh.Histogram | None,
    title: str,
    *,
    x_label: str,
    y_label: str,
    n_events: float | None,
    highlight: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> tuple[Any, ColumnDataSource]:
    """A new :class:`CellMap` of ``h``: (figure, its source)."""
    cells = CellMap(h.values().shape, with_reference=CellMap.has_reference(h, ref))
    src = cells.update(
        h, ref, title, x_label=x_label, y_label=y_label, n_events=n_events, highlight=highlight
    )
    return cells.fig, src
