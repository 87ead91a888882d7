"""What the wall screen shows, built once per spill from the store: an immutable snapshot.

Why one immutable object: the data refresher builds it in its own thread while every
open control-room session reads the previous one; swapping a reference is atomic in
Python, so no session ever sees half a spill and no lock is held while drawing.
Everything a session needs (tiles, numbers with their trend, plot columns) is
precomputed here, so a session's update costs no query and no histogram arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.plots import plot_data
from dqm.checks import ROLLUP, Quality, quality_name
from dqm.core.evaluate import severity
from dqm.core.numbering import settled_gaps
from dqm.core.specs import SUBSYSTEMS, SpecSet
from dqm.core.words import plain_words
from dqm.store import Session
from dqm.store.alarms import active_silence
from dqm.store.incidents import open_incidents
from dqm.store.models import Flag, StoredIncident
from dqm.store.queries import recent_closed_spills, spill_flags, spill_opening_times
from dqm.store.references import ReferenceCache, active_reference
from dqm.store.runs import run_conditions
from dqm.store.spills import spill_histograms

__all__ = [
    "Tile",
    "Alarm",
    "Silence",
    "Number",
    "Snapshot",
    "EMPTY",
    "build_snapshot",
    "build_plots",
    "PlotCache",
    "KEY_NUMBERS",
    "SUBSYSTEM_TITLES",
]

#: how many recent spills the trend sparklines and the quality strip show
RECENT_SPILLS = 30

SUBSYSTEM_TITLES = {
    "calorimeter": "Calorimeter",
    "beam": "Beam",
    "momentum": "Momentum",
    "pik": "π/K",
    "daq": "DAQ",
}

#: (label, unit, summary key, error key, digits): the last spill's key numbers, in wall order
KEY_NUMBERS: tuple[tuple[str, str, str, str | None, int], ...] = (
    ("intensity", "events", "n_events", None, 0),
    ("beam x (MS1)", "mm", "beam_x_mean_ms1_0", None, 2),
    ("beam y (MS1)", "mm", "beam_y_mean_ms1_0", None, 2),
    ("beam σx", "mm", "beam_sigma_x_ms1_0", None, 2),
    ("beam σy", "mm", "beam_sigma_y_ms1_0", None, 2),
    ("p_BMS mean", "GeV", "p_bms_mean", None, 2),
    ("p_MS2 mean", "GeV", "p_ms2_mean", None, 2),
    ("Δp width", "GeV", "dp_sigma", None, 2),
    ("π/K fraction", "%", "pik_fraction", "pik_fraction_err", 2),
)


@dataclass(frozen=True)
class Tile:
    """One subsystem's verdict on the last spill, and what the shifter should do."""

    subsystem: str
    quality: str  # GOOD | WARNING | CHECK_ERROR | BAD | NO_DATA
    explanation: str = ""
    instruction: str = ""
    histogram: str | None = None
    check: str | None = None
    acknowledged_by: str | None = None
    #: the incident elsewhere this tile's state follows from ("MS1 absent in 50 % of events")
    #: and its subsystem: the tile sends the shifter there, not to its own expert
    follows_from: str = ""
    follows_subsystem: str = ""

    @property
    def title(self) -> str:
        return SUBSYSTEM_TITLES.get(self.subsystem, self.subsystem)


@dataclass(frozen=True)
class Number:
    label: str
    unit: str
    value: float | None
    error: float | None
    trend: tuple[float | None, ...]
    digits: int = 2


@dataclass(frozen=True)
class Alarm:
    """An open incident as the wall shows it: what, where, since when, what to do."""

    id: int
    run: int
    subsystem: str
    quality: str
    title: str
    explanation: str
    instruction: str
    first_spill: int
    last_spill: int
    n_spills: int
    opened_at: datetime
    histogram: str | None = None

    @property
    def where(self) -> str:
        return SUBSYSTEM_TITLES.get(self.subsystem, self.subsystem)

    @classmethod
    def of(cls, row: StoredIncident) -> Alarm:
        return cls(
            row.id,
            row.run,
            row.subsystem,
            quality_name(row.quality),
            row.title,
            row.explanation,
            row.instruction,
            row.first_spill,
            row.last_spill,
            row.n_spills,
            row.opened_at,
            row.histogram,
        )


@dataclass(frozen=True)
class Silence:
    """The alarm sound silenced by ``by`` until ``until`` for incidents up to ``up_to``."""

    by: str
    reason: str
    until: datetime
    up_to: int


