"""Expert drill-down pages: histogram vs reference, cell maps, trends, flags, audit, reports.

One :class:`Expert` per browser session, bound to the process's DataStore. Reads run
through ``datastore.read`` (a short session per user action; decoded spill histograms
are cached per process since a closed spill never changes); writes are in
:mod:`apps.expert_actions`. From a red control-room tile (``?histogram=NAME``) the page
opens on that histogram for the newest run, so the expert lands on the cause.
"""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import panel as pn
from panel.viewable import Viewer

from apps import queries
from apps.expert_actions import ActionsPanel, FlagsPanel
from apps.expert_plots import history_figure, overlay_ratio_pull, trend_figure
from apps.plots import make_plot, trimmed
from apps.theme import EXPERT_CSS
from dqm.checks.compare import compare
from dqm.core.summary import SUMMARY_DOCS
from dqm.store.references import active_reference
from dqm.store.runs import run_conditions

__all__ = ["Expert", "HistogramExplorer", "Trends"]

#: spills summed when a run is picked (the newest ones): keeps the first view of a long run quick
DEFAULT_SPILLS = 20


class _LatestOnly:
    """Loads in a worker thread and shows the result unless a newer request came meanwhile.

    Why: a session callback runs on the server's one event loop, which also feeds every
    control-room screen; decoding or querying for seconds there stalls them all. ``area``
    shows Panel's spinner while the newest request loads.
    """

    def __init__(self, area) -> None:
        self.area = area
        self._asked = None

    def cancel(self) -> None:
        """Whatever is loading is not shown (the choice was cleared)."""
        self._asked = None
        self.area.loading = False

    async def run(self, request: tuple, load, show) -> None:
        self._asked = request
        self.area.loading = True
        try:
            result = await asyncio.to_thread(load, *request)
        finally:
            if self._asked == request:
                self.area.loading = False
        if self._asked == request:  # the expert may have changed the choice again meanwhile
            show(result)


class _DrawsOffLoop:
    """Construction (and use outside a server) draws at once; a served session's later
    redraws go through ``draw_async`` (a worker thread, see :class:`_LatestOnly`)."""

    _served = False

    def _serving(self) -> None:
        self._served = pn.state.curdoc is not None and pn.state.curdoc.session_context is not None

    def _redraw(self, _event=None) -> None:
        if self._served:
            pn.state.execute(self.draw_async)
        else:
            self.draw()


