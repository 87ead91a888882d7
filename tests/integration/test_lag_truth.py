"""Lag and pending tell the truth after Redis restarts, with and without its append-only file.

Redis computes a consumer group's ``lag`` from a counter of entries read that a restart
from the append-only file restores only approximately; the DQM's lag
(:func:`dqm.pipeline.stream.group_lag`, used by ``dqm status`` and the
``dqm_stream_lag_messages`` gauge) trusts the ids first: a group that has been delivered
the stream's last entry has no lag, whatever the counter says.
"""

from __future__ import annotations

import signal
import threading

import pytest
import redis as redislib

from dqm.commands.status import stream_report
from dqm.pipeline.services import EmbeddedRedis
from dqm.pipeline.stream import ensure_group, group_lag, publish_spill, read_group
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from tests.helpers import closed_count, small_run, wait_until

pytestmark = pytest.mark.integration


def the_group(r: redislib.Redis, stream: str, group: str) -> dict:
    return next(g for g in r.xinfo_groups(stream) if g["name"].decode() == group)


def test_lag_is_zero_once_the_last_entry_is_delivered_whatever_the_counter_says(
    redis_client, settings
):
    # Given a group that has been delivered every entry of its stream
    s = settings
    ensure_group(redis_client, s.stream, s.group)
    for i in range(5):
        redis_client.xadd(s.stream, {b"type": b"probe", b"i": i})
    read_group(redis_client, s.stream, s.group, "c", count=10, block_ms=None)
    g = the_group(redis_client, s.stream, s.group)
    assert group_lag(redis_client, s.stream, g) == 0
    # When Redis's counter is off (as after a restart from its append-only file)
    wrong = {**g, "lag": 11}
    # Then the lag is still 0; and with entries not yet delivered it is Redis's figure,
    # never more than the stream holds
    assert group_lag(redis_client, s.stream, wrong) == 0
    redis_client.xadd(s.stream, {b"type": b"probe", b"i": 5})
    g = the_group(redis_client, s.stream, s.group)
    assert group_lag(redis_client, s.stream, g) == 1
    assert group_lag(redis_client, s.stream, {**g, "lag": 10_000}) == 6
    assert group_lag(redis_client, s.stream, {**g, "lag": None}) is None


@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_lag_and_pending_after_redis_is_killed_and_restarted(persistent, settings, specs, tmp_path):
    # Given a worker on a private Redis (with or without its append-only file)
    server = EmbeddedRedis(workdir=str(tmp_path), persistent=persistent, fsync="always").start()
    s = settings.with_(redis_url=server.url)
    spills = small_run(run=41 + int(persistent), n_spills=4)
    r = redislib.Redis.from_url(server.url)
    engine = make_engine(s.database_url)
    worker = Worker(
        s,
        redis_client=redislib.Redis.from_url(server.url),
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="w",
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    run = spills[0].run
    try:
        for spill in spills[:2]:
            publish_spill(r, s.stream, spill)
        thread.start()
        wait_until(lambda: closed_count(s.database_url, run) == 2, 60, what="2 spills closed")
        # When Redis is killed (SIGKILL) and restarted, and more spills come
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        server.stop(keep_files=True)
        server.start()
        wait_until(lambda: r.exists(s.stream) == 1, 30, what="the worker's group back")
        for spill in spills[2:]:
            publish_spill(r, s.stream, spill)
        wait_until(lambda: closed_count(s.database_url, run) == 4, 60, what="4 spills closed")
        # Then, once the worker has caught up, lag and pending are 0 and stay 0, in the
        # DQM's figures and in `dqm status`
        wait_until(
            lambda: r.xpending(s.stream, s.group)["pending"] == 0, 30, what="nothing pending"
        )
        g = the_group(r, s.stream, s.group)
        assert group_lag(r, s.stream, g) == 0
        report = "\n".join(stream_report(r, s))
        assert "0 pending, lag 0 messages" in report, report
        assert thread.is_alive()
    finally:
        worker.stop()
        thread.join(30)
        r.close()
        engine.dispose()
        server.stop()
