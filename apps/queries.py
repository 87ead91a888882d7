"""Read queries of the expert pages: plain functions of a ``Session`` returning plain data.

Kept apart from the views so they can be tested against a real database without a
browser, and so the views never build SQL. Each returns rows or a pandas frame ready
for a table; none writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boost_histogram as bh
import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from apps.theme import quality_name
from dqm.core.histio import add_into
from dqm.store.models import SPILL_OPEN, AuditEntry, ChannelMask, Flag, Reference, Run, Spill

__all__ = [
    "SpillInfo",
    "runs",
    "spills_of_run",
    "sum_spills",
    "flags_frame",
    "audit_frame",
    "trend_frame",
    "cell_history",
    "reports",
    "summary_keys",
    "references_frame",
    "masks_frame",
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
    return list(
        session.scalars(
            select(Spill.run)
            .where(Spill.status != SPILL_OPEN)
            .distinct()
            .order_by(Spill.run.desc())
        )
    )


def spills_of_run(session: Session, run: int) -> list[SpillInfo]:
    rows = session.execute(
        select(Spill.id, Spill.run, Spill.spill, Spill.n_events, Spill.quality)
        .where(Spill.run == run, Spill.status != SPILL_OPEN)
        .order_by(Spill.spill)
    ).all()
    return [
        SpillInfo(r.id, r.run, r.spill, int(r.n_events or 0), quality_name(r.quality)) for r in rows
    ]


def sum_spills(spill_hists: Sequence[dict[str, bh.Histogram]], name: str) -> bh.Histogram | None:
    """One histogram summed over several spills (None if no spill has it)."""
    total: dict[str, bh.Histogram] = {}
    for hists in spill_hists:
        if name in hists:
            add_into(total, {name: hists[name]})
    return total.get(name)


def summary_keys(session: Session, run: int | None = None) -> list[str]:
    """Numeric per-spill summary quantities present in the newest closed spill."""
    stmt = select(Spill.summary).where(Spill.status != SPILL_OPEN)
    if run is not None:
        stmt = stmt.where(Spill.run == run)
    summary = session.scalar(stmt.order_by(Spill.id.desc()).limit(1)) or {}
    return sorted(
        k for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


def trend_frame(session: Session, key: str, run_list: Sequence[int]) -> pd.DataFrame:
    """``key`` per closed spill of the given runs, in order, with each spill's quality."""
    rows = session.execute(
        select(Spill.run, Spill.spill, Spill.summary, Spill.quality, Spill.closed_at)
        .where(Spill.run.in_(list(run_list)), Spill.status != SPILL_OPEN)
        .order_by(Spill.run, Spill.spill)
    ).all()
    values = [(r.summary or {}).get(key) for r in rows]
    frame = pd.DataFrame(
        {
            "run": [r.run for r in rows],
            "spill": [r.spill for r in rows],
            "value": [float(v) if isinstance(v, (int, float)) else np.nan for v in values],
            "quality": [quality_name(r.quality) for r in rows],
        }
    )
    frame["index"] = np.arange(len(frame))
    frame["label"] = [f"{r}/{s}" for r, s in zip(frame["run"], frame["spill"], strict=False)]
    return frame


def flags_frame(
    session: Session,
    *,
    run: int | None = None,
    subsystem: str | None = None,
    min_quality: int = 0,
    limit: int = 500,
) -> pd.DataFrame:
    """Stored check results (not roll-ups), worst and newest first."""
    stmt = select(Flag).where(Flag.check != "rollup", Flag.quality >= min_quality)
    if run is not None:
        stmt = stmt.where(Flag.run == run)
    if subsystem:
        stmt = stmt.where(Flag.subsystem == subsystem)
    flags = session.scalars(
        stmt.order_by(Flag.spill_id.desc(), Flag.quality.desc(), Flag.id).limit(limit)
    ).all()
    return pd.DataFrame(
        [
            {
                "id": f.id,
                "run": f.run,
                "spill": f.spill,
                "subsystem": f.subsystem,
                "histogram": f.histogram or "",
                "check": f.check,
                "quality": quality_name(f.quality),
                "explanation": f.explanation,
                "instruction": f.instruction,
                "acknowledged_by": f.acknowledged_by or "",
                "annotation": f.annotation or "",
            }
            for f in flags
        ],
        columns=[
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
        ],
    )


def audit_frame(session: Session, limit: int = 200) -> pd.DataFrame:
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


def masks_frame(session: Session) -> pd.DataFrame:
    rows = session.scalars(select(ChannelMask).order_by(ChannelMask.id.desc()).limit(100)).all()
    return pd.DataFrame(
        [
            {
                "histogram": m.histogram,
                "channel": str(m.channel),
                "until": m.until.strftime("%Y-%m-%d %H:%M"),
                "reason": m.reason,
                "by": m.created_by,
            }
            for m in rows
        ],
        columns=["histogram", "channel", "until", "reason", "by"],
    )


def cell_history(
    spill_hists: Sequence[tuple[SpillInfo, dict[str, bh.Histogram]]], name: str, cell: Sequence[int]
) -> dict[str, Any]:
    """One channel's hits per event across spills (a cellmap cell or a ``channels`` row sum)."""
    spills, per_event = [], []
    for info, hists in spill_hists:
        h = hists.get(name)
        if h is None:
            continue
        values = np.asarray(h.values(), dtype=float)
        v = float(values[tuple(cell)].sum()) if len(cell) <= values.ndim else float("nan")
        spills.append(info.spill)
        per_event.append(v / info.n_events if info.n_events else np.nan)
    return {"spill": spills, "per_event": per_event}


def beam_configs(session: Session) -> list[str]:
    """Beam configurations of the stored runs (runs whose conditions are unknown have none)."""
    stmt = select(Run.beam_config).where(Run.beam_config.is_not(None)).distinct()
    return sorted(session.scalars(stmt))


def reports(folder: Path) -> list[tuple[str, int, float]]:
    """Nightly PDF reports in ``folder``: (file name, size in bytes, modification time), newest
    first."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.pdf") if p.is_file()]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [(p.name, p.stat().st_size, p.stat().st_mtime) for p in files]