class HistogramExplorer(_DrawsOffLoop, Viewer):
    """Run, spill range and histogram from the specs' tree → plot(s) against the reference."""

    def __init__(
        self,
        datastore,
        *,
        histogram: str | None = None,
        run: int | None = None,
        spill: int | None = None,
        **params,
    ) -> None:
        super().__init__(**params)
        self._store = datastore
        self._wanted = (run, spill)  # from a control-room tile link: open on that spill
        specs = datastore.specs
        groups = {sub: [s.name for s in hs] for sub, hs in specs.by_subsystem().items() if hs}
        first = histogram if histogram in specs.names else specs.names[0]
        self.run = pn.widgets.Select(label="Run", options=[], width=140)
        self.spills = pn.widgets.IntRangeSlider(
            label="Spills", start=0, end=1, value=(0, 1), step=1, width=320
        )
        self.histogram = pn.widgets.Select(label="Histogram", groups=groups, value=first, width=280)
        self.info = pn.pane.HTML(stylesheets=[EXPERT_CSS], sizing_mode="stretch_width")
        self.plot_area = pn.Column(sizing_mode="stretch_width")
        self.cell_area = pn.Column(sizing_mode="stretch_width")
        self._cell_state: dict = {}
        self.selected_cell: tuple[str, tuple[int, int]] | None = None
        self._latest = _LatestOnly(self.plot_area)
        self.run.param.watch(self._on_run, "value")
        self.spills.param.watch(self._redraw, "value_throttled")
        self.histogram.param.watch(self._redraw, "value")
        self.reload_runs()
        self._serving()

    def reload_runs(self) -> None:
        run_list = self._store.read(queries.runs)
        self.run.options = run_list
        wanted_run = self._wanted[0]
        if wanted_run in run_list and self.run.value != wanted_run:
            self.run.value = wanted_run  # triggers _on_run
        elif run_list and self.run.value not in run_list:
            self.run.value = run_list[0]
        elif not run_list:
            self.plot_area[:] = [pn.pane.Markdown("No closed spill in the database yet.")]

    def _on_run(self, _event=None) -> None:
        infos = self._store.read(lambda s: queries.spills_of_run(s, self.run.value))
        if infos:
            lo, hi = infos[0].spill, infos[-1].spill
            run, spill = self._wanted
            recent = infos[
                max(0, len(infos) - DEFAULT_SPILLS)
            ].spill  # widen by hand: every spill is decoded once
            chosen = (
                (spill, spill)
                if run == self.run.value and spill is not None and lo <= spill <= hi
                else (recent, hi)
            )
            self._wanted = (None, None)
            self.spills.param.update(start=lo, end=max(hi, lo + 1), value=chosen)
        self._redraw()

    def _selected(self, session, run: int, lo: int, hi: int):
        infos = [i for i in queries.spills_of_run(session, run) if lo <= i.spill <= hi]
        return [(i, self._store.spill_hists(session, i.id)) for i in infos]

    def _load(self, spec, run: int, lo: int, hi: int) -> dict:
        """Everything :meth:`_show` draws: the selected spills decoded and summed, the reference.

        Pure data (database reads, histogram decoding and sums), no widget: in a served
        session it runs in a worker thread (:meth:`draw_async`), because decoding a wide
        spill range takes seconds that every wall screen on this server would wait for.
        """

        def load(session):
            chosen = self._selected(session, run, lo, hi)
            cond = run_conditions(session, run)
            ref = active_reference(session, cond.beam_config if cond else None)
            ref_h = self._store.reference_hists(session, ref).get(spec.name) if ref else None
            return chosen, ref, ref_h, cond

        chosen, ref, ref_h, cond = self._store.read(load)
        h = queries.sum_spills([hs for _, hs in chosen], spec.name)
        if (
            h is not None
            and ref_h is not None
            and (
                ref_h.ndim != h.ndim
                or any(len(a) != len(b) for a, b in zip(ref_h.axes, h.axes, strict=False))
            )
        ):
            ref_h = None
        return {
            "spec": spec,
            "run": run,
            "lo": lo,
            "hi": hi,
            "chosen": chosen,
            "ref": ref,
            "ref_h": ref_h,
            "conditions": cond,
            "h": h,
            "n_events": float(sum(i.n_events for i, _ in chosen)),
        }

    def _request(self):
        """(spec, run, lo, hi) of the current selection, or None before a run is known."""
        if self.run.value is None:
            return None
        return self._store.specs[self.histogram.value], self.run.value, *self.spills.value

    def draw(self) -> None:
        """Load and show the current selection now (construction, and outside a server)."""
        request = self._request()
        if request is not None:
            self._show(self._load(*request))

    async def draw_async(self, _event=None) -> None:
        """Load the current selection in a thread, then show it unless a newer one was asked for."""
        request = self._request()
        if request is not None:
            await self._latest.run(request, self._load, self._show)

    def _show(self, loaded: dict) -> None:
        spec, chosen, ref, ref_h, h = (
            loaded["spec"],
            loaded["chosen"],
            loaded["ref"],
            loaded["ref_h"],
            loaded["h"],
        )
        n_events = loaded["n_events"]
        cond = loaded.get("conditions")
        ref_text = (
            f"reference run {ref.run} (set by {html.escape(ref.set_by)})"
            if ref
            else f"no reference for {cond.beam_config}"
            if cond
            else "no reference (no run conditions)"
        )
        cond_text = (
            html.escape(cond.describe()) if cond else "no run conditions received from the DAQ"
        )
        self.info.object = (
            f'<div class="dqm-note"><b>{html.escape(spec.title)}</b> — '
            f"{html.escape(spec.description)}<br>"
            f"run {loaded['run']}, spills {loaded['lo']}–{loaded['hi']} "
            f"({len(chosen)} spills, {n_events:,.0f} events); {ref_text}<br>"
            f"conditions: {cond_text}"
            + (f"<br>Instruction: {html.escape(spec.instruction)}" if spec.instruction else "")
            + "</div>"
        )
        self.cell_area[:] = []
        if h is None:
            self.plot_area[:] = [
                pn.pane.Markdown("No data for this histogram in the selected spills.")
            ]
            return
        if spec.kind == "h1":
            figs = overlay_ratio_pull(trimmed(compare(h, ref_h)), spec.title)
            self.plot_area[:] = [pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in figs]
            return
        from apps.plots import plot_data

        handle = make_plot(
            spec,
            plot_data(spec, h, ref_h, n_events=n_events or None),
            theme="light",
            height=460,
            tap=spec.kind == "cellmap",
        )
        if (
            spec.kind == "cellmap"
        ):  # square cells: a fixed-size map reads better than a stretched one
            handle.figure.sizing_mode, handle.figure.width = "fixed", 720
        self.plot_area[:] = [
            pn.pane.Bokeh(
                handle.figure, sizing_mode="stretch_width" if spec.kind != "cellmap" else "fixed"
            )
        ]
        if spec.kind == "cellmap" and "cells" in handle.sources:
            src = handle.sources["cells"]
            self._cell_state = {
                "spec": spec,
                "source": src,
                "chosen": chosen,
                "ref": ref_h,
                "shape": h.values().shape,
                "run": loaded["run"],
            }
            src.selected.on_change("indices", self._on_tap)
            self.cell_area[:] = [
                pn.pane.Markdown("*Click a cell to see that channel's history across the run.*")
            ]
        elif spec.kind == "channels":
            projections = [
                (
                    f"{spec.channel_label} {i}",
                    compare(h[i, :], ref_h[i, :] if ref_h is not None else None),
                )
                for i in range(len(h.axes[0]))
            ]
            self.cell_area[:] = [
                pn.pane.Bokeh(
                    overlay_ratio_pull(c, f"{spec.title}: {name}")[0], sizing_mode="stretch_width"
                )
                for name, c in projections[:8]
            ]

    def _on_tap(self, _attr, _old, new) -> None:
        if not new:
            return
        if self._served:
            pn.state.execute(partial(self.show_cell_async, int(new[0])))
        else:
            self.show_cell(int(new[0]))

    def _cell_data(self, index: int) -> dict:
        """The tapped cell's history over the whole run and its value in the sibling maps
        (pure data: decodes every spill of the run, so a served session runs it in a thread)."""
        st = self._cell_state
        spec, src = st["spec"], st["source"]
        cell = (int(src.data["x"][index]), int(src.data["y"][index]))
        ref = st["ref"]
        share = None
        if ref is not None and float(np.sum(ref.values())) > 0:
            r = np.asarray(ref.values(), dtype=float)
            share = float(r[cell] / r.sum())

        def all_spills(session):
            infos = queries.spills_of_run(session, st["run"])
            return [(i, self._store.spill_hists(session, i.id)) for i in infos]

        history = queries.cell_history(self._store.read(all_spills), spec.name, cell)
        siblings = []
        for other in self._store.specs:
            if (
                other.kind != "cellmap"
                or other.subsystem != spec.subsystem
                or other.name == spec.name
            ):
                continue
            h = queries.sum_spills([hs for _, hs in st["chosen"]], other.name)
            if h is not None and h.values().shape == st["shape"]:
                siblings.append(
                    f"{html.escape(other.title)}: {float(np.asarray(h.values())[cell]):,.0f}"
                )
        return {
            "spec": spec,
            "cell": cell,
            "share": share,
            "history": history,
            "siblings": siblings,
            "count": float(src.data["count"][index]),
            "ratio": src.data["ratio"][index],
            "run": st["run"],
        }

    def show_cell(self, index: int) -> None:
        """History of the tapped cell over the run, and its value in the sibling maps."""
        self._show_cell(self._cell_data(index))

    async def show_cell_async(self, index: int) -> None:
        self.cell_area.loading = True
        try:
            data = await asyncio.to_thread(self._cell_data, index)
        finally:
            self.cell_area.loading = False
        self._show_cell(data)

    def _show_cell(self, d: dict) -> None:
        spec, cell, ratio, share, siblings = (
            d["spec"],
            d["cell"],
            d["ratio"],
            d["share"],
            d["siblings"],
        )
        text = (
            f'<div class="dqm-note"><b>{html.escape(spec.name)} cell {list(cell)}</b>: '
            f"{d['count']:,.0f} hits in the selection"
            + (f", ratio to reference {ratio:.2f}" if ratio == ratio else "")
            + (f", reference share {share:.4f}" if share is not None else "")
            + ("<br>" + "; ".join(siblings) if siblings else "")
            + "</div>"
        )
        self.cell_area[:] = [
            pn.pane.HTML(text, stylesheets=[EXPERT_CSS], sizing_mode="stretch_width"),
            pn.pane.Bokeh(
                history_figure(
                    d["history"], f"{spec.name} cell {list(cell)}: hits per event, run {d['run']}"
                ),
                sizing_mode="stretch_width",
            ),
        ]
        self.selected_cell = (spec.name, cell)

    def __panel__(self):
        return pn.Column(
            pn.Row(self.run, self.spills, self.histogram),
            self.info,
            self.plot_area,
            self.cell_area,
            sizing_mode="stretch_width",
        )


