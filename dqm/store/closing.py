"""Closing spills: merge a spill's partials into its histograms and summary, exactly once.

Closing is a conditional ``UPDATE … WHERE status = 'open'``: whichever worker wins it
merges the partials; the others see zero rows changed and move on. A spill whose
partials cannot be merged is closed anyway (:func:`close_failed`) so that it is not
retried forever; its close hook then stores why. Split from :mod:`dqm.store.spills`
(which re-exports these names) to keep each module small.

**Closes of one run are ordered.** A spill is judged against the run's spills that closed
before it (:func:`dqm.store.history.earlier_spills`, by ``closed_at``). So that ``dqm
recheck`` sees exactly what the live judge saw, even when several workers close
neighbouring spills at once, a close takes the run's row lock right after winning the
spill and only then sets ``closed_at``, later than every ``closed_at`` already in the run
(whatever the clocks of the workers' hosts say). The lock is held until the close commits,
so a spill's ``closed_at`` is later than that of every spill whose close committed before
its judge read the history, and earlier than that of every spill whose close had not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import boost_histogram as bh
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from dqm.core.histio import FORMAT_VERSION, add_into, decode_histograms, encode_histograms
from dqm.core.summary import finalize, merge
from dqm.store.models import (
    SPILL_COMPLETE,
    SPILL_INCOMPLETE,
    SPILL_OPEN,
    Spill,
    SpillHistograms,
    SpillPartial,
    utcnow,
)
from dqm.store.runs import lock_run

__all__ = [
    "ClosedSpill",
    "try_close",
    "close_failed",
    "closable_spills",
    "stale_spills",
    "spill_identity",
    "complete_open_spills",
    "CLOSE_ORDER_STEP",
    "HeldPartials",
]

#: The least a spill's ``closed_at`` exceeds that of the run's spill closed before it.
CLOSE_ORDER_STEP = timedelta(milliseconds=1)


def _take_close_order(session: Session, sp: Spill) -> None:
    """Lock the spill's run (until commit) and give the spill the run's next ``closed_at``."""
    lock_run(session, sp.run)
    last = session.scalar(
        select(func.max(Spill.closed_at)).where(
            Spill.run == sp.run, Spill.closed, Spill.id != sp.id
        )
    )
    now = utcnow()
    sp.closed_at = max(now, last + CLOSE_ORDER_STEP) if last is not None else now


@dataclass
class ClosedSpill:
    spill_id: int
    run: int
    spill: int
    status: str
    hists: dict[str, bh.Histogram]
    summary: dict[str, float | None]
    #: why the spill's partials could not be merged (:func:`close_failed`), else None
    error: str | None = None


@dataclass
class HeldPartials:
    """The sum of the partials one worker stored for an open spill, kept in its memory.

    ``partial_ids`` are the ``spill_partials`` rows whose contents ``hists`` and
    ``moments`` add up to (summed in row order). Closing the spill then decodes only the
    rows *not* in ``partial_ids`` (other workers', or one whose commit this worker could
    not confirm): decoding and merging a spill's own partials was most of a close. The
    database stays the truth — a row the memory does not name is read from it, and a
    memory naming a row the spill no longer has is not used.
    """

    partial_ids: list[int] = field(default_factory=list)
    hists: dict[str, bh.Histogram] = field(default_factory=dict)
    moments: dict[str, float] = field(default_factory=dict)

    def add(self, partial_id: int, hists: dict[str, bh.Histogram], moments: dict) -> None:
        """One more stored partial (``hists`` is taken over, not copied)."""
        if not self.partial_ids:
            self.hists, self.moments = hists, dict(moments)
        else:
            add_into(self.hists, hists)
            self.moments = merge(self.moments, moments)
        self.partial_ids.append(partial_id)


def _merged_partials(
    session: Session,
    spill_id: int,
    book: Callable[[], dict[str, bh.Histogram]],
    held: HeldPartials | None,
) -> tuple[dict[str, bh.Histogram], dict[str, float]]:
    """The spill's partials summed: ``held`` for the rows it names, the rest decoded."""
    ids = list(
        session.scalars(
            select(SpillPartial.id)
            .where(SpillPartial.spill_id == spill_id)
            .order_by(SpillPartial.id)
        )
    )
    mine = set(held.partial_ids) if held is not None else set()
    if held is not None and mine and mine <= set(ids):
        others = [i for i in ids if i not in mine]
        # summed into a fresh set (≈ 0.3 ms): the judge gets histograms of its own, and a
        # close rolled back by an outage leaves ``held`` as it was for the next attempt
        hists = add_into(book(), held.hists)
        moments = dict(held.moments)
    else:
        others, hists, moments = ids, book(), {}
    for i in range(0, len(others), 500):
        for blob in session.scalars(
            select(SpillPartial.blob)
            .where(SpillPartial.id.in_(others[i : i + 500]))
            .order_by(SpillPartial.id)
        ):
            part_h, part_m = decode_histograms(blob)
            add_into(hists, part_h)
            moments = merge(moments, part_m)
    return hists, moments


