"""The worker's state, as small objects that each keep one promise.

A worker's correctness rests on a few facts about what it holds at any instant. Each
object below owns one of them and says it in its docstring, so that the loop in
:mod:`dqm.pipeline.worker` only has to call them in the order the data flows:

* :class:`InHand` — messages read from Redis and not yet stored (the *group*);
* :class:`Owed` — what stored groups still owe Redis and the spills (acks, dead
  letters, closes, judging again);
* :class:`MarkerCounts` — the batch counts that recent end-of-spill markers announced;
* :class:`Backoff` — the growing wait between attempts to reach a service;
* :class:`DatabaseHealth` — whether the database is failing, and when to try again;
* :class:`WorkerStats` — the counters (what it did, for the log and the metrics);
* :class:`HeldSpills` — the sums of the partials this worker stored for open spills;
* :class:`Clock` — when the periodic chores (commit, reclaim, sweep) last ran, and the
  quiet period after an outage during which no spill is closed as incomplete.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from dqm.core.conditions import RunConditions
from dqm.pipeline.stream import Message
from dqm.store.closing import HeldPartials
from dqm.store.spills import Contribution

__all__ = [
    "InHand",
    "Owed",
    "MarkerCounts",
    "Backoff",
    "DatabaseHealth",
    "Clock",
    "WorkerStats",
    "HeldSpills",
    "HELD_SPILLS_KEPT",
    "MARKERS_KEPT",
    "MAX_BACKOFF_S",
]

#: How many spills' announced batch counts a worker remembers (to set aside extra batches).
MARKERS_KEPT = 4096
#: How many open spills' stored partials a worker keeps summed in memory for their close.
HELD_SPILLS_KEPT = 64
#: Longest wait between two attempts to reach Redis or the database.
MAX_BACKOFF_S = 2.0

DeadLetter = tuple[Message, str, str]  # (message, reason tag, detail)


@dataclass
class InHand:
    """The group: messages read from Redis whose effect is not stored in the database yet.

    Invariant: every id in ``held`` is in exactly one of ``spills`` (a batch, a late batch
    or a marker of a :class:`~dqm.store.spills.Contribution`), ``conditions``, ``dead`` or
    ``skip_ack``; none of them is acknowledged. The group is written in one transaction
    (:func:`dqm.store.spills.commit_group`) and then emptied with :meth:`clear`: after a
    failed commit it is either kept whole (outage) or dropped whole and replayed from
    Redis (conflict), never half-kept.
    """

    #: partial histograms per (run, spill)
    spills: dict[tuple[int, int], Contribution] = field(default_factory=dict)
    #: run conditions announced: (message id, conditions)
    conditions: list[tuple[str, RunConditions]] = field(default_factory=list)
    #: malformed messages, dead-lettered once the group is stored
    dead: list[DeadLetter] = field(default_factory=list)
    #: redelivered messages found already stored: only to be acknowledged
    skip_ack: list[str] = field(default_factory=list)
    #: (run, spill, batch index) of the group's batches: a second copy is a duplicate
    batches: set[tuple[int, int, int]] = field(default_factory=set)
    #: when each spill in hand last had news (monotonic), for its close latency
    arrived: dict[tuple[int, int], float] = field(default_factory=dict)
    #: ids of every message in hand (a re-claim of one is ignored)
    held: set[str] = field(default_factory=set)
    #: markers in hand, for their dead letters if the store rejects them
    marker_msgs: dict[str, Message] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.spills or self.conditions or self.dead or self.skip_ack)

    def clear(self) -> None:
        """Forget the group (stored, or to be replayed from Redis)."""
        self.spills.clear()
        self.conditions.clear()
        self.dead.clear()
        self.skip_ack.clear()
        self.batches.clear()
        self.arrived.clear()
        self.held.clear()
        self.marker_msgs.clear()

    def contribution(self, run: int, spill: int) -> Contribution:
        """The group's part of a spill (new if none), marking that the spill had news now."""
        key = (run, spill)
        c = self.spills.get(key)
        if c is None:
            c = self.spills[key] = Contribution(run=run, spill=spill)
        self.arrived[key] = time.monotonic()
        return c

    def message_ids(self) -> list[str]:
        """Every id the group's commit makes owed an acknowledgement (dead letters aside)."""
        ids = [mid for c in self.spills.values() for mid in c.message_ids]
        ids += [mid for mid, _ in self.conditions]
        return ids + list(self.skip_ack)


@dataclass
class Owed:
    """Work owed to Redis (and closing) by groups already stored in the database.

    Invariant: everything here is stored; a piece is dropped only once done, so a Redis or
    database outage half-way through settling leaves the rest for the next attempt. Dead
    letters come before acknowledgements (a message leaves the pending list only once the
    dead-letter stream holds it); closes need only the database and do not wait for Redis.
    """

    ack: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    #: spill ids that may now be complete: closed if they are
    close: set[int] = field(default_factory=set)
    arrived: dict[tuple[int, int], float] = field(default_factory=dict)
    amend: set[int] = field(default_factory=set)  # closed spills that got late batches
    rejudge: set[int] = field(default_factory=set)  # runs whose conditions changed

    def __bool__(self) -> bool:
        return bool(self.ack or self.dead or self.close or self.amend or self.rejudge)


