"""What ``dqm flags`` reads: a run's flags and the provenance of its reference.

Layer: I/O shell (store), reads. Apart from :mod:`dqm.store.flags` and
:mod:`dqm.store.references` (which re-export these) because those load the checks, the
judging and boost-histogram to write verdicts and references; reading the stored rows
needs none of it, and ``dqm flags`` must answer at once (issue 15, item 3).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.quality import ROLLUP, Quality
from dqm.store.models import Flag, Reference, Run, utcnow
from dqm.store.runs import as_conditions

__all__ = ["query_flags", "count_flags", "newest_reference_of_run", "reference_warnings"]


def query_flags(
    session: Session,
    run: int,
    *,
    spill: int | None = None,
    subsystem: str | None = None,
    min_quality: Quality = Quality.GOOD,
    rollups: bool = False,
) -> list[Flag]:
    """A run's stored flags (per-check rows, or with ``rollups`` the roll-up rows), worst first."""
    stmt = select(Flag).where(Flag.run == run, Flag.quality >= int(min_quality))
    stmt = stmt.where(Flag.check == ROLLUP) if rollups else stmt.where(Flag.check != ROLLUP)
    if spill is not None:
        stmt = stmt.where(Flag.spill == spill)
    if subsystem is not None:
        stmt = stmt.where(Flag.subsystem == subsystem)
    return list(
        session.scalars(
            stmt.order_by(
                Flag.spill.nulls_first(),
                Flag.quality.desc(),
                Flag.subsystem,
                Flag.histogram,
                Flag.check,
            )
        )
    )


def count_flags(
    session: Session,
    run: int,
    *,
    spill: int | None = None,
    subsystem: str | None = None,
    min_quality: Quality = Quality.GOOD,
) -> int:
    """How many per-check flags :func:`query_flags` would return, counted in SQL.

    ``dqm flags`` says how many better flags it did not show; loading a run's 8000 flag
    rows as objects to count them cost more than the rest of the command.
    """
    stmt = select(func.count()).select_from(Flag).where(Flag.run == run, Flag.check != ROLLUP)
    stmt = stmt.where(Flag.quality >= int(min_quality))
    if spill is not None:
        stmt = stmt.where(Flag.spill == spill)
    if subsystem is not None:
        stmt = stmt.where(Flag.subsystem == subsystem)
    return int(session.scalar(stmt) or 0)


def reference_warnings(
    session: Session,
    ref: Reference | None,
    run: int,
    max_age_days: float = 90.0,
    now: datetime | None = None,
) -> list[str]:
    """Reasons to distrust a comparison: no reference, too old, other run conditions."""
    this_run = session.get(Run, run)
    conditions = as_conditions(this_run.conditions) if this_run else None
    out = []
    if this_run is not None and conditions is None:
        out.append(
            f"run {run}: no run conditions received from the DAQ"
            + (f" (stored as '{this_run.beam_config}')" if this_run.beam_config else "")
            + ": momentum-scale checks and reference comparisons give NO_DATA"
        )
    if ref is None:
        config = conditions.beam_config if conditions else None
        if config:
            out.append(f"no reference for {config}: shape comparisons give NO_DATA")
        elif not out:
            out.append(
                "no reference run set for this beam configuration: shape comparisons give NO_DATA"
            )
        return out
    set_at = ref.set_at
    if set_at and (now or utcnow()) - set_at > timedelta(days=max_age_days):
        out.append(
            f"reference run {ref.run} was set {((now or utcnow()) - set_at).days} days ago (> "
            f"{max_age_days:g})"
        )
    if this_run is not None and this_run.beam_config not in (None, ref.beam_config):
        out.append(
            f"reference run {ref.run} was taken with beam '{ref.beam_config}', run {run} with "
            f"'{this_run.beam_config}'"
        )
    ref_conditions = as_conditions(ref.conditions)
    if ref_conditions is None:
        out.append(
            f"the conditions of reference run {ref.run} were not recorded (certified before run "
            "conditions existed, or imported): certify a reference under known conditions"
        )
    elif conditions is not None and (diffs := conditions.differences(ref_conditions)):
        out.append(
            f"reference run {ref.run} was taken under other conditions (run {run} vs "
            f"reference): {'; '.join(diffs)}"
        )
    return out


def newest_reference_of_run(session: Session, run: int) -> Reference | None:
    """The newest reference made of ``run`` (active or retired), None if it never was one."""
    stmt = select(Reference).where(Reference.run == run).order_by(Reference.id.desc()).limit(1)
    return session.scalars(stmt).first()
