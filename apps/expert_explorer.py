"""The histogram explorer: run, spills and histogram → plots against a reference, with evidence.

One :class:`HistogramExplorer` per browser session. Everything it draws is loaded by
:func:`apps.expert_load.load_view` in a worker thread (the server's one event loop also
feeds every wall screen) and shown by :mod:`apps.expert_views`; this module holds the
controls, the navigation (previous/next spill, go to spill) and the view state that the
page writes into its URL, so that "copy link" reproduces exactly what the expert sees.
"""

from __future__ import annotations

import asyncio
from functools import partial

import panel as pn
from panel.viewable import Viewer

from apps import queries
from apps.expert_load import ViewRequest, cell_data, load_view
from apps.expert_views import show_cell, show_view
from apps.theme import EXPERT_CSS

__all__ = ["HistogramExplorer", "LatestOnly", "DEFAULT_SPILLS", "ACTIVE_REFERENCE"]

#: spills summed when a run is picked (the newest ones): keeps the first view of a long run quick
DEFAULT_SPILLS = 20
#: the comparison choice meaning "the reference the checks use"
ACTIVE_REFERENCE = "active reference"


#: a load that takes longer than this shows Panel's spinner (a quick one does not: turning it
#: on and off costs the browser two layouts of the whole page)
SPINNER_AFTER_S = 0.3


class LatestOnly:
    """Loads in a worker thread and shows the result unless a newer request came meanwhile.

    Why: a session callback runs on the server's one event loop, which also feeds every
    control-room screen; decoding or querying for seconds there stalls them all. ``area``
    shows Panel's spinner while the newest request loads, if that takes more than
    :data:`SPINNER_AFTER_S`.
    """

    def __init__(self, area) -> None:
        self.area = area
        self._asked = None

    def cancel(self) -> None:
        """Whatever is loading is not shown (the choice was cleared)."""
        self._asked = None
        self.area.loading = False

    async def run(self, request, load, show) -> None:
        self._asked = request
        doc = pn.state.curdoc if served() else None
        job = asyncio.ensure_future(asyncio.to_thread(load, request))
        await asyncio.wait({job}, timeout=SPINNER_AFTER_S)
        if not job.done() and self._asked == request:
            self.area.loading = True
        try:
            result = await job
        except BaseException:
            if self._asked == request:
                self.area.loading = False
            raise
        if self._asked != request:  # the expert changed the choice again meanwhile
            return

        def finish() -> None:
            if self._asked != request:
                return
            if self.area.loading:
                self.area.loading = False
            show(result)

        if doc is None:
            finish()
        else:  # bokeh models change only under the document's lock: on its next tick
            doc.add_next_tick_callback(finish)


def served() -> bool:
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


