"""Judging never stops the DQM: real worker processes on a real PostgreSQL and Redis.

Given a check planted to raise, a run at a beam momentum whose entries all fall below the
reference's axis range, and a database query that fails while judging, when real workers
consume the spills, then every spill closes and is announced, the failure is a stored
CHECK_ERROR flag naming the check and the error, later spills are judged normally, and
the worker is still running.
"""

from __future__ import annotations

import json
import re
import signal

import pytest
import redis as redislib
from sqlalchemy import select, text

from dqm.checks import Quality
from dqm.core.evaluate import CHECK_ERROR_INSTRUCTION
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.worker import Worker
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Flag, Spill
from dqm.store.references import set_reference
from tests.helpers import closed_count, publish, wait_until, worker_env
from tests.planted import ROOT, planted_specs

pytestmark = pytest.mark.integration


def _flags(url: str, run: int) -> list[Flag]:
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Flag).where(Flag.run == run)))
    finally:
        engine.dispose()


def _listen(redis_client, channel: str):
    listener = redis_client.pubsub()
    listener.subscribe(channel)
    assert listener.get_message(timeout=5.0)["type"] == "subscribe"
    return listener


def _heard(listener) -> dict[tuple[int, int], dict]:
    notes = {}
    while (message := listener.get_message(timeout=1.0)) is not None:
        note = json.loads(message["data"])
        notes[(note["run"], note["spill"])] = note
    listener.close()
    return notes


def test_a_check_that_raises_is_a_check_error_flag_and_the_worker_goes_on(
    settings, redis_client, tmp_path
):
    import subprocess
    import sys

    # Given specs with a check planted to raise on spills of fewer than 2000 events,
    # a first spill of 1000 events and two normal ones of 4000 (spills 1, 2, 3)
    specs_dir = planted_specs(tmp_path / "specs", fail_below_events=2000)
    small = list(simulate_run(SimConfig(run=31, n_spills=1, events_per_spill=1000)))
    normal = list(
        simulate_run(SimConfig(run=31, n_spills=3, events_per_spill=4000, batch_size=1000))
    )[1:]
    listener = _listen(redis_client, settings.channel)
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115 — read after the worker stops
    # When a real worker process (the dqm command with the planted check) consumes them
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.planted", "--log-level", "WARNING", "worker"],
        env=worker_env(settings, DQM_SPECS_DIR=str(specs_dir)),
        cwd=str(ROOT),
        stderr=log,
    )
    try:
        publish(redis_client, settings, small)
        wait_until(lambda: closed_count(settings.database_url, 31) == 1, 60, what="spill 1")
        publish(redis_client, settings, normal)
        wait_until(lambda: closed_count(settings.database_url, 31) == 3, 60, what="3 spills")
        # Then the worker is still running after the failure
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    log.seek(0)
    stderr = log.read()
    flags = _flags(settings.database_url, 31)
    planted = {f.spill: f for f in flags if f.check == "planted_failure"}
    # and the failing spill holds a CHECK_ERROR flag naming the check and the error
    failed = planted[1]
    assert failed.quality == Quality.CHECK_ERROR
    assert "check 'planted_failure' failed" in failed.explanation
    assert re.search(r"ValueError: planted failure on a spill of \d+ events", failed.explanation)
    assert failed.instruction == CHECK_ERROR_INSTRUCTION
    assert failed.details["error_type"] == "ValueError"
    # while its other checks judged it, and later spills are judged normally
    others = [f for f in flags if f.spill == 1 and f.check not in ("planted_failure", "rollup")]
    assert others and all(f.quality != Quality.CHECK_ERROR for f in others)
    assert planted[2].quality == planted[3].quality == Quality.GOOD
    rollup = {
        f.spill: f
        for f in flags
        if f.check == "rollup" and f.subsystem == "momentum" and f.spill is not None
    }
    assert rollup[1].quality >= Quality.CHECK_ERROR  # visible on the tile, never GOOD
    # and every spill was announced, the failing one with its momentum tile not GOOD
    notes = _heard(listener)
    assert set(notes) == {(31, 1), (31, 2), (31, 3)}
    assert notes[(31, 1)]["subsystems"]["momentum"] >= int(Quality.CHECK_ERROR)
    # and the failure was logged once, with the check's name and the traceback
    assert stderr.count("check planted_p_bms/planted_failure raised ValueError") == 1, stderr
    assert "in check_planted_failure\n    raise ValueError" in stderr


