"""The Alembic migrations in ``db/`` on a real PostgreSQL and on SQLite.

Given an empty database, when it is upgraded to head (through ``dqm db upgrade``, twice),
then every table of :mod:`dqm.store.models` exists, the second upgrade changes nothing,
and the migrated schema equals the models (autogenerate finds no difference): the models
and the migrations never drift. Downgrading to base removes everything and upgrading again
rebuilds it.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from dqm.cli import build_parser
from dqm.config import load_settings
from dqm.store.engine import make_engine
from dqm.store.migrate import current_revision, downgrade_database, head_revision, upgrade_database
from dqm.store.models import Base

pytestmark = pytest.mark.integration

MODEL_TABLES = set(Base.metadata.tables)


def previous_revision(revision: str) -> str | None:
    from alembic.script import ScriptDirectory

    from dqm.store.migrate import alembic_config

    return (
        ScriptDirectory.from_config(alembic_config("sqlite://"))
        .get_revision(revision)
        .down_revision
    )


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def drift(url: str) -> list:
    """Autogenerate's differences between the migrated database and the models."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "target_metadata": Base.metadata}
            )
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def dqm_db(monkeypatch, capsys, url: str, *args: str) -> str:
    """``dqm db ARGS`` as the CLI parses and runs it (without re-configuring this process'
    logging)."""
    monkeypatch.setenv("DQM_DATABASE_URL", url)
    parsed = build_parser().parse_args(["db", *args])
    code = parsed.func(parsed, load_settings())
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_empty_postgres_upgraded_to_head_twice_then_down_and_up(pg_empty_url, monkeypatch, capsys):
    # Given an empty PostgreSQL database
    assert tables(pg_empty_url) == set()
    assert (
        dqm_db(monkeypatch, capsys, pg_empty_url, "current").strip()
        == "empty (no migrations applied)"
    )
    # When `dqm db upgrade` runs
    out = dqm_db(monkeypatch, capsys, pg_empty_url, "upgrade")
    # Then the database is at head with every model table, and the password is not printed
    head = head_revision()
    assert f"database at {head}" in out
    assert current_revision(pg_empty_url) == head
    assert tables(pg_empty_url) == MODEL_TABLES
    # Given a row written at head, when `dqm db upgrade` runs again, then nothing changes
    engine = make_engine(pg_empty_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run, beam_config, started_at, comment) VALUES (5, 'mu160', "
                "now(), 'kept')"
            )
        )
    out2 = dqm_db(monkeypatch, capsys, pg_empty_url, "upgrade")
    assert f"database at {head}" in out2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT comment FROM runs WHERE run = 5")).scalar_one() == "kept"
    engine.dispose()
    # When downgraded one step, then the database is at the revision before head, its data kept
    dqm_db(monkeypatch, capsys, pg_empty_url, "downgrade", "-1")
    assert current_revision(pg_empty_url) == previous_revision(head)
    assert {"runs", "spills"} <= tables(pg_empty_url)
    engine = make_engine(pg_empty_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT comment FROM runs WHERE run = 5")).scalar_one() == "kept"
    engine.dispose()
    # When downgraded to base, then nothing of the schema is left
    out3 = dqm_db(monkeypatch, capsys, pg_empty_url, "downgrade", "base")
    assert "database at None" in out3
    assert current_revision(pg_empty_url) is None
    assert tables(pg_empty_url) == set()
    # When upgraded again, then the whole schema is back and equals the models
    upgrade_database(pg_empty_url)
    assert current_revision(pg_empty_url) == head
    assert tables(pg_empty_url) == MODEL_TABLES
    assert drift(pg_empty_url) == []


def test_models_and_migrations_do_not_drift_on_postgres(pg_empty_url):
    # Given PostgreSQL migrated to head
    upgrade_database(pg_empty_url)
    # When autogenerate compares it with the models, then it finds nothing to do
    assert drift(pg_empty_url) == []


def test_models_and_migrations_do_not_drift_on_sqlite(tmp_path):
    # Given the embedded default store migrated to head
    url = f"sqlite:///{tmp_path / 'drift.sqlite'}"
    upgrade_database(url)
    # When autogenerate compares it with the models, then it finds nothing to do
    assert drift(url) == []
    # and base -> head -> base -> head works on SQLite too (batch mode)
    downgrade_database(url, "base")
    assert tables(url) == set()
    upgrade_database(url)
    assert tables(url) == MODEL_TABLES


def test_drift_check_sees_a_model_change(pg_empty_url):
    # Given a migrated database and a model with one column the migrations do not create
    from sqlalchemy import Column, Integer, MetaData, Table

    upgrade_database(pg_empty_url)
    extra = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("runs", extra, Column("new_counter", Integer), extend_existing=True)
    # When compared, then the difference is reported (the drift test can fail)
    engine = make_engine(pg_empty_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), extra
        )
    engine.dispose()
    assert [(d[0], d[2], d[3].name) for d in diff] == [("add_column", "runs", "new_counter")]


def test_db_check_is_a_health_check(pg_empty_url, monkeypatch, capsys):
    # Given an empty database: not usable by the services yet
    monkeypatch.setenv("DQM_DATABASE_URL", pg_empty_url)
    args = build_parser().parse_args(["db", "check"])
    # When `dqm db check` runs, then it fails and says what to do
    assert args.func(args, load_settings()) == 1
    assert "run 'dqm db upgrade'" in capsys.readouterr().out
    # Given the schema at head, then it passes
    upgrade_database(pg_empty_url)
    assert args.func(args, load_settings()) == 0
    assert f"ok at {head_revision()}" in capsys.readouterr().out
    # Given a server that does not answer, then it fails with one line (no traceback)
    monkeypatch.setenv(
        "DQM_DATABASE_URL", "postgresql+psycopg://dqm:secret@127.0.0.1:1/dqm?connect_timeout=2"
    )
    assert args.func(args, load_settings()) == 1
    out = capsys.readouterr().out
    assert "unreachable" in out and "secret" not in out and len(out.strip().splitlines()) == 1
