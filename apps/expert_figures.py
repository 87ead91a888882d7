"""Expert figures built once per session and refilled: 1D overlay/ratio/significance, check series.

Why refilled rather than rebuilt: building a bokeh figure costs 30–180 ms of the server's
CPU (its models, tools and theme), and the 1D view is three figures plus the check's
series. Swapping the numbers of existing ``ColumnDataSource``s costs a millisecond and
ships only the numbers to the browser, so changing the histogram or the spill redraws
in well under the page's 0.5 s budget. Highlights (the bins a flag names), markers
(observed vs expected) and threshold bands are glyphs with sources too, for the same
reason. A log axis is another figure (bokeh cannot switch an axis type in place).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure

from apps.plots import _style
from apps.theme import QUALITY_COLOURS, SERIES
from dqm.checks.significance import QUIET_SIGMA, significance_vs_reference

__all__ = ["H1Figures", "SeriesFigure", "HIGHLIGHT", "columns", "threshold_bands"]

_LIGHT_OBS, _LIGHT_REF = SERIES["light"]
#: colour of the bins/cells a flag names (what drove it)
HIGHLIGHT = "#ff7f0e"
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A frame as a bokeh source's columns (times as naive UTC: bokeh's datetime axis)."""
    out: dict[str, Any] = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        out[str(name)] = col.to_numpy()
    return out


