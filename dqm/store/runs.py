"""Runs and their conditions in the database: store an announcement, read it back.

A run's conditions arrive on the stream as a message that any worker of the group may
receive, possibly more than once (the DAQ may repeat them), possibly after some of the
run's spills were already closed. Storing them is therefore idempotent and ordered by
the announcement's stream id: a newer announcement replaces an older one, a repeat or a
late redelivery of an older one changes nothing. The row is locked ``FOR NO KEY UPDATE``
(as the flag roll-up does), so a worker judging a spill of the run — which takes the same
lock before reading the conditions — either sees the new conditions or is re-judged
after they are stored (:func:`dqm.store.flags.rejudge_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions, conditions_from_dict
from dqm.errors import BatchError
from dqm.store.models import Run, utcnow

__all__ = ["store_conditions", "run_conditions", "as_conditions", "lock_run", "ensure_run"]

log = logging.getLogger("dqm.store.runs")


def as_conditions(data: Mapping | None) -> RunConditions | None:
    """Stored JSON back to :class:`RunConditions` (None when absent or no longer valid)."""
    if not data:
        return None
    try:
        return conditions_from_dict(dict(data))
    except BatchError as exc:  # written by an older or newer DQM: say so, judge without
        log.warning("stored run conditions unreadable (%s): treated as unknown", exc.detail)
        return None


def ensure_run(session: Session, run: int) -> None:
    """The run row, created (conditions unknown) if this is the first news of the run."""
    from dqm.store.spills import insert_ignore

    insert_ignore(
        session, Run, {"run": run, "beam_config": None, "started_at": utcnow(), "comment": ""}
    )


def lock_run(session: Session, run: int) -> Run | None:
    """The run row, locked against a concurrent change of its conditions (PostgreSQL).

    ``FOR NO KEY UPDATE`` does not block the key-share locks that inserting the run's
    spills and flags takes, so only writers of the run row itself wait.
    """
    stmt = select(Run).where(Run.run == run).with_for_update(key_share=True)
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def _stream_order(message_id: str | None) -> tuple[int, int]:
    """Redis stream ids ``<ms>-<seq>`` in the order Redis gave them (unknown forms first)."""
    ms, _, seq = (message_id or "").partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return -1, -1


def store_conditions(session: Session, conditions: RunConditions, message_id: str) -> bool:
    """Record an announcement of a run's conditions; True when the run's conditions changed.

    Idempotent: the same conditions again, or an announcement older (by stream id) than
    the one in force, leave the run as it is. Call it after the spill rows of the same
    transaction are locked (the order every writer follows: spills, then the run).
    """
    ensure_run(session, conditions.run)
    row = lock_run(session, conditions.run)
    assert row is not None
    current = as_conditions(row.conditions)
    if _stream_order(message_id) < _stream_order(row.conditions_message):
        if not conditions.same_as(current):
            log.warning(
                "older conditions announcement %s for run %d ignored (in force: %s)",
                message_id,
                conditions.run,
                row.conditions_message,
                extra={"run": conditions.run},
            )
        return False
    row.conditions_message = message_id
    if conditions.same_as(current):
        return False
    if current is not None:
        log.warning(
            "run %d: conditions changed: %s",
            conditions.run,
            "; ".join(conditions.differences(current)) or "extra items",
            extra={"run": conditions.run},
        )
    row.conditions = conditions.to_dict()
    row.beam_config = conditions.beam_config
    row.conditions_at = utcnow()
    return True


def run_conditions(session: Session, run: int) -> RunConditions | None:
    """The run's conditions in force (None: never announced, or the run is unknown)."""
    data = session.scalar(select(Run.conditions).where(Run.run == run))
    return as_conditions(data)
