"""The expert pages' reads: plain rows and pandas frames ready for a table or a plot.

Layer: I/O shell (store), read-only. The views (``apps/``) never build SQL: each table
or trend they show is one function here, testable against a real database without a
browser. Qualities are spelled with :func:`dqm.checks.quality_name`, as everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP, quality_name
from dqm.store.flag_texts import shown_instruction
from dqm.store.models import AuditEntry, Flag, Reference, Spill, SpillHistograms
from dqm.store.queries import newest_closed_summary, runs_with_closed_spills

__all__ = [
    "SpillInfo",
    "runs",
    "spills_of_run",
    "summary_keys",
    "trend_frame",
    "flags_frame",
    "audit_frame",
    "references_frame",
    "spill_blobs",
]


@dataclass(frozen=True)
class SpillInfo:
    id: int
    run: int
    spill: int
    n_events: int
    quality: str


def runs(session: Session) -> list[int]:
    """Runs with at least one closed spill, newest first."""
    return runs_with_closed_spills(session)


def spills_of_run(session: Session, run: int) -> list[SpillInfo]:
    """The run's closed spills, in order, with their overall quality (no summaries read)."""
    stmt = (
        select(Spill.id, Spill.run, Spill.spill, Spill.n_events, Spill.quality)
        .where(Spill.run == run, Spill.closed)
        .order_by(Spill.spill)
    )
    return [
        SpillInfo(i, r, n, int(events or 0), quality_name(q))
        for i, r, n, events, q in session.execute(stmt)
    ]


def spill_blobs(session: Session, spill_ids: Sequence[int]) -> dict[int, bytes]:
    """Stored histogram blobs of the given spills (one query): the expert page decodes from
    them only the histogram it shows, ~8 ms a spill instead of ~120 ms for all ~50."""
    if not spill_ids:
        return {}
    stmt = select(SpillHistograms.spill_id, SpillHistograms.blob).where(
        SpillHistograms.spill_id.in_(list(spill_ids))
    )
    return {i: b for i, b in session.execute(stmt)}


def summary_keys(session: Session, run: int | None = None) -> list[str]:
    """Numeric per-spill summary quantities present in the newest closed spill."""
    summary = newest_closed_summary(session, run)
    return sorted(
        k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


#: points a trend shows at most: about the pixels across a screen
TREND_POINTS = 2000


def trend_frame(
    session: Session, key: str, run_list: Sequence[int], max_points: int = TREND_POINTS
) -> pd.DataFrame:
    """``key`` per closed spill of the given runs, in order, with each spill's quality.

    A week of beam is 14 000 spills and a year 700 000: more than a screen has pixels, and
    reading a year of summaries takes seconds. Above ``max_points`` spills the frame keeps
    every k-th spill number of each run (and, above ``max_points`` runs, every m-th run),
    found through the (run, spill) index; only ``key`` is read from each summary, in SQL.
    ``frame.attrs["every"]`` says how many spills each point stands for (1: all shown).
    """
    runs_all = sorted(set(run_list))
    total = int(
        session.scalar(select(func.count()).select_from(Spill).where(Spill.run.in_(runs_all))) or 0
    )
    every_run = max(1, math.ceil(len(runs_all) / max_points))
    chosen = runs_all[::every_run]
    every = max(1, math.ceil(total / every_run / max_points)) if total else 1
    value = Spill.summary[key].as_float()
    stmt = select(Spill.run, Spill.spill, value, Spill.quality).where(
        Spill.run.in_(chosen), Spill.closed
    )
    if every > 1:
        longest = session.scalar(select(func.max(Spill.spill)).where(Spill.run == chosen[-1]))
        numbers = range(1, max(int(longest or 1), every) + 1, every)
        stmt = stmt.where(Spill.spill.in_(list(numbers)))
    rows = session.execute(stmt.order_by(Spill.run, Spill.spill)).all()
    frame = pd.DataFrame(
        {
            "run": [r[0] for r in rows],
            "spill": [r[1] for r in rows],
            "value": [float(r[2]) if r[2] is not None else np.nan for r in rows],
            "quality": [quality_name(r[3]) for r in rows],
        }
    )
    frame["index"] = np.arange(len(frame))
    frame["label"] = [f"{r}/{s}" for r, s in zip(frame["run"], frame["spill"], strict=False)]
    frame.attrs["every"] = every * every_run
    return frame


FLAG_COLUMNS = [
    "id",
    "run",
    "spill",
    "subsystem",
    "histogram",
    "check",
    "quality",
    "explanation",
    "instruction",
    "acknowledged_by",
    "annotation",
]


def flags_frame(
    session: Session,
    *,
    run: int | None = None,
    subsystem: str | None = None,
    min_quality: int = 0,
    limit: int = 500,
) -> pd.DataFrame:
    """Stored check results (not roll-ups), worst and newest first.

    Only the shown columns are read (no ORM objects, no JSON details decoded): the expert
    page asks for 500 rows on every refresh.
    """
    cols = (
        Flag.id,
        Flag.run,
        Flag.spill,
        Flag.subsystem,
        Flag.histogram,
        Flag.check,
        Flag.quality,
        Flag.explanation,
        shown_instruction(),  # the row's text, or the catalogue's (dqm.store.flag_texts)
        Flag.acknowledged_by,
        Flag.annotation,
    )
    stmt = select(*cols).where(Flag.check != ROLLUP, Flag.quality >= min_quality)
    if run is not None:
        stmt = stmt.where(Flag.run == run)
    if subsystem:
        stmt = stmt.where(Flag.subsystem == subsystem)
    rows = session.execute(
        stmt.order_by(Flag.spill_id.desc(), Flag.quality.desc(), Flag.id).limit(limit)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=FLAG_COLUMNS)
    if len(frame):
        frame["quality"] = [quality_name(q) for q in frame["quality"]]
        for col in ("histogram", "acknowledged_by", "annotation"):
            frame[col] = frame[col].fillna("")
    return frame


def audit_frame(session: Session, limit: int = 200) -> pd.DataFrame:
    """The newest expert actions: who did what to which target, when (UTC)."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return pd.DataFrame(
        [
            {
                "at": a.at.strftime("%Y-%m-%d %H:%M:%S") if a.at else "",
                "user": a.user,
                "action": a.action,
                "target": a.target,
                "details": ", ".join(
                    f"{k}={v}" for k, v in (a.details or {}).items() if v not in (None, "")
                ),
            }
            for a in rows
        ],
        columns=["at", "user", "action", "target", "details"],
    )


def references_frame(session: Session) -> pd.DataFrame:
    """The 50 newest references (active or retired) with who set them and why."""
    rows = session.scalars(select(Reference).order_by(Reference.id.desc()).limit(50)).all()
    return pd.DataFrame(
        [
            {
                "run": r.run,
                "beam_config": r.beam_config,
                "active": r.active,
                "set_by": r.set_by,
                "set_at": r.set_at.strftime("%Y-%m-%d %H:%M") if r.set_at else "",
                "comment": r.comment,
            }
            for r in rows
        ],
        columns=["run", "beam_config", "active", "set_by", "set_at", "comment"],
    )