#: the Trends tab's spans: the runs chosen by hand, or every run of the last N days
#: (a long span is downsampled to about a screen's width by the store)
TREND_SPANS: dict[str, float | None] = {
    "chosen runs": None,
    "last day": 1,
    "last week": 7,
    "last month": 30,
    "last year": 365,
}


class Trends(_DrawsOffLoop, Viewer):
    """Any per-spill summary quantity across spills and runs, flagged spills marked."""

    def __init__(self, datastore, **params) -> None:
        super().__init__(**params)
        self._store = datastore
        keys = datastore.read(queries.summary_keys) or ["n_events"]
        run_list = datastore.read(queries.runs)
        default = "p_bms_mean" if "p_bms_mean" in keys else keys[0]
        self.key = pn.widgets.Select(label="Quantity", options=keys, value=default, width=280)
        self.runs = pn.widgets.MultiChoice(
            label="Runs", options=run_list, value=run_list[:1], width=360
        )
        self.span = pn.widgets.Select(
            label="Span", options=list(TREND_SPANS), value="chosen runs", width=140
        )
        self.area = pn.Column(sizing_mode="stretch_width")
        self._latest = _LatestOnly(self.area)
        self.key.param.watch(self._redraw, "value")
        self.runs.param.watch(self._redraw, "value")
        self.span.param.watch(self._redraw, "value")
        self.draw()
        self._serving()

    def _load(self, key: str, runs: tuple[int, ...], span: str = "chosen runs"):
        days = TREND_SPANS.get(span)

        def read(session):
            if days is None:
                return queries.trend_frame(session, key, runs)
            now = datetime.now(UTC)
            spanned = queries.runs_in_period(session, now - timedelta(days=days), now)
            return queries.trend_frame(session, key, spanned)

        return key, self._store.read(read)

    def _show(self, loaded) -> None:
        key, frame = loaded
        self.area[:] = [
            pn.pane.Bokeh(
                trend_figure(frame, key, SUMMARY_DOCS.get(key, "")), sizing_mode="stretch_width"
            )
        ]

    def draw(self) -> None:
        if not self.runs.value and self.span.value == "chosen runs":
            self.area[:] = [pn.pane.Markdown("Choose one or more runs.")]
            return
        self._show(self._load(self.key.value, tuple(self.runs.value), self.span.value))

    async def draw_async(self, _event=None) -> None:
        """The trend of the chosen runs, queried in a thread (a week of runs is thousands of
        spills)."""
        if not self.runs.value and self.span.value == "chosen runs":
            self._latest.cancel()
            self.area[:] = [pn.pane.Markdown("Choose one or more runs.")]
            return
        await self._latest.run(
            (self.key.value, tuple(self.runs.value), self.span.value), self._load, self._show
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(self.key, self.span, self.runs), self.area, sizing_mode="stretch_width"
        )


