"""Hostile text through every expert action and the store: bound parameters, stored verbatim.

Given SQL fragments, placeholders of every driver style, backslashes, markup, right-to-
left overrides, astral-plane Unicode and a 10 000-character note as annotations,
comments, reasons, user names, beam configurations and stream/consumer names, when
they go through :mod:`dqm.store.actions` and :mod:`dqm.store.spills` on real PostgreSQL (and
the SQLite default), then every table is still there with its rows, and each text reads
back exactly as typed. What cannot be stored (NUL, over-long text or user names) is
refused with an :class:`~dqm.store.actions.ActionError` before any SQL runs.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, inspect, select

from dqm.core.roles import EXPERT, Actor
from dqm.core.specs import load_specs
from dqm.store import actions
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import (
    AuditEntry,
    ChannelMask,
    CheckOverride,
    Flag,
    Reference,
    Run,
    Spill,
    utcnow,
)
from dqm.store.spills import Contribution, commit_group, processed_ids

pytestmark = pytest.mark.integration

HOSTILE = [
    "'; DROP TABLE spills; --",
    "Robert'); DROP TABLE audit;--",
    '" OR "1"="1',
    "1; DELETE FROM flags WHERE 1=1",
    "%s %(run)s {0} :run ? $1 @p1",  # every DB-API placeholder style
    "\\'; \\\\ \\x27 \\0",
    "Ω≈ç√∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🙂 ﾟ･✿ヾ╲(｡◕‿◕｡)╱",
    "\u202edelif\u202c \u200b zero-width",
    "<script>alert('x')</script>",
    "line one\nline two\ttab",
    "x" * actions.MAX_TEXT,
]
#: those that are also acceptable user names (printable, at most 128 characters)
HOSTILE_USERS = [h for h in HOSTILE if h.isprintable() and len(h) <= 128]


SPEC = """
subsystem = "calorimeter"

[[histogram]]
name = "ecal_occupancy"
title = "ECAL occupancy"
kind = "cellmap"
values = "ecal_main"
stat = "occupancy"
threshold_gev = 0.1

[[histogram.check]]
type = "min_entries"
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """One cellmap histogram with a check: enough for every action."""
    folder = tmp_path_factory.mktemp("specs")
    (folder / "calorimeter.toml").write_text(SPEC)
    return load_specs(folder)


@pytest.fixture(params=["postgresql", "sqlite"])
def sessions(request):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _tables(sessions) -> dict[str, int]:
    with sessions() as session:
        names = inspect(session.get_bind()).get_table_names()
        from sqlalchemy import table

        return {n: session.scalar(select(func.count()).select_from(table(n))) for n in names}


def _seed(sessions) -> int:
    """A run with one closed spill and one flag; returns the flag id."""
    with sessions.begin() as session:
        session.add(Run(run=5, beam_config="mu160", started_at=utcnow(), comment=""))
        session.flush()
        sp = Spill(
            run=5,
            spill=1,
            status="complete",
            opened_at=utcnow(),
            updated_at=utcnow(),
            closed_at=utcnow(),
            received_batches=1,
            n_events=10,
        )
        session.add(sp)
        session.flush()
        flag = Flag(
            run=5,
            spill=1,
            spill_id=sp.id,
            subsystem="calorimeter",
            histogram="ecal_occupancy",
            check="dead_cells",
            quality=2,
            explanation="",
            instruction="",
            config_version="v+0",
        )
        session.add(flag)
        session.flush()
        return flag.id