class HistogramExplorer(Viewer):
    """Run, spill range and histogram from the specs' tree → plot(s) against the reference."""

    def __init__(self, datastore, *, view: dict | None = None, on_change=None, **params) -> None:
        super().__init__(**params)
        self._store = datastore
        view = dict(view or {})
        self._wanted = view  # from a link: open on that run/spills/histogram/flag
        self._on_change = on_change or (lambda: None)
        self._quiet = True  # no redraw while the widgets are being set up
        specs = datastore.specs
        groups = {sub: [s.name for s in hs] for sub, hs in specs.by_subsystem().items() if hs}
        first = view.get("histogram") if view.get("histogram") in specs.names else None
        self.flag_id: int | None = view.get("flag")
        self.run = pn.widgets.Select(label="Run", options=[], width=120)
        self.spills = pn.widgets.IntRangeSlider(
            label="Spills", start=0, end=1, value=(0, 1), step=1, width=300
        )
        self.previous = pn.widgets.Button(label="◀ previous", width=100, css_classes=["dqm-prev"])
        self.next = pn.widgets.Button(label="next ▶", width=90, css_classes=["dqm-next"])
        self.goto = pn.widgets.IntInput(
            label="Go to spill", value=None, width=110, css_classes=["dqm-goto"]
        )
        self.histogram = pn.widgets.Select(
            label="Histogram", groups=groups, value=first or specs.names[0], width=260
        )
        self.log = pn.widgets.Checkbox(
            label="log scale", value=bool(view.get("log")), width=90, css_classes=["dqm-log"]
        )
        self.rebin = pn.widgets.Select(
            label="Rebin",
            options=[1, 2, 3, 4, 5, 6, 8, 10],
            value=int(view.get("rebin", 1)),
            width=70,
        )
        self.compare = pn.widgets.Select(
            label="Compare with", options=[ACTIVE_REFERENCE], value=ACTIVE_REFERENCE, width=150
        )
        self.compare_spills = pn.widgets.TextInput(
            label="its spills (e.g. 5-40)",
            value=view.get("cmp_spills", ""),
            width=140,
            placeholder="all",
        )
        self.evidence_note = pn.pane.HTML(stylesheets=[EXPERT_CSS], sizing_mode="stretch_width")
        self.series_area = pn.Column(sizing_mode="stretch_width")  # the check's number, if any
        self.evidence = pn.Column(
            self.evidence_note,
            self.series_area,
            sizing_mode="stretch_width",
            css_classes=["dqm-evidence-area"],
        )
        self.stats = pn.pane.HTML(stylesheets=[EXPERT_CSS], width=210, css_classes=["dqm-statsbox"])
        self.figures: dict = {}  # figure sets refilled on every change (apps.expert_figures)
        self.panes: dict = {}
        self.info = pn.pane.HTML(stylesheets=[EXPERT_CSS], sizing_mode="stretch_width")
        self.plot_area = pn.Column(sizing_mode="stretch_width")
        self.cell_area = pn.Column(sizing_mode="stretch_width")
        self.selected_cell: tuple[str, tuple[int, int]] | None = None
        self._cell_request: dict | None = None
        self._tapped: set[int] = set()
        self._latest = LatestOnly(self.plot_area)
        self._served = served()
        self.run.param.watch(self._on_run, "value")
        for w, what in (
            (self.spills, "value_throttled"),
            (self.histogram, "value"),
            (self.log, "value"),
            (self.rebin, "value"),
            (self.compare, "value"),
            (self.compare_spills, "value"),
        ):
            w.param.watch(self._changed, what)
        self.previous.on_click(lambda _e: self.step(-1))
        self.next.on_click(lambda _e: self.step(+1))
        self.goto.param.watch(lambda e: self.go_to(e.new), "value")
        self.reload_runs()
        if view.get("compare") and int(view["compare"]) in self.compare.options:
            self.compare.value = int(view["compare"])
        self._quiet = False
        self._redraw()

    # ------------------------------------------------------------------ choosing
    def reload_runs(self) -> None:
        run_list = self._store.cached("runs", queries.runs)
        self.compare.options = [ACTIVE_REFERENCE, *run_list]
        self.run.options = run_list
        wanted_run = self._wanted.get("run")
        if wanted_run in run_list and self.run.value != wanted_run:
            self.run.value = wanted_run  # triggers _on_run
        elif run_list and self.run.value not in run_list:
            self.run.value = run_list[0]
        elif not run_list:
            self.plot_area[:] = [pn.pane.Markdown("No closed spill in the database yet.")]

    def _on_run(self, _event=None) -> None:
        run = self.run.value
        infos = self._store.cached(("spills", run), lambda s: queries.spills_of_run(s, run))
        if infos:
            lo, hi = infos[0].spill, infos[-1].spill
            want = self._wanted
            first, last = want.get("spill"), want.get("to", want.get("spill"))
            if want.get("run") == self.run.value and first is not None:
                chosen = (max(lo, min(first, hi)), max(lo, min(last or first, hi)))
            else:  # the newest spills: widen by hand (each spill is decoded once)
                chosen = (infos[max(0, len(infos) - DEFAULT_SPILLS)].spill, hi)
            self._wanted = {}
            self.spills.param.update(start=lo, end=max(hi, lo + 1), value=chosen)
        self._redraw()

    def step(self, direction: int) -> None:
        """Move the spill range by its own width (one spill when one is shown)."""
        lo, hi = self.spills.value
        width = hi - lo + 1
        start, end = self.spills.start, self.spills.end
        new_lo = min(max(lo + direction * width, start), max(end - width + 1, start))
        self.select_spills(new_lo, new_lo + width - 1)

    def go_to(self, spill: int | None) -> None:
        if spill is None:
            return
        spill = min(max(int(spill), self.spills.start), self.spills.end)
        self.select_spills(spill, spill)

    def select_spills(self, lo: int, hi: int) -> None:
        self.spills.value = (lo, hi)
        self._redraw()

    def open(self, run: int, spill: int, histogram: str | None, flag: int | None = None) -> None:
        """Show one spill of a run (from a flag, the run map or a link)."""
        self.flag_id = flag
        self._quiet = True
        if histogram in self._store.specs.names:
            self.histogram.value = histogram
        self._wanted = {"run": run, "spill": spill}
        if self.run.value != run:
            self.run.value = run  # _on_run picks the wanted spill
        else:
            self._on_run()
        self._quiet = False
        self._redraw()

    def _changed(self, event) -> None:
        if event.obj is self.histogram:
            self.flag_id = None  # another histogram: its own worst flag is the evidence
        self._redraw()

    # ------------------------------------------------------------------ the view's state
    def view_state(self) -> dict:
        """What the URL holds: run, spills, histogram, options, comparison, flag."""
        lo, hi = self.spills.value
        state: dict = {"histogram": self.histogram.value, "run": self.run.value, "spill": lo}
        if hi != lo:
            state["to"] = hi
        if self.flag_id:
            state["flag"] = self.flag_id
        if self.log.value:
            state["log"] = 1
        if self.rebin.value != 1:
            state["rebin"] = self.rebin.value
        if self.compare.value != ACTIVE_REFERENCE:
            state["compare"] = self.compare.value
            if self.compare_spills.value.strip():
                state["cmp_spills"] = self.compare_spills.value.strip()
        return state

    def _request(self) -> ViewRequest | None:
        if self.run.value is None:
            return None
        compare = None if self.compare.value == ACTIVE_REFERENCE else int(self.compare.value)
        return ViewRequest(
            histogram=self.histogram.value,
            run=int(self.run.value),
            lo=int(self.spills.value[0]),
            hi=int(self.spills.value[1]),
            flag=self.flag_id,
            log=bool(self.log.value),
            rebin=int(self.rebin.value),
            compare_run=compare,
            compare_spills=self.compare_spills.value.strip(),
        )

    # ------------------------------------------------------------------ drawing
    def _redraw(self, _event=None) -> None:
        if self._quiet:
            return
        self._on_change()
        if self._served:
            pn.state.execute(self.draw_async)
        else:
            self.draw()

    def _load(self, request: ViewRequest) -> dict:
        """The view's data, shared with other sessions asking for the same view (read-only)."""
        return self._store.view_cache.get(
            (request, self._store.version), lambda: load_view(self._store, request)
        )

    def draw(self) -> None:
        """Load and show the current selection now (construction, and outside a server)."""
        request = self._request()
        if request is not None:
            self._show(self._load(request))

    async def draw_async(self, _event=None) -> None:
        """Load in a worker thread, then show unless a newer choice was made meanwhile."""
        request = self._request()
        if request is not None:
            await self._latest.run(request, lambda r: self._load(r), self._show)

    def _show(self, loaded: dict) -> None:
        self.goto.value = None
        cells = show_view(self, loaded)
        self._cell_request = cells
        if cells is not None and id(cells["source"]) not in self._tapped:
            # a cell map's source is refilled for the next histogram: one callback each
            self._tapped.add(id(cells["source"]))
            cells["source"].selected.on_change("indices", self._on_tap)

    def _on_tap(self, _attr, _old, new) -> None:
        if not new or self._cell_request is None:
            return
        index = int(new[0])
        if self._served:
            pn.state.execute(partial(self.show_cell_async, index))
        else:
            self.show_cell(index)

    def show_cell(self, index: int) -> None:
        """History of the tapped cell over the run, and its value in the sibling maps."""
        assert self._cell_request is not None
        show_cell(self, cell_data(self._store, self._cell_request, index))

    async def show_cell_async(self, index: int) -> None:
        assert self._cell_request is not None
        self.cell_area.loading = True
        try:
            data = await asyncio.to_thread(cell_data, self._store, self._cell_request, index)
        finally:
            self.cell_area.loading = False
        show_cell(self, data)

    def __panel__(self):
        return pn.Column(
            pn.Row(self.run, self.spills, self.previous, self.next, self.goto, self.histogram),
            pn.Row(self.log, self.rebin, self.compare, self.compare_spills),
            self.info,
            self.evidence,
            self.plot_area,
            self.cell_area,
            sizing_mode="stretch_width",
        )
