"""Acknowledgement per incident, kept by the store, including flags stored later.

A shifter acknowledges an *incident* (one cause in one run over consecutive spills), not
the rows a table happened to show when it was read. So:

* :func:`acknowledge_cause` acknowledges every flag of the cause in that run and spill
  range — the roll-ups that follow from it and flags stored after the table was read
  included — and the stored incidents (:mod:`dqm.store.incidents`) of that cause over
  those spills, whose alarm then stops. One audit entry.
* A spill judged again (late batches, new run conditions) replaces its flags; the new
  rows keep the acknowledgement the old ones had (:func:`remember` / :func:`carry_over`):
  by the same check, else by the same cause.
* A flag that joins an acknowledged stored incident (its cause persisting spill after
  spill without getting worse, see :func:`dqm.store.incidents.record_incidents`) is
  stored acknowledged by the same person at the same time (:func:`inherit`). A cause
  that got worse opens a new incident instead, shown "to acknowledge": the shifter is
  asked again exactly when the situation changed.

Layer: I/O shell (store). Sessions at the edge: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dqm.store.actions import ActionError, audit, free_text, require_user
from dqm.store.models import Flag, StoredIncident, utcnow

__all__ = ["Acknowledged", "acknowledge_cause", "remember", "carry_over", "inherit"]


@dataclass(frozen=True)
class Acknowledged:
    by: str
    at: datetime
    annotation: str | None = None


def acknowledge_cause(
    session: Session,
    user: str | None,
    *,
    run: int,
    cause: str | None,
    first_spill: int,
    last_spill: int,
    flag_ids: Sequence[int] = (),
    annotation: str | None = None,
) -> int:
    """Acknowledge the incident ``cause`` of ``run`` over ``first_spill``–``last_spill``.

    Every flag of that cause there not yet acknowledged (``flag_ids`` too: flags stored
    without a cause), and the stored incidents of that cause overlapping those spills.
    Returns how many flags were acknowledged. Audited; refused for guests.
    """
    name = require_user(user)
    note = free_text(annotation, "annotation").strip() or None
    when = utcnow()
    lo, hi = min(first_spill, last_spill), max(first_spill, last_spill)
    chosen = []
    if cause:
        chosen.append((Flag.cause == cause) & (Flag.spill >= lo) & (Flag.spill <= hi))
    if flag_ids:
        chosen.append(Flag.id.in_([int(i) for i in flag_ids]))
    if not chosen:
        raise ActionError("an incident needs a cause or flags")
    values: dict = {"acknowledged_by": name, "acknowledged_at": when}
    if note:
        values["annotation"] = note
    done = session.execute(
        update(Flag)
        .where(Flag.run == int(run), Flag.acknowledged_at.is_(None), or_(*chosen))
        .values(**values)
    )
    incidents = []
    if cause:
        incidents = list(
            session.scalars(
                select(StoredIncident).where(
                    StoredIncident.run == int(run),
                    StoredIncident.cause == cause,
                    StoredIncident.first_spill <= hi,
                    StoredIncident.last_spill >= lo,
                    StoredIncident.acknowledged_at.is_(None),
                )
            )
        )
    for row in incidents:
        row.acknowledged_by, row.acknowledged_at = name, when
        if note:
            row.annotation = note
    count = int(done.rowcount or 0)  # type: ignore[attr-defined]
    if count == 0 and not incidents:
        raise ActionError("nothing to acknowledge in that incident")
    audit(
        session,
        name,
        "acknowledge_incident",
        f"run {run} {cause or 'flags'} spills {lo}-{hi}",
        {
            "run": int(run),
            "cause": cause,
            "spills": [lo, hi],
            "flags": count,
            "incident_ids": [r.id for r in incidents],
            "annotation": note,
        },
    )
    session.flush()
    return count


def remember(session: Session, spill_id: int) -> dict:
    """The acknowledgements of a spill's stored flags, before they are replaced:
    ``{("check", histogram, check): Acknowledged, ("cause", cause): Acknowledged}``."""
    rows = session.execute(
        select(
            Flag.histogram,
            Flag.check,
            Flag.cause,
            Flag.acknowledged_by,
            Flag.acknowledged_at,
            Flag.annotation,
        ).where(Flag.spill_id == spill_id, Flag.acknowledged_at.is_not(None))
    ).all()
    out: dict = {}
    for histogram, check, cause, by, at, note in rows:
        ack = Acknowledged(by or "", at, note)
        out[("check", histogram, check)] = ack
        if cause:
            out.setdefault(("cause", cause), ack)
    return out


def carry_over(flags: Sequence[Flag], known: dict) -> None:
    """Give the new rows of a spill judged again the acknowledgement the old ones had."""
    if not known:
        return
    for f in flags:
        ack = known.get(("check", f.histogram, f.check)) or (
            known.get(("cause", f.cause)) if f.cause else None
        )
        if ack is None:
            continue
        f.acknowledged_by, f.acknowledged_at = ack.by, ack.at
        if ack.annotation and not f.annotation:
            f.annotation = ack.annotation


def inherit(session: Session, row: StoredIncident, spill_id: int) -> None:
    """The spill's flags of an acknowledged incident's cause are acknowledged with it."""
    if row.acknowledged_at is None:
        return
    session.execute(
        update(Flag)
        .where(
            Flag.spill_id == spill_id,
            Flag.cause == row.cause,
            Flag.acknowledged_at.is_(None),
        )
        .values(acknowledged_by=row.acknowledged_by, acknowledged_at=row.acknowledged_at)
    )