@dataclass(frozen=True)
class Snapshot:
    """The control room's whole state after one spill (``version`` counts refreshes)."""

    version: int = 0
    spill_id: int | None = None
    #: the last spill's run: its beam configuration (None: conditions unknown) and its
    #: conditions as the header shows them
    beam_config: str | None = None
    conditions: str = ""
    run: int | None = None
    spill: int | None = None
    status: str = ""
    closed_at: datetime | None = None
    n_events: int = 0
    quality: str = "NO_DATA"
    tiles: tuple[Tile, ...] = tuple(Tile(s, "NO_DATA", "no spill closed yet") for s in SUBSYSTEMS)
    numbers: tuple[Number, ...] = ()
    recent: tuple[tuple[int, int, str], ...] = ()
    plots: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    reference_run: int | None = None
    #: spills of this run, among the recent ones, that never reached the DQM (a gap in the numbers)
    missing: tuple[int, ...] = ()
    #: open (unacknowledged) incidents, worst first, and the silence of their sound if any
    alarms: tuple[Alarm, ...] = ()
    silence: Silence | None = None

    def sounding(self, now: datetime | None = None) -> tuple[int, ...]:
        """Ids of the open incidents whose alarm sounds: all unless silenced (a silence
        covers the incidents open when it was given, until it expires)."""
        s = self.silence
        if s is not None and s.until > (now or datetime.now(UTC)):
            return tuple(a.id for a in self.alarms if a.id > s.up_to)
        return tuple(a.id for a in self.alarms)

    def age_s(self, now: datetime | None = None) -> float | None:
        if self.closed_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.closed_at).total_seconds())

    def is_stale(self, stale_after_s: float, now: datetime | None = None) -> bool:
        """No spill at all, or none closed within ``stale_after_s``."""
        age = self.age_s(now)
        return age is None or age > stale_after_s


EMPTY = Snapshot()


def _tiles(flags: list[Flag], specs: SpecSet | None = None) -> tuple[Tile, ...]:
    """Per subsystem: the worst check that could judge the spill (the roll-up's rule,
    :func:`dqm.checks.judged_worst`), NO_DATA only when none could.

    Among equally bad checks the tile shows one nobody has acknowledged yet (the
    shifter still has to act on it), then the first stored: acknowledging one of two
    BAD flags must not make the tile look handled.

    A subsystem whose state follows from a cause elsewhere (its roll-up row names it,
    :func:`dqm.store.flags.store_verdict`) keeps its quality but shows "follows from: …"
    instead of its own instruction; a GOOD one says which checks a cause left unjudged.
    """

    def rank(f: Flag) -> tuple:
        return (severity(f.quality), f.acknowledged_by is None, -(f.id or 0))

    worst: dict[str, Flag] = {}
    waiting: dict[str, int] = {}
    follows: dict[str, dict] = {}
    unjudged: dict[str, list[dict]] = {}  # NO_DATA flags that a cause elsewhere explains
    for f in flags:
        cause = (f.details or {}).get("follows_from") if isinstance(f.details, dict) else None
        if f.check == ROLLUP:
            if isinstance(cause, dict):
                follows[f.subsystem] = cause
            continue
        if f.quality == int(Quality.NO_DATA):
            waiting[f.subsystem] = waiting.get(f.subsystem, 0) + 1
            if isinstance(cause, dict):
                unjudged.setdefault(f.subsystem, []).append(cause)
        cur = worst.get(f.subsystem)
        if cur is None or rank(f) > rank(cur):
            worst[f.subsystem] = f
    tiles = []
    for s in SUBSYSTEMS:
        f = worst.get(s)
        if f is None:
            tiles.append(Tile(s, "NO_DATA", "no check configured for this subsystem"))
            continue
        q = quality_name(f.quality)
        bad = q in ("WARNING", "CHECK_ERROR", "BAD")  # the shifter has something to do
        cause = follows.get(s, {})
        if q == "GOOD":
            text = "all checks passed" + _waiting_text(waiting.get(s, 0), unjudged.get(s, []))
        else:  # the shifter's words; the statistic is on the expert page (the tile's link)
            title = _spec_title(specs, f.histogram)
            text = plain_words(f.check, title, q) if specs is not None else f.explanation
        tiles.append(
            Tile(
                s,
                q,
                text,
                f.instruction if bad and not cause else "",
                f.histogram,
                f.check,
                f.acknowledged_by,
                str(cause.get("explanation", "")),
                str(cause.get("subsystem", "")),
            )
        )
    return tuple(tiles)


def _spec_title(specs: SpecSet | None, histogram: str | None) -> str | None:
    if specs is None or not histogram:
        return None
    try:
        return specs[histogram].title
    except KeyError:
        return histogram


def _waiting_text(n: int, unjudged: list[dict]) -> str:
    """What a GOOD tile adds about its NO_DATA checks: why a cause elsewhere left them."""
    if not n:
        return ""
    if not unjudged:
        return f" ({n} waiting for data or a reference)"
    why = "; ".join(sorted({str(c.get("explanation", "")) for c in unjudged}))
    rest = n - len(unjudged)
    also = f"; {rest} waiting for data or a reference" if rest else ""
    return f" ({len(unjudged)} not judged: {why}{also})"