def _drain(settings, specs) -> Worker:
    engine = make_engine(settings.database_url)
    try:
        worker = Worker(
            settings,
            redis_client=redislib.Redis.from_url(settings.redis_url),
            sessions=make_sessionmaker(engine),
            specs=specs,
            consumer="judging-test",
            close_hooks=close_hooks(settings, specs),
        )
        worker.run(burst=True)
        return worker
    finally:
        engine.dispose()


def test_a_100_gev_run_against_the_160_gev_reference_is_judged_bad_not_a_crash(
    settings, redis_client, specs
):
    # Given a certified 160 GeV reference run
    publish(redis_client, settings, list(simulate_run(SimConfig(run=41, n_spills=3))))
    _drain(settings, specs)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        set_reference(session, 41, "alice")
    engine.dispose()
    # When a run at 100 GeV arrives, announcing its conditions
    listener = _listen(redis_client, settings.channel)
    publish(
        redis_client, settings, list(simulate_run(SimConfig(run=42, n_spills=3, p_beam_gev=100)))
    )
    worker = _drain(settings, specs)
    # Then every spill closed and was announced, and the worker reported no judging error
    assert closed_count(settings.database_url, 42) == 3
    assert {k for k in _heard(listener) if k[0] == 42} == {(42, 1), (42, 2), (42, 3)}
    assert worker.stats.check_errors == 0
    flags = _flags(settings.database_url, 42)
    assert not [f for f in flags if f.quality == Quality.CHECK_ERROR]
    # and the momentum shape check is not compared with the 160 GeV reference: it says why
    ks = [f for f in flags if f.histogram == "p_bms" and f.check == "ks"]
    assert len(ks) == 3 and all(f.quality == Quality.NO_DATA for f in ks)
    assert all(f.explanation.startswith("no reference for mu100") for f in ks)


def test_judging_that_fails_in_the_database_still_closes_announces_and_recovers(
    settings, redis_client, specs
):
    # Given a database in which a table the judging reads cannot be queried (a non-outage
    # error: the query is refused, the server is fine)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE check_overrides RENAME TO check_overrides_away"))
    listener = _listen(redis_client, settings.channel)
    publish(redis_client, settings, list(simulate_run(SimConfig(run=51, n_spills=2))))
    # When a worker closes the spills
    worker = _drain(settings, specs)
    # Then they are closed and announced with the judging error, each subsystem CHECK_ERROR
    assert closed_count(settings.database_url, 51) == 2
    notes = _heard(listener)
    assert "judging_error" in notes[(51, 1)] and "UndefinedTable" in notes[(51, 1)]["judging_error"]
    flags = _flags(settings.database_url, 51)
    judging = [f for f in flags if f.check == "judging" and f.spill == 1]
    assert {f.subsystem for f in judging} == {"beam", "calorimeter", "daq", "momentum", "pik"}
    assert all(f.quality == Quality.CHECK_ERROR for f in judging)
    assert "judging this spill failed while gathering its inputs" in judging[0].explanation
    assert worker.stats.spills_closed == 2
    assert worker.stats.check_errors == 2 * 5  # one 'judging' flag per subsystem and spill
    # And once the table is back, the next spills are judged normally
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE check_overrides_away RENAME TO check_overrides"))
    publish(redis_client, settings, list(simulate_run(SimConfig(run=52, n_spills=1))))
    _drain(settings, specs)
    flags = _flags(settings.database_url, 52)
    assert flags and not [f for f in flags if f.quality == Quality.CHECK_ERROR]
    with make_sessionmaker(engine)() as session:
        qualities = session.scalars(select(Spill.quality).where(Spill.run == 51)).all()
    assert all(q >= Quality.CHECK_ERROR for q in qualities)
    # And 'dqm recheck --store' (what the instruction says) judges the failed spills again
    with make_sessionmaker(engine).begin() as session:
        recheck_run(session, 51, specs, store=True)
    engine.dispose()
    rejudged = _flags(settings.database_url, 51)
    assert rejudged and not [f for f in rejudged if f.quality == Quality.CHECK_ERROR]
    assert not [f for f in rejudged if f.check == "judging"]
