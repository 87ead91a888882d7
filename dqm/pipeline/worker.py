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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dqm.config import Settings
from dqm.core.conditions import RunConditions, decode_conditions
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.specs import SpecSet
from dqm.core.summary import accumulate
from dqm.core.variables import BatchView
from dqm.errors import BatchError, ConfigError
from dqm.pipeline import stream as rs
from dqm.pipeline.closing import SpillCloser
from dqm.store.spills import (
    ClosedSpill,
    Contribution,
    LateBatches,
    closable_spills,
    commit_group,
    processed_ids,
    seen_batches,
    stale_spills,
)

__all__ = ["Worker", "WorkerStats", "CloseHook"]

log = logging.getLogger("dqm.pipeline.worker")

#: Called inside the closing transaction; may write flags and return extra fields to announce.
#: A hook may also have ``amend(session, spill_id) -> dict | None``, called (in its own
#: transaction) when late batches were counted against a spill it judged already.
CloseHook = Callable[[Session, ClosedSpill], dict | None]

#: How many spills' announced batch counts a worker remembers (to set aside extra batches).
MARKERS_KEPT = 4096


@dataclass
class WorkerStats:
    events: int = 0
    batches: int = 0
    markers: int = 0
    conditions: int = 0
    rejudged: int = 0
    dead_letters: int = 0
    duplicates_skipped: int = 0
    commits: int = 0
    conflicts: int = 0
    db_errors: int = 0
    redis_errors: int = 0
    spills_closed: int = 0
    reclaimed: int = 0
    late_batches: int = 0  # set aside: beyond the count their spill's marker announced
    check_errors: int = 0  # CHECK_ERROR flags stored, and close hooks that raised
    close_latency_s: list[float] = field(default_factory=list)


