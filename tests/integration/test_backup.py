"""``dqm db backup`` on real PostgreSQL and SQLite: the copy restores to the same data.

Given a migrated store holding a run, when ``dqm db backup FILE`` runs, then the file exists,
and restoring it (``pg_restore`` into an empty database; opening the SQLite copy) gives back
the run and the schema revision; a backup never overwrites a file.
"""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from sqlalchemy import text

from dqm.cli import build_parser
from dqm.config import load_settings
from dqm.errors import StorageError
from dqm.store.engine import make_engine
from dqm.store.migrate import current_revision
from tests._services import pg_bin

pytestmark = pytest.mark.integration


def dqm_db_backup(monkeypatch, url: str, dest) -> None:
    monkeypatch.setenv("DQM_DATABASE_URL", url)
    args = build_parser().parse_args(["db", "backup", str(dest)])
    assert args.func(args, load_settings()) == 0


def add_run(url: str, run: int, comment: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (run, beam_config, started_at, comment) VALUES (:r, 'mu160', "
                "CURRENT_TIMESTAMP, :c)"
            ),
            {"r": run, "c": comment},
        )
    engine.dispose()


def test_postgres_backup_restores_into_an_empty_database(
    pg_url, pg_empty_url, tmp_path, monkeypatch, capsys
):
    # Given a migrated PostgreSQL store holding run 41
    add_run(pg_url, 41, "before the backup")
    dest = tmp_path / "nightly.dump"
    # When it is backed up
    dqm_db_backup(monkeypatch, pg_url, dest)
    out = capsys.readouterr().out
    # Then the dump exists and the output says how to restore it
    assert dest.stat().st_size > 0 and f"to {dest}" in out and "pg_restore" in out
    # and pg_restore into an empty database gives back the run and the schema revision
    restore_url = pg_empty_url.replace("postgresql+psycopg://", "postgresql://", 1)
    subprocess.run(
        [pg_bin("pg_restore"), "--no-owner", f"--dbname={restore_url}", str(dest)],
        check=True,
        capture_output=True,
    )
    engine = make_engine(pg_empty_url)
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT comment FROM runs WHERE run = 41")).scalar_one()
            == "before the backup"
        )
    engine.dispose()
    assert current_revision(pg_empty_url) == current_revision(pg_url)
    # and a second backup to the same file is refused
    with pytest.raises(StorageError, match="exists already"):
        dqm_db_backup(monkeypatch, pg_url, dest)


def test_sqlite_backup_is_a_consistent_copy(sqlite_url, tmp_path, monkeypatch, capsys):
    # Given the embedded SQLite store (WAL mode) holding run 42, with a reader connection open
    add_run(sqlite_url, 42, "embedded")
    dest = tmp_path / "copy" / "dqm.sqlite"
    # When it is backed up
    dqm_db_backup(monkeypatch, sqlite_url, dest)
    # Then the copy is a complete SQLite database with the run and the schema revision
    with sqlite3.connect(dest) as conn:
        assert conn.execute("SELECT comment FROM runs WHERE run = 42").fetchone() == ("embedded",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert current_revision(f"sqlite:///{dest}") == current_revision(sqlite_url)
    assert "copy it over" in capsys.readouterr().out


def test_postgres_backup_without_pg_dump_says_what_to_do(pg_url, tmp_path, monkeypatch):
    # Given no pg_dump on PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    # When a backup is asked for, then the error names the missing client and writes nothing
    with pytest.raises(StorageError, match="pg_dump not found"):
        dqm_db_backup(monkeypatch, pg_url, tmp_path / "x.dump")
    assert not (tmp_path / "x.dump").exists()