class H1Figures:
    """Overlay (this selection vs what it is compared with), ratio and significance panels."""

    def __init__(self, *, log: bool = False) -> None:
        self.log = log
        self.top = figure(
            height=320,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            y_axis_type="log" if log else "linear",
        )
        empty = {"left": [], "right": [], "top": [], "bottom": [], "count": []}
        self.obs = ColumnDataSource(dict(empty))
        self.ref = ColumnDataSource({"x": [], "y": []})
        self.strips = ColumnDataSource({"x0": [], "x1": []})
        self.observed_at = ColumnDataSource({"x": []})
        self.expected_at = ColumnDataSource({"x": []})
        for f in (self.top,):
            f.vstrip(x0="x0", x1="x1", source=self.strips, fill_color=HIGHLIGHT, fill_alpha=0.25)
        self.top.quad(
            left="left",
            right="right",
            top="top",
            bottom="bottom",
            source=self.obs,
            fill_color=_LIGHT_OBS,
            fill_alpha=0.4,
            line_color=_LIGHT_OBS,
            legend_label="selected spills",
        )
        self.top.step(
            x="x",
            y="y",
            mode="after",
            source=self.ref,
            line_color=_LIGHT_REF,
            line_width=2.5,
            legend_label="compared with",
        )
        self.top.vspan(x="x", source=self.observed_at, line_color=HIGHLIGHT, line_width=3)
        self.top.vspan(
            x="x", source=self.expected_at, line_color=HIGHLIGHT, line_width=3, line_dash="dashed"
        )
        self.top.add_tools(
            HoverTool(
                tooltips=[
                    ("bin", "@left{0.00} – @right{0.00}"),
                    ("fraction", "@top{0.0000}"),
                    ("entries", "@count"),
                ]
            )
        )
        self.top.yaxis.axis_label = "fraction per bin" + (" (log)" if log else "")
        self.ratio = figure(
            height=170, sizing_mode="stretch_width", x_range=self.top.x_range, tools="pan,reset"
        )
        self.ratio_points = ColumnDataSource({"x": [], "y": [], "lo": [], "hi": []})
        self.ratio.vstrip(
            x0="x0", x1="x1", source=self.strips, fill_color=HIGHLIGHT, fill_alpha=0.25
        )
        self.ratio.scatter(x="x", y="y", source=self.ratio_points, size=4, color="black")
        self.ratio.segment(
            x0="x", y0="lo", x1="x", y1="hi", source=self.ratio_points, color="black"
        )
        self.ratio.add_layout(
            Span(location=1.0, dimension="width", line_color=_LIGHT_REF, line_dash="dashed")
        )
        self.ratio.yaxis.axis_label = "ratio"
        self.pull = figure(
            height=170, sizing_mode="stretch_width", x_range=self.top.x_range, tools="pan,reset"
        )
        self.pulls = ColumnDataSource({"x": [], "top": [], "color": [], "width": []})
        self.pull.vstrip(
            x0="x0", x1="x1", source=self.strips, fill_color=HIGHLIGHT, fill_alpha=0.25
        )
        self.pull.vbar(x="x", top="top", width="width", color="color", source=self.pulls)
        for level in (-QUIET_SIGMA, QUIET_SIGMA):
            self.pull.add_layout(
                Span(location=level, dimension="width", line_color="#c4161c", line_dash="dotted")
            )
        self.pull.yaxis.axis_label = "significance (σ)"
        for f in self.figures:
            _style(f, "light")
        self.top.legend.location = "top_right"
        self.top.legend.click_policy = "hide"

    @property
    def figures(self) -> list:
        return [self.top, self.ratio, self.pull]

    def update(
        self,
        c: dict[str, Any],
        title: str,
        *,
        highlight: list[tuple[float, float]] = (),  # type: ignore[assignment]
        observed: float | None = None,
        expected: float | None = None,
    ) -> None:
        """Draw :func:`dqm.checks.compare.compare`'s ``c``; shade ``highlight`` x ranges and
        mark the ``observed``/``expected`` values a flag compares (solid/dashed)."""
        edges = np.asarray(c["edges"], dtype=float)
        norm = np.asarray(c["observed_norm"], dtype=float)
        positive = norm[norm > 0]
        floor = float(positive.min()) / 3 if self.log and positive.size else 0.0
        self.top.title.text = title
        self.top.xaxis.axis_label = self.pull.xaxis.axis_label = c.get("label", "")
        self.obs.data = {
            "left": edges[:-1],
            "right": edges[1:],
            "top": np.where(norm > 0, norm, np.nan) if self.log else norm,
            "bottom": np.full(len(norm), floor),
            "count": c["observed"],
        }
        self.strips.data = {"x0": [a for a, _ in highlight], "x1": [b for _, b in highlight]}
        self.observed_at.data = {"x": [] if observed is None else [observed]}
        self.expected_at.data = {"x": [] if expected is None else [expected]}
        has_ref = "reference_norm" in c
        self.ratio.visible = self.pull.visible = has_ref
        if not has_ref:
            self.ref.data = {"x": [], "y": []}
            self.ratio_points.data = {"x": [], "y": [], "lo": [], "hi": []}
            self.pulls.data = {"x": [], "top": [], "color": [], "width": []}
            return
        r = np.asarray(c["reference_norm"], dtype=float)
        shown = np.where(r > 0, r, np.nan) if self.log else r
        self.ref.data = {"x": edges, "y": np.append(shown, shown[-1])}
        self._panels(c, edges)

    def _panels(self, c: dict[str, Any], edges: np.ndarray) -> None:
        centres, observed = c["centres"], c["observed"]
        expected = c["reference_norm"] * c["entries"]
        # a bin speaks when it holds a count or expects one; empty tails stay off both panels
        speaks = (observed >= 1) | (expected >= 1)
        ok = np.isfinite(c["ratio"]) & speaks
        self.ratio_points.data = {
            "x": centres[ok],
            "y": c["ratio"][ok],
            "lo": (c["ratio"] - c["ratio_err"])[ok],
            "hi": (c["ratio"] + c["ratio_err"])[ok],
        }
        finite = c["ratio"][ok]
        top = float(min(3.0, max(2.0, np.nanpercentile(finite, 98) * 1.1))) if finite.size else 2
        self.ratio.y_range.start, self.ratio.y_range.end = 0.0, top
        reference = c["reference_norm"] * c["reference_entries"]
        z = np.where(speaks, significance_vs_reference(observed, reference), 0.0)
        self.pulls.data = {
            "x": centres,
            "top": z,
            "color": ["#c4161c" if abs(v) >= QUIET_SIGMA else "#8c8c8c" for v in z],
            "width": np.diff(edges) * 0.9,
        }


