"""Spill bookkeeping in the database: commit a worker's group, close spills, read them back.

Exactly-once rests on one rule: a group's partial histograms, its batch counters and
the ids of every message that produced them are written in **one** transaction. If
that transaction commits, the messages are acknowledged; if it does not, nothing of
them is stored and they are delivered again. A message id that is already in
``processed_messages`` is skipped. Two workers racing on the same (reclaimed)
message collide on that table's primary key; the loser rolls back and replays.

A batch whose index is beyond the count its spill's end-of-spill marker announced is
*late*: recorded, not counted, judged (``daq/marker_mismatch``) — in whatever order
batches and marker arrive. Closing lives in :mod:`dqm.store.closing`
(re-exported here).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import boost_histogram as bh
from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions
from dqm.core.histio import add_into, decode_histograms, encode_histograms
from dqm.store.closing import (
    ClosedSpill,
    closable_spills,
    close_failed,
    complete_open_spills,
    spill_identity,
    stale_spills,
    try_close,
)
from dqm.store.models import (
    SPILL_OPEN,
    ProcessedMessage,
    Spill,
    SpillHistograms,
    SpillPartial,
    utcnow,
)
from dqm.store.rollup import run_sum_blobs
from dqm.store.runs import ensure_run, store_conditions

__all__ = [
    "Contribution",
    "CommitOutcome",
    "ClosedSpill",
    "insert_ignore",
    "ensure_spill",
    "processed_ids",
    "processed_spills",
    "complete_open_spills",
    "seen_batches",
    "commit_group",
    "try_close",
    "closable_spills",
    "stale_spills",
    "spill_histograms",
    "run_histograms",
    "count_spills",
    "close_failed",
    "spill_identity",
    "LateBatches",
]


@dataclass
class Contribution:
    """What one commit group holds for one spill."""

    run: int
    spill: int
    hists: dict[str, bh.Histogram] | None = None
    moments: dict[str, float] = field(default_factory=dict)
    n_events: int = 0
    batches: list[tuple[str, int]] = field(default_factory=list)  # (message id, batch index)
    marker: tuple[str, int, int] | None = None  # (message id, n_batches, n_events)
    #: batches whose index is beyond the count the spill's end-of-spill marker announced:
    #: (message id, n_events); not filled, counted as late (see :func:`commit_group`)
    late: list[tuple[str, int]] = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        ids = [m for m, _ in self.batches]
        return ids + ([self.marker[0]] if self.marker else [])


class LateBatches(Exception):  # noqa: N818 — a signal to the worker, not an error
    """A group holds batches beyond the count their spill's end-of-spill marker announced.

    Raised by :func:`commit_group` (the transaction is rolled back) when the marker
    was stored by an earlier group and the worker filled the batches not knowing it:
    the worker learns the announced counts, drops the group and replays its pending
    messages, this time setting those batches aside as late instead of filling them.
    The rule "a batch whose index is beyond the marker's count is not counted" then
    holds whatever the grouping of reads.
    """

    def __init__(self, announced: dict[tuple[int, int], int]) -> None:
        self.announced = announced
        super().__init__(
            "batches beyond the end-of-spill marker's count of "
            + ", ".join(f"run {r} spill {s}" for r, s in sorted(announced))
        )


@dataclass
class CommitOutcome:
    spill_ids: set[int] = field(default_factory=set)
    #: runs whose conditions this group changed (their judged spills may need judging again)
    conditions_changed: set[int] = field(default_factory=set)
    #: messages recorded but not counted: (message id, kind, reason tag, detail) for the dead
    #: letters
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: closed spills that just received late batches: to be judged again
    amend: set[int] = field(default_factory=set)
    #: the partial row each contribution was stored as: (run, spill) -> (spill id, row id)
    partials: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


def _beyond(run: int, spill: int, announced: int) -> str:
    return (
        f"batch of run {run} spill {spill} beyond the {announced} batches its end-of-spill "
        "marker announced: not counted (daq/marker_mismatch)"
    )


def insert_ignore(session: Session, model, values: Mapping | list[Mapping]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    session.execute(ins.values(values).on_conflict_do_nothing())


def ensure_spill(session: Session, run: int, spill: int, *, lock: bool = True) -> Spill:
    """The spill row (created if new), locked for update on PostgreSQL.

    A run first heard of through a spill gets no beam configuration: its conditions are
    unknown until announced (:func:`dqm.store.runs.store_conditions`).
    """
    ensure_run(session, run)
    now = utcnow()
    insert_ignore(
        session,
        Spill,
        {
            "run": run,
            "spill": spill,
            "status": SPILL_OPEN,
            "opened_at": now,
            "updated_at": now,
            "received_batches": 0,
            "n_events": 0,
        },
    )
    stmt = select(Spill).where(Spill.run == run, Spill.spill == spill)
    if lock:
        stmt = stmt.with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one()


def processed_ids(session: Session, stream: str, ids: Iterable[str]) -> set[str]:
    ids = list(ids)
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        found.update(
            session.scalars(
                select(ProcessedMessage.message_id).where(
                    ProcessedMessage.stream == stream, ProcessedMessage.message_id.in_(chunk)
                )
            )
        )
    return found


def processed_spills(session: Session, stream: str, ids: Iterable[str]) -> dict[str, int | None]:
    """The ids among ``ids`` already stored, each with the spill it went to (None: none,
    e.g. run conditions or a dead letter): a redelivered message's spill may still owe
    its close."""
    ids = list(ids)
    found: dict[str, int | None] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = session.execute(
            select(ProcessedMessage.message_id, ProcessedMessage.spill_id).where(
                ProcessedMessage.stream == stream, ProcessedMessage.message_id.in_(chunk)
            )
        )
        found.update((mid, sid) for mid, sid in rows)
    return found


def seen_batches(session: Session, run: int, spill: int, indexes: Iterable[int]) -> set[int]:
    """Batch indexes of (run, spill) already stored: a re-published batch is a duplicate."""
    stmt = (
        select(ProcessedMessage.batch_index)
        .join(Spill, Spill.id == ProcessedMessage.spill_id)
        .where(
            Spill.run == run, Spill.spill == spill, ProcessedMessage.batch_index.in_(list(indexes))
        )
    )
    return set(session.scalars(stmt))


def commit_group(
    session: Session,
    stream: str,
    consumer: str,
    contributions: Iterable[Contribution],
    dead_ids: Iterable[str] = (),
    conditions: Iterable[tuple[str, RunConditions]] = (),
) -> CommitOutcome:
    """Write one group (caller commits).

    Batches the worker set aside as beyond their spill's announced count
    (``Contribution.late``), and any batch of a spill that is closed already, are
    recorded as late: not counted, added to the spill's ``late_batches``/``late_events``,
    returned in ``rejected`` for the dead-letter stream, and a closed spill is returned
    in ``amend`` to be judged again.

    ``conditions`` are the group's run-condition announcements, (message id, conditions).

    Raises:
        IntegrityError: a message id was stored already (another worker won it).
        LateBatches: batches in the group are beyond the count of a marker stored by an
            earlier group; nothing is written, the worker replays knowing the count.
    """
    out = CommitOutcome()
    now = utcnow()
    rows: list[dict] = []
    stored: list[tuple[tuple[int, int], int, SpillPartial]] = []
    # spill rows are locked in one global order, so two workers' groups cannot deadlock
    beyond: dict[tuple[int, int], int] = {}
    for c in sorted(contributions, key=lambda c: (c.run, c.spill)):
        sp = ensure_spill(session, c.run, c.spill)
        out.spill_ids.add(sp.id)
        if sp.status != SPILL_OPEN:
            why = f"run {c.run} spill {c.spill} already closed as {sp.status}"
            announced = sp.expected_batches
            for m, index in c.batches:
                # the same reason a batch beyond the marker's count gets while its spill is open
                if announced is not None and index >= announced:
                    out.rejected.append(
                        (m, "batch", "beyond-marker", _beyond(c.run, c.spill, announced))
                    )
                else:
                    out.rejected.append((m, "batch", "late", why))
            out.rejected.extend(
                (m, "batch", "beyond-marker", _beyond(c.run, c.spill, announced or 0))
                for m, _ in c.late
            )
            if c.marker and sp.expected_batches is not None:  # whatever the read grouping
                why_twice = (
                    f"second end-of-spill marker for run {c.run} spill {c.spill} "
                    f"(first announced {sp.expected_batches} batches)"
                )
                out.rejected.append((c.marker[0], "eos", "duplicate-marker", why_twice))
            elif c.marker:
                out.rejected.append((c.marker[0], "eos", "late", why))
            rows.extend(
                {"message_id": m, "kind": "late", "spill_id": sp.id, "batch_index": None}
                for m in c.message_ids + [m for m, _ in c.late]
            )
            if c.batches or c.late:
                sp.late_batches += len(c.batches) + len(c.late)
                sp.late_events += c.n_events + sum(n for _, n in c.late)
                out.amend.add(sp.id)
            continue
        if c.batches and sp.expected_batches is not None:
            # the marker was stored by an earlier group: is any batch beyond its count?
            if any(index >= sp.expected_batches for _, index in c.batches):
                beyond[(c.run, c.spill)] = sp.expected_batches
                continue
        if c.batches:
            blob = encode_histograms(c.hists or {}, c.moments)
            partial = SpillPartial(
                spill_id=sp.id,
                consumer=consumer,
                n_batches=len(c.batches),
                n_events=c.n_events,
                blob=blob,
                created_at=now,
            )
            session.add(partial)
            stored.append(((c.run, c.spill), sp.id, partial))
            sp.received_batches += len(c.batches)
            sp.n_events += c.n_events
            rows.extend(
                {"message_id": m, "kind": "batch", "spill_id": sp.id, "batch_index": b}
                for m, b in c.batches
            )
        if c.late:
            announced = c.marker[1] if c.marker else sp.expected_batches or 0
            out.rejected.extend(
                (m, "batch", "beyond-marker", _beyond(c.run, c.spill, announced)) for m, _ in c.late
            )
            rows.extend(
                {"message_id": m, "kind": "late", "spill_id": sp.id, "batch_index": None}
                for m, _ in c.late
            )
            sp.late_batches += len(c.late)
            sp.late_events += sum(n for _, n in c.late)
        # an earlier group stored this spill's marker
        if c.marker and sp.expected_batches is not None:
            why = (
                f"second end-of-spill marker for run {c.run} spill {c.spill} "
                f"(first announced {sp.expected_batches} batches)"
            )
            out.rejected.append((c.marker[0], "eos", "duplicate-marker", why))
            rows.append(
                {"message_id": c.marker[0], "kind": "dead", "spill_id": None, "batch_index": None}
            )
        elif c.marker:
            sp.expected_batches, sp.expected_events = c.marker[1], c.marker[2]
            rows.append(
                {"message_id": c.marker[0], "kind": "eos", "spill_id": sp.id, "batch_index": None}
            )
        sp.updated_at = now
    if beyond:
        raise LateBatches(beyond)
    # runs after spills: every writer locks in that order (see dqm.store.runs)
    for mid, cond in sorted(conditions, key=lambda mc: (mc[1].run, mc[0])):
        if store_conditions(session, cond, mid):
            out.conditions_changed.add(cond.run)
        rows.append(
            {"message_id": mid, "kind": "conditions", "spill_id": None, "batch_index": None}
        )
    rows.extend(
        {"message_id": m, "kind": "dead", "spill_id": None, "batch_index": None} for m in dead_ids
    )
    if rows:
        session.execute(
            ProcessedMessage.__table__.insert(),
            [{**r, "stream": stream, "processed_at": now} for r in rows],
        )
    session.flush()
    out.partials = {key: (spill_id, p.id) for key, spill_id, p in stored}
    return out


def spill_histograms(
    session: Session, spill_id: int, names: Collection[str] | None = None
) -> dict[str, bh.Histogram]:
    """A closed spill's histograms; only ``names`` when given (the wall draws 13 of ~55, and
    rebuilding a histogram is most of the cost of decoding)."""
    blob = session.scalar(select(SpillHistograms.blob).where(SpillHistograms.spill_id == spill_id))
    return decode_histograms(blob, names)[0] if blob else {}


def run_histograms(
    session: Session, run: int, spills: tuple[int, int] | None = None
) -> dict[str, bh.Histogram]:
    """Sum of the closed spills' histograms of a run (optionally a spill range, inclusive).

    The whole run is read as its aggregate plus the spills closed after it
    (:func:`dqm.store.rollup.run_sum_blobs`): the same sum, and still whole once the
    histogram retention deleted its GOOD spills' own rows.
    """
    if not spills:
        whole: dict[str, bh.Histogram] = {}
        for blob in run_sum_blobs(session, run):
            add_into(whole, decode_histograms(blob)[0])
        return whole
    stmt = (
        select(SpillHistograms.blob)
        .join(Spill, Spill.id == SpillHistograms.spill_id)
        .where(Spill.run == run)
    )
    if spills:
        stmt = stmt.where(and_(Spill.spill >= spills[0], Spill.spill <= spills[1]))
    total: dict[str, bh.Histogram] = {}
    for blob in session.scalars(stmt.order_by(Spill.spill)):
        add_into(total, decode_histograms(blob)[0])
    return total


def count_spills(session: Session, run: int | None = None) -> dict[str, int]:
    stmt = select(Spill.status, func.count()).group_by(Spill.status)
    if run is not None:
        stmt = stmt.where(Spill.run == run)
    return {s: n for s, n in session.execute(stmt)}
