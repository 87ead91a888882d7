"""Histograms → bokeh: data conversion (pure, numpy) and figures whose data is swapped in place.

Why bokeh models rather than re-rendered HoloViews objects: the control room updates
every open screen on every spill. Re-rendering a plot costs tens of milliseconds per
plot per session on the server's single event loop; assigning a new ``data`` dict to an
existing ``ColumnDataSource`` costs a fraction of a millisecond and ships only the
numbers. So :func:`plot_data` is computed **once per spill** by the data refresher, and
each session's :class:`PlotHandle` just swaps it in.

The numbers (each shape normalised to unit area, cells' significance against the
reference) come from :mod:`apps.plot_data`.
"""

from __future__ import annotations

from typing import Any

from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper, TapTool
from bokeh.plotting import figure

from apps.plot_data import (
    DIVERGING,
    MAX_LINE_CHANNELS,
    SIGNIFICANCE_RANGE,
    channel_names,
    drawn_bins,
    plot_data,
    trimmed,
)
from apps.theme import SERIES

__all__ = [
    "PlotHandle",
    "plot_data",
    "make_plot",
    "channel_names",
    "drawn_bins",
    "trimmed",
    "MAX_LINE_CHANNELS",
]


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
    else:  # 2D cell map: coloured by significance against the reference, or by occupancy
        ratio = LinearColorMapper(
            palette=list(DIVERGING),
            low=-SIGNIFICANCE_RANGE,
            high=SIGNIFICANCE_RANGE,
            nan_color="#555555",
        )
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
        bar = ColorBar(color_mapper=ratio, title="σ vs reference", width=10)
        fig.add_layout(bar, "right")
        toggles = {"ref": [by_ratio, bar], "noref": [by_occ]}
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("cell", "(@x, @y)"),
                    ("hits", "@count"),
                    ("per event", "@occupancy{0.0000}"),
                    ("ratio to reference", "@ratio{0.00}"),
                    ("significance", "@significance{+0.0} σ"),
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
