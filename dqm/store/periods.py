"""What the report reads for a period: its closed spills, their flags and histograms.

Layer: I/O shell (store), read-only. A period is a run, or a UTC window on the spills'
closing times (:class:`dqm.report.data.Period` is one); every query here restricts to
the closed spills of the period in one place, :func:`_in_period`. Times are compared in
SQL as they are: the column type (:class:`dqm.store.models.UTCDateTime`) converts the
bounds for SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP
from dqm.store.models import Flag, Reference, Spill, SpillHistograms

__all__ = [
    "PeriodLike",
    "period_spills",
    "period_flags",
    "period_flag_counts",
    "period_reference_runs",
    "period_histogram_blobs",
    "references_by_set_time",
]


class PeriodLike(Protocol):
    """A run (``run``), or a window ``start <= closed_at < end`` (either bound may be open)."""

    @property
    def run(self) -> int | None: ...

    @property
    def start(self) -> datetime | None: ...

    @property
    def end(self) -> datetime | None: ...


def _in_period(stmt: Select, period: PeriodLike) -> Select:
    """Restrict a query over ``Spill`` to the period's closed spills."""
    stmt = stmt.where(Spill.closed, Spill.closed_at.is_not(None))
    if period.run is not None:
        stmt = stmt.where(Spill.run == period.run)
    if period.start is not None:
        stmt = stmt.where(Spill.closed_at >= period.start)
    if period.end is not None:
        stmt = stmt.where(Spill.closed_at < period.end)
    return stmt


def period_spills(session: Session, period: PeriodLike) -> list:
    """The period's closed spills, in closing order: rows of the columns the report shows
    (``id run spill status closed_at n_events quality summary``), not ORM objects — building
    2000 of those cost ≈ 0.1 s of a day's gathering."""
    cols = (
        Spill.id,
        Spill.run,
        Spill.spill,
        Spill.status,
        Spill.closed_at,
        Spill.n_events,
        Spill.quality,
        Spill.summary,
    )
    stmt = _in_period(select(*cols), period).order_by(Spill.closed_at, Spill.run, Spill.spill)
    return list(session.execute(stmt))


def period_flags(session: Session, period: PeriodLike, min_quality: int) -> list[Flag]:
    """Flags of the period's spills of ``min_quality`` or worse, in closing order."""
    stmt = _in_period(
        select(Flag).join(Spill, Spill.id == Flag.spill_id).where(Flag.quality >= min_quality),
        period,
    )
    return list(session.scalars(stmt.order_by(Spill.closed_at, Flag.run, Flag.spill, Flag.id)))


def period_flag_counts(session: Session, period: PeriodLike) -> list[tuple[str, int, int]]:
    """(subsystem, quality, number of check flags) over the period; roll-ups left out."""
    stmt = _in_period(
        select(Flag.subsystem, Flag.quality, func.count())
        .join(Spill, Spill.id == Flag.spill_id)
        .where(Flag.check != ROLLUP),
        period,
    ).group_by(Flag.subsystem, Flag.quality)
    return [(s, int(q), int(n)) for s, q, n in session.execute(stmt)]


def period_reference_runs(session: Session, period: PeriodLike) -> set[int]:
    """Every reference run the period's flags were judged against."""
    stmt = _in_period(
        select(Flag.reference_run)
        .distinct()
        .join(Spill, Spill.id == Flag.spill_id)
        .where(Flag.reference_run.is_not(None)),
        period,
    )
    return set(session.scalars(stmt))


def period_histogram_blobs(session: Session, period: PeriodLike) -> Iterator[bytes]:
    """The stored histograms of the period's closed spills, streamed (64 rows at a time)."""
    stmt = _in_period(
        select(SpillHistograms.blob).join(Spill, Spill.id == SpillHistograms.spill_id), period
    )
    return iter(session.scalars(stmt).yield_per(64))


def references_by_set_time(session: Session) -> list[Reference]:
    """Every reference ever set (active or retired), oldest first."""
    return list(session.scalars(select(Reference).order_by(Reference.set_at)))