class MarkerCounts:
    """Batch counts announced by the *first* end-of-spill marker of recent spills.

    Invariant: a count, once known for a spill, is the first marker's (a later marker
    never changes it, except :meth:`learn` with the count the database stored first); a
    batch whose index is at or beyond it is late. At most :data:`MARKERS_KEPT` spills are
    remembered, least recently used first out (the database has the rest).
    """

    def __init__(self, kept: int = MARKERS_KEPT) -> None:
        self._counts: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._kept = kept

    def get(self, run: int, spill: int) -> int | None:
        return self._counts.get((run, spill))

    def remember(self, run: int, spill: int, n_batches: int) -> None:
        """A marker was read: keep its count unless an earlier marker's is known."""
        key = (run, spill)
        self._counts.setdefault(key, n_batches)
        self._counts.move_to_end(key)
        while len(self._counts) > self._kept:
            self._counts.popitem(last=False)

    def learn(self, run: int, spill: int, n_batches: int) -> None:
        """The count the database stored (from the first marker, read by an earlier group)."""
        self._counts[(run, spill)] = n_batches

    def clear(self) -> None:
        self._counts.clear()

    def __len__(self) -> int:
        return len(self._counts)


class HeldSpills:
    """The sums of the partials this worker has *stored* for open spills, by spill id.

    Invariant: an entry holds exactly the contents of the partial rows it names, each
    added only after the transaction that wrote the row committed (a group dropped for a
    conflict or kept through an outage adds nothing). Closing a spill uses the entry in
    place of decoding those rows (:class:`~dqm.store.closing.HeldPartials`) and then drops
    it; at most :data:`HELD_SPILLS_KEPT` spills are kept, least recently stored first out
    (a spill closed by another worker is forgotten that way).
    """

    def __init__(self, kept: int = HELD_SPILLS_KEPT) -> None:
        self._held: OrderedDict[int, HeldPartials] = OrderedDict()
        self._kept = kept

    def stored(self, spill_id: int, partial_id: int, hists: dict, moments: dict) -> None:
        """A partial row of ``spill_id`` committed with these contents (taken over)."""
        held = self._held.get(spill_id)
        if held is None:
            held = self._held[spill_id] = HeldPartials()
        held.add(partial_id, hists, moments)
        self._held.move_to_end(spill_id)
        while len(self._held) > self._kept:
            self._held.popitem(last=False)

    def get(self, spill_id: int) -> HeldPartials | None:
        return self._held.get(spill_id)

    def drop(self, spill_id: int) -> None:
        self._held.pop(spill_id, None)

    def __len__(self) -> int:
        return len(self._held)


class Backoff:
    """The wait before the next attempt to reach a service: 0.1 s doubling to 2 s.

    Invariant: ``delay_s`` is the wait *before the next* attempt; a failure doubles it
    (capped at :data:`MAX_BACKOFF_S`), a success resets it.
    """

    def __init__(self, first_s: float = 0.1, cap_s: float = MAX_BACKOFF_S) -> None:
        self.first_s, self.cap_s = first_s, cap_s
        self.delay_s = first_s

    def failed(self) -> float:
        """Record a failure; returns the wait to use now."""
        wait = self.delay_s
        self.delay_s = min(self.delay_s * 2, self.cap_s)
        return wait

    def reset(self) -> None:
        self.delay_s = self.first_s


class DatabaseHealth:
    """Whether the database is failing and when to try it again.

    Invariant: while ``failing``, the worker reads nothing new before ``retry_at`` and
    first stores what it holds (so nothing unstored piles up in memory); the first success
    after a failure is reported once by :meth:`ok` returning True (the caller then starts
    the quiet period of :class:`Clock`).
    """

    def __init__(self) -> None:
        self.failing = False
        self.retry_at = 0.0  # monotonic; no new work before this
        self.backoff = Backoff()

    def failed(self) -> bool:
        """Record a failure; returns True if it is the first of an outage (to log)."""
        first = not self.failing
        self.failing = True
        self.retry_at = time.monotonic() + self.backoff.failed()
        return first

    def ok(self) -> bool:
        """Record a success; returns True if it ends an outage."""
        recovered = self.failing
        self.failing = False
        self.backoff.reset()
        return recovered

    def waiting(self, now: float) -> float:
        """Seconds still to wait before the next attempt (0 when it may go ahead)."""
        return max(0.0, self.retry_at - now)


@dataclass
class Clock:
    """When the worker's periodic chores last ran (``time.monotonic()`` seconds).

    Invariant: ``sweep_after`` is at least one spill timeout after the last recovery from
    an outage: before it, no spill is closed as incomplete, since the outage itself may
    have held back its news (in Redis, or in a worker's memory).
    """

    last_commit: float = field(default_factory=time.monotonic)
    last_claim: float = 0.0
    last_sweep: float = 0.0
    sweep_after: float = 0.0

    def recovered(self, spill_timeout_s: float) -> None:
        self.sweep_after = time.monotonic() + spill_timeout_s


@dataclass
class WorkerStats:
    """What a worker did since it started, for its exit log line and its metrics."""

    events: int = 0  # stored (committed) by this worker: each event counts once in its group
    batches: int = 0  # idem, batch messages
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
