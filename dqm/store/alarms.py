"""The alarm's state in the database: silences of the sound, and the notifier's outbox.

Silencing the control room's alarm is an action of a named person with a reason, audited,
and it expires: a muted wall at 3 a.m. must not stay muted for the next shift. A silence
covers the incidents open when it was given; a later incident sounds again.

The notifier (:mod:`dqm.pipeline.notify`) reads what it has not posted yet from the
incidents table itself (``notified_open_at``/``notified_ack_at`` NULL) and marks each
row as it takes it, with a conditional UPDATE, so two server processes never post one
incident twice and a notifier restarted after a crash posts what was left.

Layer: I/O shell (store). Sessions at the edge: nothing here commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dqm.store.actions import ActionError, audit, free_text, require_user
from dqm.store.models import AlarmSilence, Spill, StoredIncident, utcnow

__all__ = [
    "MAX_SILENCE_MIN",
    "silence_alarm",
    "active_silence",
    "claim_new_incidents",
    "claim_acknowledged_incidents",
    "newest_close",
]

#: the longest a silence may last: one shift
MAX_SILENCE_MIN = 8 * 60


def silence_alarm(session: Session, user: str | None, reason: str, minutes: float) -> AlarmSilence:
    """Silence the alarm sound for the incidents open now, for ``minutes`` (≤ one shift)."""
    name = require_user(user)
    why = free_text(reason, "reason").strip()
    if not why:
        raise ActionError("silencing the alarm needs a reason (what is being done about it)")
    try:
        length = float(minutes)
    except (TypeError, ValueError):
        raise ActionError(f"silence length {minutes!r} is not a number of minutes") from None
    if not 0 < length <= MAX_SILENCE_MIN:
        raise ActionError(
            f"a silence lasts more than 0 and at most {MAX_SILENCE_MIN} minutes, not {length:g}"
        )
    now = utcnow()
    newest = session.scalar(select(func.max(StoredIncident.id))) or 0
    row = AlarmSilence(
        created_by=name,
        created_at=now,
        until=now + timedelta(minutes=length),
        reason=why,
        up_to_incident=int(newest),
    )
    session.add(row)
    session.flush()
    audit(
        session,
        name,
        "silence_alarm",
        f"silence {row.id}",
        {
            "silence_id": row.id,
            "minutes": length,
            "until": row.until.isoformat(),
            "reason": why,
            "up_to_incident": row.up_to_incident,
        },
    )
    return row


def active_silence(session: Session, now: datetime | None = None) -> AlarmSilence | None:
    """The newest silence still in force, if any."""
    return session.scalars(
        select(AlarmSilence)
        .where(AlarmSilence.until > (now or utcnow()))
        .order_by(AlarmSilence.id.desc())
        .limit(1)
    ).first()


def _claim(session: Session, column, ids: list[int]) -> list[StoredIncident]:
    """Mark ``ids`` as taken in ``column`` where nobody took them yet; the rows won."""
    won: list[StoredIncident] = []
    now = utcnow()
    for incident_id in ids:
        result = session.execute(
            update(StoredIncident)
            .where(StoredIncident.id == incident_id, column.is_(None))
            .values({column.key: now})
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            row = session.get(StoredIncident, incident_id, populate_existing=True)
            if row is not None:
                won.append(row)
    return won


def claim_new_incidents(
    session: Session, since: datetime | None = None, limit: int = 50
) -> list[StoredIncident]:
    """Opened incidents not posted yet (opened after ``since``), taken for posting, oldest
    first. ``since`` keeps a notifier switched on today from posting last month's backlog."""
    stmt = select(StoredIncident.id).where(
        StoredIncident.notified_open_at.is_(None), StoredIncident.superseded_at.is_(None)
    )
    if since is not None:
        stmt = stmt.where(StoredIncident.opened_at >= since)
    ids = list(session.scalars(stmt.order_by(StoredIncident.id).limit(limit)))
    return _claim(session, StoredIncident.notified_open_at, ids)


def claim_acknowledged_incidents(session: Session, limit: int = 50) -> list[StoredIncident]:
    """Acknowledgements not posted yet (of incidents whose opening was posted), taken."""
    ids = list(
        session.scalars(
            select(StoredIncident.id)
            .where(
                StoredIncident.acknowledged_at.is_not(None),
                StoredIncident.notified_open_at.is_not(None),
                StoredIncident.notified_ack_at.is_(None),
            )
            .order_by(StoredIncident.id)
            .limit(limit)
        )
    )
    return _claim(session, StoredIncident.notified_ack_at, ids)


def newest_close(session: Session) -> tuple[int, int, datetime] | None:
    """(run, spill, closed at) of the spill that closed last: what STALE is measured from."""
    row = session.execute(
        select(Spill.run, Spill.spill, Spill.closed_at)
        .where(Spill.closed, Spill.closed_at.is_not(None))
        .order_by(Spill.closed_at.desc())
        .limit(1)
    ).first()
    return (int(row[0]), int(row[1]), row[2]) if row else None
