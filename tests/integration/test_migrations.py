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


SUMMARY_COLUMNS = ("p_bms_mean", "p_ms2_mean", "pik_fraction", "daq_completeness")


def _old_spills_table():
    """``spills`` as revisions before 0003f had it (only the columns this test writes)."""
    from sqlalchemy import JSON, Float, Integer, column, table

    return table(
        "spills",
        column("id", Integer),
        column("summary", JSON),
        *(column(c, Float) for c in SUMMARY_COLUMNS),
    )


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_summary_once_migration_keeps_every_value(backend, pg_empty_url, tmp_path):
    """0003f: the spill summary kept once (JSON); upgrade and downgrade lose no value."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from dqm.store.models import Flag, Run, Spill, SpillHistograms

    url = pg_empty_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'm.sqlite'}"
    before = previous_revision("0003f")
    # Given a database at the revision before 0003f, with spills whose summary is in both
    # places, only in the columns (JSON NULL) or partly in each, and flags and histograms
    upgrade_database(url, before)
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    old = _old_spills_table()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Run.__table__).values(run=7, beam_config="mu160", started_at=now, comment="")
        )
        for number in (1, 2, 3):
            conn.execute(
                insert(Spill.__table__).values(
                    id=number,
                    run=7,
                    spill=number,
                    status="complete",
                    opened_at=now,
                    updated_at=now,
                    closed_at=now,
                    received_batches=1,
                    n_events=1000,
                )
            )
            conn.execute(
                insert(SpillHistograms.__table__).values(
                    spill_id=number, format_version=1, size_bytes=3, blob=b"abc"
                )
            )
            conn.execute(
                insert(Flag.__table__).values(
                    run=7,
                    spill=number,
                    spill_id=number,
                    subsystem="beam",
                    check="rollup",
                    quality=0,
                    explanation="",
                    instruction="",
                    config_version="x+0",
                    created_at=now,
                )
            )
        both = {"p_bms_mean": 160.1, "p_ms2_mean": 159.8, "pik_fraction": 1e-4, "n_events": 1000}
        conn.execute(
            old.update()
            .where(old.c.id == 1)
            .values(summary=both, p_bms_mean=160.1, p_ms2_mean=159.8, pik_fraction=1e-4)
        )
        conn.execute(
            old.update().where(old.c.id == 2).values(p_bms_mean=150.5, daq_completeness=0.5)
        )
        conn.execute(
            old.update()
            .where(old.c.id == 3)
            .values(summary={"p_bms_mean": 161.0, "quality": {"beam": 0}}, pik_fraction=2e-4)
        )
    engine.dispose()
    # When upgraded through 0003f
    upgrade_database(url, "0003f")
    # Then the summary columns are gone, every value is in the JSON, nothing else was touched
    engine = make_engine(url)
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("spills")}
        assert not columns & set(SUMMARY_COLUMNS) and "summary" in columns
        summaries = {i: s for i, s in conn.execute(select(Spill.id, Spill.summary))}
        assert summaries[1] == both
        assert summaries[2] == {"p_bms_mean": 150.5, "daq_completeness": 0.5}
        assert summaries[3] == {"p_bms_mean": 161.0, "quality": {"beam": 0}, "pik_fraction": 2e-4}
        assert count_rows(conn, Flag) == 3
        assert count_rows(conn, SpillHistograms) == 3
    engine.dispose()
    # When downgraded again, then the columns are back, filled from the JSON
    downgrade_database(url, before)
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(old).order_by(old.c.id))}
        assert (rows[1].p_bms_mean, rows[1].pik_fraction) == (160.1, 1e-4)
        assert (rows[2].p_bms_mean, rows[2].daq_completeness, rows[2].p_ms2_mean) == (
            150.5,
            0.5,
            None,
        )
        assert (rows[3].p_bms_mean, rows[3].pik_fraction) == (161.0, 2e-4)
        assert count_rows(conn, Flag) == 3
    engine.dispose()


def count_rows(conn, model) -> int:
    from sqlalchemy import func, select

    return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def test_a_populated_sqlite_store_migrates_up_and_down_keeping_its_rows(tmp_path):
    """Batch-mode migrations rebuild tables on SQLite (copy, drop, rename). With foreign keys
    on, dropping the old ``runs`` failed on the spills referencing it, and dropping the old
    ``spills`` cascade-deleted every flag and histogram; the store migrates with them off."""
    from sqlalchemy import text

    # Given the embedded store at 0002 (the last schema before this round) with a run, a
    # spill, its histograms and a flag
    url = f"sqlite:///{tmp_path / 'down.sqlite'}"
    upgrade_database(url, "0002")
    at = "'2026-12-01 00:00:00.000000'"
    engine = make_engine(url)
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO runs (run, beam_config, started_at, comment)"
            f" VALUES (1, 'mu160', {at}, '')",
            "INSERT INTO spills (id, run, spill, status, opened_at, updated_at, received_batches,"
            f" n_events) VALUES (1, 1, 1, 'complete', {at}, {at}, 1, 10)",
            "INSERT INTO spill_histograms (spill_id, format_version, size_bytes, blob)"
            " VALUES (1, 1, 1, x'00')",
            'INSERT INTO flags (run, spill, spill_id, subsystem, "check", quality, explanation,'
            f" instruction, config_version, created_at) VALUES (1, 1, 1, 'beam', 'c', 0, '', '',"
            f" 'v', {at})",
        ):
            conn.execute(text(sql))
    engine.dispose()
    for target in ("head", "0002", "head"):
        # When it is upgraded to head, or downgraded back to 0002
        (downgrade_database if target == "0002" else upgrade_database)(url, target)
        # Then every row is still there, and foreign keys are on again
        engine = make_engine(url)
        with engine.connect() as conn:
            counts = [
                conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("runs", "spills", "spill_histograms", "flags")
            ]
            assert counts == [1, 1, 1, 1], target
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        engine.dispose()
