"""The DQM worker: a Redis Streams consumer that fills histograms and stores them exactly once.

Loop: read a chunk of messages through the consumer group → decode and fill whole
batches into per-spill partials in memory → every ``commit_interval_s`` write the
group (partials + processed message ids) in one transaction → only then XACK →
close the spills that became complete (merge, summarise, run the close hooks such as
checks, announce on pub/sub).

Failure handling, each in one place:

* run conditions (``type=conditions``) → stored with the run in the group's transaction
  (idempotent, newest announcement wins); spills of that run already judged under other
  conditions are judged again and announced (the close hooks' ``rejudge``);
* malformed input → dead-letter stream with the reason (and recorded, so a
  redelivery is not dead-lettered twice); the worker carries on — even a payload
  that makes a decoder fail in an unforeseen way is dead-lettered, never a crash loop;
* a message stored already (a redelivery, or a race with a worker that reclaimed
  it) → the group's transaction fails on the ledger's primary key, everything in
  memory is dropped, and the worker replays its own pending messages, skipping
  those now found stored;
* database unreachable → keep the partials, do not acknowledge, read nothing new
  until they are stored (retry with back-off);
* Redis unreachable → back off and reconnect (recreating the group if Redis lost it);
  acknowledgements owed by groups already stored are kept and sent once it is back;
* after either outage, no spill is closed as incomplete for ``spill_timeout_s``: its
  missing news may just have been held up by the outage;
* a dead consumer → its pending messages are reclaimed with XAUTOCLAIM (a reclaim of
  a message this worker still holds is ignored);
* a check, a close hook or the merging of a spill that raises → the spill still closes
  and is announced, with a CHECK_ERROR flag saying what failed
  (:mod:`dqm.pipeline.closing`); only a database outage defers the close;
* a batch whose index is beyond the count its spill's end-of-spill marker announced →
  late: dead-lettered (``beyond-marker``), counted on the spill, judged
  (``daq/marker_mismatch``), the same whatever ``DQM_READ_COUNT`` and whether it came
  before or after the marker (a replay settles a marker stored by an earlier group);
* SIGTERM → finish the chunk in hand, commit, acknowledge, exit (with the database
  down: give up after ``stop_grace_s``, acknowledging nothing — it is all redelivered).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import redis

from dqm.config import Settings
from dqm.core.fill import Filler
from dqm.core.specs import SpecSet
from dqm.errors import ConfigError
from dqm.pipeline import stream as rs
from dqm.pipeline.closing import SpillCloser
from dqm.pipeline.intake import Intake
from dqm.pipeline.settle import close_orphans, close_spill, settle, sweep_stale
from dqm.pipeline.state import (
    MARKERS_KEPT,
    MAX_BACKOFF_S,
    Backoff,
    Clock,
    DatabaseHealth,
    HeldSpills,
    InHand,
    MarkerCounts,
    Owed,
    WorkerStats,
)
from dqm.store.engine import IntegrityError, OperationalError, Session, sessionmaker
from dqm.store.spills import ClosedSpill, LateBatches, commit_group

__all__ = ["Worker", "WorkerStats", "CloseHook", "MARKERS_KEPT", "MAX_BACKOFF_S", "STOP_GRACE_S"]

log = logging.getLogger("dqm.pipeline.worker")

#: Called inside the closing transaction; may write flags and return extra fields to announce.
#: A hook may also have ``amend(session, spill_id) -> dict | None``, called (in its own
#: transaction) when late batches were counted against a spill it judged already.
CloseHook = Callable[[Session, ClosedSpill], dict | None]

#: How long a stopping worker keeps trying to store and acknowledge what it holds.
STOP_GRACE_S = 8.0
#: How often a worker looks for spills that another worker left unclosed: complete ones
#: (its close was lost with it) and ones with no news for a spill timeout.
SWEEP_EVERY_S = 1.0


class Worker:
    """One consumer of the stream. Its state lives in small objects, each with its invariant
    (:mod:`dqm.pipeline.state`): ``hand`` (read, not stored), ``owed`` (stored, not yet
    acknowledged or closed), ``markers`` (announced batch counts), ``db`` and
    ``redis_backoff`` (outages), ``clock`` (periodic chores); ``replaying`` says that this
    consumer's own pending messages must be read again before anything new.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        redis_client: redis.Redis,
        sessions: sessionmaker[Session],
        specs: SpecSet,
        consumer: str | None = None,
        close_hooks: list[CloseHook] | None = None,
    ) -> None:
        self.settings = settings
        self.r = redis_client
        self.specs = specs
        self.filler = Filler(specs)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        for setting, value in (("--consumer", self.consumer), ("DQM_STREAM", settings.stream)):
            if not value or len(value) > 128:  # both are stored in 128-character columns
                raise ConfigError(setting, value, "a name of 1 to 128 characters")
        self.close_hooks = list(close_hooks or [])
        self.stats = WorkerStats()
        self.closer = SpillCloser(self)
        self._stop = threading.Event()
        self.hand = InHand()
        self.owed = Owed()
        self.markers = MarkerCounts()
        self.held = HeldSpills()
        self.db = DatabaseHealth()
        self.redis_backoff = Backoff()
        self.clock = Clock()
        self.replaying = True  # on start, our own pending messages come first
        self.intake = Intake(
            stream=settings.stream,
            sessions=sessions,
            filler=self.filler,
            stats=self.stats,
            hand=self.hand,
            markers=self.markers,
        )
        self.sessions = sessions
        self.stop_grace_s = STOP_GRACE_S

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._sessions

    @sessions.setter
    def sessions(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = self.intake.sessions = sessions

    def stop(self) -> None:
        """Ask the loop to finish the chunk in hand, commit and return (also on SIGTERM)."""
        self._stop.set()

    # ------------------------------------------------------------------ loop
    def run(self, *, burst: bool = False, max_seconds: float | None = None) -> WorkerStats:
        """Consume until stopped; with ``burst`` drain the stream and return."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
        t_end = time.monotonic() + max_seconds if max_seconds else None
        ready = False
        while not self._stop.is_set():
            if t_end and time.monotonic() > t_end:
                break
            try:
                if not ready:
                    self._ensure_group()
                    ready = True
                got = self.step(block_ms=50 if burst else self.settings.block_ms)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._redis_trouble(exc)
                continue
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis lost the stream or the group (restarted without persistence, or deleted)
                log.warning(
                    "consumer group %s is gone (%s); recreating it", self.settings.group, exc
                )
                self.stats.redis_errors += 1
                ready = False
                continue
            if burst and not got and not self.replaying and not self.db.failing:
                self.flush()
                if not self.hand and not self.owed:
                    break
        self.flush()
        return self.stats

    def step(self, block_ms: int) -> int:
        """One read-process cycle; returns the number of messages read."""
        s, clock = self.settings, self.clock
        now = time.monotonic()
        wait = self.db.waiting(now)
        if wait > 0:  # the database is down: wait, read nothing new
            self._stop.wait(min(wait, block_ms / 1000.0))
            return 0
        if self.owed:
            self._settle()
        if self.db.failing and self.hand and not self._commit():
            return 0  # first store what we hold; nothing new until that works
        try:
            if now - clock.last_claim > s.claim_idle_ms / 2000.0:
                clock.last_claim = now
                self._reclaim()
            if self.replaying:
                got = self._replay_own()
                if got:
                    return got
        except OperationalError as exc:  # the ledger could not be read: look again later
            self._db_failed(exc)
            self.replaying = True
            return 0
        msgs = rs.read_group(
            self.r, s.stream, s.group, self.consumer, count=s.read_count, block_ms=block_ms
        )
        news = self.stats.markers + self.stats.conditions
        self.intake.process(msgs, check_seen=False)
        # an end-of-spill marker is a spill that may now close, run conditions are what the
        # other workers judge with: commit at once rather than after the commit interval
        self._maybe_commit(force=self.stats.markers + self.stats.conditions > news)
        if now - clock.last_sweep > SWEEP_EVERY_S:
            clock.last_sweep = now
            self._close_orphans()
            # "no news for a spill timeout" holds only once the news is in: the group has
            # been delivered everything (a read short of its count) and we hold nothing
            # unstored; a worker still working through a backlog (a slow first judging, a
            # restart behind the DAQ) would otherwise time out a spill whose rest it has not
            # read yet
            if len(msgs) < s.read_count and not self.hand:
                self._sweep_stale()
        return len(msgs)

    def _reclaim(self) -> None:
        """Take over the messages a dead consumer left pending (our own idle ones come back
        too, and are ignored while in hand)."""
        s = self.settings
        claimed = rs.claim_stale(
            self.r, s.stream, s.group, self.consumer, min_idle_ms=s.claim_idle_ms
        )
        fresh = [m for m in claimed if m.id not in self.hand.held]
        if fresh:
            self.stats.reclaimed += len(fresh)
            log.info("reclaimed %d pending messages from dead consumers", len(fresh))
            self.owed.close.update(self.intake.process(fresh, check_seen=True))

    def _replay_own(self) -> int:
        """Read again this consumer's own pending messages (after a start, a conflict or a
        late batch); returns how many were new to the group, 0 once all are replayed."""
        s = self.settings
        msgs = rs.read_group(
            self.r,
            s.stream,
            s.group,
            self.consumer,
            count=max(s.read_count, 64),
            block_ms=None,
            pending=True,
        )
        fresh = [m for m in msgs if m.id not in self.hand.held]
        if not fresh:
            self.replaying = False
            return 0
        self.owed.close.update(self.intake.process(fresh, check_seen=True))
        self._maybe_commit(force=True)
        return len(fresh)

    def flush(self) -> None:
        """Commit and settle what is in hand, retrying while a service is down.

        When stopping, give up after ``stop_grace_s``: what is not stored stays pending
        in Redis and is delivered again (to this worker's successor or another one).
        """
        deadline = time.monotonic() + self.stop_grace_s
        while self.hand or self.owed:
            try:
                if (not self.hand or self._commit()) and self.owed:
                    self._settle()
                if not self.hand and not self.owed:
                    break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.stats.redis_errors += 1
                log.warning("redis unavailable while flushing (%s)", exc)
            if self._stop.is_set() and time.monotonic() > deadline:
                log.error(
                    "stopping with work not stored or not acknowledged; its messages stay pending "
                    "for redelivery"
                )
                break
            time.sleep(min(max(self.db.backoff.delay_s, self.redis_backoff.delay_s), 2.0))

    # ------------------------------------------------------------------ committing
    def _maybe_commit(self, force: bool = False) -> None:
        if self.hand and (
            force or time.monotonic() - self.clock.last_commit >= self.settings.commit_interval_s
        ):
            self._commit()

    def _commit(self) -> bool:
        """Store the group in one transaction; on success it owes Redis its acks (_settle)."""
        s, hand = self.settings, self.hand
        contributions = list(hand.spills.values())
        try:
            with self.sessions.begin() as session:
                outcome = commit_group(
                    session,
                    s.stream,
                    self.consumer,
                    contributions,
                    [m.id for m, _, _ in hand.dead],
                    conditions=hand.conditions,
                )
        except IntegrityError:
            self.stats.conflicts += 1
            log.warning(
                "a message in this group was stored by another worker; replaying our pending "
                "messages"
            )
            hand.clear()
            self.replaying = True
            return True
        except LateBatches as late:
            # batches in hand are beyond the count of a marker an earlier group stored:
            # replay them knowing the count, so they are set aside as late, not counted
            log.info("%s; replaying the group", late)
            for (run, spill), n_batches in late.announced.items():
                self.markers.learn(run, spill, n_batches)
            hand.clear()
            self.replaying = True
            return True
        except OperationalError as exc:
            self._db_failed(exc, holding=len(contributions))
            self.clock.last_commit = time.monotonic()
            return False
        self._db_ok()
        # stored: from now on these messages must be acknowledged, whatever happens to Redis
        owed = self.owed
        owed.ack.extend(hand.message_ids())
        owed.rejudge.update(outcome.conditions_changed)
        owed.dead.extend(hand.dead)
        owed.dead.extend(
            (hand.marker_msgs.get(mid) or rs.Message(mid, {}), reason, why)
            for mid, kind, reason, why in outcome.rejected
        )
        owed.close.update(outcome.spill_ids)
        owed.amend.update(outcome.amend)
        owed.arrived.update(hand.arrived)
        self.stats.commits += 1
        for c in contributions:  # what closing these spills need not decode again
            stored = outcome.partials.get((c.run, c.spill))
            if stored is not None and c.hists is not None:
                self.held.stored(*stored, c.hists, c.moments)
        # counted when stored, not when filled: a group dropped for a conflict or replayed for
        # late batches is filled again, and the group's workers' counts must add up to the run
        self.stats.events += sum(c.n_events for c in contributions)
        self.stats.batches += sum(len(c.batches) for c in contributions)
        hand.clear()
        self.clock.last_commit = time.monotonic()
        self._settle()
        return True

    def _settle(self) -> None:
        """Do what stored groups still owe (:func:`dqm.pipeline.settle.settle`)."""
        settle(self)

    def _close(self, spill_id: int, *, incomplete: bool, arrived: dict | None = None) -> bool:
        return close_spill(self, spill_id, incomplete=incomplete, arrived=arrived)

    def _close_orphans(self) -> None:
        close_orphans(self)

    def _sweep_stale(self) -> None:
        sweep_stale(self)

    # ------------------------------------------------------------------ outages
    def _db_failed(self, exc: OperationalError, holding: int = 0) -> None:
        self.stats.db_errors += 1
        if self.db.failed():
            log.error(
                "database unavailable (%s); keeping %d spills' partials, nothing acknowledged",
                exc.orig,
                holding,
            )

    def _db_ok(self) -> None:
        if self.db.ok():
            log.warning("database reachable again")
            self.clock.recovered(self.settings.spill_timeout_s)

    def _ensure_group(self) -> None:
        rs.ensure_group(self.r, self.settings.stream, self.settings.group)

    def _redis_trouble(self, exc: Exception) -> None:
        self.stats.redis_errors += 1
        wait = self.redis_backoff.failed()
        log.warning("redis unavailable (%s); retrying in %.1f s", exc, wait)
        now = time.monotonic()
        if now - self.clock.last_sweep > SWEEP_EVERY_S:  # closing needs only the database
            self.clock.last_sweep = now
            self._close_orphans()
        self._stop.wait(wait)
        try:
            self._ensure_group()  # a Redis that lost its data needs the group again
        except (redis.ConnectionError, redis.TimeoutError):
            return
        log.warning("redis reachable again")
        self.redis_backoff.reset()
        self.clock.recovered(self.settings.spill_timeout_s)
