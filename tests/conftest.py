"""Shared fixtures: real Redis and real PostgreSQL, isolated per test.

Each test gets its own PostgreSQL database and its own stream/group/channel names,
so tests never see each other's data. Servers come from ``DQM_TEST_REDIS_URL`` /
``DQM_TEST_DATABASE_URL`` (an admin URL: databases are created on that server) or are
started privately on free ports for the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from dqm.config import Settings
from dqm.core.specs import load_specs
from dqm.pipeline.services import EmbeddedRedis
from dqm.store.migrate import upgrade_database
from tests._services import PrivatePostgres, create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


#: this run's temp dir, and the tempfile.tempdir / TMPDIR it replaced
_OWN_TMP = pytest.StashKey[tuple[str, "str | None", "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    """Give the run a temp dir of its own, so that what it leaves behind can be seen.

    The machine's temp dir is shared with other test runs, so a before/after listing of
    it cannot tell whose a new ``dqm-*`` folder is. Every ``tempfile`` call of this
    process and of the servers and workers it starts (``TMPDIR``) lands in this run's
    folder instead; pytest's own ``tmp_path`` folders stay where pytest keeps them.
    """
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    own = tempfile.mkdtemp(prefix="dqm-test-run-")
    os.chmod(own, 0o755)  # the private PostgreSQL runs as the postgres user inside it
    config.stash[_OWN_TMP] = (own, tempfile.tempdir, os.environ.get("TMPDIR"))
    tempfile.tempdir = os.environ["TMPDIR"] = own


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown (runner's hook)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when the tests left ``dqm-*`` entries in the temp dir; remove it."""
    own, tempdir, tmpdir_env = session.config.stash[_OWN_TMP]
    tempfile.tempdir = tempdir
    if tmpdir_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = tmpdir_env
    left = sorted(p.name for p in Path(own).iterdir() if p.name.startswith("dqm-"))
    shutil.rmtree(own, ignore_errors=True)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"\nFAILED: the tests left {left} in the temp dir", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("DQM_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("DQM_TEST_DATABASE_URL")
    if url:
        yield url.replace("postgresql+psycopg://", "postgresql://", 1)
        return
    server = PrivatePostgres().start()
    try:
        yield server.admin_url
    finally:
        server.stop()


@contextmanager
def migrated_database(admin_url: str):
    """A fresh PostgreSQL database at the schema's head, dropped afterwards."""
    name, url = create_database(admin_url)
    upgrade_database(url)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, migrated PostgreSQL database for one test."""
    with migrated_database(pg_admin_url) as url:
        yield url


@pytest.fixture
def pg_empty_url(pg_admin_url):
    """A fresh PostgreSQL database with no schema (for migration tests)."""
    name, url = create_database(pg_admin_url)
    try:
        yield url
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'dqm.sqlite'}"
    upgrade_database(url)
    return url


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url, pg_url, tmp_path):
    """Settings on real Redis + PostgreSQL with names unique to this test."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        redis_url=redis_url,
        database_url=pg_url,
        data_dir=str(tmp_path),
        stream=f"test:{tag}:events",
        group=f"test:{tag}:workers",
        dead_letter_stream=f"test:{tag}:dead",
        channel=f"test:{tag}:closed",
        commit_interval_s=0.05,
        block_ms=50,
        claim_idle_ms=1000,
        spill_timeout_s=30.0,
    )


@pytest.fixture(scope="session")
def specs():
    return load_specs(ROOT / "histograms")


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
