"""Paying what a worker's stored groups owe: dead letters, acknowledgements, closes.

Once a group is stored (:func:`dqm.store.spills.commit_group`) its messages must be
acknowledged and its spills closed whatever happens next to Redis or the database. That
debt is the worker's :class:`~dqm.pipeline.state.Owed`; :func:`settle` pays it in order
(dead letters before acknowledgements, acknowledgements before closes) and drops each
piece only once done, so an outage half-way leaves the rest for the next call. A database
error is handed to the worker's outage handling (back-off), never raised; a Redis error
is raised for the worker's loop to back off and reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from dqm.pipeline import stream as rs
from dqm.store.engine import OperationalError
from dqm.store.spills import closable_spills

if TYPE_CHECKING:
    from dqm.pipeline.worker import Worker

__all__ = ["settle", "close_spill"]

log = logging.getLogger("dqm.pipeline.worker")


def settle(w: Worker) -> None:
    """Do what stored messages still owe: dead letters, acks, then closing their spills."""
    owed, s = w.owed, w.settings
    while owed.dead:
        m, reason, detail = owed.dead[0]
        if not m.fields:
            # rejected when its group was stored: the worker let the payload go once
            # decoded, so the dead letter takes the original fields from the stream
            m = rs.fetch(w.r, s.stream, m.id) or m
        rs.dead_letter(w.r, s.dead_letter_stream, m, reason, detail, w.consumer)
        log.warning("dead-lettered: %s", detail, extra={"message_id": m.id, "reason": reason})
        # the dead-letter stream holds it now: off this group's pending list
        owed.ack.append(m.id)
        owed.dead.pop(0)
        w.stats.dead_letters += 1
    if owed.ack:
        rs.ack(w.r, s.stream, s.group, owed.ack)
        owed.ack = []
    if owed.close:
        try:
            with w.sessions() as session:
                ready = closable_spills(session, owed.close)
        except OperationalError as exc:
            w._db_failed(exc)
            return
        for sid in ready:
            if not close_spill(w, sid, incomplete=False, arrived=owed.arrived):
                return
        owed.close.clear()
        owed.arrived.clear()
    while owed.amend:
        spill_id = min(owed.amend)
        if not _guarded(w, w.closer.amend, spill_id):  # late batches: judge it again
            return
        owed.amend.discard(spill_id)
    while owed.rejudge:
        run = min(owed.rejudge)
        if not _guarded(w, w.closer.rejudge, run):  # its conditions changed: judge again
            return
        owed.rejudge.discard(run)


def close_spill(w: Worker, spill_id: int, *, incomplete: bool, arrived: dict | None = None) -> bool:
    """Close one spill (:class:`~dqm.pipeline.closing.SpillCloser`); False if the database
    is out and the caller must retry."""
    try:
        return w.closer.close(spill_id, incomplete=incomplete, arrived=arrived)
    except OperationalError as exc:
        w._db_failed(exc)
        return False


def _guarded(w: Worker, action: Callable[[int], bool], key: int) -> bool:
    """Run a closer action; False (and the worker's back-off) if the database is out."""
    try:
        return action(key)
    except OperationalError as exc:
        w._db_failed(exc)
        return False
