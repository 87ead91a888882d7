"""The expert page: explorer, run map, trends, flags, audit, reports, actions — and its URL.

One :class:`Expert` per browser session, bound to the process's DataStore. The views live
in their own modules (:mod:`apps.expert_explorer`, :mod:`apps.expert_runmap`,
:mod:`apps.expert_trends`, :mod:`apps.expert_flags`, :mod:`apps.expert_actions`); this one
assembles them and keeps the URL equal to the view: run, spills, histogram, options,
comparison and flag are written into the query string on every change, so the address
bar (or the "copy link" button) is a link an expert can paste into the e-log.

From a flag (``?flag=ID``), a wall tile (``?histogram=NAME&run=R&spill=S``) or a row of
the flag table, the page opens on the histogram at that spill with its evidence.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import panel as pn
from panel.viewable import Viewer

from apps import queries
from apps.expert_actions import ActionsPanel
from apps.expert_explorer import HistogramExplorer
from apps.expert_flags import FlagsPanel
from apps.expert_runmap import RunMap
from apps.expert_trends import Trends
from apps.theme import EXPERT_CSS
from dqm.store.evidence import flag_evidence

__all__ = ["Expert", "HistogramExplorer", "Trends", "VIEW_KEYS", "TABS"]

#: query-string keys that describe the view (integers except histogram and cmp_spills)
VIEW_KEYS = (
    "tab",
    "histogram",
    "run",
    "spill",
    "to",
    "flag",
    "log",
    "rebin",
    "compare",
    "cmp_spills",
)
TABS = ("histograms", "run", "trends", "flags", "audit", "reports", "actions")
_TITLES = ("Histograms", "Run", "Trends", "Flags", "Audit trail", "Reports", "Actions")


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


def _resolve_flag(datastore, view: dict) -> dict:
    """A ``flag`` link names only the flag: its run, spill and histogram come from the store."""
    if view.get("flag") is None:
        return view
    flag = datastore.read(lambda s: flag_evidence(s, int(view["flag"])))
    if flag is None:
        return {k: v for k, v in view.items() if k != "flag"}
    out = dict(view)
    out.setdefault("run", flag["run"])
    out.setdefault("spill", flag["spill"])
    if flag["histogram"]:
        out.setdefault("histogram", flag["histogram"])
    return out


class Expert(Viewer):
    """The expert page: tabs over the views, a header with the user and a link to the view."""

    def __init__(
        self,
        datastore,
        *,
        reports_dir: Path,
        auth_enabled: bool,
        view: dict | None = None,
        **params,
    ) -> None:
        super().__init__(**params)
        from apps.auth import current_user

        self._store = datastore
        self.user = current_user()
        view = _resolve_flag(datastore, dict(view or {}))
        self.permalink = pn.pane.HTML(stylesheets=[EXPERT_CSS], css_classes=["dqm-permalink"])
        self.explorer = HistogramExplorer(datastore, view=view, on_change=self._sync_url)
        self._auth_enabled = auth_enabled
        self._reports_dir = reports_dir
        self.header = pn.pane.HTML(
            self._header_html(auth_enabled), stylesheets=[EXPERT_CSS], sizing_mode="stretch_width"
        )
        self.copy = pn.widgets.Button(label="copy link", width=100, css_classes=["dqm-copy"])
        self.copy.js_on_click(
            code="navigator.clipboard && navigator.clipboard.writeText(window.location.href)"
        )
        # Only the tab shown is built: the other views (their widgets, tables and figures,
        # and the queries behind them) are made when first opened, then stay in the document
        # (dynamic=False) so that a figure refilled while its tab is hidden reaches the browser.
        self.runmap: RunMap | None = None
        self.trends: Trends | None = None
        self.flags: FlagsPanel | None = None
        self.actions: ActionsPanel | None = None
        self.audit: pn.widgets.Tabulator | None = None
        self.references: pn.widgets.Tabulator | None = None
        self.reports: pn.pane.HTML | None = None
        self._built = {"histograms"}
        self.tabs = pn.Tabs(
            ("Histograms", self.explorer),
            *[(title, pn.Column(sizing_mode="stretch_width")) for title in _TITLES[1:]],
            sizing_mode="stretch_width",
            dynamic=False,
        )
        tab = view.get("tab")
        if tab in TABS:
            self.tabs.active = TABS.index(tab)
        self.tabs.param.watch(self._on_tab, "active")
        self._on_tab()
        self._version = datastore.version
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.add_periodic_callback(self._tick, period=1000)

    # ------------------------------------------------------------------ the tabs, when shown
    def _build(self, name: str):
        """The view of tab ``name`` (built on its first showing)."""
        store = self._store
        if name == "run":
            self.runmap = RunMap(store, on_open=self.open_evidence)
            return self.runmap
        if name == "trends":
            self.trends = Trends(store)
            return self.trends
        if name == "flags":
            self.flags = FlagsPanel(store, user=self.user, on_open=self.open_evidence)
            return self.flags
        if name == "actions":
            self.actions = ActionsPanel(
                store,
                user=self.user,
                auth_enabled=self._auth_enabled,
                selected_cell=lambda: getattr(self.explorer, "selected_cell", None),
            )
            return self.actions
        if name == "audit":
            self.audit = pn.widgets.Tabulator(
                store.read(queries.audit_frame),
                disabled=True,
                sizing_mode="stretch_width",
                height=420,
                show_index=False,
                layout="fit_data_stretch",
            )
            self.references = pn.widgets.Tabulator(
                store.read(queries.references_frame),
                disabled=True,
                show_index=False,
                sizing_mode="stretch_width",
                height=200,
            )
            return pn.Column(
                "### Audit trail (who did what, when)",
                self.audit,
                "### References",
                self.references,
            )
        self.reports = pn.pane.HTML(_reports_html(self._reports_dir), sizing_mode="stretch_width")
        return pn.Column("### Nightly reports", self.reports)

    def _ensure_built(self, name: str) -> None:
        if name in self._built:
            return
        self._built.add(name)
        self.tabs[TABS.index(name)][:] = [self._build(name)]

    def _header_html(self, auth_enabled: bool) -> str:
        who = (
            f"logged in as <b>{html.escape(self.user)}</b> · <a href='./logout'>log out</a>"
            if self.user
            else (
                "guest (read-only) · <a href='./login?next=/expert'>log in to act</a>"
                if auth_enabled
                else "read-only server"
            )
        )
        return (
            f'<div class="dqm-expert-header"><span class="title">NA64μ DQM — expert</span>'
            f'<a href="./control_room">control room</a><span class="dqm-user">{who}</span></div>'
        )

    # ------------------------------------------------------------------ the URL is the view
    def view_state(self) -> dict:
        state = {"tab": TABS[self.tabs.active]} if getattr(self, "tabs", None) else {}
        return {**state, **self.explorer.view_state()}

    def _sync_url(self) -> None:
        if not hasattr(self, "explorer"):
            return  # the explorer's first draw, before the page is assembled
        query = "?" + urlencode(self.view_state())
        self.permalink.object = (
            f'<a class="dqm-link" href="./expert{html.escape(query)}">link to this view</a>'
        )
        if pn.state.location is not None:
            pn.state.location.search = query

    def _on_tab(self, _event=None) -> None:
        name = TABS[self.tabs.active]
        self._ensure_built(name)
        if name == "run" and self.runmap is not None:
            self.runmap.ensure_drawn()
        if name == "trends" and self.trends is not None:
            self.trends.ensure_drawn()
        if name == "flags" and self.flags is not None:
            self.flags.ensure_loaded()
        self._sync_url()

    def open_evidence(
        self, run: int, spill: int, histogram: str | None, flag: int | None = None
    ) -> None:
        """Show a flag's evidence (from the run map or the flag table) on the Histograms tab."""
        self.explorer.open(run, spill, histogram, flag)
        self.tabs.active = 0

    # ------------------------------------------------------------------ refresh
    def _tick(self) -> None:
        """After a new spill or an action (anyone's): refresh the tables once."""
        if self._store.version == self._version:
            return
        self._version = self._store.version
        if self.audit is not None and self.references is not None:
            self.audit.value = self._store.read(queries.audit_frame)
            self.references.value = self._store.read(queries.references_frame)
        if self.flags is not None and self.flags._loaded:
            self.flags.reload()
        if self.reports is not None:
            self.reports.object = _reports_html(self._reports_dir)

    def __panel__(self):
        return pn.Column(
            pn.Row(self.header, self.permalink, self.copy, sizing_mode="stretch_width"),
            self.tabs,
            sizing_mode="stretch_width",
        )
