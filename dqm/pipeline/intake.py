"""Taking stream messages into the worker's group: decode, fill, set aside, refuse.

Each message read from Redis ends in exactly one place of the group in hand
(:class:`~dqm.pipeline.state.InHand`): a batch is filled into its spill's partial
histograms (or set aside as late when beyond its marker's count), a marker or a run's
conditions are kept for the group's transaction, a malformed message becomes a dead letter,
and a redelivered message already stored is only acknowledged. Nothing here writes to
the database or to Redis; the worker stores the group in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dqm.core.conditions import decode_conditions
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.summary import accumulate
from dqm.core.variables import BatchView
from dqm.errors import BatchError
from dqm.pipeline import stream as rs
from dqm.pipeline.state import InHand, MarkerCounts, WorkerStats
from dqm.store.engine import Session, sessionmaker
from dqm.store.spills import processed_spills, seen_batches

__all__ = ["Intake", "seen_batches_one"]

log = logging.getLogger("dqm.pipeline.worker")


class Intake:
    """Puts messages into the group in hand; see the module docstring."""

    def __init__(
        self,
        *,
        stream: str,
        sessions: sessionmaker[Session],
        filler: Filler,
        stats: WorkerStats,
        hand: InHand,
        markers: MarkerCounts,
    ) -> None:
        self.stream = stream
        self.sessions = sessions
        self.filler = filler
        self.stats = stats
        self.hand = hand
        self.markers = markers

    def process(self, msgs: list[rs.Message], *, check_seen: bool) -> set[int]:
        """Take ``msgs`` into the group; with ``check_seen`` (a redelivery or a reclaim)
        first look each one up in the ledger.

        Returns the ids of the spills that messages found already stored went to: whoever
        stored them may have died before closing the spill, so the close is owed still.
        """
        if not msgs:
            return set()
        hand = self.hand
        stored: dict[str, int | None] = {}
        if check_seen:
            with self.sessions() as session:
                stored = processed_spills(session, self.stream, [m.id for m in msgs])
        for m in msgs:
            if m.id in hand.held:
                continue
            if m.id in stored:
                self.stats.duplicates_skipped += 1
                hand.skip_ack.append(m.id)
                hand.held.add(m.id)
                continue
            try:
                self._handle(m, check_seen)
            except BatchError as exc:
                hand.dead.append((m, exc.reason, exc.detail))
            hand.held.add(m.id)
        return {sid for sid in stored.values() if sid is not None}

    def _handle(self, m: rs.Message, check_seen: bool) -> None:
        kind = m.type
        if kind == b"batch":
            self._batch(m, check_seen)
        elif kind == b"eos":
            eos = _decode(rs.parse_eos, m.fields)
            c = self.hand.spills.get((eos.run, eos.spill))
            if c is not None and c.marker is not None:
                raise BatchError(
                    "duplicate-marker",
                    f"second end-of-spill marker for run {eos.run} spill {eos.spill}",
                )
            c = self.hand.contribution(eos.run, eos.spill)
            c.marker = (m.id, eos.n_batches, eos.n_events)
            self.hand.marker_msgs[m.id] = m
            self.markers.remember(eos.run, eos.spill, eos.n_batches)
            self.stats.markers += 1
        elif kind == b"conditions":
            cond = _decode(decode_conditions, m.fields.get(b"payload"))
            self.hand.conditions.append((m.id, cond))
            self.stats.conditions += 1
        else:
            raise BatchError(
                "unknown-type",
                f"message type {kind[:40]!r}; expected b'batch', b'eos' or b'conditions'",
            )

    def _batch(self, m: rs.Message, check_seen: bool) -> None:
        payload = m.fields.get(b"payload")
        if payload is None:
            raise BatchError("missing-payload", "batch message has no 'payload' field")
        batch = _decode(decode_batch, payload)
        key3 = (batch.run, batch.spill, batch.batch_index)
        if key3 in self.hand.batches or (check_seen and seen_batches_one(self.sessions, *key3)):
            raise BatchError(
                "duplicate-batch",
                f"run {batch.run} spill {batch.spill} batch {batch.batch_index} is already stored",
            )
        self.hand.batches.add(key3)
        c = self.hand.contribution(batch.run, batch.spill)
        announced = self.markers.get(batch.run, batch.spill)
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
