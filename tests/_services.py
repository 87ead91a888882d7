"""Real services for the tests: a private PostgreSQL cluster and a private Redis.

Used unless ``DQM_TEST_DATABASE_URL`` / ``DQM_TEST_REDIS_URL`` point at running ones.
``initdb``/``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
user (``runuser``) in a directory that user can reach (not pytest's 0700 tmp_path): a
folder of the temp dir (the test run's own, see ``tests/conftest.py``), removed by ``stop``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import psycopg

from dqm.pipeline.services import free_port

__all__ = ["PrivatePostgres", "pg_bin"]


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} not found: install the 'postgresql' package or set "
            "DQM_TEST_DATABASE_URL"
        )
    return candidates[-1]


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port (fsync off: test data only)."""

    def __init__(self, *, durable: bool = False) -> None:
        self.port = free_port()
        self.durable = durable
        self.dir = tempfile.mkdtemp(prefix="dqm-pg-")
        self.data = os.path.join(self.dir, "data")
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")

    def _run(self, *cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd)
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PrivatePostgres:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o755)
        self._run(
            pg_bin("initdb"),
            "-D",
            self.data,
            "-A",
            "trust",
            "-U",
            self.user,
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self.start_server()

    def start_server(self) -> PrivatePostgres:
        """(Re)start the server of the existing cluster on the same port."""
        # durable: synchronous_commit stays on, so a commit the worker saw succeed survives a
        # crash of the server (the fault tests stop it with -m immediate); fsync=off only
        # trusts the OS, which does not crash in a test
        sync = "" if self.durable else " -c synchronous_commit=off"
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off{sync} "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            self.data,
            "-o",
            opts,
            "-l",
            os.path.join(self.dir, "log"),
            "-w",
            "start",
        )
        return self

    def stop_server(self, mode: str = "immediate") -> None:
        """Stop the server, keep the cluster (``immediate`` = as if it crashed)."""
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def create_database(admin_url: str) -> tuple[str, str]:
    """A fresh database on the server of ``admin_url``; returns (name, sqlalchemy url)."""
    name = f"dqm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_database(admin_url: str, name: str) -> None:
    for _ in range(3):
        try:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.OperationalError:
            time.sleep(0.2)
