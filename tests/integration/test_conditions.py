"""Run conditions end to end: real Redis, real PostgreSQL, real workers and commands.

Given a certified 160 GeV μ⁻ reference, when a 100 GeV run is published with its
conditions, then it is stored with them, its momentum is judged against 100 GeV (no
false BAD), and its shape checks say "no reference for mu100" instead of comparing with
the 160 GeV one; once a 100 GeV reference is certified, the next 100 GeV run is judged
against it. A run whose conditions never arrive is stored with conditions unknown and a
DAQ flag; when they arrive late its spills are judged again. Malformed conditions go to
the dead-letter stream with their original fields, and the worker goes on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis as redislib
from sqlalchemy import select

from dqm.checks import Quality
from dqm.cli import main
from dqm.core.conditions import RunConditions
from dqm.core.roles import EXPERT, Actor
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.stream import publish_conditions
from dqm.pipeline.worker import Worker
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.incidents import open_incidents
from dqm.store.models import Flag, Reference, Run, Spill, StoredIncident
from dqm.store.references import active_reference
from dqm.store.runs import run_conditions, store_conditions
from dqm.store.signoff import run_summaries
from tests.helpers import ROOT, closed_count, publish, start_worker, wait_until, worker_env

pytestmark = pytest.mark.integration

REF_160, RUN_100, REF_100, RUN_100B, NO_COND = 31, 32, 33, 34, 35
SHAPE_CHECKS = ("ks", "chi2", "beam_profile")


def spills(run: int, n: int = 4, **sim):
    return list(
        simulate_run(SimConfig(run=run, n_spills=n, events_per_spill=4000, batch_size=1000, **sim))
    )


def incidents_of(store, run: int, cause: str | None) -> list[StoredIncident]:
    with store.sessions() as session:
        rows = session.scalars(
            select(StoredIncident).where(StoredIncident.run == run, StoredIncident.cause == cause)
        ).all()
        session.expunge_all()
        return list(rows)


def drain(settings, specs) -> Worker:
    engine = make_engine(settings.database_url)
    try:
        worker = Worker(
            settings,
            redis_client=redislib.Redis.from_url(settings.redis_url),
            sessions=make_sessionmaker(engine),
            specs=specs,
            consumer="conditions-test",
            close_hooks=close_hooks(settings, specs),
        )
        worker.run(burst=True)
        return worker
    finally:
        engine.dispose()


def cli(monkeypatch, capsys, settings, *argv: str) -> tuple[int, str]:
    for name, value in (
        ("DQM_DATABASE_URL", settings.database_url),
        ("DQM_REDIS_URL", settings.redis_url),
        ("DQM_STREAM", settings.stream),
        ("DQM_GROUP", settings.group),
        ("DQM_CHANNEL", settings.channel),
    ):
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(["--log-level", "WARNING", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


class Store:
    """Read-only views of what the workers stored."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    def flags(self, run: int) -> list[Flag]:
        with self.sessions() as session:
            return list(
                session.scalars(select(Flag).where(Flag.run == run, Flag.spill.is_not(None)))
            )

    def run(self, run: int) -> Run:
        with self.sessions() as session:
            return session.get(Run, run)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def store(settings):
    s = Store(settings.database_url)
    yield s
    s.close()


@pytest.fixture
def reference_160(settings, redis_client, specs, monkeypatch, capsys):
    """A 160 GeV μ⁻ run, announced and certified as the reference of mu160."""
    publish(redis_client, settings, spills(REF_160, n=5))
    drain(settings, specs)
    code, out = cli(
        monkeypatch, capsys, settings, "reference", "set", str(REF_160), "--user", "ann"
    )
    assert code == 0 and "reference for beam 'mu160' is now run 31" in out, out


def by_check(flags: list[Flag]) -> dict[str, list[Flag]]:
    out: dict[str, list[Flag]] = {}
    for f in flags:
        out.setdefault(f.check, []).append(f)
    return out


