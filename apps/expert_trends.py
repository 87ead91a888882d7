"""Trends: a per-spill summary quantity over spill number or time, judged by its own checks.

Why not the spill's overall quality: a p_BMS point painted red because an ECAL cell died
sends the expert after the wrong detector. A point here is coloured by the checks that
judge *that* quantity (found in the specs: a check whose parameters name the summary key),
grey when no check watches it; those checks' own numbers are drawn below with their
WARNING/BAD bands. Quantities are listed in words with their units.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, Label, Span
from bokeh.plotting import figure
from panel.viewable import Viewer

from apps import queries
from apps.expert_explorer import LatestOnly, served
from apps.expert_plots import check_series_figure, columns
from apps.plots import _style
from apps.theme import QUALITY_COLOURS
from dqm.checks import CHECKS, quality_name
from dqm.core.summary import SUMMARY_DOCS
from dqm.store.evidence import check_series, spill_times, worst_check_quality

__all__ = ["Trends", "quantity_words", "quantity_checks", "trend_positions"]

_STATION = re.compile(r"^beam_(sigma_)?([xy])(_mean)?_(ms\d)_(\d+)$")


def quantity_words(key: str) -> str:
    """A summary key in words with its unit: ``beam_x_mean_ms1_0`` → "beam x position at MS1
    station 0 [mm]" (the documented ones as :data:`dqm.core.summary.SUMMARY_DOCS` says)."""
    if key in SUMMARY_DOCS:
        return SUMMARY_DOCS[key]
    m = _STATION.match(key)
    if m:
        what = "beam width" if m.group(1) else "beam position"
        return f"{what} in {m.group(2)} at {m.group(4).upper()} station {m.group(5)} [mm]"
    if key.startswith("daq_source_completeness_"):
        return f"fraction of events with DAQ source {key.rsplit('_', 1)[1]}"
    words = {
        "intensity": "events in the spill (intensity)",
        "n_hadron": "hadron-tagged (π/K) events",
        "pik_n_events": "events with ECAL and HCAL read out (π/K denominator)",
        "expected_batches": "batches announced by the DAQ",
        "received_batches": "batches received",
    }
    if key in words:
        return words[key]
    if key.endswith("_err"):
        return f"statistical error of the {quantity_words(key[:-4])}"
    if key.endswith("_n"):
        base = quantity_words(key[:-2] + "_mean")
        return f"events used for the {base.split(' [')[0]}"
    return key.replace("_", " ")


def quantity_checks(specs, key: str) -> list[tuple[str, str]]:
    """(histogram, check) of every spec check that judges summary quantity ``key``: a
    parameter of it (given in the spec, or its declared default) names the key."""
    found = []
    for spec in specs:
        for check in spec.checks:
            declared = CHECKS.get(check.type)
            defaults = {k: p.default for k, p in declared.params.items()} if declared else {}
            values = {**defaults, **dict(check.params)}.values()
            if any(isinstance(v, str) and v == key for v in values):
                found.append((spec.name, check.type))
    return found


