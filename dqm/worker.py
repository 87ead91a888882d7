"""The DQM worker: a Redis Streams consumer that fills histograms and stores them exactly once.

Loop: read a chunk of messages through the consumer group → decode and fill whole
batches into per-spill partials in memory → every ``commit_interval_s`` write the
group (partials + processed message ids) in one transaction → only then XACK →
close the spills that became complete (merge, summarise, run the close hooks such as
checks, announce on pub/sub).

Failure handling, each in one place:

* malformed input → dead-letter stream with the reason (and recorded, so a
  redelivery is not dead-lettered twice); the worker carries on;
* a message stored already (a redelivery, or a race with a worker that reclaimed
  it) → the group's transaction fails on the ledger's primary key, everything in
  memory is dropped, and the worker replays its own pending messages, skipping
  those now found stored;
* database unreachable → keep the partials, do not acknowledge, retry with back-off;
* Redis unreachable → back off and reconnect (recreating the group if Redis lost it);
* a dead consumer → its pending messages are reclaimed with XAUTOCLAIM;
* SIGTERM → finish the chunk in hand, commit, acknowledge, exit.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import redis
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dqm import stream as rs
from dqm.config import Settings
from dqm.errors import BatchError
from dqm.events import decode_batch
from dqm.fill import Filler
from dqm.specs import SpecSet
from dqm.store.spills import (
    ClosedSpill, Contribution, closable_spills, commit_group, processed_ids, seen_batches,
    stale_spills, try_close,
)
from dqm.summary import accumulate
from dqm.variables import BatchView

__all__ = ["Worker", "WorkerStats", "CloseHook"]

log = logging.getLogger("dqm.worker")

#: Called inside the closing transaction; may write flags and return extra fields to announce.
CloseHook = Callable[[Session, ClosedSpill], dict | None]


@dataclass
class WorkerStats:
    events: int = 0
    batches: int = 0
    markers: int = 0
    dead_letters: int = 0
    duplicates_skipped: int = 0
    commits: int = 0
    conflicts: int = 0
    db_errors: int = 0
    redis_errors: int = 0
    spills_closed: int = 0
    reclaimed: int = 0
    close_latency_s: list[float] = field(default_factory=list)


class Worker:
    def __init__(
        self, settings: Settings, *, redis_client: redis.Redis, sessions: sessionmaker[Session],
        specs: SpecSet, consumer: str | None = None, close_hooks: list[CloseHook] | None = None,
    ) -> None:
        self.settings = settings
        self.r = redis_client
        self.sessions = sessions
        self.specs = specs
        self.filler = Filler(specs)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.close_hooks = list(close_hooks or [])
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._reset_group()
        self._replay = True  # on start, our own pending messages come first
        self._last_commit = time.monotonic()
        self._last_claim = 0.0
        self._last_sweep = 0.0
        self._backoff_s = 0.1

    # ------------------------------------------------------------------ state
    def _reset_group(self) -> None:
        self._open: dict[tuple[int, int], Contribution] = {}
        self._dead: list[tuple[rs.Message, str, str]] = []
        self._skip_ack: list[str] = []
        self._group_batches: set[tuple[int, int, int]] = set()
        self._arrived: dict[tuple[int, int], float] = {}

    def stop(self) -> None:
        """Ask the loop to finish the chunk in hand, commit and return (also on SIGTERM)."""
        self._stop.set()

    @property
    def _has_group(self) -> bool:
        return bool(self._open or self._dead or self._skip_ack)

    # ------------------------------------------------------------------ loop
    def run(self, *, burst: bool = False, max_seconds: float | None = None) -> WorkerStats:
        """Consume until stopped; with ``burst`` drain the stream and return."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: self.stop())
        t_end = time.monotonic() + max_seconds if max_seconds else None
        self._ensure_group()
        while not self._stop.is_set():
            if t_end and time.monotonic() > t_end:
                break
            try:
                got = self.step(block_ms=50 if burst else self.settings.block_ms)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._redis_trouble(exc)
                continue
            if burst and not got and not self._replay:
                self.flush()
                if not self._has_group:
                    break
        self.flush()
        return self.stats

    def step(self, block_ms: int) -> int:
        """One read-process cycle; returns the number of messages read."""
        s = self.settings
        now = time.monotonic()
        if now - self._last_claim > s.claim_idle_ms / 2000.0:
            self._last_claim = now
            claimed = rs.claim_stale(self.r, s.stream, s.group, self.consumer, min_idle_ms=s.claim_idle_ms)
            if claimed:
                self.stats.reclaimed += len(claimed)
                log.info("reclaimed %d pending messages from dead consumers", len(claimed))
                self._process(claimed, check_seen=True)
        if self._replay:
            msgs = rs.read_group(self.r, s.stream, s.group, self.consumer, count=max(s.read_count, 64), block_ms=None, pending=True)
            if not msgs:
                self._replay = False
            else:
                self._process(msgs, check_seen=True)
                self._maybe_commit(force=True)
                return len(msgs)
        msgs = rs.read_group(self.r, s.stream, s.group, self.consumer, count=s.read_count, block_ms=block_ms)
        markers = self.stats.markers
        self._process(msgs, check_seen=False)
        # an end-of-spill marker is a spill that may now close: commit at once rather than
        # after the commit interval, so its flags come as soon as its data is complete
        self._maybe_commit(force=self.stats.markers > markers)
        if now - self._last_sweep > 1.0:
            self._last_sweep = now
            self._sweep_stale()
        return len(msgs)

    def flush(self) -> None:
        """Commit what is in hand (retrying while the database is down, unless stopping)."""
        while self._has_group:
            if self._commit():
                break
            if self._stop.is_set() and self.stats.db_errors > 50:
                log.error("stopping with an uncommitted group; its messages stay pending for redelivery")
                break
            time.sleep(min(self._backoff_s, 5.0))

    # ------------------------------------------------------------------ processing
    def _process(self, msgs: list[rs.Message], *, check_seen: bool) -> None:
        if not msgs:
            return
        stored: set[str] = set()
        if check_seen:
            with self.sessions() as session:
                stored = processed_ids(session, self.settings.stream, [m.id for m in msgs])
        for m in msgs:
            if m.id in stored:
                self.stats.duplicates_skipped += 1
                self._skip_ack.append(m.id)
                continue
            try:
                self._handle(m, check_seen)
            except BatchError as exc:
                self._dead.append((m, exc.reason, exc.detail))

    def _handle(self, m: rs.Message, check_seen: bool) -> None:
        kind = m.type
        if kind == b"batch":
            payload = m.fields.get(b"payload")
            if payload is None:
                raise BatchError("missing-payload", "batch message has no 'payload' field")
            batch = decode_batch(payload)
            key3 = (batch.run, batch.spill, batch.batch_index)
            if key3 in self._group_batches or (check_seen and seen_batches_one(self.sessions, *key3)):
                raise BatchError("duplicate-batch", f"run {batch.run} spill {batch.spill} batch {batch.batch_index} is already stored")
            self._group_batches.add(key3)
            c = self._contribution(batch.run, batch.spill)
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
            eos = rs.parse_eos(m.fields)
            c = self._contribution(eos.run, eos.spill)
            if c.marker is not None:
                raise BatchError("duplicate-marker", f"second end-of-spill marker for run {eos.run} spill {eos.spill}")
            c.marker = (m.id, eos.n_batches, eos.n_events)
            self._arrived[(eos.run, eos.spill)] = time.monotonic()
            self.stats.markers += 1
        else:
            raise BatchError("unknown-type", f"message type {kind!r}; expected b'batch' or b'eos'")

    def _contribution(self, run: int, spill: int) -> Contribution:
        key = (run, spill)
        c = self._open.get(key)
        if c is None:
            c = self._open[key] = Contribution(run=run, spill=spill)
        self._arrived[key] = time.monotonic()
        return c

    # ------------------------------------------------------------------ committing
    def _maybe_commit(self, force: bool = False) -> None:
        if self._has_group and (force or time.monotonic() - self._last_commit >= self.settings.commit_interval_s):
            self._commit()

    def _commit(self) -> bool:
        s = self.settings
        contributions = list(self._open.values())
        arrived = dict(self._arrived)
        try:
            with self.sessions.begin() as session:
                outcome = commit_group(session, s.stream, self.consumer, contributions, [m.id for m, _, _ in self._dead])
        except IntegrityError:
            self.stats.conflicts += 1
            log.warning("a message in this group was stored by another worker; replaying our pending messages")
            self._reset_group()
            self._replay = True
            return True
        except OperationalError as exc:
            self.stats.db_errors += 1
            self._backoff_s = min(self._backoff_s * 2, 5.0)
            log.error("database unavailable (%s); keeping %d spills' partials, nothing acknowledged", exc.orig, len(contributions))
            self._last_commit = time.monotonic()
            return False
        self._backoff_s = 0.1
        ids = [mid for c in contributions for mid in c.message_ids] + self._skip_ack
        by_id = {}
        for m, reason, detail in self._dead:
            rs.dead_letter(self.r, s.dead_letter_stream, m, reason, detail, self.consumer)
            log.warning("dead-lettered: %s", detail, extra={"message_id": m.id, "reason": reason})
            ids.append(m.id)
        for mid, why in outcome.late:
            by_id[mid] = why
        if by_id:
            for mid, why in by_id.items():
                rs.dead_letter(self.r, s.dead_letter_stream, rs.Message(mid, {b"type": b"late"}), "late", why, self.consumer)
        self.stats.dead_letters += len(self._dead) + len(by_id)
        rs.ack(self.r, s.stream, s.group, ids)
        self.stats.commits += 1
        self._reset_group()
        self._last_commit = time.monotonic()
        with self.sessions() as session:
            ready = closable_spills(session, outcome.spill_ids)
        for sid in ready:
            self._close(sid, incomplete=False, arrived=arrived)
        return True

    def _close(self, spill_id: int, *, incomplete: bool, arrived: dict | None = None) -> None:
        extra: dict = {}
        try:
            with self.sessions.begin() as session:
                closed = try_close(session, spill_id, self.filler.book, incomplete=incomplete)
                if closed is None:
                    return
                for hook in self.close_hooks:
                    extra.update(hook(session, closed) or {})
        except OperationalError as exc:
            self.stats.db_errors += 1
            log.error("could not close spill id %d (%s); will retry", spill_id, exc.orig)
            return
        self.stats.spills_closed += 1
        t0 = (arrived or {}).get((closed.run, closed.spill))
        if t0 is not None:
            self.stats.close_latency_s.append(time.monotonic() - t0)
        note = {"run": closed.run, "spill": closed.spill, "status": closed.status, "n_events": closed.summary.get("n_events"), **extra}
        where = {"run": closed.run, "spill": closed.spill}  # logfmt fields: grep 'run=7 spill=12'
        log.info("spill closed", extra={**where, "status": closed.status, "n_events": int(note["n_events"] or 0)})
        try:
            self.r.publish(self.settings.channel, json.dumps(note, default=str))
        except redis.RedisError as exc:
            log.warning("could not announce closed spill: %s", exc, extra=where)

    def _sweep_stale(self) -> None:
        try:
            with self.sessions() as session:
                stale = stale_spills(session, self.settings.spill_timeout_s)
        except OperationalError:
            return
        for sid in stale:
            self._close(sid, incomplete=True)

    # ------------------------------------------------------------------ redis trouble
    def _ensure_group(self) -> None:
        rs.ensure_group(self.r, self.settings.stream, self.settings.group)

    def _redis_trouble(self, exc: Exception) -> None:
        self.stats.redis_errors += 1
        log.warning("redis unavailable (%s); retrying in %.1f s", exc, self._backoff_s)
        self._stop.wait(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, 5.0)
        try:
            self._ensure_group()
            self._backoff_s = 0.1
        except (redis.ConnectionError, redis.TimeoutError):
            pass


def seen_batches_one(sessions: sessionmaker[Session], run: int, spill: int, batch_index: int) -> bool:
    with sessions() as session:
        return bool(seen_batches(session, run, spill, [batch_index]))
