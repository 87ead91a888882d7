"""Paying what stored groups owe: dead letters, acknowledgements, closes; and the sweeps.

Once a group is stored (:func:`dqm.store.spills.commit_group`) its messages must be
acknowledged and its spills closed whatever happens next to Redis or the database. That
debt is the worker's :class:`~dqm.pipeline.state.Owed`; :func:`settle` pays it in order
(dead letters before acknowledgements, acknowledgements before closes) and drops each
piece only once done, so an outage half-way leaves the rest for the next call. A database
error is handed to the worker's outage handling (back-off), never raised; a Redis error
is raised for the worker's loop to back off and reconnect — after the closes, which need
only the database (a Redis outage must not make spills late).

A worker killed between storing a spill's last batch and closing it takes that debt
with it: every worker's periodic sweep closes such a spill (:func:`close_orphans`), as
it closes as incomplete the spills with no news for a spill timeout (:func:`sweep_stale`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from dqm.pipeline import stream as rs
from dqm.store.engine import OperationalError
from dqm.store.spills import closable_spills, complete_open_spills, stale_spills

if TYPE_CHECKING:
    from dqm.pipeline.worker import Worker

__all__ = ["settle", "close_spill", "close_orphans", "sweep_stale", "ORPHAN_AFTER_S"]

#: A complete spill still open this long after its last store lost its closer (which
#: closes it within a fraction of a second of storing, unless it died): any worker closes
#: it. Far below the spill timeout; long enough for a loaded closer to get there first.
ORPHAN_AFTER_S = 2.0

log = logging.getLogger("dqm.pipeline.worker")


def settle(w: Worker) -> None:
    """Do what stored messages still owe: dead letters, acks, then closing their spills.

    Closing needs only the database: when Redis is away the closes are done all the same,
    then the Redis error is raised for the worker's back-off (the acks wait for Redis).
    """
    try:
        _pay_redis(w)
    except (redis.ConnectionError, redis.TimeoutError):
        _pay_database(w)
        raise
    _pay_database(w)


def _pay_redis(w: Worker) -> None:
    """Dead letters, then acknowledgements (a message leaves the pending list only once the
    dead-letter stream holds it)."""
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


def _pay_database(w: Worker) -> None:
    """Close the spills that may be complete, judge again what late batches or new run
    conditions touched; each dropped from the debt once done."""
    owed = w.owed
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


def close_orphans(w: Worker) -> None:
    """Close the complete spills that a worker killed between storing their last batch
    and closing them left open (before or after its acknowledgement)."""
    try:
        with w.sessions() as session:
            orphans = complete_open_spills(session, ORPHAN_AFTER_S)
    except OperationalError as exc:
        w._db_failed(exc)
        return
    for sid in orphans:
        log.info("spill id %d complete but still open: closing it (its closer died?)", sid)
        if not close_spill(w, sid, incomplete=False):
            return


def sweep_stale(w: Worker) -> None:
    """Close as incomplete the spills with no news for ``spill_timeout_s``.

    Not within ``spill_timeout_s`` of recovering from an outage: the news of a spill
    may have been held up by the outage itself (in Redis, or in a worker's memory).
    """
    try:
        with w.sessions() as session:
            stale = stale_spills(session, w.settings.spill_timeout_s)
    except OperationalError as exc:
        w._db_failed(exc)
        return
    w._db_ok()
    if time.monotonic() < w.clock.sweep_after:
        return
    for sid in stale:
        if not close_spill(w, sid, incomplete=True):
            return


def _guarded(w: Worker, action: Callable[[int], bool], key: int) -> bool:
    """Run a closer action; False (and the worker's back-off) if the database is out."""
    try:
        return action(key)
    except OperationalError as exc:
        w._db_failed(exc)
        return False