def _reports_html(folder: Path) -> str:
    files = queries.reports(folder)
    if not files:
        return (
            '<div class="dqm-note">No nightly report yet (PDF files appear here when written to '
            f"<code>{html.escape(str(folder))}</code>).</div>"
        )
    rows = "".join(
        f'<li><a href="./reports/{html.escape(name)}" target="_blank" '
        f"download>{html.escape(name)}</a> "
        f"({size / 1e6:.2f} MB, {datetime.fromtimestamp(mtime, UTC):%Y-%m-%d %H:%M} UTC)</li>"
        for name, size, mtime in files
    )
    return f'<ul class="dqm-reports" style="font-size:16px">{rows}</ul>'


class Expert(Viewer):
    """The expert page: tabs over the explorer, trends, flags, audit trail, reports, actions."""

    def __init__(
        self,
        datastore,
        *,
        reports_dir: Path,
        auth_enabled: bool,
        histogram: str | None = None,
        run: int | None = None,
        spill: int | None = None,
        **params,
    ) -> None:
        super().__init__(**params)
        from apps.auth import current_user

        self._store = datastore
        self.user = current_user()
        self.explorer = HistogramExplorer(datastore, histogram=histogram, run=run, spill=spill)
        self.trends = Trends(datastore)
        self.flags = FlagsPanel(datastore, user=self.user)
        self.actions = ActionsPanel(
            datastore,
            user=self.user,
            auth_enabled=auth_enabled,
            selected_cell=lambda: getattr(self.explorer, "selected_cell", None),
        )
        self.audit = pn.widgets.Tabulator(
            self._audit(),
            disabled=True,
            sizing_mode="stretch_width",
            height=420,
            show_index=False,
            layout="fit_data_stretch",
        )
        self.references = pn.widgets.Tabulator(
            datastore.read(queries.references_frame),
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            height=200,
        )
        self.reports = pn.pane.HTML(_reports_html(reports_dir), sizing_mode="stretch_width")
        self._reports_dir = reports_dir
        who = (
            f"logged in as <b>{html.escape(self.user)}</b> · <a href='./logout'>log out</a>"
            if self.user
            else (
                "guest (read-only) · <a href='./login?next=/expert'>log in to act</a>"
                if auth_enabled
                else "read-only server"
            )
        )
        self.header = pn.pane.HTML(
            f'<div class="dqm-expert-header"><span class="title">NA64μ DQM — expert</span>'
            f'<a href="./control_room">control room</a><span class="dqm-user">{who}</span></div>',
            stylesheets=[EXPERT_CSS],
            sizing_mode="stretch_width",
        )
        self.tabs = pn.Tabs(
            ("Histograms", self.explorer),
            ("Trends", self.trends),
            ("Flags", self.flags),
            (
                "Audit trail",
                pn.Column(
                    "### Audit trail (who did what, when)",
                    self.audit,
                    "### References",
                    self.references,
                ),
            ),
            ("Reports", pn.Column("### Nightly reports", self.reports)),
            ("Actions", self.actions),
            sizing_mode="stretch_width",
            dynamic=False,
        )
        self._version = datastore.version
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.add_periodic_callback(self._tick, period=1000)

    def _audit(self):
        return self._store.read(queries.audit_frame)

    def _tick(self) -> None:
        """After a new spill or an action (anyone's): refresh the tables once."""
        if self._store.version == self._version:
            return
        self._version = self._store.version
        self.audit.value = self._audit()
        self.references.value = self._store.read(queries.references_frame)
        self.flags.reload()
        self.reports.object = _reports_html(self._reports_dir)

    def __panel__(self):
        return pn.Column(self.header, self.tabs, sizing_mode="stretch_width")
