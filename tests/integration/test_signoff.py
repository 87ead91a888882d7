"""Roles, sign-off history and the good-spill list on a real PostgreSQL.

Given judged runs stored as the live path leaves them (spill roll-ups, flags with causes),
a shifter certifies what the DQM proposes, an expert corrects it later, and the
good-spill list (``dqm goodspills`` and the store function behind the HTTP endpoint)
follows the certifications in force while every earlier decision stays in the history
and an earlier revision of the list can be reproduced exactly.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from dqm.cli import main
from dqm.core.roles import EXPERT, Actor
from dqm.store import actions
from dqm.store.certification import certify
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import AuditEntry, Certification, Reference
from dqm.store.signoff import (
    certification_history,
    good_spills,
    propose_signoff,
    run_contents,
    run_summaries,
)
from tests.signoff_data import judged_run

pytestmark = pytest.mark.integration

RUN, CLEAN = 7, 8
SHIFTER, OTHER, BOSS = Actor("sam"), Actor("kim"), Actor("eva", EXPERT)


@pytest.fixture
def db(pg_url):
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        # run 7: beam BAD in spills 4-5, momentum WARNING in spill 9; run 8 clean
        judged_run(s, RUN, 10, bad={"beam": range(4, 6)}, warning={"momentum": range(9, 10)})
        judged_run(s, CLEAN, 6)
    yield sessions
    engine.dispose()


def _cli(monkeypatch, capsys, url: str, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DQM_DATABASE_URL", url)
    capsys.readouterr()
    code = main(["--log-level", "WARNING", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_dqm_proposes_ranges_from_flags_and_incidents(db):
    with db() as s:
        proposals = propose_signoff(s, RUN)
        summary = run_summaries(s, [RUN])[0]
    beam = [(p.first_spill, p.last_spill, p.verdict) for p in proposals if p.subsystem == "beam"]
    assert beam == [(1, 3, "good"), (4, 5, "bad"), (6, 10, "good")]
    bad = next(p for p in proposals if p.subsystem == "beam" and p.verdict == "bad")
    assert "beam_fault" in bad.reason and "4–5" in bad.reason
    momentum = [
        (p.first_spill, p.last_spill, p.verdict) for p in proposals if p.subsystem == "momentum"
    ]
    assert momentum == [(1, 8, "good"), (9, 9, "review"), (10, 10, "good")]
    # one incident per cause, extended over the spills it persists in
    assert [(i.cause, i.first_spill, i.last_spill, i.spills) for i in summary.incidents] == [
        ("beam_fault", 4, 5, 2),
        ("momentum_drift", 9, 9, 1),
    ]
    assert summary.status == "not signed" and summary.fractions["good_spills"] == pytest.approx(0.7)


def test_certifications_keep_their_history_and_only_an_expert_overrides_others(db):
    # Given the shifter signs off run 7 as proposed
    with db.begin() as s:
        certify(s, RUN, ["beam"], 1, 10, "good", SHIFTER, "beam looked fine on the wall")
        certify(s, RUN, ["beam"], 4, 5, "bad", SHIFTER, "beam shift, see incident beam_fault")
    # When another shifter tries to change it, or someone signs spills not yet closed, or a guest
    with db.begin() as s, pytest.raises(actions.PermissionDenied, match="expert"):
        certify(s, RUN, ["beam"], 4, 5, "good", OTHER, "looks ok to me")
    with db.begin() as s, pytest.raises(actions.ActionError, match="not closed yet"):
        certify(s, RUN, ["beam"], 1, 12, "good", SHIFTER, "all")
    with db.begin() as s, pytest.raises(actions.PermissionDenied):
        certify(s, RUN, ["beam"], 1, 2, "good", "guest", "x")
    with db.begin() as s, pytest.raises(actions.ActionError, match="comment"):
        certify(s, RUN, ["beam"], 1, 2, "good", SHIFTER, "  ")
    # Then nothing of that was stored; when the expert corrects spill 5 later
    with db.begin() as s:
        certify(s, RUN, ["beam"], 5, 5, "good", BOSS, "spill 5 beam was back within 1 mm")
    with db() as s:
        history = certification_history(s, RUN)
        summary = run_summaries(s, [RUN], subsystems=["beam"])[0]
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "certify")).all()
    # Then every decision is kept, with who, role and when, and the newest is in force
    assert [(c.first_spill, c.last_spill, c.verdict, c.certified_by, c.role) for c in history] == [
        (1, 10, "good", "sam", "shifter"),
        (4, 5, "bad", "sam", "shifter"),
        (5, 5, "good", "eva", "expert"),
    ]
    assert all(c.certified_at is not None and c.certified_at.tzinfo for c in history)
    assert summary.certification["beam"] == (9, 1, 0) and summary.signed_by == ["sam", "eva"]
    assert summary.status == "signed off"
    assert [a.user for a in audit] == ["sam", "sam", "eva"]
    assert audit[-1].details["supersedes"] == [history[0].id, history[1].id]


def test_good_spill_list_follows_certifications_and_reproduces_revisions(db):
    with db() as s:
        before = good_spills(s, first_run=RUN, last_run=CLEAN)
    # nothing certified: only judged by the flags (run 7 minus beam 4-5 and momentum 9)
    assert before.certified == {} and before.revision == 0
    assert before.flags_only == {"7": [[1, 3], [6, 8], [10, 10]], "8": [[1, 6]]}
    with db.begin() as s:
        certify(s, RUN, ["beam", "momentum", "calorimeter", "pik", "daq"], 1, 10, "good",
                SHIFTER, "end of run 7 sign-off")  # fmt: skip
        certify(s, RUN, ["beam"], 4, 5, "bad", SHIFTER, "beam shift")
    with db() as s:
        signed = good_spills(s, first_run=RUN, last_run=CLEAN)
        beam_only = good_spills(s, first_run=RUN, last_run=RUN, subsystems=["momentum"])
    # certified good beats the momentum WARNING of spill 9 (a person looked); bad stays out
    assert signed.certified == {"7": [[1, 3], [6, 10]]}
    assert signed.flags_only == {"8": [[1, 6]]}
    assert beam_only.certified == {"7": [[1, 10]]}
    assert signed.version != before.version and signed.version.startswith(f"r{signed.revision}-")
    # When an expert corrects spill 4 afterwards
    with db.begin() as s:
        certify(s, RUN, ["beam"], 4, 4, "good", BOSS, "spill 4 fine after all")
    with db() as s:
        now = good_spills(s, first_run=RUN, last_run=CLEAN)
        again = good_spills(s, first_run=RUN, last_run=CLEAN, revision=signed.revision)
    # Then the list changes, and the cited revision reproduces the earlier list exactly
    assert now.certified == {"7": [[1, 4], [6, 10]]}
    assert again.to_json() == signed.to_json()


def test_goodspills_command_json_golden_and_csv(db, pg_url, monkeypatch, capsys):
    with db.begin() as s:
        certify(s, CLEAN, ["beam", "momentum", "calorimeter", "pik", "daq"], 1, 4, "good",
                SHIFTER, "signed")  # fmt: skip
    code, out, err = _cli(monkeypatch, capsys, pg_url, "goodspills", "--runs", "8")
    doc = json.loads(out)
    assert code == 0 and doc["certified"] == {"8": [[1, 4]]}
    assert doc["flags_only"] == {"8": [[5, 6]]} and doc["version"] in err
    code, out, _ = _cli(monkeypatch, capsys, pg_url, "goodspills", "--runs", "8", "--format",
                        "golden")  # fmt: skip
    assert json.loads(out) == {"8": [[1, 4]]}
    code, out, _ = _cli(monkeypatch, capsys, pg_url, "goodspills", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["run"], r["first_spill"], r["last_spill"], r["basis"]) for r in rows] == [
        ("7", "1", "3", "flags_only"),
        ("7", "6", "8", "flags_only"),
        ("7", "10", "10", "flags_only"),
        ("8", "1", "4", "certified"),
        ("8", "5", "6", "flags_only"),
    ]
    assert len({r["version"] for r in rows}) == 1
    code, _, err = _cli(monkeypatch, capsys, pg_url, "goodspills", "--subsystems", "ecal")
    assert code == 2 and "subsystems" in err and "Traceback" not in err
    # and the signoff command certifies as the stated user, a shifter unless --expert
    code, out, _ = _cli(monkeypatch, capsys, pg_url, "signoff", "8", "--certify", "5-6",
                        "--comment", "rest of run 8", "--user", "sam")  # fmt: skip
    assert code == 0 and "by sam (shifter)" in out and "signed off" in out


def test_roles_and_a_reference_with_bad_spills(db):
    # Given run 7 has BAD spills: what it contains is there to see
    with db() as s:
        contents = run_contents(s, RUN)
    assert contents.bad_spills == [4, 5] and "beam 4–5" in contents.describe()
    # A shifter may acknowledge but not set references, mask channels or change thresholds
    with db.begin() as s, pytest.raises(actions.PermissionDenied, match="expert role"):
        actions.set_reference(s, CLEAN, SHIFTER, beam_config="mu160")
    # An expert is refused run 7 without a reason, and may use it with one (audited)
    with db.begin() as s, pytest.raises(actions.ActionError, match="BAD spill"):
        actions.set_reference(s, RUN, BOSS, beam_config="mu160")
    with db.begin() as s:
        actions.set_reference(
            s, RUN, BOSS, beam_config="mu160", bad_spills_reason="only the beam was off, 2 spills"
        )
    with db() as s:
        ref = s.scalars(select(Reference).where(Reference.active.is_(True))).one()
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "reference_with_bad_spills")
        ).one()
        assert s.scalars(select(Certification)).all() == []
    assert ref.run == RUN and ref.set_by == "eva"
    assert entry.details["reason"] == "only the beam was off, 2 spills"
    assert entry.details["bad"] == [4, 5]
