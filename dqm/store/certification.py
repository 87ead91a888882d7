"""Sign-off: a person certifies spill ranges per subsystem as good or bad for physics.

Layer: I/O shell (store), writes. Why here and not in ``apps/``: who may certify what is
a rule of the data, whoever asks (the sign-off page, a script). The rules:

* any named user (shifter or expert) certifies, with a comment, a range of the run's
  *closed* spills (a range reaching past the newest closed spill is refused: those spills
  are not judged yet) for one or more subsystems;
* changing a decision someone else made (a range overlapping another person's
  certification) is an expert's correction; the shifter who signed may correct their own;
* nothing is updated or deleted: every certification is a new row
  (:class:`dqm.store.models.Certification`) with who, role and when, and the newest row
  covering a spill is the one in force (:func:`dqm.core.signoff.paint`). Each is audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.core.numbering import ranges_text
from dqm.core.roles import EXPERT, role_of
from dqm.core.signoff import VERDICTS
from dqm.core.specs import SUBSYSTEMS
from dqm.store.actions import ActionError, PermissionDenied, audit, free_text, require_user
from dqm.store.models import Certification, Spill, utcnow

__all__ = ["certify"]


def certify(
    session: Session,
    run: int,
    subsystems: Sequence[str],
    first_spill: int,
    last_spill: int,
    verdict: str,
    user: str | None,
    comment: str,
) -> list[Certification]:
    """Certify spills ``first_spill``–``last_spill`` of ``run`` in each of ``subsystems``.

    Returns the new rows (one per subsystem); :class:`ActionError` says what was refused.
    """
    name = require_user(user)
    role = role_of(user)
    run, first, last = int(run), int(first_spill), int(last_spill)
    comment = free_text(comment, "comment").strip()
    if verdict not in VERDICTS:
        raise ActionError(f"verdict '{verdict[:20]}' is not one of {', '.join(VERDICTS)}")
    if not comment:
        raise ActionError("a certification needs a comment (what was looked at, or why bad)")
    wanted = list(dict.fromkeys(subsystems))
    unknown = [s for s in wanted if s not in SUBSYSTEMS]
    if not wanted or unknown:
        raise ActionError(
            f"subsystem(s) {', '.join(unknown) or 'none'}: choose from {', '.join(SUBSYSTEMS)}"
        )
    if first > last or first < 1:
        raise ActionError(f"spill range {first}–{last} is empty or starts below 1")
    closed = session.scalars(
        select(Spill.spill).where(Spill.run == run, Spill.closed).order_by(Spill.spill)
    ).all()
    if not closed:
        raise ActionError(f"run {run} has no closed spill to certify")
    in_range = [s for s in closed if first <= s <= last]
    if not in_range:
        raise ActionError(f"run {run} has no closed spill in {first}–{last}")
    newest = closed[-1]
    if last > newest:
        raise ActionError(
            f"spills {newest + 1}–{last} of run {run} have not closed yet: certify up to {newest}"
        )
    others = session.scalars(
        select(Certification).where(
            Certification.run == run,
            Certification.subsystem.in_(wanted),
            Certification.first_spill <= last,
            Certification.last_spill >= first,
            Certification.certified_by != name,
        )
    ).all()
    if others and role != EXPERT:
        who = ", ".join(sorted({c.certified_by for c in others}))
        raise PermissionDenied(
            f"spills {first}–{last} are already certified by {who}: changing another person's "
            "certification is an expert's correction"
        )
    now = utcnow()
    rows = [
        Certification(
            run=run,
            subsystem=s,
            first_spill=first,
            last_spill=last,
            verdict=verdict,
            comment=comment,
            certified_by=name,
            role=role,
            certified_at=now,
        )
        for s in wanted
    ]
    session.add_all(rows)
    session.flush()
    audit(
        session,
        name,
        "certify",
        f"run {run} spills {first}–{last}",
        {
            "run": run,
            "spills": [first, last],
            "closed_spills": ranges_text(in_range),
            "subsystems": wanted,
            "verdict": verdict,
            "comment": comment,
            "role": role,
            "ids": [r.id for r in rows],
            "supersedes": sorted(c.id for c in others),
        },
    )
    return rows
