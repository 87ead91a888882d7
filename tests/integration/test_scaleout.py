"""Scale-out: the stored histograms of a run do not depend on how many workers filled them.

Given the same simulated run, when it goes through 1 worker process and, into another
database, through 3 worker processes sharing one consumer group, then every stored
histogram is identical bin by bin between the two (and to a one-process fill), all three
consumers did part of the work (their own Prometheus endpoints, ``dqm worker --metrics-port 0``,
count the same share as their exit lines), and the workers' log lines about a spill carry
``run=`` and ``spill=`` fields.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from dqm.config import Settings
from tests.conftest import migrated_database
from tests.helpers import (
    ROOT,
    assert_identical,
    closed_count,
    one_process_fill,
    publish,
    small_run,
    stored,
    wait_until,
    worker_env,
)

pytestmark = pytest.mark.integration

RUN, N_SPILLS = 21, 12
DONE = re.compile(r"worker (\S+) done: (\d+) events, (\d+) batches")


@pytest.fixture
def second_pg_url(pg_admin_url):
    with migrated_database(pg_admin_url) as url:
        yield url


def start_group(settings: Settings, n: int, logs: Path, *args: str) -> list[subprocess.Popen]:
    """``n`` worker processes in one consumer group, each logging (INFO) to its own file."""
    procs = []
    for i in range(n):
        with open(logs / f"w{n}-{i}.log", "w") as f:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dqm",
                        "--log-level",
                        "INFO",
                        "worker",
                        "--consumer",
                        f"w{n}-{i}",
                        *args,
                    ],
                    env=worker_env(settings),
                    cwd=str(ROOT),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                )
            )
    return procs


def events_filled(n: int, logs: Path) -> dict[str, int]:
    """Events each worker of a group says it filled (its last log line)."""
    text = "".join((logs / f"w{n}-{i}.log").read_text() for i in range(n))
    return {m.group(1): int(m.group(2)) for m in DONE.finditer(text)}


def scraped_events(logs: Path) -> dict[str, int]:
    """``dqm_worker_events_total`` of each 3-group worker, by HTTP GET of the port it logged."""
    out = {}
    for i in range(3):
        m = re.search(
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics", (logs / f"w3-{i}.log").read_text()
        )
        if m is None:
            continue
        with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/metrics", timeout=10) as resp:
            for family in text_string_to_metric_families(resp.read().decode()):
                for sample in family.samples:
                    if sample.name == "dqm_worker_events_total":
                        out[sample.labels["consumer"]] = int(sample.value)
    return out


def _consumers(r, settings: Settings) -> int:
    try:
        return len(r.xinfo_consumers(settings.stream, settings.group))
    except redis.ResponseError:  # no stream or group before the first worker creates them
        return 0


def test_one_and_three_workers_store_identical_histograms(
    settings, second_pg_url, redis_client, specs, tmp_path
):
    # Given one simulated run (12 spills x 4 batches of 1000 events)
    spills = small_run(run=RUN, n_spills=N_SPILLS)
    total = sum(s.n_events for s in spills)
    one = settings
    three = settings.with_(
        database_url=second_pg_url,
        stream=settings.stream + ":3",
        group=settings.group + ":3",
        dead_letter_stream=settings.dead_letter_stream + ":3",
    )
    # When it goes through 1 worker process, and through 3 sharing one group (another database;
    # both groups start together to share the start-up time, and get the run once all have joined)
    groups = {1: one, 3: three}
    procs = {
        1: start_group(one, 1, tmp_path),
        3: start_group(three, 3, tmp_path, "--metrics-port", "0", "--metrics-host", "127.0.0.1"),
    }
    try:
        for n, s in groups.items():
            wait_until(
                lambda s=s, n=n: _consumers(redis_client, s) == n,
                90,
                what=f"{n} consumers in the group",
            )
        # paced a little, so that no worker is still starting when the run is over
        for spill in spills:
            for s in groups.values():
                publish(redis_client, s, [spill])
            time.sleep(0.05)
        for s in groups.values():
            wait_until(
                lambda s=s: closed_count(s.database_url, RUN) == N_SPILLS,
                120,
                what="every spill closed",
            )
        wait_until(
            lambda: sum(scraped_events(tmp_path).values()) == total,
            120,
            what="the metrics to count every event",
        )
        scraped = scraped_events(tmp_path)
    finally:
        everyone = procs[1] + procs[3]
        for p in everyone:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(60) for p in everyone]
    assert codes == [0, 0, 0, 0]
    done_one, done_three = events_filled(1, tmp_path), events_filled(3, tmp_path)
    # Then the single worker filled everything, and each of the three filled a share of it
    assert done_one == {"w1-0": total}
    assert set(done_three) == {"w3-0", "w3-1", "w3-2"}
    assert sum(done_three.values()) == total
    assert all(n > 0 for n in done_three.values()), f"a consumer did no work: {done_three}"
    # and each worker's Prometheus endpoint (dqm worker --metrics-port 0) counted its own share
    assert scraped == done_three
    # and every spill's histograms are identical bin by bin: 1 worker vs 3 vs one process
    got_one, got_three = stored(one.database_url, RUN), stored(three.database_url, RUN)
    truth = one_process_fill(specs, spills)
    assert set(got_one) == set(got_three) == set(truth)
    for key in truth:
        assert got_one[key][0] == got_three[key][0] == "complete"
        assert_identical(got_one[key][1], got_three[key][1], where=f"1 vs 3 workers, spill {key}")
        assert_identical(
            truth[key], got_three[key][1], where=f"one process vs 3 workers, spill {key}"
        )
    # and nothing is left pending in either group
    for s in (one, three):
        assert redis_client.xpending(s.stream, s.group)["pending"] == 0
    # and each closed spill was logged once, with its run and spill as logfmt fields
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("w3-*.log")))
    closed = re.findall(
        r"spill closed run=(\d+) spill=(\d+) consumer=(w3-\d) status=complete n_events=(\d+)", logs
    )
    assert sorted((int(r), int(s)) for r, s, *_ in closed) == sorted(truth)
    assert {c for _, _, c, _ in closed} <= set(done_three)
