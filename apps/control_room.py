"""The control-room wall screen: read-only, large type, high contrast, updating by itself.

A view bound to the process's :class:`~apps.datastore.DataStore`: the store wakes every
session when it publishes a new snapshot (no polling), so the wall follows a spill within
a fraction of a second while the database sees one query set per spill in total. The
HTML of the header, tiles and numbers is rendered once per snapshot for all sessions
(:class:`_PerSnapshot`); each session only ships it. The age of the last spill and the
STALE state are recomputed locally every :data:`TICK_MS`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import panel as pn
from panel.io.document import hold
from panel.io.state import set_curdoc
from panel.viewable import Viewer

from apps.alarms import AlarmPanel
from apps.plots import make_plot, plot_data
from apps.snapshot import SUBSYSTEM_TITLES, Number, Snapshot, Tile
from apps.theme import CONTROL_ROOM_CSS, QUALITY_COLOURS, WALL_PLOT_HEIGHT
from dqm.core.numbering import ranges_text
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


class _PerSnapshot:
    """The last few renderings of one snapshot, shared by every session of the process.

    Tiles and numbers depend only on the snapshot (and the STALE state), so 20 wall
    sessions need one rendering per spill, not 20. Keyed by the snapshot object itself
    (held, so its id cannot be reused while cached), not by ``version``: a snapshot is
    immutable and a new one is a new object.
    """

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: list[tuple[Snapshot, tuple, str]] = []

    def get(self, snap: Snapshot, key: tuple, render) -> str:
        for held, k, text in self._items:
            if held is snap and k == key:
                return text
        text = render()
        self._items = [*self._items[-(self._size - 1) :], (snap, key, text)]
        return text


_RENDERED = _PerSnapshot()


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}" if digits else f"{value:,.0f}"


def render_tiles(snap: Snapshot, stale: bool) -> str:
    """One tile per subsystem: colour and word for the quality, the why and the what-to-do."""
    parts = []
    where = f"&run={snap.run}&spill={snap.spill}" if snap.run is not None else ""
    for t in snap.tiles:
        parts.append(_tile(t, stale, where))
    spill = f"{snap.run} / {snap.spill}" if snap.run is not None else "—"
    return (
        f'<div class="dqm-tiles" data-spill="{spill}" '
        'style="display:grid;grid-template-columns:repeat(5,1fr);gap:10px">'
        f"{''.join(parts)}</div>"
    )


def _text(text: str) -> str:
    """Escaped for HTML, a number never parted from its unit at a line break ("50 %")."""
    return html.escape(text).replace(" %", "\u00a0%")


def _tile(t: Tile, stale: bool, where: str = "") -> str:
    link = (
        f'<a href="./expert?histogram={html.escape(t.histogram + where)}">details ›</a>'
        if t.histogram and t.quality != "GOOD"
        else ""
    )
    ack = (
        f'<div class="ack">acknowledged by {html.escape(t.acknowledged_by)}</div>'
        if t.acknowledged_by
        else ""
    )
    instruction = (
        f'<div class="instruction">▶ {_text(t.instruction)}</div>' if t.instruction else ""
    )
    follows, classes, style = "", f"q-{t.quality}{' stale' if stale else ''}", ""
    if t.follows_from:  # a consequence: the shifter goes to the cause's tile, not to an expert
        cause_tile = SUBSYSTEM_TITLES.get(t.follows_subsystem, t.follows_subsystem)
        see = f" — see {html.escape(cause_tile)}" if cause_tile else ""
        follows = (
            '<div class="instruction follows-from">↳ follows from: '
            f"{_text(t.follows_from)}{see}</div>"
        )
        classes += " consequence"
        style = ' style="filter:saturate(0.55)"'  # same word and hue, less shouting
    return (
        f'<div class="dqm-tile {classes}" data-subsystem="{t.subsystem}" '
        f'data-quality="{t.quality}" data-follows-from="{html.escape(t.follows_subsystem)}"{style}>'
        f'<div class="head"><span class="name">{html.escape(t.title)}</span><span '
        f'class="quality">{t.quality.replace("_", " ")}</span></div>'
        f'<div class="explanation">{_text(t.explanation)} {link}</div>'
        f"{instruction}{follows}{ack}</div>"
    )


def render_header(snap: Snapshot, stale_after_s: float, now: datetime | None = None) -> str:
    """Run/spill, age of the last spill, and the STALE banner when the data stopped."""
    now = now or datetime.now(UTC)
    return _header_html(
        snap, stale_after_s, age_text(snap.age_s(now)), snap.is_stale(stale_after_s, now)
    )


def age_text(age: float | None) -> str:
    """How long ago the last spill closed, as the wall shows it (changes at most every few
    seconds)."""
    return (
        "no spill yet"
        if age is None
        else "just now"
        if age < 5
        else f"{age:.0f} s ago"
        if age < 120
        else f"{age / 60:.0f} min ago"
    )


def _header_html(snap: Snapshot, stale_after_s: float, age_shown: str, stale: bool) -> str:
    state = "STALE" if stale else snap.quality
    bg, fg = QUALITY_COLOURS.get(state, QUALITY_COLOURS["NO_DATA"])
    where = f"{snap.run} / {snap.spill}" if snap.run is not None else "—"
    stale_text = (
        (
            '<div class="dqm-banner q-STALE" data-state="STALE">STALE — no spill closed for more '
            f"than {stale_after_s:g} s: "
            f"check the DAQ and the DQM workers</div>"
        )
        if stale
        else ""
    )
    return (
        f'<div class="dqm-header"><span class="title">NA64μ DQM</span>'
        f'<span>run / spill <span class="value" data-spill="{where}">{where}</span></span>'
        f'<span>last spill <span class="value" data-age>{age_shown}</span></span>'
        f'<span class="state" style="background:{bg};color:{fg}" '
        f'data-state="{state}">{state.replace("_", " ")}</span>'
        '<span class="reference">reference run '
        f"{snap.reference_run if snap.reference_run is not None else _no_reference(snap)}</span>"
        f"</div>{_conditions_html(snap)}{stale_text}{_missing_banner(snap)}"
    )


def render_strip(snap: Snapshot) -> str:
    """The last spills in spill order, each its number on its quality's colour; a click
    opens that spill on the expert page. A new run starts with its run number."""
    parts, run = [], None
    for r, s, q in snap.recent:
        if r != run:
            parts.append(f'<span class="run">run {r}</span>')
            run = r
        bg, fg = QUALITY_COLOURS.get(q, QUALITY_COLOURS["NO_DATA"])
        parts.append(
            f'<a href="./expert?run={r}&amp;spill={s}" data-run="{r}" data-strip-spill="{s}" '
            f'data-quality="{q}" '
            f'title="run {r} spill {s}: {q}" style="background:{bg};color:{fg}">{s}</a>'
        )
    return f'<div class="dqm-strip" title="last spills, in spill order">{"".join(parts)}</div>'


def _no_reference(snap: Snapshot) -> str:
    return f"none for {snap.beam_config}" if snap.beam_config else "none"


def _conditions_html(snap: Snapshot) -> str:
    """The run's conditions under the header: what the spills are judged against."""
    if snap.run is None:
        return ""
    if not snap.conditions:
        return (
            '<div class="dqm-banner q-WARNING" data-conditions="">run '
            f"{snap.run}: no run conditions received from the DAQ — momentum and reference "
            "checks cannot judge; call the DAQ expert</div>"
        )
    text = html.escape(snap.conditions)
    return f'<div class="dqm-conditions" data-conditions="{text}">{text}</div>'


