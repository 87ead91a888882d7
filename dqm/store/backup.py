"""``dqm db backup``: a consistent copy of the store while the workers keep writing.

I/O shell. SQLite (the embedded default) is copied with SQLite's online backup API, the
same as the ``sqlite3`` shell's ``.backup``: a consistent snapshot even with writers in WAL
mode, never a half-written file. PostgreSQL is dumped with ``pg_dump --format=custom``
(restore with ``pg_restore``); the password goes through ``PGPASSWORD``, never the
command line, where ``ps`` would show it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from dqm.errors import StorageError

__all__ = ["backup_database", "default_backup_name"]


def default_backup_name(url: str, now: datetime | None = None) -> str:
    """``dqm-backup-YYYYmmdd-HHMMSS.sqlite`` or ``….dump`` (pg_dump's custom format)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"dqm-backup-{stamp}.{'sqlite' if url.startswith('sqlite') else 'dump'}"


def backup_database(url: str, dest: str | Path) -> Path:
    """Write a consistent copy of the database at ``url`` to ``dest``; returns ``dest``."""
    dest = Path(dest)
    if dest.exists():
        raise StorageError(
            f"{dest} exists already: choose another file (a backup never overwrites)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _backup_sqlite(parsed.database or "", dest)
    elif parsed.get_backend_name() == "postgresql":
        _backup_postgres(parsed, dest)
    else:
        raise StorageError(
            f"cannot back up a {parsed.get_backend_name()} database: only SQLite and PostgreSQL"
        )
    return dest


def _backup_sqlite(path: str, dest: Path) -> None:
    if not path or path == ":memory:" or not Path(path).exists():
        raise StorageError(f"no SQLite database file at {path or '(memory)'}")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    out = sqlite3.connect(dest)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()


def _backup_postgres(parsed, dest: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise StorageError(
            "pg_dump not found: install the PostgreSQL client (Debian: postgresql-client), "
            "or run it in the postgres container (docs/deployment.md: Back up the database)"
        )
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    libpq = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    done = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", f"--file={dest}", f"--dbname={libpq}"],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        dest.unlink(missing_ok=True)
        raise StorageError(
            "pg_dump failed: "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
