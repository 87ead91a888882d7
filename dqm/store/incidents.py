"""Incidents that stay: opened at spill close, extended while their cause persists, latched
until a person acknowledges them.

Why stored, and not recomputed from the last spill: a BAD spill's tile lasts only until
the next spill closes (after a beam pause, 17 queued spills closed within 5 s and each
BAD was on screen for well under a second). An alarm must outlive the spill that raised
it. So, at spill close (:class:`dqm.store.judge.SpillJudge`), each incident of the verdict
(:func:`dqm.core.incidents.find_incidents`, one per cause) is matched with the stored
incident of the same run and cause:

* the stored incident is not acknowledged yet, or it is but the cause was present on the
  spill before this one: it is **extended** (last spill, number of spills, worst quality,
  newest words) — a cause that persists, or comes and goes before anybody looked, is one
  incident, not an alarm per spill; except that an acknowledged incident that **got
  worse** (WARNING → BAD) opens a new one;
* otherwise a **new incident opens** when the cause is BAD (or the judging failed,
  CHECK_ERROR: somebody must look), or WARNING on each of the last
  ``incident_warning_spills`` spills (a single warning is worth watching, not waking up for).

An incident is *open* until acknowledged (:func:`acknowledge_incident`), whatever later
spills show. Acknowledging it also acknowledges the flags it stands for.

When a run's spills are judged again because its conditions arrived late
(:mod:`dqm.store.rejudge`), the incidents follow (:func:`follow_rejudged`): one whose
cause no flag shows any more is **superseded** (closed, never deleted: what it was stays
in ``details["history"]``), one whose cause remains on fewer spills is narrowed to them.

Layer: I/O shell (store). Sessions at the edge: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dqm.checks import Quality
from dqm.core.evaluate import Verdict, severity
from dqm.core.incidents import Incident
from dqm.store.acknowledgements import inherit
from dqm.store.actions import ActionError, audit, free_text, require_user
from dqm.store.models import Flag, Spill, StoredIncident, utcnow

__all__ = [
    "ALARMING",
    "record_incidents",
    "open_incidents",
    "run_incidents",
    "acknowledge_incident",
    "follow_rejudged",
]

#: the qualities an incident can be opened by at once: BAD, and a judging that failed
ALARMING = (Quality.BAD, Quality.CHECK_ERROR)


def _previous_spills(session: Session, sp: Spill, n: int) -> list[int]:
    """The numbers of the ``n`` closed spills of the run before ``sp``, newest first."""
    return list(
        session.scalars(
            select(Spill.spill)
            .where(Spill.run == sp.run, Spill.spill < sp.spill, Spill.closed)
            .order_by(Spill.spill.desc())
            .limit(n)
        )
    )


def _warned_on(session: Session, run: int, cause: str, spills: Sequence[int]) -> set[int]:
    """Which of ``spills`` had a WARNING-or-worse flag of ``cause``."""
    if not spills:
        return set()
    return set(
        session.scalars(
            select(Flag.spill)
            .where(
                Flag.run == run,
                Flag.cause == cause,
                Flag.spill.in_(list(spills)),
                Flag.quality >= int(Quality.WARNING),
            )
            .distinct()
        )
    )


def _latest(session: Session, run: int, cause: str) -> StoredIncident | None:
    return session.scalars(
        select(StoredIncident)
        .where(
            StoredIncident.run == run,
            StoredIncident.cause == cause,
            StoredIncident.superseded_at.is_(None),
        )
        .order_by(StoredIncident.id.desc())
        .limit(1)
    ).first()


def _extends(row: StoredIncident, inc: Incident, previous: list[int]) -> bool:
    """Whether ``inc`` on this spill belongs to the stored incident ``row`` of its cause.

    While nobody has acknowledged it, a cause that comes back is the same incident (a
    flapping cause must not alarm again and again). Once acknowledged, the incident goes
    on only while its cause persists spill after spill, and not if it got worse.
    """
    if row.acknowledged_at is None:
        return True
    persisted = bool(previous) and row.last_spill >= previous[0]
    return persisted and severity(inc.quality) <= severity(row.quality)


def _words(row: StoredIncident, inc: Incident) -> None:
    """The newest explanation and instruction; the worst quality seen."""
    row.explanation = inc.explanation
    row.instruction = inc.instruction
    row.title = (inc.title or inc.cause)[:256]
    if severity(inc.quality) > severity(row.quality):
        row.quality = int(inc.quality)
    row.details = {
        **(row.details or {}),
        **{k: v for k, v in inc.to_dict().items() if k in ("flags", "consequences")},
        "rule": inc.rule,
    }
    row.updated_at = utcnow()


def record_incidents(
    session: Session, sp: Spill, verdict: Verdict, *, warning_spills: int = 3
) -> list[StoredIncident]:
    """Open or extend the stored incidents for the spill's verdict; returns the new ones.

    Judging the same spill again (late batches, new run conditions) never counts it twice.
    ``warning_spills``: how many spills in a row a WARNING must persist to open an incident
    (1: at once).
    """
    need = max(int(warning_spills), 1)
    previous = _previous_spills(session, sp, max(need - 1, 1))
    opened: list[StoredIncident] = []
    for inc in verdict.incidents:
        if inc.quality not in (Quality.WARNING, *ALARMING):
            continue
        row = _latest(session, sp.run, inc.cause)
        if row is not None and row.first_spill <= sp.spill <= row.last_spill:
            _words(row, inc)  # this spill judged again: counted already
            inherit(session, row, sp.id)
            continue
        if row is not None and _extends(row, inc, previous):
            row.last_spill = max(row.last_spill, sp.spill)
            row.n_spills += 1
            _words(row, inc)
            inherit(session, row, sp.id)  # joins an acknowledged incident: acknowledged
            continue
        first, count = sp.spill, 1
        if inc.quality == Quality.WARNING and need > 1:
            earlier = previous[: need - 1]
            if len(earlier) < need - 1 or _warned_on(session, sp.run, inc.cause, earlier) != set(
                earlier
            ):
                continue  # a warning that has not persisted yet
            first, count = min(earlier), need
        histogram = next((j.histogram for j in inc.flags if j.histogram), None)
        new = StoredIncident(
            run=sp.run,
            cause=inc.cause[:128],
            subsystem=inc.subsystem[:32],
            quality=int(inc.quality),
            first_spill=first,
            last_spill=sp.spill,
            n_spills=count,
            histogram=histogram,
            opened_at=utcnow(),
        )
        _words(new, inc)
        session.add(new)
        opened.append(new)
    session.flush()
    return opened


def open_incidents(session: Session, limit: int = 100) -> list[StoredIncident]:
    """Incidents nobody has acknowledged yet, worst first, then oldest first."""
    return list(
        session.scalars(
            select(StoredIncident)
            .where(StoredIncident.acknowledged_at.is_(None), StoredIncident.superseded_at.is_(None))
            .order_by(StoredIncident.quality.desc(), StoredIncident.opened_at, StoredIncident.id)
            .limit(limit)
        )
    )


def run_incidents(session: Session, run: int) -> list[StoredIncident]:
    """Every incident of a run, acknowledged or not, superseded too, in the order they
    opened."""
    return list(
        session.scalars(
            select(StoredIncident).where(StoredIncident.run == run).order_by(StoredIncident.id)
        )
    )


def acknowledge_incident(
    session: Session,
    incident_id: int,
    user: str | None,
    *,
    annotation: str | None = None,
    at: datetime | None = None,
) -> StoredIncident:
    """``user`` has seen the incident (optionally with a note): it leaves the open list and
    its alarm stops; its flags are acknowledged with it. Audited; refused for guests."""
    name = require_user(user)
    note = free_text(annotation, "annotation").strip() or None
    row = session.get(StoredIncident, int(incident_id))
    if row is None:
        raise ActionError(f"no incident with id {incident_id}")
    if row.acknowledged_at is not None:
        raise ActionError(
            f"incident {row.id} was acknowledged already by {row.acknowledged_by} "
            f"at {row.acknowledged_at:%Y-%m-%d %H:%M} UTC"
        )
    when = at or utcnow()
    row.acknowledged_by, row.acknowledged_at = name, when
    if note:
        row.annotation = note
    session.execute(
        update(Flag)
        .where(
            Flag.run == row.run,
            Flag.cause == row.cause,
            Flag.spill >= row.first_spill,
            Flag.spill <= row.last_spill,
            Flag.acknowledged_at.is_(None),
        )
        .values(acknowledged_by=name, acknowledged_at=when)
    )
    audit(
        session,
        name,
        "acknowledge_incident",
        f"incident {row.id}",
        {
            "incident_id": row.id,
            "run": row.run,
            "cause": row.cause,
            "spills": [row.first_spill, row.last_spill],
            "annotation": note,
        },
    )
    return row


def follow_rejudged(session: Session, run: int, spills: Sequence[int]) -> list[StoredIncident]:
    """After the run's ``spills`` were judged again: its incidents over them follow the new
    flags. Returns the incidents that changed (superseded or narrowed).

    An incident whose cause has no WARNING-or-worse flag left in its spills is superseded
    (closed: no longer open, no alarm; kept with its history); one whose cause remains on
    fewer spills keeps only those (first, last, count). Each change is appended to
    ``details["history"]`` with what the incident was.
    """
    if not spills:
        return []
    lo, hi = min(spills), max(spills)
    rows = session.scalars(
        select(StoredIncident).where(
            StoredIncident.run == run,
            StoredIncident.superseded_at.is_(None),
            StoredIncident.first_spill <= hi,
            StoredIncident.last_spill >= lo,
        )
    ).all()
    changed = []
    now = utcnow()
    for row in rows:
        flagged = sorted(
            set(
                session.scalars(
                    select(Flag.spill).where(
                        Flag.run == run,
                        Flag.cause == row.cause,
                        Flag.spill >= row.first_spill,
                        Flag.spill <= row.last_spill,
                        Flag.quality >= int(Quality.WARNING),
                    )
                )
            )
        )
        was = [row.first_spill, row.last_spill, row.n_spills]
        if flagged and [flagged[0], flagged[-1]] == was[:2]:
            continue
        entry = {
            "at": now.isoformat(),
            "spills": was,
            "quality": row.quality,
            "explanation": row.explanation,
            "rejudged": [lo, hi],
        }
        if flagged:
            row.first_spill, row.last_spill = flagged[0], flagged[-1]
            row.n_spills = min(row.n_spills, len(flagged))
            entry["change"] = "narrowed"
        else:
            row.superseded_at = now
            row.superseded_note = (
                f"spills {lo}–{hi} judged again under the run's conditions (they arrived "
                "late): no flag of this cause is left"
            )
            entry["change"] = "superseded"
        row.details = {**(row.details or {}), "history": [*(row.details or {}).get(
            "history", []), entry]}  # fmt: skip
        row.updated_at = now
        changed.append(row)
    session.flush()
    return changed
