"""Closed, judged spills written in bulk: for the report's tests and the benchmarks.

Layer: I/O shell (store), writes. The live path stores a spill through
:func:`dqm.store.spills.commit_group` and :func:`~dqm.store.spills.try_close`, one at a
time; a benchmark day of ~2000 spills, or a recheck run of hundreds, is stored here in a
few multi-row ``INSERT`` statements instead. The rows are what the live path would have
left behind (run, spill, histograms, summary, verdict and flags), so the readers —
the report, ``dqm recheck`` — cannot tell the difference. The caller commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions
from dqm.core.histio import FORMAT_VERSION
from dqm.store.models import Flag, Run, Spill, SpillHistograms
from dqm.store.spills import insert_ignore

__all__ = [
    "JudgedSpill",
    "insert_judged_spills",
    "copy_history",
    "analyse",
    "vacuum_history",
    "without_secondary_indexes",
]

#: the tables ``copy_history`` fills: their indexes and foreign keys can wait for the load
HISTORY_TABLES = ("spills", "spill_histograms", "flags", "processed_messages")


@dataclass(frozen=True)
class JudgedSpill:
    """One closed spill as the live path leaves it.

    ``summary`` is :func:`dqm.core.summary.finalize`'s dict (plus the per-subsystem
    qualities under ``"quality"`` if it was judged); ``blob`` its histograms in
    :mod:`dqm.core.histio`'s format; ``flags`` the :class:`~dqm.store.models.Flag`
    columns of each check result (run, spill, spill id and creation time are filled in).
    """

    run: int
    spill: int
    status: str
    opened_at: datetime
    closed_at: datetime
    batches: int
    summary: Mapping[str, Any]
    blob: bytes
    quality: int | None = None
    config_version: str | None = None
    flags: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def insert_judged_spills(
    session: Session,
    spills: Sequence[JudgedSpill],
    *,
    conditions: RunConditions | None = None,
    comment: str = "simulated",
) -> dict[tuple[int, int], int]:
    """Insert the spills (their runs if new, histograms and flags); returns (run, spill) -> id.

    New runs get ``conditions`` (each with its own run number), or unknown conditions.
    """
    first_opened: dict[int, datetime] = {}
    for sp in spills:
        first_opened[sp.run] = min(sp.opened_at, first_opened.get(sp.run, sp.opened_at))
    insert_ignore(
        session,
        Run,
        [
            {
                "run": run,
                "beam_config": conditions.beam_config if conditions else None,
                "conditions": {**conditions.to_dict(), "run": run} if conditions else None,
                "started_at": at,
                "comment": comment,
            }
            for run, at in sorted(first_opened.items())
        ],
    )
    session.execute(
        insert(Spill),
        [
            {
                "run": sp.run,
                "spill": sp.spill,
                "status": sp.status,
                "opened_at": sp.opened_at,
                "updated_at": sp.closed_at,
                "closed_at": sp.closed_at,
                "expected_batches": sp.batches,
                "received_batches": sp.batches,
                "n_events": int(sp.summary.get("n_events") or 0),
                "summary": dict(sp.summary),
                "quality": sp.quality,
                "config_version": sp.config_version,
            }
            for sp in spills
        ],
    )
    ids = {
        (run, number): spill_id
        for spill_id, run, number in session.execute(
            select(Spill.id, Spill.run, Spill.spill).where(Spill.run.in_(first_opened))
        )
    }
    session.execute(
        insert(SpillHistograms),
        [
            {
                "spill_id": ids[(sp.run, sp.spill)],
                "format_version": FORMAT_VERSION,
                "size_bytes": len(sp.blob),
                "blob": sp.blob,
            }
            for sp in spills
        ],
    )
    flags = [
        {
            **flag,
            "run": sp.run,
            "spill": sp.spill,
            "spill_id": ids[(sp.run, sp.spill)],
            "config_version": sp.config_version or "",
            "created_at": sp.closed_at,
        }
        for sp in spills
        for flag in sp.flags
    ]
    if flags:
        session.execute(insert(Flag), flags)
    session.flush()
    return ids


def copy_history(
    session: Session,
    templates: Sequence[JudgedSpill],
    n_spills: int,
    *,
    start: datetime,
    spills_per_day: int = 2000,
    spills_per_run: int = 200,
    first_run: int = 100_000,
    batches: int = 10,
    stream: str = "dqm:events",
    blobs: bool = True,
    conditions: RunConditions | None = None,
) -> int:
    """Write ``n_spills`` closed spills after ``start`` on PostgreSQL: years of history.

    For ``dqm bench --history``: years of beam (≈ 2000 spills a day, 200 a run) in minutes
    instead of the hours the live path would take. Spill ``i`` repeats
    ``templates[i % len(templates)]`` — its summary, verdict, flags and histograms — with its
    own run, number and times, and leaves the rows the live path leaves behind: the spill,
    its histograms (unless ``blobs`` is false), its flags, and one ledger row per batch and
    end-of-spill marker; new runs get ``conditions`` (or none). The templates go to
    temporary tables with ``COPY``; PostgreSQL then writes every row itself
    (``INSERT … SELECT`` over ``generate_series``), which no client-side loop can match.
    The caller commits; the tables should then be analysed (:func:`analyse`).
    """
    if session.get_bind().dialect.name != "postgresql":
        raise ValueError("copy_history needs PostgreSQL; use insert_judged_spills")
    step_s = 86_400.0 / spills_per_day
    first_id = int(session.scalar(select(func.coalesce(func.max(Spill.id), 0)))) + 1
    n_runs = -(-n_spills // spills_per_run)
    insert_ignore(
        session,
        Run,
        [
            {
                "run": first_run + k,
                "beam_config": conditions.beam_config if conditions else None,
                "conditions": {**conditions.to_dict(), "run": first_run + k}
                if conditions
                else None,
                "started_at": start + timedelta(seconds=k * spills_per_run * step_s),
                "comment": "history benchmark",
            }
            for k in range(n_runs)
        ],
    )
    conn = session.connection().connection.driver_connection
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS tmpl_spills (k int, status text, n_events bigint, "
            "summary json, quality int, config_version text, blob bytea) ON COMMIT DROP;"
            "CREATE TEMP TABLE IF NOT EXISTS tmpl_flags (k int, subsystem text, histogram text, "
            "check_name text, quality int, value float8, explanation text, instruction text, "
            "reference_run int) ON COMMIT DROP"
        )
        with cur.copy("COPY tmpl_spills FROM STDIN") as copy:
            for k, t in enumerate(templates):
                copy.write_row(
                    (
                        k,
                        t.status,
                        int(t.summary.get("n_events") or 0),
                        json.dumps(t.summary),
                        t.quality,
                        t.config_version or "",
                        t.blob,
                    )
                )
        with cur.copy("COPY tmpl_flags FROM STDIN") as copy:
            for k, t in enumerate(templates):
                for f in t.flags:
                    copy.write_row(
                        (
                            k,
                            f["subsystem"],
                            f.get("histogram"),
                            f["check"],
                            f["quality"],
                            f.get("value"),
                            f.get("explanation", ""),
                            f.get("instruction", ""),
                            f.get("reference_run"),
                        )
                    )
        args = {
            "n": n_spills,
            "n_t": len(templates),
            "first_id": first_id,
            "first_run": first_run,
            "per_run": spills_per_run,
            "start": start,
            "step": step_s,
            "batches": batches,
            "stream": stream,
        }
        series = "FROM generate_series(0, %(n)s - 1) AS i JOIN tmpl_spills t ON t.k = i %% %(n_t)s"
        closed = "%(start)s + (i + 0.5) * %(step)s * interval '1 second'"
        cur.execute(
            "INSERT INTO spills (id, run, spill, status, opened_at, updated_at, closed_at, "
            "expected_batches, received_batches, n_events, late_batches, late_events, summary, "
            "quality, config_version) "
            f"SELECT %(first_id)s + i, %(first_run)s + i / %(per_run)s, i %% %(per_run)s + 1, "
            f"t.status, {closed} - interval '17 seconds', {closed}, {closed}, %(batches)s, "
            f"%(batches)s, t.n_events, 0, 0, t.summary, t.quality, t.config_version {series}",
            args,
        )
        if blobs:
            cur.execute(
                "INSERT INTO spill_histograms (spill_id, format_version, size_bytes, blob) "
                f"SELECT %(first_id)s + i, {FORMAT_VERSION}, length(t.blob), t.blob {series}",
                args,
            )
        cur.execute(
            'INSERT INTO flags (run, spill, spill_id, subsystem, histogram, "check", quality, '
            "value, explanation, instruction, config_version, reference_run, created_at) "
            "SELECT %(first_run)s + i / %(per_run)s, i %% %(per_run)s + 1, %(first_id)s + i, "
            "f.subsystem, f.histogram, f.check_name, f.quality, f.value, f.explanation, "
            f"f.instruction, t.config_version, f.reference_run, {closed} {series} "
            "JOIN tmpl_flags f ON f.k = t.k",
            args,
        )
        cur.execute(
            "INSERT INTO processed_messages (stream, message_id, kind, spill_id, batch_index, "
            "processed_at) "
            "SELECT %(stream)s, (extract(epoch FROM "
            f"{closed})::bigint * 1000 - 17000 + b)::text || '-' || i, "
            "CASE WHEN b = %(batches)s THEN 'eos' ELSE 'batch' END, %(first_id)s + i, "
            f"CASE WHEN b = %(batches)s THEN NULL ELSE b END, {closed} "
            "FROM generate_series(0, %(n)s - 1) AS i, generate_series(0, %(batches)s) AS b",
            args,
        )
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('spills', 'id'), %s)", (first_id + n_spills,)
        )
        cur.execute("DROP TABLE tmpl_spills; DROP TABLE tmpl_flags")
    return n_spills


def analyse(session: Session) -> None:
    """Refresh the planner's statistics after a bulk load (PostgreSQL; nothing on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE"))


