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

__all__ = ["map_triple", "cell_map", "same_unit", "SIGNIFICANCE_RANGE"]

#: the significance colour scale spans ±5σ (beyond: the end colour)
SIGNIFICANCE_RANGE = 5.0
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def same_unit(x_label: str, y_label: str) -> bool:
    """Both axes in one unit (``"x [mm]"``, ``"y [mm]"``): an x–y map, drawn to true aspect."""
    units = [re.search(r"\[([^\]]+)\]", label or "") for label in (x_label, y_label)]
    return all(units) and units[0].group(1) == units[1].group(1)  # type: ignore[union-attr]


def _frame_size(h: bh.Histogram, true_aspect: bool, width: int = 380) -> tuple[int, int]:
    if not true_aspect:
        return width, 300
    ex, ey = h.axes[0].edges, h.axes[1].edges
    ratio = float(ey[-1] - ey[0]) / float(ex[-1] - ex[0])
    return width, int(min(max(width * ratio, 120), 3 * width))


def _image_figure(h, title, z, mapper, bar_title, size, ranges, tooltip):
    ex, ey = h.axes[0].edges, h.axes[1].edges
    fig = figure(
        title=title,
        frame_width=size[0],
        frame_height=size[1],
        tools=_TOOLS,
        x_range=ranges[0],
        y_range=ranges[1],
    )
    src = ColumnDataSource(
        {
            "image": [z.T],
            "x": [ex[0]],
            "y": [ey[0]],
            "dw": [ex[-1] - ex[0]],
            "dh": [ey[-1] - ey[0]],
        }
    )
    fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=src, color_mapper=mapper)
    fig.add_layout(ColorBar(color_mapper=mapper, title=bar_title, width=12), "right")
    fig.add_tools(HoverTool(tooltips=[("x", "$x{0.00}"), ("y", "$y{0.00}"), (tooltip, "@image")]))
    fig.xaxis.axis_label, fig.yaxis.axis_label = h.axes[0].label, h.axes[1].label
    fig.xgrid.visible = fig.ygrid.visible = False
    _style(fig, "light")
    return fig


def map_triple(
    h: bh.Histogram,
    ref: bh.Histogram | None,
    title: str,
    *,
    log_z: bool = False,
    reference_label: str = "reference",
) -> list:
    """[this, reference, significance] figures of a 2D histogram (just [this] without a
    reference): shapes as fraction per bin on one colour scale, the significance in σ."""
    z = np.asarray(h.values(), dtype=float)
    total = float(z.sum())
    frac = z / total if total > 0 else z
    r = None
    if ref is not None and ref.values().shape == z.shape and float(ref.values().sum()) > 0:
        r = np.asarray(ref.values(), dtype=float)
    shown = [frac] + ([r / r.sum()] if r is not None else [])
    positive = np.concatenate([a[a > 0] for a in shown]) if total > 0 else np.array([])
    high = float(positive.max()) if positive.size else 1.0
    if log_z and positive.size:
        mapper: Any = LogColorMapper(
            palette="Viridis256", low=float(positive.min()), high=high, nan_color="rgba(0,0,0,0)"
        )
    else:
        mapper = LinearColorMapper(palette="Viridis256", low=0.0, high=high, nan_color="#ffffff")
    true_aspect = same_unit(h.axes[0].label, h.axes[1].label)
    size = _frame_size(h, true_aspect)
    ex, ey = h.axes[0].edges, h.axes[1].edges
    ranges = (Range1d(ex[0], ex[-1]), Range1d(ey[0], ey[-1]))  # shared: pan/zoom all three
    scale = "fraction per bin" + (" (log)" if log_z else "")
    figs = [
        _image_figure(
            h,
            f"{title}: selected spills",
            np.where(frac > 0, frac, np.nan),
            mapper,
            scale,
            size,
            ranges,
            "fraction",
        )
    ]
    if r is not None:
        rn = r / r.sum()
        figs.append(
            _image_figure(
                h,
                f"{reference_label}",
                np.where(rn > 0, rn, np.nan),
                mapper,
                scale,
                size,
                ranges,
                "fraction",
            )
        )
        sig = significance_vs_reference(z, r)
        diverging = LinearColorMapper(
            palette=list(DIVERGING), low=-SIGNIFICANCE_RANGE, high=SIGNIFICANCE_RANGE
        )
        figs.append(
            _image_figure(h, "significance vs reference", sig, diverging, "σ", size, ranges, "σ")
        )
    return figs


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
    """A calorimeter cell map coloured by significance against the reference (occupancy per
    event without one), the cells a flag names outlined; tap selects a cell."""
    z = np.asarray(h.values(), dtype=float)
    ix, iy = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
    occ = z / n_events if n_events else z / max(float(z.max()), 1.0)
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and ref.values().shape == z.shape
        else None
    )
    has_ref = r is not None and float(r.sum()) > 0 and float(z.sum()) > 0
    if has_ref:
        assert r is not None
        expected = r / r.sum() * z.sum()
        sig = significance_vs_reference(z, r)
    else:
        expected = np.full_like(z, np.nan)
        sig = np.full_like(z, np.nan)
    marked = {tuple(int(v) for v in c) for c in highlight}
    src = ColumnDataSource(
        {
            "x": ix.ravel(),
            "y": iy.ravel(),
            "count": z.ravel(),
            "expected": expected.ravel(),
            "occupancy": occ.ravel(),
            "significance": sig.ravel(),
            "shown": np.clip(sig, -SIGNIFICANCE_RANGE, SIGNIFICANCE_RANGE).ravel(),
            "line": [
                HIGHLIGHT if (int(a), int(b)) in marked else None
                for a, b in zip(ix.ravel(), iy.ravel(), strict=True)
            ],
        }
    )
    side = 64
    fig = figure(
        title=title,
        frame_width=side * z.shape[0],
        frame_height=side * z.shape[1],
        tools=_TOOLS,
    )
    if has_ref:
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
    fig.rect(
        x="x",
        y="y",
        width=0.95,
        height=0.95,
        source=src,
        fill_color={"field": field, "transform": mapper},
        line_color="line",
        line_width=4,
    )
    fig.add_layout(ColorBar(color_mapper=mapper, title=bar_title, width=12), "right")
    fig.add_tools(
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
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    fig.xgrid.visible = fig.ygrid.visible = False
    _style(fig, "light")
    return fig, src