def test_hostile_text_through_every_action_is_stored_verbatim(sessions, specs):
    # Given a database with a run, a spill and a flag
    flag_id = _seed(sessions)
    before = _tables(sessions)
    checked = specs["ecal_occupancy"]
    until = utcnow() + timedelta(days=1)
    # When each hostile string is used as note, comment, reason, beam configuration and user
    for i, text in enumerate(HOSTILE):
        user = HOSTILE_USERS[i % len(HOSTILE_USERS)]
        with sessions.begin() as session:
            actions.annotate_flag(session, flag_id, user, text)
        with sessions() as session:
            assert session.get(Flag, flag_id).annotation == text.strip()
        with sessions.begin() as session:
            actions.acknowledge_flag(session, flag_id, user, annotation=text)
            ref = actions.set_reference(
                session, 5, Actor(user, EXPERT), beam_config=text[:64], comment=text
            )
            mask = actions.mask_channel(
                session,
                specs,
                "ecal_occupancy",
                [i % 6, 0],
                until,
                Actor(user, EXPERT),
                reason=text,
            )
            override = actions.edit_check_thresholds(
                session,
                specs,
                checked.name,
                checked.checks[0].type,
                {},
                Actor(user, EXPERT),
                comment=text,
            )
            ids = (ref.id, mask.id, override.id)
        # Then each reads back exactly as typed, with the user's name as given
        with sessions() as session:
            flag = session.get(Flag, flag_id)
            assert (flag.annotation, flag.acknowledged_by) == (text, user)
            ref, mask, override = (
                session.get(Reference, ids[0]),
                session.get(ChannelMask, ids[1]),
                session.get(CheckOverride, ids[2]),
            )
            assert (ref.comment, ref.beam_config, ref.set_by) == (text, text[:64], user)
            assert (mask.reason, mask.created_by) == (text, user)
            assert (override.comment, override.created_by) == (text, user)
            last = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
            assert last.user == user and last.details["comment"] == text
    # and every table is still there; only the actions' own rows were added
    after = _tables(sessions)
    assert set(after) == set(before)
    assert {k: after[k] for k in ("runs", "spills", "flags")} == {
        k: before[k] for k in ("runs", "spills", "flags")
    }
    assert after["audit"] == before["audit"] + 5 * len(HOSTILE)


def test_store_takes_hostile_stream_and_consumer_names(sessions):
    # Given hostile stream and consumer names (settings and --consumer come from people)
    before = _tables(sessions)
    stream, consumer = HOSTILE[0], HOSTILE[1]
    c = Contribution(run=6, spill=1, marker=("1-0", 0, 0))
    # When a group is committed and looked up under them
    with sessions.begin() as session:
        commit_group(session, stream, consumer, [c], dead_ids=["2-0"])
    with sessions() as session:
        found = processed_ids(session, stream, ["1-0", "2-0", "3-0"])
        other = processed_ids(session, "' OR '1'='1", ["1-0", "2-0"])
    # Then exactly those messages are found under that stream, none under an injection attempt
    assert found == {"1-0", "2-0"} and other == set()
    assert set(_tables(sessions)) == set(before)


ANN = Actor("ann", EXPERT)
REFUSALS = [
    (lambda s, f, specs: actions.annotate_flag(s, f, "ann", "nul \x00 inside"), "NUL"),
    (
        lambda s, f, specs: actions.annotate_flag(s, f, "ann", "x" * (actions.MAX_TEXT + 1)),
        "longer than",
    ),
    (lambda s, f, specs: actions.annotate_flag(s, f, "u" * 129, "fine"), "user name"),
    (lambda s, f, specs: actions.annotate_flag(s, f, "ann\x00", "fine"), "user name"),
    (lambda s, f, specs: actions.set_reference(s, 5, ANN, beam_config="b" * 65), "longer than"),
    (
        lambda s, f, specs: actions.mask_channel(
            s, specs, "'; DROP TABLE spills; --", [0, 0], utcnow() + timedelta(days=1), ANN
        ),
        "unknown histogram",
    ),
]


def test_what_cannot_be_stored_is_refused_before_any_sql(sessions, specs):
    # Given a flag
    flag_id = _seed(sessions)
    before = _tables(sessions)
    for call, error in REFUSALS:
        # When an action gets text the database cannot hold (or a name that is not a histogram)
        with pytest.raises(actions.ActionError, match=error):
            with sessions.begin() as session:
                call(session, flag_id, specs)
    # Then nothing changed
    assert _tables(sessions) == before
