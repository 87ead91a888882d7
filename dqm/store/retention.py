"""Retention of the store: what is deleted once nothing can need it again (issue 15, item 5).

The exactly-once ledger (``processed_messages``) is read only when a message id arrives
again: a redelivery of a pending message, or a reclaim of a dead consumer's. Redis can
deliver only an entry its stream still holds, so ledger rows of ids older than the oldest
entry the stream and every pending list still hold (:func:`dqm.pipeline.retention.ledger_horizon`)
can never be asked for again. They are deleted here in small transactions, oldest first,
so a worker inserting new ids never waits on the pruner.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dqm.store.models import ProcessedMessage, Spill

__all__ = ["ledger_rows_before", "prune_ledger"]


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
