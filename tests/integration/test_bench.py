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
    env = {**os.environ, "DQM_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    argv = [sys.executable, "-m", "dqm", "bench", "--spills", "2", "--events-per-spill", "2000", "--batch-size", "1000",
            "--no-checks", "--workers", "1"]
    # When it runs (at the default INFO log level)
    done = subprocess.run(argv, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=240)
    # Then it succeeds and prints nothing but its figures
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"bench wrote to stderr:\n{done.stderr}"
    out = done.stdout
    for noise in ("alembic", "INFO", "Warning", "dqm.worker"):
        assert noise not in out, f"{noise!r} in the bench output:\n{out}"
    assert "numpy.histogram/histogram2d" in out and "speed-up vs numpy" in out
    rows = re.findall(r"scale-out: (\d+) worker process\(es\)\s+([\d,]+) ev\s+([\d,]+) ev/CPU-s\s+([\d,]+) ev/s\s+speed-up\s+([\d.]+)x", out)
    assert [(int(n), int(ev.replace(",", ""))) for n, ev, *_ in rows] == [(1, 4000)], out
    assert float(rows[0][4]) == 1.0 and int(rows[0][3].replace(",", "")) > 0