def test_a_100_gev_run_is_judged_against_its_own_conditions_then_its_own_reference(
    settings, redis_client, specs, store, reference_160, monkeypatch, capsys
):
    # Given the 160 GeV reference active, when a 100 GeV run is published with its conditions
    publish(redis_client, settings, spills(RUN_100, p_beam_gev=100.0))
    drain(settings, specs)
    # Then the run is stored with its conditions and its own beam configuration
    row = store.run(RUN_100)
    assert row.beam_config == "mu100" and row.conditions["p_beam_gev"] == 100.0
    flags = by_check(store.flags(RUN_100))
    assert closed_count(settings.database_url, RUN_100) == 4
    # no false momentum alarm: the scales are judged against 100 GeV
    for check in ("p_scale", "momentum_scale"):
        assert {Quality(f.quality) for f in flags[check]} == {Quality.GOOD}, check
    assert all("nominal 100 GeV" in f.explanation for f in flags["p_scale"])
    momentum = [f for fs in flags.values() for f in fs if f.subsystem == "momentum"]
    assert max(f.quality for f in momentum) < Quality.WARNING
    # and the shapes are not compared with the 160 GeV reference: they say why
    for check in SHAPE_CHECKS:
        for f in flags[check]:
            assert f.quality == Quality.NO_DATA and f.reference_run is None
            assert f.explanation.startswith("no reference for mu100"), f.explanation
    assert "run_conditions" not in flags and "reference_conditions" not in flags
    # the shifter reads it in `dqm flags`
    code, out = cli(monkeypatch, capsys, settings, "flags", "--run", str(RUN_100))
    assert code == 0
    assert "conditions: μ⁻ 100 GeV · MBPL 1.5 T·m (polarity −)" in out
    assert "no reference for mu100" in out

    # and `dqm reference suggest` proposes it for the configuration of the latest run
    code, out = cli(monkeypatch, capsys, settings, "reference", "suggest", "--min-spills", "2")
    assert code == 0 and "candidates for beam 'mu100'" in out and f"{RUN_100:>6}" in out
    # When an expert asks to make it the 160 GeV reference, it is refused, naming why
    code, out = cli(
        monkeypatch, capsys, settings, "reference", "set", str(RUN_100), "--beam-config", "mu160"
    )
    assert code != 0 and "it cannot be the reference of 'mu160'" in out
    # and certifying it for its own configuration works and records its conditions
    code, out = cli(monkeypatch, capsys, settings, "reference", "set", str(RUN_100), "--user", "bo")
    assert code == 0 and "reference for beam 'mu100' is now run 32" in out, out
    with store.sessions() as session:
        assert active_reference(session, "mu160").run == REF_160
        assert active_reference(session, "mu100").conditions["p_beam_gev"] == 100.0

    # Then the next 100 GeV run is judged against the 100 GeV reference
    publish(redis_client, settings, spills(REF_100, p_beam_gev=100.0))
    drain(settings, specs)
    flags = by_check(store.flags(REF_100))
    assert {f.reference_run for f in flags["ks"]} == {RUN_100}
    assert all(f.quality != Quality.NO_DATA for f in flags["ks"])
    momentum = [f for fs in flags.values() for f in fs if f.subsystem == "momentum"]
    assert max(f.quality for f in momentum) < Quality.BAD
    # and `dqm recheck` reproduces the live flags, conditions included
    with store.sessions() as session:
        assert recheck_run(session, RUN_100, specs).differences == []
        assert recheck_run(session, REF_100, specs).differences == []