def trend_positions(frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """x of each point by spill number, runs laid side by side (a gap of 5 spills between
    runs), and where each run starts: (x, run)."""
    x = np.zeros(len(frame))
    starts: list[tuple[float, int]] = []
    offset = 0.0
    for run in dict.fromkeys(frame["run"]):
        mask = (frame["run"] == run).to_numpy()
        spills = frame.loc[mask, "spill"].to_numpy(dtype=float)
        shift = offset - spills.min() + 1 if starts else 0.0
        x[mask] = spills + shift
        starts.append((float(spills.min() + shift), int(run)))
        offset = float(spills.max() + shift) + 5
    return x, starts


class Trends(Viewer):
    """Any per-spill summary quantity across spills and runs, coloured by its own checks."""

    def __init__(self, datastore, **params) -> None:
        super().__init__(**params)
        self._store = datastore
        keys = datastore.read(queries.summary_keys) or ["n_events"]
        documented = [k for k in SUMMARY_DOCS if k in keys]
        ordered = documented + [k for k in keys if k not in documented]
        options = {f"{quantity_words(k)} ({k})": k for k in ordered}
        run_list = datastore.read(queries.runs)
        default = "p_bms_mean" if "p_bms_mean" in keys else ordered[0]
        self.key = pn.widgets.Select(label="Quantity", options=options, value=default, width=420)
        self.runs = pn.widgets.MultiChoice(
            label="Runs", options=run_list, value=run_list[:1], width=300
        )
        self.axis = pn.widgets.RadioButtonGroup(
            label="x axis", options=["spill number", "time"], value="spill number"
        )
        self.area = pn.Column(sizing_mode="stretch_width", css_classes=["dqm-trends"])
        self._latest = LatestOnly(self.area)
        for w in (self.key, self.runs, self.axis):
            w.param.watch(self._redraw, "value")
        self._served = served()
        self._drawn = False  # drawn when its tab is first shown: the page opens faster

    def ensure_drawn(self) -> None:
        if not self._drawn:
            self._redraw()

    def _load(self, request: tuple) -> dict:
        key, runs, by_time = request
        checks = quantity_checks(self._store.specs, key)

        def load(session):
            frame = queries.trend_frame(session, key, runs)
            judged = worst_check_quality(session, runs, checks)
            times = spill_times(session, runs)
            series = []
            for histogram, check in checks[:3]:
                parts = [check_series(session, r, histogram, check).assign(run=r) for r in runs]
                series.append((histogram, check, pd.concat(parts, ignore_index=True)))
            return frame, judged, times, series

        frame, judged, times, series = self._store.read(load)
        frame = frame.assign(
            judged=[
                quality_name(judged[(r, s)]) if (r, s) in judged else "not judged"
                for r, s in zip(frame["run"], frame["spill"], strict=True)
            ],
            time=pd.to_datetime(
                [times.get((r, s)) for r, s in zip(frame["run"], frame["spill"], strict=True)],
                utc=True,
            ),
        )
        return {"key": key, "frame": frame, "series": series, "by_time": by_time, "checks": checks}

    def _figure(self, loaded: dict):
        key, frame, by_time = loaded["key"], loaded["frame"], loaded["by_time"]
        words = quantity_words(key)
        fig = figure(
            title=f"{words} per spill",
            height=360,
            sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            x_axis_type="datetime" if by_time else "linear",
        )
        positions, starts = trend_positions(frame)
        frame = frame.assign(
            x=frame["time"] if by_time else positions,
            color=[
                QUALITY_COLOURS.get(q, ("#9e9e9e",))[0] if q != "NO_DATA" else "#9e9e9e"
                for q in frame["judged"]
            ],
            size=[11 if q in ("WARNING", "CHECK_ERROR", "BAD") else 6 for q in frame["judged"]],
        )
        src = ColumnDataSource(columns(frame))
        fig.line(x="x", y="value", source=src, line_color="#999999")
        fig.scatter(x="x", y="value", source=src, color="color", size="size", legend_field="judged")
        fig.add_tools(
            HoverTool(
                tooltips=[("run/spill", "@label"), (words, "@value{0.0000g}"), ("check", "@judged")]
            )
        )
        for i, (x0, run) in enumerate(starts):
            first = frame.loc[frame["run"] == run]
            at = first["time"].min() if by_time else x0 - 2.5
            if i:
                fig.add_layout(
                    Span(location=at, dimension="height", line_color="#333333", line_dash="dashed")
                )
            fig.add_layout(
                Label(x=at, y=5, y_units="screen", text=f"run {run}", text_font_size="12px")
            )
        fig.xaxis.axis_label = (
            "time (UTC)" if by_time else "spill number (runs side by side; dashed: a new run)"
        )
        fig.yaxis.axis_label = words
        _style(fig, "light")
        if fig.legend:
            fig.legend.location = "top_left"
            fig.legend.title = "its check"
        return fig, dict(
            zip(zip(frame["run"], frame["spill"], strict=True), positions, strict=True)
        )

    def _show(self, loaded: dict) -> None:
        fig, position = self._figure(loaded)
        panes = [pn.pane.Bokeh(fig, sizing_mode="stretch_width")]
        if not loaded["checks"]:
            panes.append(pn.pane.Markdown("*No check of the specs judges this quantity.*"))
        for histogram, check, series in loaded["series"]:
            if series.empty:
                continue
            if not loaded["by_time"]:
                series = series.assign(
                    spill=[
                        position.get((r, s), np.nan)
                        for r, s in zip(series["run"], series["spill"], strict=True)
                    ]
                )
            panes.append(
                pn.pane.Bokeh(
                    check_series_figure(
                        series,
                        f"{check} on {histogram}: the number it judges (bands: WARNING, BAD)",
                        by_time=loaded["by_time"],
                    ),
                    sizing_mode="stretch_width",
                )
            )
        self.area[:] = panes

    def _request(self) -> tuple:
        return (self.key.value, tuple(self.runs.value), self.axis.value == "time")

    def _redraw(self, _event=None) -> None:
        self._drawn = True
        if self._served:
            pn.state.execute(self.draw_async)
        else:
            self.draw()

    def draw(self) -> None:
        if not self.runs.value:
            self.area[:] = [pn.pane.Markdown("Choose one or more runs.")]
            return
        self._show(self._load(self._request()))

    async def draw_async(self, _event=None) -> None:
        """The trend of the chosen runs, queried in a thread (a week of runs is thousands of
        spills)."""
        if not self.runs.value:
            self._latest.cancel()
            self.area[:] = [pn.pane.Markdown("Choose one or more runs.")]
            return
        await self._latest.run(self._request(), self._load, self._show)

    def __panel__(self):
        return pn.Column(
            pn.Row(self.key, self.runs, self.axis), self.area, sizing_mode="stretch_width"
        )
