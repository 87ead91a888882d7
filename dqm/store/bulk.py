"""Closed, judged spills written in bulk: for the report's tests and the benchmarks.

Layer: I/O shell (store), writes. The live path stores a spill through
:func:`dqm.store.spills.commit_group` and :func:`~dqm.store.spills.try_close`, one at a
time; a benchmark day of ~2000 spills, or a recheck run of hundreds, is stored here in a
few multi-row ``INSERT`` statements instead. The rows are what the live path would have
left behind (run, spill, histograms, summary, verdict and flags), so the readers —
the report, ``dqm recheck`` — cannot tell the difference. The caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions
from dqm.core.histio import FORMAT_VERSION
from dqm.store.models import Flag, Run, Spill, SpillHistograms
from dqm.store.spills import insert_ignore

__all__ = ["JudgedSpill", "insert_judged_spills"]


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