def _numbers(last: Mapping[str, Any], history: list[Mapping[str, Any]]) -> tuple[Number, ...]:
    def val(summary: Mapping[str, Any], key: str | None) -> float | None:
        v = summary.get(key) if key else None
        return float(v) if isinstance(v, (int, float)) else None

    out = []
    for label, unit, key, err_key, digits in KEY_NUMBERS:
        scale = 100.0 if unit == "%" else 1.0
        value, err = val(last, key), val(last, err_key)
        trend = tuple(None if (v := val(h, key)) is None else v * scale for h in history)
        out.append(
            Number(
                label,
                unit,
                None if value is None else value * scale,
                None if err is None else err * scale,
                trend,
                digits,
            )
        )
    return tuple(out)


def build_snapshot(
    session: Session,
    specs: SpecSet,
    *,
    version: int = 0,
    plots: Mapping[str, dict[str, Any]] | None = None,
    settle_s: float = 30.0,
) -> Snapshot:
    """The last closed spill's verdict, numbers and trend (a few small queries, no histogram
    decoding).

    ``plots`` are carried over from the previous snapshot: the refresher publishes the
    tiles first and the plots (:func:`build_plots`) right after, so the verdict reaches
    the wall without waiting for histogram decoding. ``settle_s``: a gap in the spill
    numbers counts as never received once the spill after it is that old (the spill timeout).
    """
    recent_rows = recent_closed_spills(session, RECENT_SPILLS)
    alarms = tuple(Alarm.of(r) for r in open_incidents(session))
    quiet = active_silence(session)
    silence = (
        Silence(quiet.created_by, quiet.reason, quiet.until, quiet.up_to_incident)
        if quiet
        else None
    )
    if not recent_rows:
        return Snapshot(
            version=version,
            alarms=alarms,
            silence=silence,
            plots=plots
            if plots is not None
            else {s.name: plot_data(s, None) for s in specs if s.control_room},
        )
    last = recent_rows[0]
    same_run = [r for r in reversed(recent_rows) if r.run == last.run]
    flags = spill_flags(session, last.id)
    cond = run_conditions(session, last.run)
    beam_config = cond.beam_config if cond else None  # unknown conditions: no reference
    ref = active_reference(session, beam_config)
    lo, hi = min(r.spill for r in same_run), max(r.spill for r in same_run)
    opened = spill_opening_times(session, last.run, (lo, hi))
    return Snapshot(
        version=version,
        spill_id=last.id,
        beam_config=beam_config,
        conditions=cond.describe() if cond else "",
        run=last.run,
        spill=last.spill,
        status=last.status,
        closed_at=last.closed_at,
        n_events=int(last.n_events or 0),
        quality=quality_name(last.quality),
        tiles=_tiles(flags, specs),
        numbers=_numbers(last.summary or {}, [r.summary or {} for r in same_run]),
        recent=tuple(
            sorted((r.run, r.spill, quality_name(r.quality)) for r in recent_rows)
        ),  # in spill order, whatever order they closed in
        plots=plots or {},
        reference_run=ref.run if ref else None,
        missing=tuple(settled_gaps(opened, datetime.now(UTC), settle_s)),
        alarms=alarms,
        silence=silence,
    )


class PlotCache:
    """The plot columns of the spill last drawn, kept by the refresher that drew them.

    Why: the wall is rebuilt whenever an expert acts (an acknowledgement, a mask) as well
    as when a spill closes, and the plots of the same spill against the same reference are
    the same numbers; so only a newly closed spill — or a new reference — decodes
    histograms, and only its own. Used from the refresher's thread alone (it holds the
    build lock), hence no lock here.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._plots: dict[str, dict[str, Any]] = {}
        self.hits = 0

    def get(self, key: tuple) -> dict[str, dict[str, Any]] | None:
        if key == self._key:
            self.hits += 1
            return self._plots
        return None

    def put(self, key: tuple, plots: dict[str, dict[str, Any]]) -> None:
        self._key, self._plots = key, plots


def build_plots(
    session: Session,
    specs: SpecSet,
    refs: ReferenceCache,
    snap: Snapshot,
    cache: PlotCache | None = None,
) -> dict[str, dict[str, Any]]:
    """Plot columns of the snapshot's spill with the active reference overlaid.

    Decodes the wall's histograms of that spill only (not the ~40 others of its blob), and
    nothing at all when ``cache`` holds this spill against this reference already.
    """
    if snap.spill_id is None:
        return {s.name: plot_data(s, None) for s in specs if s.control_room}
    ref = active_reference(session, snap.beam_config)
    key = (snap.spill_id, snap.n_events, ref.id if ref else None)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    shown = [s for s in specs if s.control_room]
    ref_hists = refs.get(session, ref)
    hists = spill_histograms(session, snap.spill_id, {s.name for s in shown})
    plots = {
        s.name: plot_data(
            s, hists.get(s.name), ref_hists.get(s.name), n_events=float(snap.n_events) or None
        )
        for s in shown
    }
    if cache is not None:
        cache.put(key, plots)
    return plots
