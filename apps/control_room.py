"""The control-room wall screen: read-only, large type, high contrast, updating by itself.

A view bound to the process's :class:`~apps.datastore.DataStore`: the store wakes every
session when it publishes a new snapshot (no polling), so the wall follows a spill within
a fraction of a second while the database sees one query set per spill in total. The
HTML of the header, tiles and numbers is rendered once per snapshot for all sessions
(:class:`_PerSnapshot`); each session only ships it. The age of the last spill and the
STALE state are recomputed locally every :data:`TICK_MS`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import panel as pn
from panel.io.document import hold
from panel.io.state import set_curdoc
from panel.viewable import Viewer

from apps.alarms import AlarmPanel
from apps.plots import make_plot, plot_data
from apps.snapshot import SUBSYSTEM_TITLES, Snapshot
from apps.theme import CONTROL_ROOM_CSS, WALL_PLOT_HEIGHT
from apps.wall_html import (
    RENDERED_ONCE,
    age_text,
    header_html,
    render_header,
    render_numbers,
    render_strip,
    render_tiles,
)
from dqm.store.alarms import silence_alarm
from dqm.store.incidents import acknowledge_incident

__all__ = [
    "ControlRoom",
    "TICK_MS",
    "render_tiles",
    "render_header",
    "render_numbers",
    "render_strip",
    "age_text",
]

_TABS_CSS = """
.bk-tab { color: #e0e0e0; background: #1c1c1c; font-size: 24px; font-weight: 700;
  padding: 4px 22px; border-color: #444; }
.bk-tab.bk-active { color: #000; background: #4fc3f7; }
.bk-header { border-bottom: 2px solid #4fc3f7; }
"""

#: how often a session looks for a new snapshot (the update latency budget is 1 s)
#: The session's own timer only ages the "last spill" clock (and STALE); new snapshots
#: arrive by a wake-up from the DataStore, not by polling. Every 5 s: a per-second clock
#: in 20 wall sessions cost 13 % of the server's core (measured with dqm loadtest).
TICK_MS = 5000


class ControlRoom(Viewer):
    """One browser session's wall screen; ``rotate_s`` > 0 cycles the plot tabs."""

    def __init__(
        self,
        datastore,
        *,
        stale_after_s: float,
        rotate_s: float = 0.0,
        user: str | None = None,
        alarm_repeat_s: float = 20.0,
        **params,
    ) -> None:
        super().__init__(**params)
        self._user = user
        self._store = datastore
        self._stale_after_s = stale_after_s
        self._drawn_version = -1
        self._drawn_age: int | None = None
        self._drawn_stale: bool | None = None
        self._drawn_plots = None
        snap = datastore.snapshot
        self._header = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CONTROL_ROOM_CSS])
        self._tiles = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CONTROL_ROOM_CSS])
        self._numbers = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CONTROL_ROOM_CSS])
        self._strip = pn.pane.HTML(sizing_mode="stretch_width", stylesheets=[CONTROL_ROOM_CSS])
        self._alarms = AlarmPanel(
            act=self._alarm_action,
            user=user or "",
            repeat_s=alarm_repeat_s,
            sizing_mode="stretch_width",
        )
        self._plots = {}
        self._tab_of: dict[str, int] = {}  # subsystem -> index of its plot tab
        self._bad: set[str] = set()
        self._alarmed: set[str] = set()  # subsystems with an open BAD incident
        self._pending_tab: int | None = None
        tabs = []
        for subsystem, specs in datastore.specs.by_subsystem().items():
            shown = [s for s in specs if s.control_room]
            if not shown:
                continue
            handles = [
                make_plot(
                    s,
                    snap.plots.get(s.name) or plot_data(s, None),
                    theme="dark",
                    height=WALL_PLOT_HEIGHT,
                )
                for s in shown
            ]
            self._plots.update({s.name: h for s, h in zip(shown, handles, strict=False)})
            self._tab_of[subsystem] = len(tabs)
            panes = [pn.pane.Bokeh(h.figure, sizing_mode="stretch_width") for h in handles]
            tabs.append(
                (
                    SUBSYSTEM_TITLES.get(subsystem, subsystem),
                    # one row: every plot of the tab on a 1080-line screen
                    pn.GridBox(*panes, ncols=len(panes), sizing_mode="stretch_width"),
                )
            )
        # every tab stays in the document (dynamic=False), only ``active`` changes: with
        # dynamic tabs Panel replaced the hidden tabs' panels by new placeholders at every
        # switch (rotation, a BAD subsystem brought to the front), and a switch whose message
        # never carried them left the browser with "reference pNNNN isn't known" page errors
        # (reproduced with ?rotate=1 while spills closed: 14 errors in 6 spills)
        self._tabs = pn.Tabs(
            *tabs, sizing_mode="stretch_width", stylesheets=[_TABS_CSS], dynamic=False
        )
        self._layout = pn.Column(
            self._header,
            self._alarms,
            self._tiles,
            self._numbers,
            self._strip,
            self._tabs,
            sizing_mode="stretch_width",
            styles={"background": "#0d0d0d", "padding": "8px"},
        )
        self.tick()
        if self._pending_tab is not None:  # a wall opened on a BAD spill opens on its tab
            self._tabs.active, self._pending_tab = self._pending_tab, None
        self._rotate_s = rotate_s

    def start(self) -> None:
        """Attach the session to the store's wake-ups and its clock (call inside a served
        session)."""
        doc = pn.state.curdoc

        def redraw() -> None:
            with set_curdoc(doc):
                more = self.tick()
            if more:  # the plots (or a tab switch) go out on the next tick, after the text
                doc.add_next_tick_callback(redraw)

        def wake() -> None:  # the refresher's thread: only schedule on this session's loop
            doc.add_next_tick_callback(redraw)

        token = self._store.subscribe(wake)
        pn.state.on_session_destroyed(lambda _ctx: self._store.unsubscribe(token))
        pn.state.add_periodic_callback(self.tick, period=TICK_MS)
        if self._rotate_s > 0 and len(self._tabs) > 1:
            pn.state.add_periodic_callback(self.rotate, period=int(self._rotate_s * 1000))

    def rotate(self) -> None:
        """The next tab — but while a subsystem is BAD (its tile, or an open BAD incident),
        only the BAD subsystems' tabs: the shifter must not find the beam tab gone."""
        n = len(self._tabs)
        bad = sorted({self._tab_of[s] for s in self._bad | self._alarmed if s in self._tab_of})
        if not bad:
            self._tabs.active = (self._tabs.active + 1) % n
        elif self._tabs.active not in bad or len(bad) > 1:
            self._tabs.active = next((i for i in bad if i > self._tabs.active), bad[0])

    def _alarm_action(self, action: str, data: dict) -> None:
        """Acknowledge an incident or silence the alarm, as this session's user (audited)."""
        user = self._user
        if action == "acknowledge":
            incident = int(data.get("id", 0))
            self._store.act(lambda s: acknowledge_incident(s, incident, user))
        elif action == "silence":
            reason, minutes = str(data.get("reason", "")), data.get("minutes", 0)
            self._store.act(lambda s: silence_alarm(s, user, reason, minutes))

    def tick(self) -> bool:
        """Redraw from the store's snapshot if it changed; refresh the age of the last spill.

        Text (header, tiles, numbers) goes out first; changed plots follow on the next
        tick, so the browser shows the verdict before it re-renders a dozen plots.
        Returns True when something is left for that next tick.
        """
        snap = self._store.snapshot
        now = datetime.now(UTC)
        age = snap.age_s(now)
        age_key = None if age is None else int(age)
        new_text = snap.version != self._drawn_version
        new_plots = snap.plots is not self._drawn_plots
        if not new_text and self._pending_tab is not None:  # a tab switch goes out after the text
            self._tabs.active, self._pending_tab = self._pending_tab, None
        if not new_text and age_key == self._drawn_age and not new_plots:
            return False
        # header, alarms, tiles, numbers and strip go to the browser in one message: the spill
        # number and the tiles change together
        with hold(pn.state.curdoc):
            self._draw_text(snap, now, age, age_key, new_text)
        if new_text:
            self._drawn_version = snap.version
            self._show_newly_bad(snap)
            if new_plots and self._drawn_plots is not None:
                return True  # plots on the next tick
            if self._pending_tab is not None:
                return True
        if new_plots:
            for name, handle in self._plots.items():
                if name in snap.plots:
                    handle.update(snap.plots[name])
            self._drawn_plots = snap.plots
        return self._pending_tab is not None

    def _draw_text(
        self, snap: Snapshot, now: datetime, age: float | None, age_key: int | None, new_text: bool
    ) -> None:
        stale = snap.is_stale(self._stale_after_s, now)
        self._alarms.show(snap, now)
        if new_text or age_key != self._drawn_age:
            shown_age = age_text(age)
            self._header.object = RENDERED_ONCE.get(
                snap,
                ("header", shown_age, stale, self._stale_after_s),
                lambda: header_html(snap, self._stale_after_s, shown_age, stale),
            )
            self._drawn_age = age_key
        if new_text or stale != self._drawn_stale:
            self._tiles.object = RENDERED_ONCE.get(
                snap, ("tiles", stale), lambda: render_tiles(snap, stale)
            )
            self._drawn_stale = stale
        if new_text:
            self._numbers.object = RENDERED_ONCE.get(
                snap, ("numbers",), lambda: render_numbers(snap.numbers)
            )
            self._strip.object = RENDERED_ONCE.get(snap, ("strip",), lambda: render_strip(snap))

    def _show_newly_bad(self, snap: Snapshot) -> None:
        """A subsystem that just turned BAD brings its plots to the front (the shifter looks there
        next)."""
        bad = {t.subsystem for t in snap.tiles if t.quality == "BAD" and not t.follows_from}
        newly = [s for s in self._tab_of if s in bad - self._bad]
        self._bad = bad
        self._alarmed = {a.subsystem for a in snap.alarms if a.quality == "BAD"}
        if newly:
            self._pending_tab = self._tab_of[newly[0]]

    def __panel__(self):
        return self._layout
