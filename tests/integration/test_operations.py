"""Operations on real Redis + PostgreSQL: a worker's Prometheus endpoint and ``dqm status``.

Given a known input on the stream (3 spills of 4 batches of 1000 events, their markers and
one malformed message), when a worker with its metrics endpoint drains it, then an HTTP GET
of ``/metrics`` shows exactly those events, batches, dead letters, spill-close latencies and
the stream's lag and pending counts before, during and after; and ``dqm status`` prints the
stream, the group, its consumer, pending, lag, dead letters and the last spills.
"""

from __future__ import annotations

import argparse
import re
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import redis as redislib
from prometheus_client.parser import text_string_to_metric_families

from dqm.pipeline import stream as rs
from dqm.pipeline.metrics import scrape_client, serve_worker_metrics
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import Spill
from dqm.store.spills import ensure_spill
from tests.helpers import publish, small_run

pytestmark = pytest.mark.integration

RUN = 31


def scrape(port: int) -> dict[str, float]:
    """``name{label=value,...}`` -> value, from a real HTTP GET of the endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(
                f"{k}={v}"
                for k, v in sorted(sample.labels.items())
                if k not in {"consumer", "stream", "group"}
            )
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@pytest.fixture
def known_input(settings, redis_client):
    """The run's conditions + 3 spills x 4 batches x 1000 events + 3 markers + 1 malformed batch
    = 17 messages."""
    spills = small_run(run=RUN, n_spills=3, events=4000, batch=1000, intensity_jitter=0.0)
    publish(redis_client, settings, spills)
    redis_client.xadd(settings.stream, {b"type": b"batch", b"payload": b"not an event batch"})
    return spills


def test_worker_metrics_endpoint_reports_a_known_input(settings, redis_client, specs, known_input):
    spills = known_input
    n_events = sum(s.n_events for s in spills)
    assert n_events == 12_000
    redis7 = int(redis_client.info("server")["redis_version"].split(".")[0]) >= 7
    engine = make_engine(settings.database_url)
    worker = Worker(
        settings,
        redis_client=redislib.Redis.from_url(settings.redis_url),
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="metered",
    )
    server = serve_worker_metrics(worker, 0, "127.0.0.1")
    try:
        # Given the group exists and 5 messages were delivered to this worker but not acknowledged
        rs.ensure_group(redis_client, settings.stream, settings.group)
        assert (
            len(
                rs.read_group(
                    redis_client, settings.stream, settings.group, "metered", count=5, block_ms=None
                )
            )
            == 5
        )
        # When Prometheus scrapes before the worker has run
        before = scrape(server.port)
        # Then nothing is counted yet and the stream gauges show the backlog
        assert before["dqm_worker_events_total"] == 0 and before["dqm_worker_batches_total"] == 0
        assert before["dqm_stream_length_messages"] == 17
        assert before["dqm_stream_pending_messages"] == 5
        assert before["dqm_consumer_pending_messages"] == 5
        if redis7:
            assert before["dqm_stream_lag_messages"] == 12
        assert before["dqm_dead_letter_stream_length_messages"] == 0
        assert before["dqm_metrics_redis_up"] == 1
        # When the worker drains the stream (its own pending messages first)
        stats = worker.run(burst=True)
        after = scrape(server.port)
    finally:
        server.close()
        engine.dispose()
    # Then the counters are exactly the known input
    assert after["dqm_worker_events_total"] == n_events == stats.events
    assert after["dqm_worker_batches_total"] == 12
    assert after["dqm_worker_spill_markers_total"] == 3
    assert after["dqm_worker_spills_closed_total"] == 3
    assert after["dqm_worker_dead_letters_total"] == 1
    assert after["dqm_dead_letter_stream_length_messages"] == 1
    # and every spill's close latency is in the histogram, within the 30 s bucket
    assert after["dqm_worker_spill_close_latency_seconds_count"] == 3
    assert after["dqm_worker_spill_close_latency_seconds_bucket{le=+Inf}"] == 3
    assert after["dqm_worker_spill_close_latency_seconds_bucket{le=30.0}"] == 3
    assert (
        0
        < after["dqm_worker_spill_close_latency_seconds_sum"]
        == pytest.approx(sum(stats.close_latency_s))
    )
    # and nothing is pending or undelivered any more
    assert after["dqm_stream_pending_messages"] == 0 and after["dqm_consumer_pending_messages"] == 0
    if redis7:
        assert after["dqm_stream_lag_messages"] == 0
    # and the process' own metrics come along (CPU, memory)
    assert after["process_cpu_seconds_total"] > 0


def test_metrics_when_redis_is_unreachable(settings, redis_client, specs):
    # Given a worker whose metrics client points at a Redis that does not answer
    engine = make_engine(settings.database_url)
    worker = Worker(
        settings,
        redis_client=redis_client,
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="blind",
    )
    server = serve_worker_metrics(
        worker, 0, "127.0.0.1", redis_client=scrape_client("redis://127.0.0.1:1/0")
    )
    try:
        # When Prometheus scrapes
        t0 = time.perf_counter()
        got = scrape(server.port)
        took = time.perf_counter() - t0
    finally:
        server.close()
        engine.dispose()
    # Then the scrape still answers quickly (no retries): the counters, and redis_up = 0
    assert took < 1.5
    assert got["dqm_metrics_redis_up"] == 0
    assert got["dqm_worker_events_total"] == 0
    assert "dqm_stream_lag_messages" not in got


def test_dqm_status_prints_streams_consumers_lag_dead_letters_and_last_spills(
    settings, redis_client, specs, known_input, capsys
):
    from dqm.commands.status import run as status

    # Given the known input drained by one worker, and 2 more messages published after it stopped
    engine = make_engine(settings.database_url)
    Worker(
        settings,
        redis_client=redis_client,
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="w-status",
    ).run(burst=True)
    engine.dispose()
    later = rs.publish_spill(
        redis_client,
        settings.stream,
        small_run(run=RUN + 1, n_spills=1, events=1000, batch=1000)[0],
    )
    n_later = len(later)  # its batches and marker, not consumed by anyone
    # When `dqm status` runs
    assert status(argparse.Namespace(spills=8), settings) == 0
    out = capsys.readouterr().out
    # Then it shows the stream, the group with its pending and lag, the consumer, the dead letters
    assert f"stream {settings.stream}: {17 + n_later} messages" in out
    redis7 = int(redis_client.info("server")["redis_version"].split(".")[0]) >= 7
    assert f"group {settings.group}: 0 pending, lag {n_later if redis7 else '?'} messages" in out
    assert "consumer w-status" in out
    assert f"dead letters ({settings.dead_letter_stream}): 1" in out
    # and the spill counts and the last spills, newest first, with their status and events
    assert "spills: 3 complete" in out
    last = next(line for line in out.splitlines() if line.startswith("last closed:"))
    assert re.fullmatch(
        rf"last closed: run {RUN} spill [123] \(complete, \d+ events\) \d+ s ago", last
    ), last
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(str(RUN))]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (str(RUN), str(s), "complete", "4/4") for s in (3, 2, 1)
    ]
    assert f"run {RUN}: spills 1–3\n" in out
    # When spill 6 of the run reaches the DQM but 4 and 5 never did
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine).begin() as session:
        six = ensure_spill(session, RUN, 6).id
    # Then while spill 6 is fresh, 4 and 5 may still be on their way (another worker's): not
    # reported
    assert status(argparse.Namespace(spills=8), settings) == 0
    assert f"run {RUN}: spills 1–3, 6\n" in capsys.readouterr().out
    # And once spill 6 is older than the spill timeout, the status names the spills never received
    with make_sessionmaker(engine).begin() as session:
        session.get(Spill, six).opened_at = datetime.now(UTC) - timedelta(
            seconds=settings.spill_timeout_s + 5
        )
    engine.dispose()
    assert status(argparse.Namespace(spills=8), settings) == 0
    assert f"run {RUN}: spills 1–3, 6; NOT RECEIVED: 4–5 (2)" in capsys.readouterr().out


def test_dqm_status_before_any_worker(settings, capsys):
    from dqm.commands.status import run as status

    # Given nothing published and no worker started
    # When `dqm status` runs
    assert status(argparse.Namespace(spills=8), settings) == 0
    out = capsys.readouterr().out
    # Then it says so instead of failing
    assert f"stream {settings.stream}: 0 messages" in out
    assert "not created yet (no worker has started)" in out
    assert "spills: none yet" in out and "last closed" not in out


def test_redis_on_a_unix_socket(tmp_path):
    import subprocess

    from dqm.config import load_settings
    from dqm.pipeline.services import redis_server_binary
    from dqm.pipeline.stream import connect

    # Given a real redis-server listening only on a unix socket (a same-host deployment)
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from tests.helpers import wait_until

        wait_until(sock.exists, 10, what="the redis socket")
        # When DQM_REDIS_URL names it, then dqm connects and can use the stream
        settings = load_settings({"DQM_REDIS_URL": f"unix://{sock}"})
        r = connect(settings.redis_url)
        rs.ensure_group(r, "dqm:events", "dqm-workers")
        assert r.xlen("dqm:events") == 0 and r.ping()
        r.close()
    finally:
        proc.terminate()
        proc.wait(10)
