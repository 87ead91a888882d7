"""The expert pages' reads behind a flag: its evidence, a check's history, the run map, incidents.

Layer: I/O shell (store), read-only. A flag is only useful to an expert with what it
judged beside it: the spill, the histogram, the check's own number over the run with
its thresholds, and the incident it belongs to. Each of those is one function here
(the views in ``apps/`` never build SQL), returning plain dicts or pandas frames.
Qualities are spelled with :func:`dqm.checks.quality_name`, as everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP, quality_name
from dqm.store.frames import FLAG_COLUMNS
from dqm.store.models import Flag, Spill
from dqm.store.queries import closed_spills

__all__ = [
    "flag_evidence",
    "evidence_flag_id",
    "worst_check_flag",
    "check_series",
    "worst_check_quality",
    "run_map",
    "spill_times",
    "incident_frame",
    "INCIDENT_COLUMNS",
]


def _flag_dict(f: Flag, closed_at: datetime | None) -> dict[str, Any]:
    return {
        "id": f.id,
        "run": f.run,
        "spill": f.spill,
        "subsystem": f.subsystem,
        "histogram": f.histogram,
        "check": f.check,
        "quality": quality_name(f.quality),
        "value": f.value,
        "thresholds": dict(f.thresholds or {}),
        "explanation": f.explanation or "",
        "instruction": f.instruction or "",
        "details": dict(f.details or {}),
        "cause": f.cause,
        "reference_run": f.reference_run,
        "time": closed_at or f.created_at,
        "acknowledged_by": f.acknowledged_by,
    }


def flag_evidence(session: Session, flag_id: int) -> dict[str, Any] | None:
    """One flag as the evidence view shows it (None if there is no such flag)."""
    row = session.execute(
        select(Flag, Spill.closed_at)
        .outerjoin(Spill, Spill.id == Flag.spill_id)
        .where(Flag.id == flag_id)
    ).first()
    return _flag_dict(row[0], row[1]) if row else None


def evidence_flag_id(session: Session, run: int, spill: int, histogram: str) -> int | None:
    """The flag a link to (run, spill, histogram) stands for: that histogram's worst check
    result of the spill (the first stored among equals); None when it has none."""
    stmt = (
        select(Flag.id)
        .where(
            Flag.run == run, Flag.spill == spill, Flag.histogram == histogram, Flag.check != ROLLUP
        )
        .order_by(Flag.quality.desc(), Flag.id)
        .limit(1)
    )
    return session.scalar(stmt)


def worst_check_flag(
    session: Session, run: int, spill: int, subsystem: str
) -> tuple[int, str | None] | None:
    """(flag id, histogram) of the subsystem's worst check result on a spill (roll-ups left
    out): where a click on the run map's cell lands. None when the spill has none."""
    stmt = (
        select(Flag.id, Flag.histogram)
        .where(
            Flag.run == run, Flag.spill == spill, Flag.subsystem == subsystem, Flag.check != ROLLUP
        )
        .order_by(Flag.quality.desc(), Flag.id)
        .limit(1)
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def check_series(session: Session, run: int, histogram: str | None, check: str) -> pd.DataFrame:
    """One check's number on every judged spill of ``run``: spill, time, value, quality and the
    thresholds it was judged with (``warning``/``bad``, NaN where the check had none)."""
    stmt = (
        select(Flag, Spill.closed_at)
        .outerjoin(Spill, Spill.id == Flag.spill_id)
        .where(Flag.run == run, Flag.check == check, Flag.spill.is_not(None))
        .order_by(Flag.spill, Flag.id)
    )
    stmt = stmt.where(
        Flag.histogram == histogram if histogram is not None else Flag.histogram.is_(None)
    )
    rows = session.execute(stmt).all()

    def limit(f: Flag, key: str) -> float:
        v = (f.thresholds or {}).get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan

    return pd.DataFrame(
        {
            "spill": [f.spill for f, _ in rows],
            "time": pd.to_datetime([t or f.created_at for f, t in rows], utc=True),
            "value": [np.nan if f.value is None else float(f.value) for f, _ in rows],
            "quality": [quality_name(f.quality) for f, _ in rows],
            "warning": [limit(f, "warning") for f, _ in rows],
            "bad": [limit(f, "bad") for f, _ in rows],
        },
        columns=["spill", "time", "value", "quality", "warning", "bad"],
    )


def worst_check_quality(
    session: Session, runs: Sequence[int], checks: Iterable[tuple[str, str]]
) -> dict[tuple[int, int], int]:
    """(run, spill) -> worst quality of the given (histogram, check) results on that spill.

    What a trend point is coloured by: the checks that judge *that* quantity, not the
    whole spill (a dead ECAL cell must not paint the beam momentum red).
    """
    pairs = list(checks)
    if not pairs or not runs:
        return {}
    stmt = select(Flag.run, Flag.spill, Flag.histogram, Flag.check, Flag.quality).where(
        Flag.run.in_(list(runs)), Flag.check.in_({c for _, c in pairs})
    )
    wanted = set(pairs)
    out: dict[tuple[int, int], int] = {}
    for run, spill, histogram, check, quality in session.execute(stmt):
        if (histogram, check) in wanted and spill is not None:
            out[(run, spill)] = max(out.get((run, spill), -1), int(quality))
    return out


def run_map(session: Session, run: int) -> pd.DataFrame:
    """Spills × subsystems of a run: one row per (spill, subsystem) with its quality, as the
    judge stored it in the spill's summary (spills not yet judged: the spill's own quality)."""
    rows = []
    for sp in closed_spills(session, run):
        per = (sp.summary or {}).get("quality") or {}
        if not isinstance(per, dict) or not per:
            per = {"spill": sp.quality}
        for subsystem, q in per.items():
            rows.append(
                {
                    "spill": sp.spill,
                    "subsystem": subsystem,
                    "quality": quality_name(q),
                    "time": sp.closed_at,
                }
            )
    return pd.DataFrame(rows, columns=["spill", "subsystem", "quality", "time"])


def spill_times(session: Session, runs: Sequence[int]) -> dict[tuple[int, int], datetime | None]:
    """(run, spill) -> when the spill closed, for the closed spills of ``runs``."""
    stmt = select(Spill.run, Spill.spill, Spill.closed_at).where(
        Spill.run.in_(list(runs)), Spill.closed
    )
    return {(r, s): t for r, s, t in session.execute(stmt)}


#: a flag's columns (:data:`~dqm.store.frames.FLAG_COLUMNS`) under its incident, with its time,
#: and the stored cause ("" for a flag stored without one) that acknowledges the incident
INCIDENT_COLUMNS = ["incident", "id", "time", *FLAG_COLUMNS[1:], "cause"]


def _incident_label(run: int, cause: str, first: int, last: int, n: int, acked: bool) -> str:
    spills = f"spill {first}" if first == last else f"spills {first}–{last}"
    state = "acknowledged" if acked else "to acknowledge"
    return f"run {run} · {cause} · {spills} · {n} flag{'s' if n != 1 else ''} · {state}"


def incident_frame(
    session: Session,
    *,
    run: int | None = None,
    subsystem: str | None = None,
    min_quality: int = 0,
    limit: int = 500,
) -> pd.DataFrame:
    """Check results (not roll-ups), worst and newest first, each labelled with its incident.

    An incident is one cause in one run over consecutive judged spills (a cause that comes
    back after a spill without it is a new incident), as the judge groups them; a flag
    stored without a cause is its own ``histogram/check`` incident. The label names the
    run, the cause, the spills, how many flags it holds and whether all are acknowledged.
    """
    stmt = (
        select(Flag, Spill.closed_at)
        .outerjoin(Spill, Spill.id == Flag.spill_id)
        .where(Flag.check != ROLLUP, Flag.quality >= min_quality)
    )
    if run is not None:
        stmt = stmt.where(Flag.run == run)
    if subsystem:
        stmt = stmt.where(Flag.subsystem == subsystem)
    rows = session.execute(
        stmt.order_by(Flag.spill_id.desc(), Flag.quality.desc(), Flag.id).limit(limit)
    ).all()
    records = [
        {
            "id": f.id,
            "time": (t or f.created_at).strftime("%Y-%m-%d %H:%M:%S")
            if (t or f.created_at)
            else "",
            "run": f.run,
            "spill": f.spill if f.spill is not None else -1,
            "subsystem": f.subsystem,
            "histogram": f.histogram or "",
            "check": f.check,
            "quality": quality_name(f.quality),
            "explanation": f.explanation,
            "instruction": f.instruction,
            "acknowledged_by": f.acknowledged_by or "",
            "annotation": f.annotation or "",
            "cause": f.cause or "",
            "group": f.cause or f"{f.histogram or f.subsystem}/{f.check}",
        }
        for f, t in rows
    ]
    if not records:
        return pd.DataFrame(columns=INCIDENT_COLUMNS)
    by_cause: dict[tuple[int, str], list[dict]] = {}
    for rec in records:
        by_cause.setdefault((rec["run"], rec["group"]), []).append(rec)
    for (r, cause), members in by_cause.items():
        # consecutive spills of the same cause are one incident; a gap starts another
        groups: list[list[dict]] = []
        for rec in sorted(members, key=lambda m: m["spill"]):
            if groups and rec["spill"] - groups[-1][-1]["spill"] <= 1:
                groups[-1].append(rec)
            else:
                groups.append([rec])
        for g in groups:
            label = _incident_label(
                r,
                cause,
                g[0]["spill"],
                g[-1]["spill"],
                len(g),
                all(m["acknowledged_by"] for m in g),
            )
            for m in g:
                m["incident"] = label
    frame = pd.DataFrame(records)
    return frame[INCIDENT_COLUMNS]
