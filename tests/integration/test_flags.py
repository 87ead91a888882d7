"""Flags end to end on a real Redis and a real PostgreSQL, and the commands a shifter uses.

Given spills with an injected anomaly published to the stream, when a real worker
(with the checks as its close hook) consumes them, then the flags are stored with
their explanation, announced on the pub/sub channel, and ``recheck_run`` with the same
configuration version reproduces them exactly.
"""

from __future__ import annotations

import json

import pytest
import redis as redislib
from sqlalchemy import select

from dqm.checks import Quality
from dqm.cli import main
from dqm.core.roles import EXPERT, Actor
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.worker import Worker
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.actions import edit_check_thresholds
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import AuditEntry, Flag, Spill
from tests.helpers import publish, small_run

pytestmark = pytest.mark.integration

REFERENCE_RUN, RUN = 21, 22


def _drain(settings, specs) -> None:
    """One in-process worker with the checks as close hook, until the stream is empty."""
    engine = make_engine(settings.database_url)
    try:
        worker = Worker(
            settings,
            redis_client=redislib.Redis.from_url(settings.redis_url),
            sessions=make_sessionmaker(engine),
            specs=specs,
            consumer="flags-test",
            close_hooks=close_hooks(settings, specs),
        )
        worker.run(burst=True)
    finally:
        engine.dispose()


def _cli(monkeypatch, capsys, settings, *argv: str) -> tuple[int, str]:
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


@pytest.fixture
def flagged_run(settings, redis_client, specs, monkeypatch, capsys):
    """A certified reference run, then a run whose beam moves by 3 mm from spill 3 on."""
    publish(redis_client, settings, small_run(run=REFERENCE_RUN, n_spills=5))
    _drain(settings, specs)
    code, out = _cli(
        monkeypatch,
        capsys,
        settings,
        "reference",
        "set",
        str(REFERENCE_RUN),
        "--user",
        "alice",
        "--comment",
        "clean",
    )
    assert code == 0, out
    listener = redis_client.pubsub()
    listener.subscribe(settings.channel)
    assert listener.get_message(timeout=5.0)["type"] == "subscribe"
    shifted = SimConfig(run=RUN, n_spills=5, events_per_spill=4000, batch_size=1000)
    publish(
        redis_client,
        settings,
        list(simulate_run(shifted, [parse_anomaly("beam_shift@3-:dx_mm=3")])),
    )
    _drain(settings, specs)
    announced = []
    while (message := listener.get_message(timeout=1.0)) is not None:
        announced.append(json.loads(message["data"]))
    listener.close()
    return announced


def test_flags_are_stored_announced_and_reproduced_by_recheck(settings, specs, flagged_run):
    announced = {m["spill"]: m for m in flagged_run if m["run"] == RUN}
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            centroid = {
                f.spill: f
                for f in session.scalars(
                    select(Flag).where(
                        Flag.run == RUN,
                        Flag.check == "beam_centroid",
                        Flag.histogram == "beam_xy_ms1_0",
                    )
                )
            }
            rollups = {
                f.spill: f
                for f in session.scalars(
                    select(Flag).where(
                        Flag.run == RUN, Flag.check == "rollup", Flag.subsystem == "beam"
                    )
                )
            }
            version = session.scalar(
                select(Spill.config_version).where(Spill.run == RUN, Spill.spill == 3)
            )
            # Then every spill is judged; the shifted spills are BAD on the beam, with why and what
            # to do
            assert sorted(centroid) == [1, 2, 3, 4, 5]
            for spill in (1, 2):
                assert centroid[spill].quality == Quality.GOOD
            for spill in (3, 4, 5):
                f = centroid[spill]
                assert f.quality == Quality.BAD and f.subsystem == "beam"
                assert "beam x at MS1 station 0" in f.explanation and f.thresholds == {
                    "warning": 1.0,
                    "bad": 2.0,
                }
                assert "M2 beam operator" in f.instruction
                assert (
                    f.config_version == version == f"{specs.version}+0"
                    and f.reference_run == REFERENCE_RUN
                )
                assert rollups[spill].quality == Quality.BAD
            assert rollups[None].quality == Quality.BAD  # the run's own roll-up
            # and announced on the pub/sub channel with the subsystem qualities
            assert sorted(announced) == [1, 2, 3, 4, 5]
            assert all(announced[s]["subsystems"]["beam"] == Quality.BAD for s in (3, 4, 5))
            assert announced[3]["config_version"] == version
        # When the run is rechecked with the same configuration version
        with sessions() as session:
            same = recheck_run(session, RUN, specs)
        # Then it reproduces the live flags exactly
        assert same.spills == 5 and same.version == version and same.differences == []
        # When an expert widens the beam window at every station (a new configuration version)
        # and the run is rechecked with it
        with sessions.begin() as session:
            for station in (0, 1, 2):
                override = edit_check_thresholds(
                    session,
                    specs,
                    f"beam_xy_ms1_{station}",
                    "beam_centroid",
                    {"window_mm": 4.0, "bad_window_mm": 5.0},
                    Actor("bob", EXPERT),
                )
        new_version = f"{specs.version}+{override.id}"
        with sessions() as session:
            changed = recheck_run(session, RUN, specs, version=new_version)
            pinned = recheck_run(session, RUN, specs, version=version)
        # Then the shifted spills are no longer BAD (only that check changed: its thresholds, hence
        # its
        # explanation, in every spill), while the old version still reproduces the stored flags
        assert changed.version == new_version
        assert all("/beam_centroid" in d for d in changed.differences)
        assert {d.split()[1] for d in changed.differences if "stored BAD" in d} == {"3", "4", "5"}
        assert pinned.differences == []
        # When the expert stores the recheck with the new version
        with sessions.begin() as session:
            recheck_run(session, RUN, specs, version=new_version, store=True)
        # Then the stored flags and the run's roll-up follow the new thresholds, and reproduce
        # themselves
        with sessions() as session:
            run_beam = session.scalar(
                select(Flag).where(
                    Flag.run == RUN,
                    Flag.check == "rollup",
                    Flag.spill.is_(None),
                    Flag.subsystem == "beam",
                )
            )
            moved = session.scalar(
                select(Flag).where(
                    Flag.run == RUN,
                    Flag.spill == 3,
                    Flag.check == "beam_centroid",
                    Flag.histogram == "beam_xy_ms1_0",
                )
            )
            assert moved.quality == Quality.GOOD and moved.config_version == new_version
            assert run_beam.quality < Quality.BAD and run_beam.config_version == new_version
            assert recheck_run(session, RUN, specs).differences == []
    finally:
        engine.dispose()


