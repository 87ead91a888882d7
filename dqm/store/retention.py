"""Retention of the store: what is deleted once nothing can need it again (issue 15, item 5).

The exactly-once ledger (``processed_messages``) is read only when a message id arrives
again: a redelivery of a pending message, or a reclaim of a dead consumer's. Redis can
deliver only an entry its stream still holds, so ledger rows of ids older than the oldest
entry the stream and every pending list still hold (:func:`dqm.pipeline.retention.ledger_horizon`)
can never be asked for again. They are deleted here in small transactions, oldest first,
so a worker inserting new ids never waits on the pruner.

Per-spill histograms (``spill_histograms``, ≈ 12 kB a spill) of spills older than a
configured age are deleted once their run's aggregate (:mod:`dqm.store.rollup`) covers them
and is current — except every spill with a WARNING, BAD or CHECK_ERROR flag (or verdict),
spills never judged, and every spill of a reference run (:func:`prune_spill_histograms`).
The sums stay whole: every reader of a run's or a period's sum reads the aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dqm.checks import Quality
from dqm.store.models import (
    Flag,
    ProcessedMessage,
    Reference,
    RunHistograms,
    Spill,
    SpillHistograms,
)
from dqm.store.rollup import AggregateInfo, aggregate_is_current

__all__ = [
    "ledger_rows_before",
    "prune_ledger",
    "HistogramPrune",
    "prunable_spill_histograms",
    "prune_spill_histograms",
]

#: a spill with a flag of this quality or worse keeps its own histograms (the evidence)
KEEP_FROM = int(Quality.WARNING)


def _older_than(stream: str, before_ms: int):
    """Ledger rows of ``stream`` with an id ``<ms>-<seq>`` whose ``ms`` < ``before_ms``.

    Ids are compared as text, which the primary key's index orders: ``"<ms>-"`` sorts after
    every id of an earlier millisecond with as many digits (Redis's automatic ids have 13
    from 2001 to 2286), before every id of that millisecond or later. Rows of a spill still
    open are kept whatever their age: its batches are still checked against the ledger's
    (spill, batch) uniqueness.
    """
    still_open = select(Spill.id).where(~Spill.closed)
    return and_(
        ProcessedMessage.stream == stream,
        ProcessedMessage.message_id < f"{before_ms}-",
        or_(ProcessedMessage.spill_id.is_(None), ProcessedMessage.spill_id.not_in(still_open)),
    )


def ledger_rows_before(session: Session, stream: str, before_ms: int) -> int:
    """How many ledger rows of ``stream`` :func:`prune_ledger` would delete."""
    return (
        session.scalar(
            select(func.count()).select_from(ProcessedMessage).where(_older_than(stream, before_ms))
        )
        or 0
    )


def prune_ledger(
    sessions: sessionmaker[Session],
    stream: str,
    before_ms: int,
    *,
    chunk: int = 5000,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Delete the ledger rows of ``stream`` older than ``before_ms``, a range of ``chunk``
    ids per transaction, oldest first; returns how many were deleted.

    Each range starts where the last ended (the index entries of deleted rows stay until
    VACUUM: starting at the oldest each time would read them all again) and is deleted as a
    range of the primary key, an index scan whatever the table's size.
    """
    mid = ProcessedMessage.message_id
    deleted, after = 0, ""
    while not should_stop():
        with sessions.begin() as session:
            upper = session.scalar(
                select(mid)
                .where(ProcessedMessage.stream == stream, mid > after, mid < f"{before_ms}-")
                .order_by(mid)
                .offset(chunk - 1)
                .limit(1)
            )
            in_range = mid > after if upper is None else and_(mid > after, mid <= upper)
            done = session.execute(
                delete(ProcessedMessage)
                .where(_older_than(stream, before_ms), in_range)
                .execution_options(synchronize_session=False)
            )
            deleted += done.rowcount or 0
        if upper is None:
            break
        after = upper
    return deleted


def _prunable(older_than: datetime):
    """Spills whose own histograms may go: closed before ``older_than``, covered by their
    run's aggregate, judged and at worst NO_DATA, no WARNING+ flag, not of a reference run."""
    flagged = (
        select(Flag.id)
        .where(Flag.spill_id == Spill.id, Flag.quality >= KEEP_FROM)  # ix_flags_flagged_spill
        .exists()
    )
    reference_runs = select(Reference.run)
    return and_(
        Spill.closed,
        Spill.closed_at < older_than,
        Spill.closed_at <= RunHistograms.closed_until,
        Spill.quality.is_not(None),
        Spill.quality < KEEP_FROM,
        ~flagged,
        Spill.run.not_in(reference_runs),
    )


def prunable_spill_histograms(session: Session, older_than: datetime) -> int:
    """How many per-spill histogram rows :func:`prune_spill_histograms` would delete (given
    current aggregates)."""
    stmt = (
        select(func.count())
        .select_from(SpillHistograms)
        .join(Spill, Spill.id == SpillHistograms.spill_id)
        .join(RunHistograms, RunHistograms.run == Spill.run)
        .where(_prunable(older_than))
    )
    return int(session.scalar(stmt) or 0)


@dataclass
class HistogramPrune:
    deleted: int = 0
    runs: int = 0
    #: runs whose aggregate no longer counts their spills: left alone (rolled up again first)
    stale_runs: list[int] | None = None


def prune_spill_histograms(
    sessions: sessionmaker[Session],
    older_than: datetime,
    *,
    runs_per_pass: int = 20,
    should_stop: Callable[[], bool] = lambda: False,
) -> HistogramPrune:
    """Delete the per-spill histograms :func:`_prunable` allows, one run per transaction.

    Each run's aggregate is checked current (:func:`dqm.store.rollup.aggregate_is_current`)
    in the same transaction that deletes, under its row lock (``FOR SHARE``: a roll-up
    extending it waits, a worker closing a spill never does — it touches other rows), so a
    deleted spill is always one the aggregate holds. ``runs_per_pass`` runs are looked up
    at a time, oldest first, until none is left or ``should_stop``.
    """
    out = HistogramPrune(stale_runs=[])
    skip: set[int] = set()
    while not should_stop():
        with sessions() as session:
            runs = list(
                session.scalars(
                    select(Spill.run)
                    .join(SpillHistograms, SpillHistograms.spill_id == Spill.id)
                    .join(RunHistograms, RunHistograms.run == Spill.run)
                    .where(_prunable(older_than), Spill.run.not_in(skip or {-1}))
                    .distinct()
                    .order_by(Spill.run)
                    .limit(runs_per_pass)
                )
            )
        if not runs:
            break
        for run in runs:
            if should_stop():
                break
            with sessions.begin() as session:
                row = session.execute(
                    select(RunHistograms.n_spills, RunHistograms.closed_until)
                    .where(RunHistograms.run == run)
                    .with_for_update(read=True)
                ).one()
                if not aggregate_is_current(session, AggregateInfo(run, *row)):
                    skip.add(run)
                    assert out.stale_runs is not None
                    out.stale_runs.append(run)
                    continue
                ids = select(Spill.id).join(RunHistograms, RunHistograms.run == Spill.run)
                ids = ids.where(Spill.run == run, _prunable(older_than))
                done = session.execute(
                    delete(SpillHistograms)
                    .where(SpillHistograms.spill_id.in_(ids))
                    .execution_options(synchronize_session=False)
                )
                out.deleted += done.rowcount or 0
                out.runs += 1
            skip.add(run)
    return out
