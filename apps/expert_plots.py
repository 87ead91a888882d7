"""Expert figures: overlay + ratio + pull panels, trends with flagged spills, a channel's history.

Pure conversions from numbers (``dqm.checks.compare`` output, trend frames) to bokeh
figures, on a light background for reading at a desk. No queries here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

from apps.plots import _style
from apps.theme import QUALITY_COLOURS, SERIES

__all__ = ["overlay_ratio_pull", "trend_figure", "history_figure"]

_LIGHT_OBS, _LIGHT_REF = SERIES["light"]


def overlay_ratio_pull(c: dict[str, Any], title: str) -> list:
    """Three stacked figures sharing x: normalised overlay, ratio to reference, pulls."""
    edges = c["edges"]
    left, right = edges[:-1], edges[1:]
    top = figure(
        title=title,
        height=300,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    obs = ColumnDataSource(
        {"left": left, "right": right, "top": c["observed_norm"], "count": c["observed"]}
    )
    top.quad(
        left="left",
        right="right",
        top="top",
        bottom=0,
        source=obs,
        fill_color=_LIGHT_OBS,
        fill_alpha=0.4,
        line_color=_LIGHT_OBS,
        legend_label=f"selected spills ({c['entries']:.0f} entries)",
    )
    top.add_tools(
        HoverTool(
            tooltips=[
                ("bin", "@left{0.00} – @right{0.00}"),
                ("fraction", "@top{0.0000}"),
                ("entries", "@count"),
            ]
        )
    )
    top.yaxis.axis_label = "fraction per bin"
    figs = [top]
    if "reference_norm" in c:
        r = c["reference_norm"]
        top.step(
            x=edges,
            y=np.append(r, r[-1]),
            mode="after",
            line_color=_LIGHT_REF,
            line_width=2.5,
            legend_label=f"reference ({c['reference_entries']:.0f} entries)",
        )
        centres = c["centres"]
        ratio = figure(
            height=160, sizing_mode="stretch_width", x_range=top.x_range, tools="pan,box_zoom,reset"
        )
        ok = np.isfinite(c["ratio"])
        ratio.scatter(centres[ok], c["ratio"][ok], size=4, color="black")
        ratio.segment(
            centres[ok],
            (c["ratio"] - c["ratio_err"])[ok],
            centres[ok],
            (c["ratio"] + c["ratio_err"])[ok],
            color="black",
        )
        ratio.add_layout(
            Span(location=1.0, dimension="width", line_color=_LIGHT_REF, line_dash="dashed")
        )
        ratio.yaxis.axis_label = "ratio"
        finite = c["ratio"][ok]
        if finite.size:
            ratio.y_range.start, ratio.y_range.end = (
                0.0,
                float(min(3.0, max(2.0, np.nanpercentile(finite, 98) * 1.1))),
            )
        pull = figure(
            height=160, sizing_mode="stretch_width", x_range=top.x_range, tools="pan,box_zoom,reset"
        )
        pulls = np.nan_to_num(c["pulls"], nan=0.0)
        colours = ["#c4161c" if abs(p) > 3 else "#777777" for p in pulls]
        pull.vbar(x=centres, top=pulls, width=float(np.diff(edges).min()) * 0.9, color=colours)
        for level in (-3, 3):
            pull.add_layout(
                Span(location=level, dimension="width", line_color="#c4161c", line_dash="dotted")
            )
        pull.yaxis.axis_label = "pull (σ)"
        pull.xaxis.axis_label = c.get("label", "")
        figs += [ratio, pull]
    else:
        top.xaxis.axis_label = c.get("label", "")
    for f in figs:
        _style(f, "light")
    if top.legend:
        top.legend.location = "top_right"
    return figs


def trend_figure(frame: pd.DataFrame, key: str, doc: str = "") -> figure:
    """A summary quantity per spill; WARNING/BAD spills drawn large in their colour."""
    every = int(frame.attrs.get("every", 1))
    shown = f" (1 spill in {every} shown)" if every > 1 else ""
    fig = figure(
        title=f"{key} per spill{shown}" + (f" — {doc}" if doc else ""),
        height=360,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    frame = frame.assign(
        color=[QUALITY_COLOURS.get(q, QUALITY_COLOURS["NO_DATA"])[0] for q in frame["quality"]],
        size=[11 if q in ("WARNING", "CHECK_ERROR", "BAD") else 5 for q in frame["quality"]],
    )
    src = ColumnDataSource(frame)
    fig.line(x="index", y="value", source=src, line_color="#888888")
    fig.scatter(
        x="index", y="value", source=src, color="color", size="size", legend_field="quality"
    )
    fig.add_tools(
        HoverTool(
            tooltips=[("run/spill", "@label"), (key, "@value{0.0000}"), ("quality", "@quality")]
        )
    )
    for i in np.flatnonzero(np.diff(frame["run"].to_numpy()) != 0) if len(frame) > 1 else []:
        fig.add_layout(
            Span(
                location=float(i) + 0.5,
                dimension="height",
                line_color="#333333",
                line_dash="dashed",
            )
        )
    fig.xaxis.axis_label = "spill (in order; dashed lines separate runs)"
    fig.yaxis.axis_label = key
    _style(fig, "light")
    if fig.legend:
        fig.legend.location = "top_left"
    return fig


def history_figure(
    history: dict[str, list], title: str, reference_level: float | None = None
) -> figure:
    fig = figure(
        title=title,
        height=260,
        sizing_mode="stretch_width",
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    fig.line(history["spill"], history["per_event"], line_color=_LIGHT_OBS, line_width=2)
    fig.scatter(history["spill"], history["per_event"], color=_LIGHT_OBS, size=6)
    if reference_level is not None:
        fig.add_layout(
            Span(
                location=reference_level,
                dimension="width",
                line_color=_LIGHT_REF,
                line_dash="dashed",
                line_width=2,
            )
        )
    fig.xaxis.axis_label = "spill"
    fig.yaxis.axis_label = "hits per event" + (
        " (dashed: reference)" if reference_level is not None else ""
    )
    _style(fig, "light")
    return fig