def vacuum_history(engine) -> None:
    """``VACUUM ANALYZE`` the spills and runs, ``ANALYZE`` the rest, after a bulk load.

    A live store's autovacuum keeps every table's visibility map current, so its readers
    get index-only scans (the change check, a run's spills, the Trends' count); a freshly
    loaded store has none until it is vacuumed, and would time slower than production.
    Flags, histograms and the ledger are read through their heap anyway, and one pass over
    the flags alone (12 GB at a million spills) took 4 min at load 10, so they are only
    analysed.
    VACUUM cannot run in a transaction, hence an autocommit connection.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("spills", "runs"):
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
        for table in HISTORY_TABLES:
            if table != "spills":
                conn.execute(text(f"ANALYZE {table}"))


@contextmanager
def without_secondary_indexes(engine, tables: Sequence[str] = HISTORY_TABLES) -> Iterator[int]:
    """Drop the tables' foreign keys, unique constraints and indexes (not their primary
    keys) for a bulk load, and create them again after it, as the migrations defined them.

    Why: a row inserted into ``flags`` updated six b-trees and probed ``spills`` for its
    foreign key — 30 of the 40 s of 20 000 spills (826 000 flag rows) went there, at load
    2.6. One sorted ``CREATE INDEX`` after the load costs a fraction of that, and one
    ``ADD CONSTRAINT`` checks every row in one join. The definitions are read from
    PostgreSQL's catalogue (``pg_get_indexdef``, ``pg_get_constraintdef``), so whatever the
    migrations made is what comes back, even if the load fails (foreign keys ``NOT VALID``:
    see below). Yields how many were dropped.
    For scratch stores only: readers see no index while the load runs.
    """
    names = list(tables)
    with engine.begin() as conn:
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype "
                "FROM pg_constraint WHERE conrelid::regclass::text = ANY(:t) "
                "AND contype IN ('f', 'u') ORDER BY contype"
            ),
            {"t": names},
        ).all()
        indexes = conn.execute(
            text(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
                "FROM pg_index i WHERE i.indrelid::regclass::text = ANY(:t) "
                "AND NOT i.indisprimary AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            ),
            {"t": names},
        ).all()
        for table, name, _, _ in constraints:  # foreign keys ('f') before unique ('u')
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        for name, _ in indexes:
            conn.execute(text(f"DROP INDEX {name}"))
    try:
        yield len(constraints) + len(indexes)
    finally:
        with engine.begin() as conn:
            for _, definition in indexes:
                conn.execute(text(definition))
            for table, name, definition, kind in reversed(constraints):  # unique, then foreign
                # a foreign key comes back NOT VALID: enforced for every new row, but the
                # loaded rows (right by construction) are not checked again — at a million
                # spills that check read the flags' 12 GB heap for over 15 minutes
                valid = " NOT VALID" if kind == "f" else ""
                conn.execute(
                    text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}{valid}')
                )
