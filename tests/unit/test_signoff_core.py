"""The pure sign-off rules: ranges, incidents over spills, proposals, the good-spill list."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from dqm.checks import Quality
from dqm.core.goodspill_query import parse_query
from dqm.core.roles import EXPERT, Actor, role_of
from dqm.core.signoff import (
    CertificationRange,
    RunIncident,
    SpillJudgement,
    good_fractions,
    good_spill_list,
    paint,
    propose,
    spill_ranges,
)
from dqm.errors import ConfigError

G, W, B = int(Quality.GOOD), int(Quality.WARNING), int(Quality.BAD)


def test_spill_ranges_are_golden_json_pairs():
    assert spill_ranges([7, 1, 2, 3, 3, 9, 8]) == [[1, 3], [7, 9]]
    assert spill_ranges([]) == []


def _incident(first: int, last: int, **kw) -> RunIncident:
    words = {"explanation": "moved", "instruction": "call", "flags": last - first + 1}
    return RunIncident(
        "beam_position", "beam", ("beam",), B, first, last, last - first + 1,
        **{**words, "acknowledged": 0, **kw},
    )  # fmt: skip


def test_an_incident_says_who_acknowledged_it_the_incident_not_its_flags():
    at = datetime(2026, 12, 1, 14, 5, tzinfo=UTC)
    done = _incident(4, 6, id=1, incident_acknowledged_by="sam", incident_acknowledged_at=at)
    assert done.fully_acknowledged
    assert done.acknowledgement == "acknowledged by sam at 2026-12-01 14:05 UTC"
    # a flag acknowledged on the expert page does not acknowledge the incident
    open_ = _incident(4, 6, id=2, acknowledged=1, acknowledged_by=("kim",))
    assert not open_.fully_acknowledged
    assert open_.acknowledgement == "NOT acknowledged; flags acknowledged 1/3 by kim"


def test_proposals_follow_the_subsystem_quality():
    q = {1: {"beam": G}, 2: {"beam": G}, 3: {"beam": B}, 4: {"beam": W}, 5: {"beam": None}}
    incidents = [_incident(3, 3, id=1)]
    got = [(p.first_spill, p.last_spill, p.verdict) for p in propose(q, ["beam"], incidents)]
    assert got == [(1, 2, "good"), (3, 3, "bad"), (4, 5, "review")]
    assert "beam_position" in propose(q, ["beam"], incidents)[1].reason
    # an incident superseded (its spills judged again under late conditions) is not cited
    gone = [_incident(3, 3, id=1, superseded="judged again")]
    assert "beam_position" not in propose(q, ["beam"], gone)[1].reason


def test_the_newest_certification_covering_a_spill_is_in_force():
    certs = [
        CertificationRange(2, 1, "beam", 4, 4, "good"),
        CertificationRange(1, 1, "beam", 1, 10, "bad"),
    ]
    force = paint(certs, [(1, 3), (1, 4), (2, 4)])
    assert force[(1, 3, "beam")].id == 1 and force[(1, 4, "beam")].verdict == "good"
    assert (2, 4, "beam") not in force


def test_good_spill_list_certified_flags_only_and_version():
    spills = [
        SpillJudgement(1, 1, 100, {"beam": G, "daq": G}, {"beam": "good", "daq": "good"}),
        SpillJudgement(1, 2, 100, {"beam": W, "daq": G}, {"beam": "good", "daq": "good"}),
        SpillJudgement(1, 3, 100, {"beam": G, "daq": G}, {"beam": "bad"}),
        SpillJudgement(1, 4, 300, {"beam": G, "daq": G}, {"beam": "good"}),
        SpillJudgement(1, 5, 100, {"beam": G, "daq": W}),
    ]
    lst = good_spill_list(spills, ["beam", "daq"], revision=3, selection={"runs": [1, 1]})
    assert lst.certified == {"1": [[1, 2]]} and lst.flags_only == {"1": [[4, 4]]}
    assert lst.spills == {"certified": 2, "flags_only": 1, "not_good": 2, "total": 5}
    same = good_spill_list(spills, ["beam", "daq"], revision=3, selection={"runs": [1, 1]})
    assert lst.version == same.version and lst.version.startswith("r3-")
    beam = good_spill_list(spills, ["beam"], revision=3, selection={"runs": [1, 1]})
    assert beam.certified == {"1": [[1, 2], [4, 4]]} and beam.version != lst.version
    assert lst.render("golden").strip().startswith('{\n "1"')
    assert lst.to_csv().splitlines()[1] == f"1,1,2,2,certified,{lst.version}"
    f = good_fractions(spills, ["beam", "daq"])
    assert f["good_spills"] == pytest.approx(0.6) and f["good_mot"] == pytest.approx(500 / 700)
    assert math.isnan(good_fractions([], ["beam"])["good_mot"])


def test_selection_words_refused_with_the_reason():
    q = parse_query(runs="12-40", subsystems="beam, momentum", since="2026-12-01")
    assert (q.first_run, q.last_run, q.subsystems) == (12, 40, ("beam", "momentum"))
    assert q.since is not None and q.since.tzinfo is not None
    assert parse_query(runs="7").last_run == 7 and parse_query(runs="7-").last_run is None
    for kwargs, word in (
        ({"runs": "x"}, "runs"),
        ({"runs": "9-3"}, "runs"),
        ({"subsystems": "ecal"}, "subsystems"),
        ({"revision": "latest"}, "revision"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "until"),
    ):
        with pytest.raises(ConfigError, match=word):
            parse_query(**kwargs)


def test_an_actor_is_its_name_with_a_role():
    alice = Actor("alice", EXPERT)
    assert alice == "alice" and f"{alice}" == "alice" and role_of(alice) == EXPERT
    assert role_of("bob") == "shifter" and role_of(None) == "shifter"
    with pytest.raises(ValueError):
        Actor("x", "admin")


def test_experts_are_named_logins_and_the_demo_login_is_one():
    from apps.auth import auth_config_from_env, hash_password

    users = ",".join(f"{u}:{hash_password('pw', iterations=1000)}" for u in ("alice", "sam"))
    env = {"DQM_WEB_USERS": users, "DQM_COOKIE_SECRET": "s" * 40, "DQM_WEB_EXPERTS": "alice"}
    auth = auth_config_from_env(env)
    assert (auth.role("alice"), auth.role("sam")) == ("expert", "shifter")
    with pytest.raises(ConfigError, match="DQM_WEB_EXPERTS"):
        auth_config_from_env({**env, "DQM_WEB_EXPERTS": "alice,bob"})
    demo = auth_config_from_env({}, demo=True)
    assert demo.demo_login is not None and demo.role(demo.demo_login[0]) == "expert"
