"""The spine end to end on a real Redis and a real PostgreSQL (and SQLite, the default).

Given simulated spills published to a stream, when several worker processes consume
them, then the stored per-spill histograms are identical, bin by bin, to filling the
same events in one process — also when a worker is SIGKILLed mid-spill.
"""

from __future__ import annotations

import signal
import threading

import pytest
import redis as redislib

from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from tests.helpers import (
    assert_identical,
    closed_count,
    one_process_fill,
    publish,
    small_run,
    start_worker,
    stored,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_twenty_spills_two_worker_processes_identical_to_one_process(settings, redis_client, specs):
    # Given 20 simulated spills (80 batches of 1000 events) on the stream
    spills = small_run(run=11, n_spills=20)
    publish(redis_client, settings, spills)
    # When two worker processes share the consumer group
    procs = [start_worker(settings, f"w{i}") for i in range(2)]
    try:
        wait_until(
            lambda: closed_count(settings.database_url, 11) == 20, 120, what="20 closed spills"
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
    # Then both exited cleanly on SIGTERM, both did work, and every histogram matches bin by bin
    assert codes == [0, 0]
    consumers = {
        c["name"].decode(): c for c in redis_client.xinfo_consumers(settings.stream, settings.group)
    }
    assert set(consumers) == {"w0", "w1"}
    expected = one_process_fill(specs, spills)
    got = stored(settings.database_url, 11)
    assert {k: v[0] for k, v in got.items()} == {k: "complete" for k in expected}
    for key, hists in expected.items():
        assert_identical(hists, got[key][1], where=f"spill {key}")
    assert redis_client.xpending(settings.stream, settings.group)["pending"] == 0


def test_worker_sigkilled_mid_spill_then_reclaimed(settings, redis_client, specs):
    # Given a worker that has committed the first spills
    spills = small_run(run=12, n_spills=10, events=6000)
    publish(redis_client, settings, spills[:4])
    victim = start_worker(settings, "victim", DQM_COMMIT_INTERVAL_S="1.0")
    try:
        wait_until(
            lambda: closed_count(settings.database_url, 12) >= 1, 60, what="a first closed spill"
        )
        # When it is SIGKILLed while it holds unacknowledged messages of later spills
        publish(redis_client, settings, spills[4:])
        wait_until(
            lambda: redis_client.xpending(settings.stream, settings.group)["pending"] > 0,
            30,
            every_s=0.005,
            what="pending messages",
        )
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    pending_at_kill = redis_client.xpending(settings.stream, settings.group)["pending"]
    assert closed_count(settings.database_url, 12) < 10, "the victim finished before being killed"
    # and a second worker takes over (reclaiming the victim's pending messages)
    engine = make_engine(settings.database_url)
    rescuer = Worker(
        settings,
        redis_client=redislib.Redis.from_url(settings.redis_url),
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="rescuer",
    )
    t = threading.Thread(target=rescuer.run, daemon=True)
    t.start()
    try:
        wait_until(
            lambda: closed_count(settings.database_url, 12) == 10, 120, what="all spills closed"
        )
    finally:
        rescuer.stop()
        t.join(30)
        engine.dispose()
    # Then nothing was lost or counted twice
    assert pending_at_kill > 0
    assert rescuer.stats.reclaimed > 0
    expected = one_process_fill(specs, spills)
    got = stored(settings.database_url, 12)
    for key, hists in expected.items():
        assert got[key][0] == "complete"
        assert_identical(hists, got[key][1], where=f"spill {key}")


def test_sqlite_default_store_two_workers(settings, redis_client, specs, tmp_path):
    # Given the embedded default store (a SQLite file) shared by two worker processes
    from dqm.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    upgrade_database(url)
    s = settings.with_(database_url=url)
    spills = small_run(run=13, n_spills=6)
    publish(redis_client, s, spills)
    procs = [start_worker(s, f"s{i}", "--burst") for i in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    # Then every spill is complete and identical to the one-process fill
    expected = one_process_fill(specs, spills)
    got = stored(url, 13)
    for key, hists in expected.items():
        assert got[key][0] == "complete"
        assert_identical(hists, got[key][1], where=f"spill {key}")
