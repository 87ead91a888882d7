"""Spill bookkeeping in the database: commit a worker's group, close spills, read them back.

Exactly-once rests on one rule: a group's partial histograms, its batch counters and
the ids of every message that produced them are written in **one** transaction. If
that transaction commits, the messages are acknowledged; if it does not, nothing of
them is stored and they are delivered again. A message id that is already in
``processed_messages`` is skipped. Two workers racing on the same (reclaimed)
message collide on that table's primary key; the loser rolls back and replays.

Closing is a conditional ``UPDATE … WHERE status = 'open'``: whichever worker wins
it merges the partials; the others see zero rows changed and move on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import boost_histogram as bh
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dqm.core.histio import FORMAT_VERSION, add_into, decode_histograms, encode_histograms
from dqm.core.summary import finalize, merge
from dqm.store.models import (
    SPILL_COMPLETE,
    SPILL_INCOMPLETE,
    SPILL_OPEN,
    ProcessedMessage,
    Run,
    Spill,
    SpillHistograms,
    SpillPartial,
    utcnow,
)

__all__ = [
    "Contribution",
    "CommitOutcome",
    "ClosedSpill",
    "insert_ignore",
    "ensure_spill",
    "processed_ids",
    "seen_batches",
    "commit_group",
    "try_close",
    "closable_spills",
    "stale_spills",
    "spill_histograms",
    "run_histograms",
    "count_spills",
    "SUMMARY_COLUMNS",
]

SUMMARY_COLUMNS = (
    "p_bms_mean",
    "p_bms_sigma",
    "p_ms2_mean",
    "p_ms2_sigma",
    "dp_mean",
    "dp_sigma",
    "low_pout_fraction",
    "ecal_mean",
    "hcal_mean",
    "pik_fraction",
    "pik_fraction_err",
    "daq_completeness",
)


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

    @property
    def message_ids(self) -> list[str]:
        ids = [m for m, _ in self.batches]
        return ids + ([self.marker[0]] if self.marker else [])


@dataclass
class CommitOutcome:
    spill_ids: set[int] = field(default_factory=set)
    # : messages recorded but not counted: (message id, kind, reason tag, detail) for the dead
    # letters
    rejected: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class ClosedSpill:
    spill_id: int
    run: int
    spill: int
    status: str
    hists: dict[str, bh.Histogram]
    summary: dict[str, float | None]


def insert_ignore(session: Session, model, values: Mapping | list[Mapping]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    session.execute(ins.values(values).on_conflict_do_nothing())


def ensure_spill(session: Session, run: int, spill: int, *, lock: bool = True) -> Spill:
    """The spill row (created if new), locked for update on PostgreSQL."""
    insert_ignore(
        session, Run, {"run": run, "beam_config": "mu160", "started_at": utcnow(), "comment": ""}
    )
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
) -> CommitOutcome:
    """Write one group (caller commits). Raises IntegrityError if a message id was stored
    already."""
    out = CommitOutcome()
    now = utcnow()
    rows: list[dict] = []
    # spill rows are locked in one global order, so two workers' groups cannot deadlock
    for c in sorted(contributions, key=lambda c: (c.run, c.spill)):
        sp = ensure_spill(session, c.run, c.spill)
        out.spill_ids.add(sp.id)
        if sp.status != SPILL_OPEN:
            why = f"run {c.run} spill {c.spill} already closed as {sp.status}"
            out.rejected.extend((m, "batch", "late", why) for m, _ in c.batches)
            if c.marker:
                out.rejected.append((c.marker[0], "eos", "late", why))
            rows.extend(
                {"message_id": m, "kind": "late", "spill_id": sp.id, "batch_index": None}
                for m in c.message_ids
            )
            continue
        if c.batches:
            blob = encode_histograms(c.hists or {}, c.moments)
            session.add(
                SpillPartial(
                    spill_id=sp.id,
                    consumer=consumer,
                    n_batches=len(c.batches),
                    n_events=c.n_events,
                    blob=blob,
                    created_at=now,
                )
            )
            sp.received_batches += len(c.batches)
            sp.n_events += c.n_events
            rows.extend(
                {"message_id": m, "kind": "batch", "spill_id": sp.id, "batch_index": b}
                for m, b in c.batches
            )
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
    rows.extend(
        {"message_id": m, "kind": "dead", "spill_id": None, "batch_index": None} for m in dead_ids
    )
    if rows:
        session.execute(
            ProcessedMessage.__table__.insert(),
            [{**r, "stream": stream, "processed_at": now} for r in rows],
        )
    session.flush()
    return out


def try_close(
    session: Session,
    spill_id: int,
    book: Callable[[], dict[str, bh.Histogram]],
    *,
    incomplete: bool = False,
) -> ClosedSpill | None:
    """Close the spill if it is complete (or, with ``incomplete``, whatever it has).

    Returns None when another worker closed it first or it is not complete yet.
    """
    cond = [Spill.id == spill_id, Spill.status == SPILL_OPEN]
    if not incomplete:
        cond += [
            Spill.expected_batches.is_not(None),
            Spill.received_batches >= Spill.expected_batches,
        ]
    status = SPILL_INCOMPLETE if incomplete else SPILL_COMPLETE
    res = session.execute(update(Spill).where(*cond).values(status=status, closed_at=utcnow()))
    if res.rowcount != 1:
        return None
    sp = session.get(Spill, spill_id, populate_existing=True)
    assert sp is not None
    if (
        incomplete
        and sp.expected_batches is not None
        and sp.received_batches >= sp.expected_batches
    ):
        sp.status = status = SPILL_COMPLETE  # everything arrived after all
    hists = book()
    moments: dict[str, float] = {}
    for blob in session.scalars(
        select(SpillPartial.blob).where(SpillPartial.spill_id == spill_id).order_by(SpillPartial.id)
    ):
        part_h, part_m = decode_histograms(blob)
        add_into(hists, part_h)
        moments = merge(moments, part_m)
    summary = finalize(moments)
    summary["received_batches"] = sp.received_batches
    summary["expected_batches"] = sp.expected_batches
    blob = encode_histograms(hists)
    session.merge(
        SpillHistograms(
            spill_id=spill_id, format_version=FORMAT_VERSION, size_bytes=len(blob), blob=blob
        )
    )
    for col in SUMMARY_COLUMNS:
        setattr(sp, col, summary.get(col))
    sp.summary = summary
    session.execute(delete(SpillPartial).where(SpillPartial.spill_id == spill_id))
    session.flush()
    return ClosedSpill(spill_id, sp.run, sp.spill, status, hists, summary)


def closable_spills(session: Session, spill_ids: Iterable[int]) -> list[int]:
    ids = list(spill_ids)
    if not ids:
        return []
    stmt = select(Spill.id).where(
        Spill.id.in_(ids),
        Spill.status == SPILL_OPEN,
        Spill.expected_batches.is_not(None),
        Spill.received_batches >= Spill.expected_batches,
    )
    return list(session.scalars(stmt))


def stale_spills(session: Session, timeout_s: float, now: datetime | None = None) -> list[int]:
    """Open spills with no news for ``timeout_s``: to be closed as incomplete."""
    cutoff = (now or utcnow()) - timedelta(seconds=timeout_s)
    if session.get_bind().dialect.name == "sqlite":
        cutoff = cutoff.astimezone(UTC).replace(tzinfo=None)
    stmt = (
        select(Spill.id)
        .where(Spill.status == SPILL_OPEN, Spill.updated_at < cutoff)
        .order_by(Spill.id)
    )
    return list(session.scalars(stmt))


def spill_histograms(session: Session, spill_id: int) -> dict[str, bh.Histogram]:
    blob = session.scalar(select(SpillHistograms.blob).where(SpillHistograms.spill_id == spill_id))
    return decode_histograms(blob)[0] if blob else {}


def run_histograms(
    session: Session, run: int, spills: tuple[int, int] | None = None
) -> dict[str, bh.Histogram]:
    """Sum of the closed spills' histograms of a run (optionally a spill range, inclusive)."""
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