class Worker:
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
        self.sessions = sessions
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
        #: batches announced by the first end-of-spill marker of each recent spill: a batch
        #: whose index is beyond it is late
        self._markers: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._reset_group()
        self._owed = _Owed()
        self._replay = True  # on start, our own pending messages come first
        self._last_commit = time.monotonic()
        self._last_claim = 0.0
        self._last_sweep = 0.0
        self._backoff_s = 0.1  # Redis
        self._db_backoff_s = 0.1
        self._db_retry_at = 0.0  # after a database error: no new work before this
        self._db_failing = False
        self._sweep_after = 0.0  # no closing of stale spills before this (see _recovered)
        self.stop_grace_s = STOP_GRACE_S

    # ------------------------------------------------------------------ state
    def _reset_group(self) -> None:
        self._open: dict[tuple[int, int], Contribution] = {}
        self._conditions: list[tuple[str, RunConditions]] = []
        self._dead: list[tuple[rs.Message, str, str]] = []
        self._skip_ack: list[str] = []
        self._group_batches: set[tuple[int, int, int]] = set()
        self._arrived: dict[tuple[int, int], float] = {}
        self._held: set[str] = set()  # ids of every message in hand (a re-claim of one is ignored)
        self._marker_msgs: dict[str, rs.Message] = {}  # markers in hand, for their dead letters

    def stop(self) -> None:
        """Ask the loop to finish the chunk in hand, commit and return (also on SIGTERM)."""
        self._stop.set()

    @property
    def _has_group(self) -> bool:
        return bool(self._open or self._conditions or self._dead or self._skip_ack)

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
            if burst and not got and not self._replay and not self._db_failing:
                self.flush()
                if not self._has_group and not self._owed:
                    break
        self.flush()
        return self.stats

    def step(self, block_ms: int) -> int:
        """One read-process cycle; returns the number of messages read."""
        s = self.settings
        now = time.monotonic()
        if now < self._db_retry_at:  # the database is down: wait, read nothing new
            self._stop.wait(min(self._db_retry_at - now, block_ms / 1000.0))
            return 0
        if self._owed:
            self._settle()
        if self._db_failing and self._has_group and not self._commit():
            return 0  # first store what we hold; nothing new until that works
        try:
            if now - self._last_claim > s.claim_idle_ms / 2000.0:
                self._last_claim = now
                claimed = rs.claim_stale(
                    self.r, s.stream, s.group, self.consumer, min_idle_ms=s.claim_idle_ms
                )
                fresh = [
                    m for m in claimed if m.id not in self._held
                ]  # our own idle ones come back too
                if fresh:
                    self.stats.reclaimed += len(fresh)
                    log.info("reclaimed %d pending messages from dead consumers", len(fresh))
                    self._process(fresh, check_seen=True)
            if self._replay:
                msgs = rs.read_group(
                    self.r,
                    s.stream,
                    s.group,
                    self.consumer,
                    count=max(s.read_count, 64),
                    block_ms=None,
                    pending=True,
                )
                fresh = [m for m in msgs if m.id not in self._held]
                if not fresh:
                    self._replay = False
                else:
                    self._process(fresh, check_seen=True)
                    self._maybe_commit(force=True)
                    return len(fresh)
        except OperationalError as exc:  # the ledger could not be read: look again later
            self._db_failed(exc)
            self._replay = True
            return 0
        msgs = rs.read_group(
            self.r, s.stream, s.group, self.consumer, count=s.read_count, block_ms=block_ms
        )
        news = self.stats.markers + self.stats.conditions
        self._process(msgs, check_seen=False)
        # an end-of-spill marker is a spill that may now close, run conditions are what the
        # other workers judge with: commit at once rather than after the commit interval
        self._maybe_commit(force=self.stats.markers + self.stats.conditions > news)
        if now - self._last_sweep > 1.0:
            self._last_sweep = now
            self._sweep_stale()
        return len(msgs)

    def flush(self) -> None:
        """Commit and settle what is in hand, retrying while a service is down.

        When stopping, give up after ``stop_grace_s``: what is not stored stays pending
        in Redis and is delivered again (to this worker's successor or another one).
        """
        deadline = time.monotonic() + self.stop_grace_s
        while self._has_group or self._owed:
            try:
                if (not self._has_group or self._commit()) and self._owed:
                    self._settle()
                if not self._has_group and not self._owed:
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
            time.sleep(min(max(self._db_backoff_s, self._backoff_s), 2.0))

    # ------------------------------------------------------------------ processing
    def _process(self, msgs: list[rs.Message], *, check_seen: bool) -> None:
        if not msgs:
            return
        stored: set[str] = set()
        if check_seen:
            with self.sessions() as session:
                stored = processed_ids(session, self.settings.stream, [m.id for m in msgs])
        for m in msgs:
            if m.id in self._held:
                continue
            if m.id in stored:
                self.stats.duplicates_skipped += 1
                self._skip_ack.append(m.id)
                self._held.add(m.id)
                continue
            try:
                self._handle(m, check_seen)
            except BatchError as exc:
                self._dead.append((m, exc.reason, exc.detail))
            self._held.add(m.id)

    def _handle(self, m: rs.Message, check_seen: bool) -> None:
        kind = m.type
        if kind == b"batch":
            payload = m.fields.get(b"payload")
            if payload is None:
                raise BatchError("missing-payload", "batch message has no 'payload' field")
            batch = _decode(decode_batch, payload)
            key3 = (batch.run, batch.spill, batch.batch_index)
            if key3 in self._group_batches or (
                check_seen and seen_batches_one(self.sessions, *key3)
            ):
                raise BatchError(
                    "duplicate-batch",
                    f"run {batch.run} spill {batch.spill} batch {batch.batch_index} is already "
                    "stored",
                )
            self._group_batches.add(key3)
            c = self._contribution(batch.run, batch.spill)
            announced = self._markers.get((batch.run, batch.spill))
            if announced is not None and batch.batch_index >= announced:
                # beyond the count its marker announced: late, whatever the order or grouping
                c.late.append((m.id, batch.n_events))
                self.stats.late_batches += 1
                return
            if c.hists is None:
                c.hists = self.filler.book()
            view = BatchView(batch.columns)
            self.filler.fill(c.hists, view)
            accumulate(c.moments, view)
            c.n_events += batch.n_events
            c.batches.append((m.id, batch.batch_index))
            self.stats.events += batch.n_events
            self.stats.batches += 1
        elif kind == b"eos":
            eos = _decode(rs.parse_eos, m.fields)
            c = self._open.get((eos.run, eos.spill))
            if c is not None and c.marker is not None:
                raise BatchError(
                    "duplicate-marker",
                    f"second end-of-spill marker for run {eos.run} spill {eos.spill}",
                )
            c = self._contribution(eos.run, eos.spill)
            c.marker = (m.id, eos.n_batches, eos.n_events)
            self._marker_msgs[m.id] = m
            self._remember_marker(eos.run, eos.spill, eos.n_batches)
            self._arrived[(eos.run, eos.spill)] = time.monotonic()
            self.stats.markers += 1
        elif kind == b"conditions":
            cond = _decode(decode_conditions, m.fields.get(b"payload"))
            self._conditions.append((m.id, cond))
            self.stats.conditions += 1
        else:
            raise BatchError(
                "unknown-type",
                f"message type {kind[:40]!r}; expected b'batch', b'eos' or b'conditions'",
            )

    def _remember_marker(self, run: int, spill: int, n_batches: int) -> None:
        """Keep the batch count of the spill's *first* marker: batches beyond it are late."""
        key = (run, spill)
        self._markers.setdefault(key, n_batches)
        self._markers.move_to_end(key)
        while len(self._markers) > MARKERS_KEPT:
            self._markers.popitem(last=False)

    def _contribution(self, run: int, spill: int) -> Contribution:
        key = (run, spill)
        c = self._open.get(key)
        if c is None:
            c = self._open[key] = Contribution(run=run, spill=spill)
        self._arrived[key] = time.monotonic()
        return c

    # ------------------------------------------------------------------ committing
    def _maybe_commit(self, force: bool = False) -> None:
        if self._has_group and (
            force or time.monotonic() - self._last_commit >= self.settings.commit_interval_s
        ):
            self._commit()

    def _commit(self) -> bool:
        """Store the group in one transaction; on success owe Redis its acks (see _settle)."""
        s = self.settings
        contributions = list(self._open.values())
        try:
            with self.sessions.begin() as session:
                outcome = commit_group(
                    session,
                    s.stream,
                    self.consumer,
                    contributions,
                    [m.id for m, _, _ in self._dead],
                    conditions=self._conditions,
                )
        except IntegrityError:
            self.stats.conflicts += 1
            log.warning(
                "a message in this group was stored by another worker; replaying our pending "
                "messages"
            )
            self._reset_group()
            self._replay = True
            return True
        except LateBatches as late:
            # batches in hand are beyond the count of a marker an earlier group stored:
            # replay them knowing the count, so they are set aside as late, not counted
            log.info("%s; replaying the group", late)
            for (run, spill), n_batches in late.announced.items():
                self._markers[(run, spill)] = n_batches  # the stored (first) marker's count
            self._reset_group()
            self._replay = True
            return True
        except OperationalError as exc:
            self._db_failed(exc, holding=len(contributions))
            self._last_commit = time.monotonic()
            return False
        self._db_ok()
        # stored: from now on these messages must be acknowledged, whatever happens to Redis
        owed = self._owed
        owed.ack.extend(mid for c in contributions for mid in c.message_ids)
        owed.ack.extend(mid for mid, _ in self._conditions)
        owed.ack.extend(self._skip_ack)
        owed.rejudge.update(outcome.conditions_changed)
        owed.dead.extend(self._dead)
        owed.dead.extend(
            (self._marker_msgs.get(mid) or rs.Message(mid, {}), reason, why)
            for mid, kind, reason, why in outcome.rejected
        )
        owed.close.update(outcome.spill_ids)
        owed.amend.update(outcome.amend)
        owed.arrived.update(self._arrived)
        self.stats.commits += 1
        self._reset_group()
        self._last_commit = time.monotonic()
        self._settle()
        return True

    def _settle(self) -> None:
        """Do what stored messages still owe: dead letters, acks, then closing their spills.

        Each piece is dropped from the debt only once done, so a Redis or database
        outage half-way just leaves the rest for the next step (a dead letter is never
        written twice, an ack twice is harmless, closing is conditional).
        """
        owed, s = self._owed, self.settings
        while owed.dead:
            m, reason, detail = owed.dead[0]
            if not m.fields:
                # rejected when its group was stored: the worker let the payload go once
                # decoded, so the dead letter takes the original fields from the stream
                m = rs.fetch(self.r, s.stream, m.id) or m
            rs.dead_letter(self.r, s.dead_letter_stream, m, reason, detail, self.consumer)
            log.warning("dead-lettered: %s", detail, extra={"message_id": m.id, "reason": reason})
            owed.ack.append(
                m.id
            )  # the dead-letter stream holds it now: off this group's pending list
            owed.dead.pop(0)
            self.stats.dead_letters += 1
        if owed.ack:
            rs.ack(self.r, s.stream, s.group, owed.ack)
            owed.ack = []
        if owed.close:
            try:
                with self.sessions() as session:
                    ready = closable_spills(session, owed.close)
            except OperationalError as exc:
                self._db_failed(exc)
                return
            for sid in ready:
                if not self._close(sid, incomplete=False, arrived=owed.arrived):
                    return
            owed.close.clear()
            owed.arrived.clear()
        while owed.amend:
            if not self._amend(min(owed.amend)):
                return
            owed.amend.discard(min(owed.amend))
        while owed.rejudge:
            run = min(owed.rejudge)
            if not self._rejudge(run):
                return
            owed.rejudge.discard(run)

    def _close(self, spill_id: int, *, incomplete: bool, arrived: dict | None = None) -> bool:
        """Close one spill (:class:`~dqm.pipeline.closing.SpillCloser`); False if the
        database is out and the caller must retry."""
        try:
            return self.closer.close(spill_id, incomplete=incomplete, arrived=arrived)
        except OperationalError as exc:
            self._db_failed(exc)
            return False

    def _amend(self, spill_id: int) -> bool:
        """Late batches were counted against a closed spill: judge it again."""
        try:
            return self.closer.amend(spill_id)
        except OperationalError as exc:
            self._db_failed(exc)
            return False

    def _rejudge(self, run: int) -> bool:
        """A run's conditions changed: judge again its spills judged under other ones."""
        try:
            return self.closer.rejudge(run)
        except OperationalError as exc:
            self._db_failed(exc)
            return False

    def _sweep_stale(self) -> None:
        """Close as incomplete the spills with no news for ``spill_timeout_s``.

        Not within ``spill_timeout_s`` of recovering from an outage: the news of a spill
        may have been held up by the outage itself (in Redis, or in a worker's memory).
        """
        try:
            with self.sessions() as session:
                stale = stale_spills(session, self.settings.spill_timeout_s)
        except OperationalError as exc:
            self._db_failed(exc)
            return
        self._db_ok()
        if time.monotonic() < self._sweep_after:
            return
        for sid in stale:
            if not self._close(sid, incomplete=True):
                return

    # ------------------------------------------------------------------ outages
    def _recovered(self) -> None:
        self._sweep_after = time.monotonic() + self.settings.spill_timeout_s

    def _db_failed(self, exc: OperationalError, holding: int = 0) -> None:
        self.stats.db_errors += 1
        if not self._db_failing:
            log.error(
                "database unavailable (%s); keeping %d spills' partials, nothing acknowledged",
                exc.orig,
                holding,
            )
        self._db_failing = True
        self._db_retry_at = time.monotonic() + self._db_backoff_s
        self._db_backoff_s = min(self._db_backoff_s * 2, MAX_BACKOFF_S)

    def _db_ok(self) -> None:
        if self._db_failing:
            log.warning("database reachable again")
            self._db_failing = False
            self._recovered()
        self._db_backoff_s = 0.1

    def _ensure_group(self) -> None:
        rs.ensure_group(self.r, self.settings.stream, self.settings.group)

    def _redis_trouble(self, exc: Exception) -> None:
        self.stats.redis_errors += 1
        log.warning("redis unavailable (%s); retrying in %.1f s", exc, self._backoff_s)
        self._stop.wait(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
        try:
            self._ensure_group()  # a Redis that lost its data needs the group again
        except (redis.ConnectionError, redis.TimeoutError):
            return
        log.warning("redis reachable again")
        self._backoff_s = 0.1
        self._recovered()


#: Longest wait between two attempts to reach Redis or the database.
MAX_BACKOFF_S = 2.0
#: How long a stopping worker keeps trying to store and acknowledge what it holds.
STOP_GRACE_S = 8.0


@dataclass
class _Owed:
    """Work owed to Redis (and closing) by groups already stored in the database."""

    ack: list[str] = field(default_factory=list)
    dead: list[tuple[rs.Message, str, str]] = field(default_factory=list)
    close: set[int] = field(default_factory=set)
    arrived: dict[tuple[int, int], float] = field(default_factory=dict)
    amend: set[int] = field(default_factory=set)  # closed spills that got late batches
    rejudge: set[int] = field(default_factory=set)  # runs whose conditions changed

    def __bool__(self) -> bool:
        return bool(self.ack or self.dead or self.close or self.amend or self.rejudge)


def _decode(decoder: Callable, raw):
    """Run a decoder; anything it did not foresee is still the message's fault, not a crash."""
    try:
        return decoder(raw)
    except BatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a poison message must never crash-loop the worker
        log.exception("decoder failed on a message: dead-lettering it")
        raise BatchError("undecodable", f"{type(exc).__name__}: {exc}"[:500]) from None


def seen_batches_one(
    sessions: sessionmaker[Session], run: int, spill: int, batch_index: int
) -> bool:
    with sessions() as session:
        return bool(seen_batches(session, run, spill, [batch_index]))
