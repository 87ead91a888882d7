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

from sqlalchemy import and_, delete, func, or_, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from dqm.store.models import ProcessedMessage, Spill

__all__ = ["ledger_rows_before", "prune_ledger"]


def _older_than(stream: str, before_ms: int):
    """Ledger rows of ``stream`` with an id ``<ms>-<seq>`` whose ``ms`` < ``before_ms``.

    Ids are compared as text: ``"<ms>-"`` sorts after every id of an earlier millisecond
    with the same number of digits (13 from 2001 to 2286), before every id of that
    millisecond or later. Ids with another number of digits are never selected (kept).
    Rows of a spill still open are kept whatever their age: its batches may still be
    counted against the ledger's (spill, batch) uniqueness.
    """
    bound = f"{before_ms}-"
    digits = len(str(before_ms))
    still_open = select(Spill.id).where(~Spill.closed)
    return and_(
        ProcessedMessage.stream == stream,
        ProcessedMessage.message_id < bound,
        func.substr(ProcessedMessage.message_id, digits + 1, 1) == "-",
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
    """Delete the ledger rows of ``stream`` older than ``before_ms``, ``chunk`` rows per
    transaction (each a primary-key range of the oldest); returns how many were deleted."""
    pk = tuple_(ProcessedMessage.stream, ProcessedMessage.message_id)
    deleted = 0
    while not should_stop():
        oldest = (
            select(ProcessedMessage.stream, ProcessedMessage.message_id)
            .where(_older_than(stream, before_ms))
            .order_by(ProcessedMessage.message_id)
            .limit(chunk)
        )
        with sessions.begin() as session:
            keys = session.execute(oldest).all()
            if not keys:
                break
            session.execute(delete(ProcessedMessage).where(pk.in_([tuple(k) for k in keys])))
        deleted += len(keys)
        if len(keys) < chunk:
            break
    return deleted