def try_close(
    session: Session,
    spill_id: int,
    book: Callable[[], dict[str, bh.Histogram]],
    *,
    incomplete: bool = False,
    held: HeldPartials | None = None,
) -> ClosedSpill | None:
    """Close the spill if it is complete (or, with ``incomplete``, whatever it has).

    ``held``: what the closing worker itself stored for the spill (:class:`HeldPartials`).

    Returns None when another worker closed it first or it is not complete yet.
    """
    cond = [Spill.id == spill_id, Spill.status == SPILL_OPEN]
    if not incomplete:
        cond += [
            Spill.expected_batches.is_not(None),
            Spill.received_batches >= Spill.expected_batches,
        ]
    status = SPILL_INCOMPLETE if incomplete else SPILL_COMPLETE
    res = session.execute(update(Spill).where(*cond).values(status=status, closed_at=utcnow()))
    if res.rowcount != 1:
        return None
    sp = session.get(Spill, spill_id, populate_existing=True)
    assert sp is not None
    _take_close_order(session, sp)
    if (
        incomplete
        and sp.expected_batches is not None
        and sp.received_batches >= sp.expected_batches
    ):
        sp.status = status = SPILL_COMPLETE  # everything arrived after all
    hists, moments = _merged_partials(session, spill_id, book, held)
    summary = finalize(moments)
    summary["received_batches"] = sp.received_batches
    summary["expected_batches"] = sp.expected_batches
    blob = encode_histograms(hists)
    session.merge(
        SpillHistograms(
            spill_id=spill_id, format_version=FORMAT_VERSION, size_bytes=len(blob), blob=blob
        )
    )
    sp.summary = summary
    session.execute(delete(SpillPartial).where(SpillPartial.spill_id == spill_id))
    session.flush()
    return ClosedSpill(spill_id, sp.run, sp.spill, status, hists, summary)


def close_failed(session: Session, spill_id: int, error: str) -> ClosedSpill | None:
    """Close a spill whose partials cannot be merged (e.g. filled under other specs).

    The spill is closed as incomplete with what its row knows (counts, no histograms),
    its partials are kept for an expert to look at, and the returned
    :class:`ClosedSpill` carries ``error`` so the close hook stores a CHECK_ERROR flag
    saying why. Without this a spill whose close raises would be retried forever.

    Returns:
        None when another worker closed it first.
    """
    res = session.execute(
        update(Spill)
        .where(Spill.id == spill_id, Spill.status == SPILL_OPEN)
        .values(status=SPILL_INCOMPLETE, closed_at=utcnow())
    )
    if res.rowcount != 1:
        return None
    sp = session.get(Spill, spill_id, populate_existing=True)
    assert sp is not None
    _take_close_order(session, sp)
    summary: dict[str, float | None] = {
        "n_events": float(sp.n_events or 0),
        "received_batches": sp.received_batches,
        "expected_batches": sp.expected_batches,
    }
    sp.summary = dict(summary)
    session.flush()
    return ClosedSpill(spill_id, sp.run, sp.spill, SPILL_INCOMPLETE, {}, summary, error)


def spill_identity(session: Session, spill_id: int) -> tuple[int, int, str] | None:
    """``(run, spill, status)`` of a spill id, for log lines and announcements."""
    row = session.execute(
        select(Spill.run, Spill.spill, Spill.status).where(Spill.id == spill_id)
    ).first()
    return (int(row[0]), int(row[1]), str(row[2])) if row else None


def closable_spills(session: Session, spill_ids: Iterable[int]) -> list[int]:
    ids = list(spill_ids)
    if not ids:
        return []
    stmt = select(Spill.id).where(
        Spill.id.in_(ids),
        Spill.status == SPILL_OPEN,
        Spill.expected_batches.is_not(None),
        Spill.received_batches >= Spill.expected_batches,
    )
    return list(session.scalars(stmt))


def complete_open_spills(session: Session, quiet_s: float, limit: int = 100) -> list[int]:
    """Open spills whose batches have all been stored, with no news for ``quiet_s``.

    Normally the worker that stored a spill's last batch closes it at once; one found here
    is a close owed by a worker that died between storing and closing (before or after
    acknowledging). Any worker may close it: closing is conditional, so two trying is safe.
    """
    cutoff = utcnow() - timedelta(seconds=quiet_s)
    stmt = (
        select(Spill.id)
        .where(
            Spill.status == SPILL_OPEN,
            Spill.expected_batches.is_not(None),
            Spill.received_batches >= Spill.expected_batches,
            Spill.updated_at < cutoff,
        )
        .order_by(Spill.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def stale_spills(session: Session, timeout_s: float, now: datetime | None = None) -> list[int]:
    """Open spills with no news for ``timeout_s`` that still miss batches or their marker:
    to be closed as incomplete.

    A spill whose announced batches have all been stored is never one of them, however long
    its close has waited (a busy worker judging the spills before it, or a closer that died):
    it is closed as complete by its owner or by :func:`complete_open_spills`' sweep.
    """
    cutoff = (now or utcnow()) - timedelta(seconds=timeout_s)
    missing = or_(Spill.expected_batches.is_(None), Spill.received_batches < Spill.expected_batches)
    stmt = (
        select(Spill.id)
        .where(Spill.status == SPILL_OPEN, Spill.updated_at < cutoff, missing)
        .order_by(Spill.id)
    )
    return list(session.scalars(stmt))