def test_a_run_without_conditions_says_so_and_is_judged_again_when_they_arrive(
    settings, redis_client, specs, store, reference_160, monkeypatch, capsys
):
    # Given a run published without its conditions
    run = spills(NO_COND)
    publish(redis_client, settings, run, conditions=False)
    drain(settings, specs)
    # Then it is stored with conditions unknown — not as "mu160"
    row = store.run(NO_COND)
    assert row.beam_config is None and row.conditions is None
    flags = by_check(store.flags(NO_COND))
    daq = flags["run_conditions"]
    assert len(daq) == 4 and {Quality(f.quality) for f in daq} == {Quality.WARNING}
    assert "no run conditions received" in daq[0].explanation and "DAQ" in daq[0].instruction
    for check in ("p_scale", "momentum_scale", *SHAPE_CHECKS):
        for f in flags[check]:
            assert f.quality == Quality.NO_DATA and f.reference_run is None, check
            assert f.explanation.startswith("no run conditions received"), f.explanation
    code, out = cli(monkeypatch, capsys, settings, "flags", "--run", str(NO_COND))
    assert "conditions: none received from the DAQ" in out
    # and the warning, persisting, opened an incident that stays until somebody looks
    missing = incidents_of(store, NO_COND, daq[0].cause)
    assert [(r.first_spill, r.last_spill, r.superseded_at) for r in missing] == [(1, 4, None)]

    # When the conditions arrive after the spills closed
    listener = redis_client.pubsub()
    listener.subscribe(settings.channel)
    assert listener.get_message(timeout=5.0)["type"] == "subscribe"
    publish_conditions(redis_client, settings.stream, run[0].conditions)
    worker = drain(settings, specs)
    # Then the run has them, and its spills are judged again under them and announced
    assert store.run(NO_COND).beam_config == "mu160" and worker.stats.rejudged == 4
    flags = by_check(store.flags(NO_COND))
    assert "run_conditions" not in flags
    assert {f.reference_run for f in flags["ks"]} == {REF_160}
    assert {Quality(f.quality) for f in flags["p_scale"]} == {Quality.GOOD}
    notes = []
    while (message := listener.get_message(timeout=1.0)) is not None:
        notes.append(json.loads(message["data"]))
    listener.close()
    assert sorted(n["spill"] for n in notes if n.get("rejudged")) == [1, 2, 3, 4]
    # and the incident the missing conditions opened is superseded: closed, no longer on the
    # wall, its history kept (no incident of the run is open for a cause no flag shows)
    (gone,) = incidents_of(store, NO_COND, daq[0].cause)
    assert gone.superseded_at is not None and "judged again" in (gone.superseded_note or "")
    assert gone.acknowledged_at is None and (gone.first_spill, gone.last_spill) == (1, 4)
    assert gone.details["history"][-1]["change"] == "superseded"
    with store.sessions() as session:
        assert gone.id not in {r.id for r in open_incidents(session)}
        shown = {i.id: i for i in run_summaries(session, [NO_COND])[0].incidents}
    assert "judged again" in shown[gone.id].superseded
    with store.sessions() as session:
        assert recheck_run(session, NO_COND, specs).differences == []
        # the same announcement again changes nothing
        stored = session.get(Run, NO_COND).conditions_message
    publish_conditions(redis_client, settings.stream, run[0].conditions)
    assert drain(settings, specs).stats.rejudged == 0
    assert store.run(NO_COND).conditions_message > stored


def test_malformed_conditions_are_dead_lettered_with_their_fields_and_the_worker_goes_on(
    settings, redis_client, specs, store
):
    good = SimConfig(run=36, p_beam_gev=100.0).conditions()
    redis_client.xadd(
        settings.stream,
        {
            "type": "conditions",
            "payload": '{"version": 1, "run": 36, "p_beam_gve": 100}',
            "source": "daq-42",
        },
    )
    redis_client.xadd(settings.stream, {"type": "conditions", "note": "no payload"})
    publish_conditions(redis_client, settings.stream, good)
    worker = drain(settings, specs)
    assert worker.stats.dead_letters == 2 and worker.stats.conditions == 1
    dead = [fields for _, fields in redis_client.xrange(settings.dead_letter_stream)]
    assert [d[b"reason"] for d in dead] == [b"bad-conditions", b"bad-conditions"]
    assert b"unknown field 'p_beam_gve' (did you mean 'p_beam_gev'?)" in dead[0][b"detail"]
    assert dead[0][b"source"] == b"daq-42" and dead[0][b"type"] == b"conditions"
    assert b'"p_beam_gve": 100' in dead[0][b"payload"]  # the original fields, kept
    assert dead[1][b"note"] == b"no payload" and b"no 'payload'" in dead[1][b"detail"]
    assert store.run(36).beam_config == "mu100"  # the valid one after them is stored


