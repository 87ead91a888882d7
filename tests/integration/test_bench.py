"""``dqm bench`` prints figures, not chatter, and its scale-out rows.

Given a real Redis, when ``dqm bench --workers 1`` runs on a tiny run, then its output is the
figures only (no Alembic migration lines, no per-spill worker lines, no warning from the numpy
baseline) and the scale-out section has one row per worker count with its throughput.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def test_bench_output_is_figures_only(redis_url):
    # Given the bench on a tiny run against the test Redis
    env = {
        **os.environ,
        "DQM_REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "default",
    }
    argv = [
        sys.executable,
        "-m",
        "dqm",
        "bench",
        "--spills",
        "2",
        "--events-per-spill",
        "2000",
        "--batch-size",
        "1000",
        "--no-checks",
        "--workers",
        "1",
    ]
    # When it runs (at the default INFO log level)
    done = subprocess.run(argv, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=240)
    # Then it succeeds and prints nothing but its figures
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"bench wrote to stderr:\n{done.stderr}"
    out = done.stdout
    for noise in ("alembic", "INFO", "Warning", "dqm.pipeline.worker"):
        assert noise not in out, f"{noise!r} in the bench output:\n{out}"
    assert "numpy.histogram/histogram2d" in out and "speed-up vs numpy" in out
    rows = re.findall(
        r"scale-out: (\d+) worker process\(es\)\s+([\d,]+) ev\s+([\d,]+) ev/CPU-s\s+([\d,]+) "
        r"ev/s\s+speed-up\s+([\d.]+)x\s+cores used\s+([\d.]+)",
        out,
    )
    assert [(int(n), int(ev.replace(",", ""))) for n, ev, *_ in rows] == [(1, 4000)], out
    assert (
        float(rows[0][4]) == 1.0 and int(rows[0][3].replace(",", "")) > 0 and float(rows[0][5]) > 0
    )


def test_scaleout_bench_on_a_scratch_postgres(settings, redis_client, pg_url, tmp_path):
    from sqlalchemy import select

    from benchmarks.worker import bench_scaleout
    from dqm.store.engine import make_engine, make_sessionmaker
    from dqm.store.models import Spill
    from tests.helpers import closed_count

    # Given a scratch PostgreSQL database for the scale-out store
    # When a worker process drains a 3-spill run through it
    res = bench_scaleout(settings, redis_client, 1, 3, 2000, 1000, tmp_path, pg_url)
    # Then the figure counts every event, the timed span is positive, and the run's spills are all
    # closed in that database under a 9xxxxx run number; the bench's stream is gone
    assert res.events > 0 and res.wall_s > 0 and res.cpu_s > 0
    engine = make_engine(pg_url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(select(Spill.run, Spill.status, Spill.n_events)).all()
    engine.dispose()
    assert (
        len(rows) == 3
        and {r.status for r in rows} == {"complete"}
        and len({r.run for r in rows}) == 1
    )
    assert 900_000 < rows[0].run < 1_000_000 and closed_count(pg_url, rows[0].run) == 3
    assert sum(r.n_events for r in rows) == res.events
    assert not [k for k in redis_client.scan_iter("bench:scale:*")]


def test_close_latency_without_and_with_models_in_one_run(settings, redis_client, specs):
    from benchmarks.learned import bench_close_latency

    # Given a real Redis, when the learned close-latency bench runs at small sizes
    res = bench_close_latency(settings, redis_client, specs, 3, 4000, 2000)
    # Then the models were trained on its training run, one per subsystem with pca_score ...
    assert len(res.models) == 3 and all("mu160 v1" in m for m in res.models), res.models
    # ... every spill of the timed run closed, half judged without models, half with
    assert len(res.without_ms) == 3 and len(res.with_ms) == 3
    assert all(x > 0 for x in res.without_ms + res.with_ms)
    # ... and the judging step was timed again on the same spills, without then with
    assert len(res.judge_ms) == 3 and all(a > 0 and b > 0 for a, b in res.judge_ms)
    text = "\n".join(res.lines())
    assert "p95 change" in text and "50 ms budget" in text and "added per spill p50" in text
    assert "the models flagged" in text and 0 <= res.model_flagged <= 3
    # the bench's stream is gone
    assert not list(redis_client.scan_iter("bench:learned:*"))
