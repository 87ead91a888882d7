"""The run at a glance: spills × subsystems coloured by quality; a click opens that spill.

Why: a shifter's question is "since when, and what else?" — a column of red across
subsystems is one spill gone wrong, a row of red is a detector, a block is an incident.
A click on a cell opens the explorer on that spill at the subsystem's worst check (its
evidence), so the map is also the fastest way from a pattern to its cause.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, HoverTool, TapTool
from bokeh.plotting import figure
from panel.viewable import Viewer

from apps import queries
from apps.expert_plots import columns
from apps.plots import _style
from apps.theme import QUALITY_COLOURS
from dqm.core.specs import SUBSYSTEMS
from dqm.store.evidence import run_map, worst_check_flag

__all__ = ["RunMap", "run_map_figure"]


def run_map_figure(frame: pd.DataFrame, run: int):
    """Spills (x) × subsystems (y) as coloured cells, with a tap tool; (figure, source)."""
    subsystems = [s for s in SUBSYSTEMS if s in set(frame["subsystem"])] + sorted(
        set(frame["subsystem"]) - set(SUBSYSTEMS)
    )
    data = frame.assign(
        color=[QUALITY_COLOURS.get(q, QUALITY_COLOURS["NO_DATA"])[0] for q in frame["quality"]],
        when=[t.strftime("%Y-%m-%d %H:%M:%S") if t is not None else "" for t in frame["time"]],
    ).drop(columns=["time"])
    src = ColumnDataSource(columns(data))
    fig = figure(
        title=f"run {run}: quality of each subsystem per spill (click a cell to open that spill)",
        y_range=list(reversed(subsystems)) or ["none"],
        height=90 + 42 * max(len(subsystems), 1),
        sizing_mode="stretch_width",
        tools="xpan,xwheel_zoom,reset,save",
    )
    fig.rect(
        x="spill", y="subsystem", width=0.92, height=0.9, source=src, color="color", line_color=None
    )
    fig.add_tools(
        HoverTool(
            tooltips=[
                ("spill", "@spill"),
                ("subsystem", "@subsystem"),
                ("quality", "@quality"),
                ("closed", "@when"),
            ]
        ),
        TapTool(),
    )
    fig.xaxis.axis_label = "spill"
    fig.xgrid.visible = fig.ygrid.visible = False
    _style(fig, "light")
    return fig, src


class RunMap(Viewer):
    """One run's spills × subsystems; ``on_open(run, spill, histogram, flag)`` on a click."""

    def __init__(self, datastore, *, on_open: Callable, **params) -> None:
        super().__init__(**params)
        self._store = datastore
        self._on_open = on_open
        run_list = datastore.read(queries.runs)
        self.run = pn.widgets.Select(label="Run", options=run_list, width=140)
        self.area = pn.Column(sizing_mode="stretch_width", css_classes=["dqm-runmap"])
        self._source: ColumnDataSource | None = None
        self.run.param.watch(lambda _e: self.draw(), "value")
        self._drawn = False

    def draw(self) -> None:
        """Query and draw the chosen run (a few hundred spills: one query, fast)."""
        self._drawn = True
        if self.run.value is None:
            self.area[:] = [pn.pane.Markdown("No closed spill in the database yet.")]
            return
        run = int(self.run.value)
        frame = self._store.read(lambda s: run_map(s, run))
        if frame.empty:
            self.area[:] = [pn.pane.Markdown(f"Run {run} has no closed spill.")]
            return
        fig, src = run_map_figure(frame, run)
        src.selected.on_change("indices", self._on_tap)
        self._source = src
        counts = frame.groupby("spill")["quality"].agg(
            lambda q: "BAD" if "BAD" in set(q) else "other"
        )
        summary = (
            f"{frame['spill'].nunique()} spills, {int((counts == 'BAD').sum())} with a BAD "
            "subsystem"
        )
        self.area[:] = [pn.pane.Markdown(summary), pn.pane.Bokeh(fig, sizing_mode="stretch_width")]

    def ensure_drawn(self) -> None:
        if not self._drawn:
            self.draw()

    def open_cell(self, index: int) -> None:
        """Open the spill of the map's cell ``index`` at its subsystem's worst check."""
        assert self._source is not None
        run = int(self.run.value)
        spill = int(self._source.data["spill"][index])
        subsystem = str(self._source.data["subsystem"][index])
        found = self._store.read(lambda s: worst_check_flag(s, run, spill, subsystem))
        flag, histogram = found if found else (None, None)
        if histogram is None:
            names = [s.name for s in self._store.specs if s.subsystem == subsystem]
            histogram = names[0] if names else None
        self._on_open(run, spill, histogram, flag)

    def _on_tap(self, _attr, _old, new) -> None:
        if new:
            self.open_cell(int(new[0]))

    def __panel__(self):
        return pn.Column(self.run, self.area, sizing_mode="stretch_width")