def test_an_older_announcement_never_replaces_a_newer_one(settings, store):
    first = SimConfig(run=37).conditions()
    second = SimConfig(run=37, magnet_bl_tm=3.0).conditions()
    with store.sessions.begin() as session:
        assert store_conditions(session, second, "1700000000002-0")
        # redelivered late, or from a slower worker: stream order decides, not arrival
        assert not store_conditions(session, first, "1700000000001-0")
        assert not store_conditions(session, second, "1700000000003-0")  # a repeat
        assert run_conditions(session, 37) == second
        assert session.get(Run, 37).conditions_message == "1700000000003-0"


def test_two_worker_processes_judge_every_spill_under_the_conditions(settings, redis_client, store):
    # Given two workers reading one message at a time, so the conditions and the first
    # spill's batches go to different workers
    procs = [
        start_worker(settings, f"cond-{i}", DQM_READ_COUNT="1", DQM_COMMIT_INTERVAL_S="0.05")
        for i in (1, 2)
    ]
    try:
        for run in (38, 39):
            publish(redis_client, settings, spills(run, n=3, p_beam_gev=100.0))
        for run in (38, 39):
            wait_until(lambda r=run: closed_count(settings.database_url, r) == 3, 120.0)
        # Then every spill ends judged under the run's conditions (live, or judged again)
        for run in (38, 39):
            wait_until(
                lambda r=run: "run_conditions" not in by_check(store.flags(r)),
                30.0,
                what="spills judged without the conditions to be judged again",
            )
            with store.sessions() as session:
                judged = session.scalars(select(Spill.conditions).where(Spill.run == run)).all()
            assert [c["p_beam_gev"] for c in judged] == [100.0] * 3
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def test_simulate_and_replay_announce_the_conditions_they_simulate(
    settings, redis_client, specs, store, tmp_path
):
    env = worker_env(settings)
    path = tmp_path / "mu100.n64r"
    args = ["--run", "40", "--spills", "2", "--events-per-spill", "2000", "--batch-size", "1000"]
    sets = ["--set", "p_beam_gev=100", "--set", "magnet_polarity=+", "--set", "setup=test-bench"]
    out = subprocess.run(
        [sys.executable, "-m", "dqm", "simulate", *args, *sets, "--out", str(path)],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = subprocess.run(
        [sys.executable, "-m", "dqm", "replay", str(path)],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "replayed 2 spills" in out.stdout and "no run conditions" not in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "dqm", "simulate", *args, "--run", "41", *sets],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "announced run 41: μ⁻ 100 GeV · MBPL 1.5 T·m (polarity +)" in out.stdout
    drain(settings, specs)
    for run in (40, 41):
        cond = RunConditions(**{**store.run(run).conditions, "extra": {}})
        assert (cond.beam_config, cond.polarity, cond.setup) == ("mu100", "+", "test-bench")
    with store.sessions() as session:
        assert session.scalar(select(Reference.id)) is None  # nothing certified by itself


def test_a_threshold_edit_keeps_the_nominal_from_the_conditions(settings, specs, store):
    from dqm.store.actions import ActionError, edit_check_thresholds

    with store.sessions.begin() as session:
        # When an expert widens the p_BMS scale limits on the expert page
        override = edit_check_thresholds(
            session, specs, "p_bms", "p_scale", {"rel_bad": 0.02}, Actor("ann", EXPERT)
        )
        # Then the nominal still comes from each run's conditions
        assert override.params["nominal_gev"] == "@p_beam_gev"
        assert override.params["rel_bad"] == 0.02
        # and a misspelt condition is refused, naming the closest one
        with pytest.raises(ActionError, match="did you mean '@p_beam_gev'"):
            edit_check_thresholds(
                session, specs, "p_bms", "p_scale", {"nominal_gev": "@p_beam"}, Actor("ann", EXPERT)
            )
