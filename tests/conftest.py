"""Shared fixtures: real Redis and real PostgreSQL, isolated per test.

Each test gets its own PostgreSQL database and its own stream/group/channel names,
so tests never see each other's data. Servers come from ``DQM_TEST_REDIS_URL`` /
``DQM_TEST_DATABASE_URL`` (an admin URL: databases are created on that server) or are
started privately on free ports for the session.
"""

from __future__ import annotations

import os
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
