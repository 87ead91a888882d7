"""Incidents that stay (issue 12, item 1): opened, extended, latched until acknowledged.

Against a real PostgreSQL: spills are stored with their verdicts exactly as the worker's
close hook stores them (flags, then incidents), and the incident table is read back.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dqm.checks import Quality
from dqm.store.actions import ActionError, PermissionDenied
from dqm.store.alarms import (
    active_silence,
    claim_acknowledged_incidents,
    claim_new_incidents,
    silence_alarm,
)
from dqm.store.incidents import acknowledge_incident, open_incidents
from dqm.store.models import AuditEntry, Flag
from tests.incident_helpers import CAUSE, close, incident_store, incidents, verdict

pytestmark = pytest.mark.integration


@pytest.fixture
def sessions(pg_url):
    yield from incident_store(pg_url)


def test_bad_opens_at_once_and_stays_until_acknowledged(sessions):
    # Given a BAD spill, then its cause on two more spills, then two GOOD spills
    assert len(close(sessions, 1, verdict(Quality.BAD))) == 1
    assert close(sessions, 2, verdict(Quality.BAD)) == []
    assert close(sessions, 3, verdict(Quality.WARNING, text="beam moved by 2.5 mm")) == []
    close(sessions, 4, verdict(None))
    close(sessions, 5, verdict(None))
    # Then one incident covers spills 1-3, BAD, with the newest words, still open
    (row,) = incidents(sessions)
    assert (row.first_spill, row.last_spill, row.n_spills) == (1, 3, 3)
    assert row.quality == int(Quality.BAD) and row.explanation == "beam moved by 2.5 mm"
    assert (row.subsystem, row.title, row.instruction) == (
        "beam",
        "Beam moved",
        "call the beam expert",
    )
    assert row.histogram == "beam_x" and row.acknowledged_at is None
    with sessions() as s:
        assert [r.id for r in open_incidents(s)] == [row.id]
    # When the same cause comes back before anybody looked, it is the same incident
    assert close(sessions, 6, verdict(Quality.BAD)) == []
    (row,) = incidents(sessions)
    assert (row.first_spill, row.last_spill, row.n_spills) == (1, 6, 4)
    # When a guest tries to acknowledge it, that is refused
    with sessions.begin() as s, pytest.raises(PermissionDenied):
        acknowledge_incident(s, row.id, "guest")
    # When a shifter acknowledges it with a note
    with sessions.begin() as s:
        acknowledge_incident(s, row.id, "carol", annotation="beam tuning by CCC, 14:05")
    # Then it leaves the open list, its flags are acknowledged with it, and it is audited
    with sessions() as s:
        assert open_incidents(s) == []
        flags = s.scalars(select(Flag).where(Flag.cause == CAUSE)).all()
        assert flags and {f.acknowledged_by for f in flags} == {"carol"}
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "acknowledge_incident"))
        assert entry.user == "carol" and entry.details["spills"] == [1, 6]
        assert entry.details["annotation"] == "beam tuning by CCC, 14:05"
    # and a second acknowledgement is refused with who did the first
    with sessions.begin() as s, pytest.raises(ActionError, match="carol"):
        acknowledge_incident(s, row.id, "dave")


def test_after_acknowledgement_a_persisting_cause_extends_and_a_worse_or_new_one_alarms(sessions):
    # Given an acknowledged WARNING incident (warnings alarm at once here)
    (first,) = close(sessions, 1, verdict(Quality.WARNING), warning_spills=1)
    with sessions.begin() as s:
        acknowledge_incident(s, first, "carol")
    # When the cause persists on the next spill: the acknowledged incident goes on, no alarm
    assert close(sessions, 2, verdict(Quality.WARNING), warning_spills=1) == []
    # When it gets worse: a new incident, open
    (worse,) = close(sessions, 3, verdict(Quality.BAD), warning_spills=1)
    with sessions.begin() as s:
        acknowledge_incident(s, worse, "carol")
    # When, after acknowledgement, the cause goes away and comes back: a new incident
    close(sessions, 4, verdict(None))
    (again,) = close(sessions, 5, verdict(Quality.BAD), warning_spills=1)
    rows = incidents(sessions)
    assert [(r.first_spill, r.last_spill, r.n_spills) for r in rows] == [
        (1, 2, 2),
        (3, 3, 1),
        (5, 5, 1),
    ]
    assert [r.id for r in rows] == [first, worse, again]


def test_a_warning_opens_an_incident_only_once_it_persisted(sessions):
    # Given WARNINGs of one cause on spills 1 and 2, a GOOD spill 3, WARNINGs on 4, 5, 6
    assert close(sessions, 1, verdict(Quality.WARNING)) == []
    assert close(sessions, 2, verdict(Quality.WARNING)) == []
    close(sessions, 3, verdict(None))
    assert close(sessions, 4, verdict(Quality.WARNING)) == []
    assert close(sessions, 5, verdict(Quality.WARNING)) == []
    # When the third WARNING in a row closes, an incident opens covering all three
    (new,) = close(sessions, 6, verdict(Quality.WARNING))
    (row,) = incidents(sessions)
    assert (row.id, row.first_spill, row.last_spill, row.n_spills) == (new, 4, 6, 3)
    assert row.quality == int(Quality.WARNING)
    # When spill 6 is judged again (late batches), it is not counted twice
    assert close(sessions, 6, verdict(Quality.WARNING)) == []
    (row,) = incidents(sessions)
    assert row.n_spills == 3


def test_silence_needs_a_login_and_a_reason_and_expires_and_the_outbox_posts_once(sessions):
    (opened,) = close(sessions, 1, verdict(Quality.BAD))
    with sessions.begin() as s:
        with pytest.raises(PermissionDenied):
            silence_alarm(s, "", "known", 10)
        with pytest.raises(ActionError, match="reason"):
            silence_alarm(s, "carol", "  ", 10)
        with pytest.raises(ActionError, match="at most"):
            silence_alarm(s, "carol", "known", 24 * 60)
        silence = silence_alarm(s, "carol", "HV trip, expert called", 15)
        assert silence.up_to_incident == opened
    with sessions() as s:
        assert active_silence(s).reason == "HV trip, expert called"
        assert active_silence(s, silence.until) is None  # expired at its end
        assert (
            s.scalar(select(AuditEntry.user).where(AuditEntry.action == "silence_alarm")) == "carol"
        )
    # the notifier's outbox: each opening and acknowledgement is taken once
    with sessions.begin() as s:
        assert [r.id for r in claim_new_incidents(s)] == [opened]
        assert claim_new_incidents(s) == [] and claim_acknowledged_incidents(s) == []
        acknowledge_incident(s, opened, "carol")
        assert [r.id for r in claim_acknowledged_incidents(s)] == [opened]
        assert claim_acknowledged_incidents(s) == []
