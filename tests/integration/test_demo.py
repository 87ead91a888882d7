"""``dqm demo`` as a user runs it: zero configuration, spills flow, Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _start_demo(env: dict, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dqm",
            "demo",
            "--no-web",
            "--period-s",
            "0.7",
            "--events-per-spill",
            "3000",
            "--reference-spills",
            "2",
            "--anomaly-every",
            "3",
        ],
        env=env,
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )


def test_demo_runs_on_embedded_defaults_and_ctrl_c_stops_everything(tmp_path):
    # Given no DQM_* URL at all: the demo must start its own Redis and a SQLite file
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env.update(DQM_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    # A foreground program in a terminal takes Ctrl-C; a background job of a non-interactive shell
    # inherits SIGINT ignored (so would this child, were the test suite started that way).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = _start_demo(env, tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    lines: list[str] = []
    try:
        # When it has run long enough for live spills to close with a verdict
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if sum("closed 2/" in text for text in lines) >= 4:
                break
        output = "".join(lines)
        assert sum("closed 2/" in text for text in lines) >= 4, output
        # and `dqm status` from another terminal finds the demo's private Redis by itself
        status = subprocess.run(
            [sys.executable, "-m", "dqm", "status"],
            env=env,
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert (
            "consumer demo-worker-1" in status.stdout and "consumer demo-worker-2" in status.stdout
        ), status.stdout
        # and the user presses Ctrl-C: the terminal sends SIGINT to the whole foreground group
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # its Redis runs in a session of its own (so Ctrl-C cannot kill it before the workers
            # flush)
            found = re.search(r"redis-server, pid (\d+)", "".join(lines))
            if found and _alive(int(found.group(1))):
                os.kill(int(found.group(1)), signal.SIGKILL)
    output += rest
    # Then it printed what it started and where the data is, certified a reference, and ...
    assert "private redis-server" in output and str(tmp_path / "dqm.sqlite") in output
    assert "reference run 1: certified" in output, output
    assert re.search(r"closed 2/\d+: complete, \d+ events, (GOOD|WARNING|BAD|NO_DATA)", output)
    assert "demo stopped: every process it started has exited." in output
    assert proc.returncode == 0
    # ... no process it started outlives it
    redis_pid = int(re.search(r"redis-server, pid (\d+)", output).group(1))
    worker_pids = [int(p) for p in re.search(r"pids ([\d, ]+)\)", output).group(1).split(", ")]
    assert len(worker_pids) == 2
    time.sleep(0.5)
    assert not [pid for pid in [redis_pid, *worker_pids] if _alive(pid)]
    assert not (tmp_path / "demo-redis.url").exists(), (
        "a stale pointer to the stopped Redis was left behind"
    )