def test_shifter_commands_on_the_database(settings, specs, flagged_run, monkeypatch, capsys):
    # When the shifter lists the run's BAD beam flags
    code, out = _cli(
        monkeypatch,
        capsys,
        settings,
        "flags",
        "--run",
        str(RUN),
        "--quality",
        "BAD",
        "--subsystem",
        "beam",
    )
    # Then each shifted spill shows its check, explanation, instruction and configuration version
    assert code == 0, out
    assert "beam BAD" in out.splitlines()[0]
    assert (
        out.splitlines()[1].startswith(
            f"compared with: reference run {REFERENCE_RUN} (beam 'mu160', set "
        )
        and "by alice" in out
    )
    # (the centroid is judged at every MS1 station: three rows per shifted spill)
    rows = [line for line in out.splitlines() if "beam_centroid" in line]
    assert [int(line.split()[1]) for line in rows] == [3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert all("BAD" in line and specs.version in line for line in rows)
    for station in (0, 1, 2):
        assert out.count(f"why: beam x at MS1 station {station}") == 3
    assert "do: Beam moved" in out
    assert "calorimeter" not in "\n".join(rows)
    # and one spill alone
    code, out = _cli(
        monkeypatch,
        capsys,
        settings,
        "flags",
        "--run",
        str(RUN),
        "--spill",
        "1",
        "--quality",
        "GOOD",
    )
    table = out.splitlines()[2:]
    assert code == 0 and "beam_centroid" in out and all(" BAD " not in line for line in table)
    assert {line.split()[1] for line in table[2:] if line.lstrip().startswith(str(RUN))} == {"1"}
    # When the expert rechecks the run from the command line
    code, out = _cli(monkeypatch, capsys, settings, "recheck", "--run", str(RUN))
    assert code == 0 and "reproduces the stored live flags exactly" in out, out
    # and inspects the references
    code, out = _cli(monkeypatch, capsys, settings, "reference", "list")
    assert (
        code == 0
        and out.splitlines()[1].split()[1:5] == ["mu160", str(REFERENCE_RUN), "yes", "run"]
        and "alice" in out
    )
    code, out = _cli(monkeypatch, capsys, settings, "reference", "show", str(RUN))
    assert (
        code == 0
        and f"run {REFERENCE_RUN} (run), set" in out
        and f"against reference run(s) {REFERENCE_RUN}" in out
    )
    code, out = _cli(monkeypatch, capsys, settings, "reference", "suggest", "--min-spills", "3")
    assert code == 0 and out.splitlines()[2].split()[0] == str(
        REFERENCE_RUN
    )  # the clean run ranks first
    # Then setting a reference is audited, and a deliberate mistake is one clear line with status 2
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "set_reference")
        ).all()
    engine.dispose()
    assert [(a.user, a.target) for a in audit] == [("alice", f"run {REFERENCE_RUN}")]
    code, out = _cli(monkeypatch, capsys, settings, "reference", "set", "999", "--user", "alice")
    assert code == 2 and "run 999" in out and "Traceback" not in out
    code, out = _cli(
        monkeypatch, capsys, settings, "flags", "--run", str(RUN), "--quality", "AWFUL"
    )
    assert code == 2 and "--quality" in out