def _missing_banner(snap: Snapshot) -> str:
    """Spills of this run that never reached the DQM: they have no flag, only this gap shows
    them."""
    if not snap.missing:
        return ""
    which = ranges_text(snap.missing)
    what = "spill" if len(snap.missing) == 1 else "spills"
    return (
        f'<div class="dqm-banner q-WARNING" data-missing="{which}">run {snap.run}: {what} {which} '
        "never reached the DQM "
        f"— check the DAQ → DQM link (Redis stream)</div>"
    )


def _sparkline(values: tuple[float | None, ...], width: int = 90, height: int = 30) -> str:
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return ""
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(
        f"{i * width / n:.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}" for i, v in pts
    )
    x_last, y_last = coords.split(" ")[-1].split(",")
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<polyline fill="none" stroke="#4fc3f7" stroke-width="2" points="{coords}"/>'
        f'<circle cx="{x_last}" cy="{y_last}" r="3.5" fill="#ffb74d"/></svg>'
    )


def render_numbers(numbers: tuple[Number, ...]) -> str:
    cells = []
    for n in numbers:
        err = (
            f' <span class="unit">± {_fmt(n.error, n.digits)}</span>' if n.error is not None else ""
        )
        cells.append(
            f'<div class="dqm-number"><div class="label">{html.escape(n.label)}</div>'
            f'<div class="value">{_fmt(n.value, n.digits)}{err} <span '
            f'class="unit">{html.escape(n.unit)}</span></div>'
            f"{_sparkline(n.trend)}</div>"
        )
    return f'<div class="dqm-numbers">{"".join(cells)}</div>'


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
        self._tabs = pn.Tabs(
            *tabs, sizing_mode="stretch_width", stylesheets=[_TABS_CSS], dynamic=True
        )  # draw only the visible tab
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
            self._header.object = _RENDERED.get(
                snap,
                ("header", shown_age, stale, self._stale_after_s),
                lambda: _header_html(snap, self._stale_after_s, shown_age, stale),
            )
            self._drawn_age = age_key
        if new_text or stale != self._drawn_stale:
            self._tiles.object = _RENDERED.get(
                snap, ("tiles", stale), lambda: render_tiles(snap, stale)
            )
            self._drawn_stale = stale
        if new_text:
            self._numbers.object = _RENDERED.get(
                snap, ("numbers",), lambda: render_numbers(snap.numbers)
            )
            self._strip.object = _RENDERED.get(snap, ("strip",), lambda: render_strip(snap))

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
