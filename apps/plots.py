"""Histograms → bokeh: data conversion (pure, numpy) and figures whose data is swapped in place.

Why bokeh models rather than re-rendered HoloViews objects: the control room updates
every open screen on every spill. Re-rendering a plot costs tens of milliseconds per
plot per session on the server's single event loop; assigning a new ``data`` dict to an
existing ``ColumnDataSource`` costs a fraction of a millisecond and ships only the
numbers. So :func:`plot_data` is computed **once per spill** by the data refresher, and
each session's :class:`PlotHandle` just swaps it in.

Every shape is normalised to unit area (fraction per bin) so a spill can be laid over a
whole reference run; the numbers come from :func:`dqm.checks.compare.compare`, the same
function the report uses.
"""

from __future__ import annotations

import re
from typing import Any

import boost_histogram as bh
import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper, TapTool
from bokeh.plotting import figure

from apps.theme import SERIES
from dqm.checks.compare import compare

__all__ = ["PlotHandle", "plot_data", "make_plot", "channel_names", "MAX_LINE_CHANNELS"]

#: up to this many channels a ``channels`` histogram is drawn as one line per channel
MAX_LINE_CHANNELS = 8
_CHANNEL_COLOURS = (
    "#4fc3f7",
    "#aed581",
    "#f06292",
    "#ffd54f",
    "#ba68c8",
    "#4db6ac",
    "#ff8a65",
    "#e0e0e0",
)
_DIVERGING = tuple(  # blue (deficit, dead) - white (as expected) - red (excess, hot)
    "#{:02x}{:02x}{:02x}".format(*tuple(int(a + (b - a) * t) for a, b in zip(lo, hi, strict=False)))
    for lo, hi, n in (((33, 102, 172), (247, 247, 247), 64), ((247, 247, 247), (178, 24, 43), 64))
    for t in np.linspace(0, 1, n)
)


def channel_names(label: str, n: int) -> list[str]:
    """Tick names from an axis label like ``"source (BMS MS1 MS2 …)"`` when it lists n names."""
    m = re.search(r"\(([^)]*)\)", label or "")
    names = m.group(1).split() if m else []
    return names if len(names) == n else [str(i) for i in range(n)]


def _norm(a: np.ndarray) -> np.ndarray:
    total = float(a.sum())
    return a / total if total > 0 else a * 0.0


