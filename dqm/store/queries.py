"""Named read queries over spills and flags: what the commands, pages and benchmarks ask.

Layer: I/O shell (store), read-only. Why named functions: "the closed spills of a run"
was written out in a dozen places, half of them with the literal status string; a
reader now finds each question once, here, and every caller asks it the same way.
Each takes a ``Session`` and returns ORM rows or plain values; none writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dqm.core.status import SPILL_COMPLETE, SPILL_INCOMPLETE, SPILL_OPEN
from dqm.store.models import AuditEntry, Flag, Run, Spill, SpillHistograms

__all__ = [
    "status_counts",
    "closed_spills",
    "count_closed_spills",
    "closed_spill_histograms",
    "runs_with_closed_spills",
    "recent_closed_spills",
    "newest_closed_summary",
    "newest_runs",
    "newest_spills",
    "spill_opening_times",
    "spill_flags",
    "worst_flag",
    "flag_reference_runs",
    "change_token",
    "ChangeWatch",
    "runs_in_period",
]


def closed_spills(session: Session, run: int | Iterable[int]) -> list[Spill]:
    """The closed (complete or incomplete) spills of a run, or of several, by run then spill."""
    runs = [run] if isinstance(run, int) else list(run)
    stmt = select(Spill).where(Spill.run.in_(runs), Spill.closed)
    return list(session.scalars(stmt.order_by(Spill.run, Spill.spill)))


def count_closed_spills(session: Session, run: int | None = None) -> int:
    """How many spills are closed: of ``run``, or of every run."""
    stmt = select(func.count()).select_from(Spill).where(Spill.closed)
    if run is not None:
        stmt = stmt.where(Spill.run == run)
    return int(session.scalar(stmt) or 0)


def closed_spill_histograms(
    session: Session, run: int, spill: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """(spill number, stored histograms) of the closed spills of ``run`` (or of its one
    ``spill``), in spill order; streamed 64 rows at a time, as a run may have thousands."""
    stmt = (
        select(Spill.spill, SpillHistograms.blob)
        .join(SpillHistograms, SpillHistograms.spill_id == Spill.id)
        .where(Spill.run == run, Spill.closed)
    )
    if spill is not None:
        stmt = stmt.where(Spill.spill == spill)
    return iter(session.execute(stmt.order_by(Spill.spill)).yield_per(64))


def runs_with_closed_spills(session: Session) -> list[int]:
    """Runs with at least one closed spill, newest first.

    Asked of the runs table (thousands of rows), one index probe each, rather than as the
    distinct runs of a million spills.
    """
    closed = select(Spill.id).where(Spill.run == Run.run, Spill.closed).exists()
    return list(session.scalars(select(Run.run).where(closed).order_by(Run.run.desc())))


def recent_closed_spills(session: Session, limit: int) -> list[Spill]:
    """The ``limit`` spills closed last, newest first (whatever their run)."""
    stmt = (
        select(Spill)
        .where(Spill.closed)
        .order_by(Spill.closed_at.desc(), Spill.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def newest_closed_summary(session: Session, run: int | None = None) -> dict:
    """The summary of the newest closed spill (of ``run``), ``{}`` if there is none."""
    stmt = select(Spill.summary).where(Spill.closed)
    if run is not None:
        stmt = stmt.where(Spill.run == run)
    return dict(session.scalar(stmt.order_by(Spill.id.desc()).limit(1)) or {})


def newest_runs(session: Session, limit: int) -> list[int]:
    """The ``limit`` highest run numbers that have a spill, open or closed, newest first."""
    stmt = select(Spill.run).distinct().order_by(Spill.run.desc()).limit(limit)
    return list(session.scalars(stmt))


def newest_spills(session: Session, limit: int) -> list[Spill]:
    """The ``limit`` spills opened last, open or closed, newest first."""
    return list(session.scalars(select(Spill).order_by(Spill.id.desc()).limit(limit)))


def spill_opening_times(
    session: Session, run: int, numbers: tuple[int, int] | None = None
) -> dict[int, datetime]:
    """Spill number -> when it opened, for the spills of ``run`` (within ``numbers``, inclusive)
    that reached the DQM: the gaps are the spills that never did."""
    stmt = select(Spill.spill, Spill.opened_at).where(Spill.run == run)
    if numbers is not None:
        stmt = stmt.where(Spill.spill.between(*numbers))
    return {n: t for n, t in session.execute(stmt)}


def spill_flags(session: Session, spill_id: int) -> list[Flag]:
    """Every flag row stored for one spill (checks and roll-ups)."""
    return list(session.scalars(select(Flag).where(Flag.spill_id == spill_id)))


def worst_flag(session: Session, run: int, spill: int, subsystem: str) -> Flag | None:
    """The spill's worst flag of ``subsystem`` (the first stored among equals)."""
    stmt = (
        select(Flag)
        .where(Flag.run == run, Flag.spill == spill, Flag.subsystem == subsystem)
        .order_by(Flag.quality.desc(), Flag.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def flag_reference_runs(session: Session, run: int) -> list[int]:
    """The reference runs a run's stored flags were judged against, in order."""
    stmt = select(Flag.reference_run).where(Flag.run == run, Flag.reference_run.is_not(None))
    return sorted(set(session.scalars(stmt.distinct())))


#: built once: the control room asks every 2 s
_CHANGE_TOKEN = select(
    select(func.max(Spill.id)).where(Spill.closed).scalar_subquery(),
    select(func.max(Spill.closed_at)).scalar_subquery(),
    select(func.max(AuditEntry.id)).scalar_subquery(),
)


def change_token(session: Session) -> tuple:
    """Newest closed spill, newest closing time, newest audit entry: it changes whenever the
    wall must redraw (a spill closed — also an older one closing late —, an expert acted).

    Three index look-ups (``spills.closed_at`` from migration 0004P), whatever the history:
    the control room asks every 2 s, so it must not count a million closed spills.
    """
    return tuple(session.execute(_CHANGE_TOKEN).one())


class ChangeWatch:
    """:func:`change_token` asked on a connection of its own: one round trip per check.

    Why: through a session each check cost four round trips to PostgreSQL — the pool's
    liveness ping, ``BEGIN``, the query, ``ROLLBACK`` — and on a loaded server each one
    waits for a CPU; the query itself is three index probes (≈ 0.1 ms). Here the
    connection stays open in autocommit, so a check is the query alone. A connection
    that broke (a server restart) is replaced once per check; a server that stays down
    raises as a session would. SQLite (a local file, no round trips) uses a short
    connection each time: one held open there would pin an old snapshot of the file.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # a connection serves one thread at a time

    def token(self) -> tuple:
        if self.engine.dialect.name != "postgresql":
            with self.engine.connect() as conn:
                return tuple(conn.execute(_CHANGE_TOKEN).one())
        with self._lock:
            return self._token()

    def _token(self) -> tuple:
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    )
                return tuple(self._conn.execute(_CHANGE_TOKEN).one())
            except DBAPIError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except DBAPIError:  # already broken: nothing to give back to the pool
                pass


def runs_in_period(session: Session, start: datetime, end: datetime) -> list[int]:
    """Runs with a spill closed in ``[start, end)``, oldest first (Trends over a time span)."""
    stmt = (
        select(Spill.run)
        .where(Spill.closed_at >= start, Spill.closed_at < end, Spill.closed)
        .distinct()
        .order_by(Spill.run)
    )
    return list(session.scalars(stmt))


#: Above this many spills (PostgreSQL's own estimate) ``dqm status`` estimates the complete
#: ones instead of counting them: an exact count reads every spill (110 ms at 100 000 at
#: load 12, ten times that at a million).
EXACT_COUNT_UP_TO = 200_000


def status_counts(session: Session, exact_up_to: int = EXACT_COUNT_UP_TO) -> tuple[dict, bool]:
    """Spills per status, and whether the complete ones are an estimate.

    Open and incomplete spills are few and counted exactly through the status index. On
    PostgreSQL with more than ``exact_up_to`` spills in the table's statistics, the
    complete ones are that estimate less the others (``pg_class.reltuples``, kept by
    ANALYZE and autovacuum); otherwise every spill is counted.
    """
    estimate = None
    if session.get_bind().dialect.name == "postgresql":
        estimate = session.scalar(
            text("SELECT reltuples::bigint FROM pg_class WHERE oid = 'spills'::regclass")
        )
    if estimate is None or estimate <= exact_up_to:
        rows = session.execute(select(Spill.status, func.count()).group_by(Spill.status))
        return {s: n for s, n in rows}, False
    rows = session.execute(
        select(Spill.status, func.count())
        .where(Spill.status.in_([SPILL_OPEN, SPILL_INCOMPLETE]))  # the status index
        .group_by(Spill.status)
    )
    counts = {s: n for s, n in rows}
    counts[SPILL_COMPLETE] = max(int(estimate) - sum(counts.values()), 0)
    return counts, True