def threshold_bands(frame: pd.DataFrame, signed: bool) -> dict[str, list]:
    """WARNING and BAD regions (y0, y1, colour) of a check's number from its thresholds.

    The direction is read from the thresholds: ``bad < warning`` means low is bad
    (p-values, fractions of nominal); otherwise high is bad, mirrored below zero for a
    signed number (an offset that may go either way). Open ends are ±1e300.
    """
    warn, bad = frame["warning"].dropna(), frame["bad"].dropna()
    w = float(warn.iloc[-1]) if not warn.empty else None
    b = float(bad.iloc[-1]) if not bad.empty else None
    colour_w, colour_b = QUALITY_COLOURS["WARNING"][0], QUALITY_COLOURS["BAD"][0]
    big = 1e300
    regions: list[tuple[float, float, str]] = []
    if w is not None and b is not None and b < w:  # low is bad
        regions = [(-big, b, colour_b), (b, w, colour_w)]
    else:
        if w is not None:
            regions.append((w, b if b is not None else big, colour_w))
        if b is not None:
            regions.append((b, big, colour_b))
        if signed:
            regions += [(-hi, -lo, colour) for lo, hi, colour in regions]
    return {
        "y0": [r[0] for r in regions],
        "y1": [r[1] for r in regions],
        "color": [r[2] for r in regions],
    }


class SeriesFigure:
    """A check's own number per spill: points in its quality colour, thresholds as bands."""

    def __init__(self, *, log: bool = False, by_time: bool = False) -> None:
        self.log, self.x = log, "time" if by_time else "spill"
        self.fig = figure(
            height=260,
            sizing_mode="stretch_width",
            tools=_TOOLS,
            y_axis_type="log" if log else "linear",
            x_axis_type="datetime" if by_time else "linear",
        )
        self.bands = ColumnDataSource({"y0": [], "y1": [], "color": []})
        self.points = ColumnDataSource(
            {self.x: [], "spill": [], "shown": [], "value": [], "quality": [], "color": []}
        )
        self.current = ColumnDataSource({"x": []})
        self.fig.hstrip(y0="y0", y1="y1", fill_color="color", fill_alpha=0.15, source=self.bands)
        line = self.fig.line(x=self.x, y="shown", source=self.points, line_color="#999999")
        dots = self.fig.scatter(x=self.x, y="shown", source=self.points, color="color", size=7)
        self.fig.y_range.renderers = [line, dots]  # the bands' open ends must not set the range
        self.fig.vspan(x="x", source=self.current, line_color=HIGHLIGHT, line_width=2)
        self.fig.add_tools(
            HoverTool(
                tooltips=[
                    ("spill", "@spill"),
                    ("value", "@value{0.0000g}"),
                    ("quality", "@quality"),
                ]
            )
        )
        self.fig.xaxis.axis_label = "time (UTC)" if by_time else "spill"
        self.fig.yaxis.axis_label = "value judged" + (" (log)" if log else "")
        _style(self.fig, "light")

    @staticmethod
    def wants_log(frame: pd.DataFrame) -> bool:
        """p-values (bad < warning ≤ 0.05, values in [0, 1]) are read on a log axis."""
        values = frame["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        bad, warn = frame["bad"].dropna(), frame["warning"].dropna()
        return bool(
            not bad.empty
            and not warn.empty
            and float(bad.iloc[-1]) < float(warn.iloc[-1]) <= 0.05
            and finite.size
            and float(finite.min()) >= 0
            and float(finite.max()) <= 1
        )

    def update(
        self,
        frame: pd.DataFrame,
        title: str,
        *,
        current: float | None = None,
        x: np.ndarray | None = None,
    ) -> None:
        """Draw ``frame`` (spill, time, value, quality, warning, bad); ``x`` overrides the
        spill positions (trends lay several runs side by side)."""
        values = frame["value"].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        cols = columns(frame)
        self.fig.title.text = title
        self.points.data = {
            self.x: cols[self.x] if x is None or self.x == "time" else x,
            "spill": cols["spill"],
            "shown": np.clip(values, 1e-300, None) if self.log else values,
            "value": values,
            "quality": cols["quality"],
            "color": [
                QUALITY_COLOURS.get(q, QUALITY_COLOURS["NO_DATA"])[0] for q in frame["quality"]
            ],
        }
        bands = threshold_bands(frame, signed=bool(finite.size and finite.min() < 0))
        if self.log:  # a log axis has no zero: open lower ends start at the smallest double
            bands["y0"] = [max(y, 1e-300) for y in bands["y0"]]
        self.bands.data = bands
        self.current.data = {"x": [] if current is None or self.x == "time" else [current]}
