"""The wall's HTML: header, tiles, spill strip and numbers, rendered once per snapshot.

Pure functions of a :class:`~apps.snapshot.Snapshot` (and the age of its newest spill):
:class:`~apps.control_room.ControlRoom` ships what they return to every session, so the
wall's words live here, apart from the session plumbing.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from apps.snapshot import SUBSYSTEM_TITLES, Number, Snapshot, Tile
from apps.theme import QUALITY_COLOURS
from dqm.core.numbering import ranges_text

__all__ = [
    "RENDERED_ONCE",
    "header_html",
    "render_tiles",
    "render_header",
    "render_numbers",
    "render_strip",
    "age_text",
]


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


RENDERED_ONCE = _PerSnapshot()


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
    return header_html(
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


def header_html(snap: Snapshot, stale_after_s: float, age_shown: str, stale: bool) -> str:
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