def drawn_bins(*counts: np.ndarray | None) -> slice:
    """The bins worth drawing: the filled ones of any of ``counts`` with a margin around.

    The momentum axes span 0–320 GeV so that one binning serves every beam; a 160 GeV
    peak drawn over all of it would be a spike. The range is rounded to 1/32 of the axis
    so it does not jitter from spill to spill.
    """
    arrays = [np.asarray(c) for c in counts if c is not None and len(c)]
    if not arrays:
        return slice(None)
    filled = np.flatnonzero(np.any([a > 0 for a in arrays], axis=0))
    n = len(arrays[0])
    if filled.size == 0:
        return slice(None)
    step = max(n // 32, 1)
    pad = max((filled[-1] - filled[0]) // 5, step)
    lo = max((filled[0] - pad) // step * step, 0)
    hi = min(-(-(filled[-1] + 1 + pad) // step) * step, n)
    return slice(int(lo), int(hi))


def trimmed(c: dict[str, Any]) -> dict[str, Any]:
    """A :func:`dqm.checks.compare` result cut to its :func:`drawn_bins` (edges included)."""
    n = len(c["observed"])
    keep = drawn_bins(c["observed"], c.get("reference_norm"))
    if keep == slice(None) or (keep.start, keep.stop) == (0, n):
        return c
    out = {k: v[keep] if isinstance(v, np.ndarray) and len(v) == n else v for k, v in c.items()}
    out["edges"] = c["edges"][keep.start : keep.stop + 1]
    return out


def _h1(h: bh.Histogram, ref: bh.Histogram | None) -> dict[str, Any]:
    c = trimmed(compare(h, ref))
    edges = c["edges"]
    data: dict[str, Any] = {
        "obs": {
            "left": edges[:-1],
            "right": edges[1:],
            "top": c["observed_norm"],
            "count": c["observed"],
        }
    }
    if "reference_norm" in c:
        r = c["reference_norm"]
        data["ref"] = {"x": edges, "y": np.append(r, r[-1])}
    else:
        data["ref"] = {"x": [], "y": []}
    data["_meta"] = {"has_ref": "reference_norm" in c, "entries": c["entries"]}
    return data


def _image(h: bh.Histogram, per_row: bool = False) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    if per_row:  # channels: each channel's spectrum normalised on its own
        sums = z.sum(axis=1, keepdims=True)
        z = np.divide(z, sums, out=np.zeros_like(z), where=sums > 0)
    z = np.where(z > 0, z, np.nan)
    ex, ey = h.axes[0].edges, h.axes[1].edges
    img = {
        "image": [z.T],
        "x": [ex[0]],
        "y": [ey[0]],
        "dw": [ex[-1] - ex[0]],
        "dh": [ey[-1] - ey[0]],
    }
    return {"img": img, "_meta": {"has_ref": False, "entries": float(np.nansum(h.values()))}}


def _channel_lines(h: bh.Histogram, ref: bh.Histogram | None, names: list[str]) -> dict[str, Any]:
    x = np.asarray(h.axes[1].centers)
    obs = np.asarray(h.values(), dtype=float)
    colours = [_CHANNEL_COLOURS[i % len(_CHANNEL_COLOURS)] for i in range(obs.shape[0])]
    data = {
        "obs": {
            "xs": [x] * len(obs),
            "ys": [_norm(row) for row in obs],
            "color": colours,
            "label": names,
        }
    }
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and ref.values().shape == obs.shape
        else None
    )
    data["ref"] = (
        {"xs": [x] * len(r), "ys": [_norm(row) for row in r], "color": colours, "label": names}
        if r is not None and r.sum() > 0
        else {"xs": [], "ys": [], "color": [], "label": []}
    )
    data["_meta"] = {"has_ref": bool(r is not None and r.sum() > 0), "entries": float(obs.sum())}
    return data


def _cells(h: bh.Histogram, ref: bh.Histogram | None, n_events: float | None) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    ix, iy = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
    occ = z / n_events if n_events else z / max(float(z.max()), 1.0)
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and ref.values().shape == z.shape
        else None
    )
    has_ref = r is not None and r.sum() > 0 and z.sum() > 0
    if has_ref:
        rn = _norm(r)
        ratio = np.divide(_norm(z), rn, out=np.full_like(z, np.nan), where=rn > 0)
    else:
        ratio = np.full_like(z, np.nan)
    cells = {
        "x": ix.ravel(),
        "y": iy.ravel(),
        "count": z.ravel(),
        "occupancy": occ.ravel(),
        "ratio": ratio.ravel(),
        "shown": np.clip(ratio, 0, 2).ravel(),
    }
    return {"cells": cells, "_meta": {"has_ref": bool(has_ref), "entries": float(z.sum())}}


def _bars(
    h: bh.Histogram, ref: bh.Histogram | None, n_events: float | None, names: list[str]
) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    frac = z / n_events if n_events else z / max(float(z.max()), 1.0)
    x = np.arange(len(z))
    data = {"bars": {"x": x, "fraction": frac, "count": z, "name": names}}
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and len(ref.values()) == len(z)
        else None
    )
    has_ref = r is not None and r.max() > 0
    data["ref"] = {"x": x, "fraction": r / r.max()} if has_ref else {"x": [], "fraction": []}
    data["_meta"] = {"has_ref": bool(has_ref), "entries": float(z.sum())}
    return data


def plot_data(
    spec, h: bh.Histogram | None, ref: bh.Histogram | None = None, *, n_events: float | None = None
) -> dict[str, Any]:
    """Column data for :func:`make_plot` of ``spec`` (empty histogram when ``h`` is None)."""
    if h is None:
        from dqm.core.fill import book_histogram

        h, ref = book_histogram(spec), None
    if ref is not None and (
        ref.ndim != h.ndim or any(len(a) != len(b) for a, b in zip(ref.axes, h.axes, strict=False))
    ):
        ref = None  # binning changed since the reference was taken: draw without it
    if spec.kind == "h1":
        return _h1(h, ref)
    if spec.kind == "h2":
        return _image(h)
    if spec.kind == "channels":
        n = len(h.axes[0])
        if n <= MAX_LINE_CHANNELS:
            return _channel_lines(h, ref, [f"{spec.channel_label} {i}" for i in range(n)])
        return _image(h, per_row=True)
    if h.ndim == 1:
        return _bars(h, ref, n_events, channel_names(spec.x_label, len(h.axes[0])))
    return _cells(h, ref, n_events)


class PlotHandle:
    """A bokeh figure plus the sources it draws; :meth:`update` swaps new data in place."""

    def __init__(
        self, fig, sources: dict[str, ColumnDataSource], toggles: dict[str, list] | None = None
    ) -> None:
        self.figure = fig
        self.sources = sources
        self.toggles = toggles or {}

    def update(self, data: dict[str, Any]) -> None:
        for key, columns in data.items():
            if key in self.sources:
                self.sources[key].data = dict(columns)
        has_ref = bool(data.get("_meta", {}).get("has_ref"))
        for r in self.toggles.get("ref", []):
            r.visible = has_ref
        for r in self.toggles.get("noref", []):
            r.visible = not has_ref


def _style(fig, theme: str) -> None:
    dark = theme == "dark"
    fg, bg = ("#f0f0f0", "#111111") if dark else ("#222222", "#ffffff")
    fig.background_fill_color = bg
    fig.border_fill_color = "#0d0d0d" if dark else "#ffffff"
    fig.outline_line_color = "#555555"
    fig.title.text_color = fg
    fig.title.text_font_size = "18px" if dark else "14px"
    for ax in (*fig.xaxis, *fig.yaxis):
        ax.axis_label_text_color = fg
        ax.major_label_text_color = fg
        ax.axis_line_color = fg
        ax.major_tick_line_color = fg
        ax.axis_label_text_font_size = "15px" if dark else "12px"
        ax.major_label_text_font_size = "14px" if dark else "11px"
    for grid in (*fig.xgrid, *fig.ygrid):
        grid.grid_line_color = "#333333" if dark else "#e5e5e5"
    if fig.legend:
        fig.legend.background_fill_alpha = 0.3
        fig.legend.label_text_color = fg
        fig.legend.label_text_font_size = "12px"


def make_plot(
    spec,
    data: dict[str, Any],
    *,
    theme: str = "dark",
    height: int = 300,
    title: str | None = None,
    tap: bool = False,
) -> PlotHandle:
    """A figure for ``spec`` drawing ``data`` (from :func:`plot_data`); ``tap`` enables cell
    selection."""
    obs_colour, ref_colour = SERIES[theme]
    fig = figure(
        title=title or spec.title,
        height=height,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right" if theme != "dark" else None,
    )
    sources = {k: ColumnDataSource(dict(v)) for k, v in data.items() if not k.startswith("_")}
    toggles: dict[str, list] = {}
    xlabel = spec.x.label if spec.x is not None else spec.x_label
    if spec.kind == "h1":
        fig.quad(
            left="left",
            right="right",
            top="top",
            bottom=0,
            source=sources["obs"],
            fill_color=obs_colour,
            fill_alpha=0.45,
            line_color=obs_colour,
            legend_label="this spill",
        )
        fig.step(
            x="x",
            y="y",
            mode="after",
            source=sources["ref"],
            line_color=ref_colour,
            line_width=2.5,
            legend_label="reference",
        )
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("bin", "@left{0.00} – @right{0.00}"),
                    ("fraction", "@top{0.0000}"),
                    ("entries", "@count"),
                ]
            )
        )
        fig.xaxis.axis_label, fig.yaxis.axis_label = xlabel, "fraction per bin"
    elif "img" in sources:
        mapper = LinearColorMapper(palette="Viridis256", nan_color="rgba(0,0,0,0)")
        fig.image(
            image="image",
            x="x",
            y="y",
            dw="dw",
            dh="dh",
            source=sources["img"],
            color_mapper=mapper,
        )
        fig.xaxis.axis_label = xlabel if spec.kind == "h2" else spec.channel_label
        fig.yaxis.axis_label = spec.y.label
    elif spec.kind == "channels":
        fig.multi_line(
            xs="xs",
            ys="ys",
            line_color="color",
            source=sources["obs"],
            line_width=2.5,
            legend_field="label",
        )
        refs = fig.multi_line(
            xs="xs",
            ys="ys",
            line_color="color",
            source=sources["ref"],
            line_width=1.5,
            line_dash="dashed",
        )
        toggles["ref"] = [refs]
        fig.xaxis.axis_label, fig.yaxis.axis_label = (
            spec.y.label,
            "fraction per bin (dashed: reference)",
        )
    elif "bars" in sources:
        names = list(data["bars"]["name"])
        fig.vbar(
            x="x",
            top="fraction",
            width=0.8,
            source=sources["bars"],
            fill_color=obs_colour,
            line_color=obs_colour,
        )
        fig.scatter(
            x="x",
            y="fraction",
            source=sources["ref"],
            marker="dash",
            size=30,
            line_width=4,
            color=ref_colour,
            legend_label="reference (scaled)",
        )
        fig.xaxis.ticker = list(range(len(names)))
        fig.xaxis.major_label_overrides = {i: n for i, n in enumerate(names)}
        fig.yaxis.axis_label = "fraction of events"
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("source", "@name"),
                    ("fraction", "@fraction{0.000}"),
                    ("events", "@count"),
                ]
            )
        )
    else:  # 2D cell map: coloured by ratio to reference, or by occupancy without one
        ratio = LinearColorMapper(palette=list(_DIVERGING), low=0.0, high=2.0, nan_color="#555555")
        occ = LinearColorMapper(palette="Viridis256", low=0.0, nan_color="#555555")
        by_ratio = fig.rect(
            x="x",
            y="y",
            width=0.95,
            height=0.95,
            source=sources["cells"],
            fill_color={"field": "shown", "transform": ratio},
            line_color=None,
        )
        by_occ = fig.rect(
            x="x",
            y="y",
            width=0.95,
            height=0.95,
            source=sources["cells"],
            fill_color={"field": "occupancy", "transform": occ},
            line_color=None,
        )
        toggles = {"ref": [by_ratio], "noref": [by_occ]}
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("cell", "(@x, @y)"),
                    ("hits", "@count"),
                    ("per event", "@occupancy{0.0000}"),
                    ("ratio to reference", "@ratio{0.00}"),
                ]
            )
        )
        if tap:
            fig.add_tools(TapTool())
        fig.xaxis.axis_label, fig.yaxis.axis_label = spec.x_label, spec.y_label
        fig.xgrid.visible = fig.ygrid.visible = False
        fig.match_aspect = True
    if fig.legend:
        fig.legend.location = "top_right"
        fig.legend.click_policy = "hide"
    _style(fig, theme)
    handle = PlotHandle(fig, sources, toggles)
    handle.update({"_meta": data.get("_meta", {})})
    return handle
