"""Run the Alembic migrations in ``db/`` programmatically (``dqm db upgrade``).

Alembic is imported inside the functions: every process imports :mod:`dqm.store`, only
``dqm db`` and the tests migrate, and a worker should not pay Alembic's import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "alembic_config",
    "upgrade_database",
    "downgrade_database",
    "current_revision",
    "head_revision",
]

DB_DIR = Path(__file__).resolve().parents[2] / "db"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(DB_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Idempotent: upgrading a database already at head does nothing."""
    from alembic import command

    _migrate(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade_database(url: str, revision: str = "base") -> None:
    from alembic import command

    _migrate(url, lambda cfg: command.downgrade(cfg, revision))


def _migrate(url: str, run) -> None:
    """Run one Alembic command in one transaction.

    On SQLite, foreign keys are switched off around it, as SQLite prescribes for schema
    changes: Alembic's batch mode rebuilds a table (copy, drop the old one, rename), and
    with foreign keys on, dropping the old ``runs`` fails on the spills that reference it
    and dropping the old ``spills`` cascade-deletes every flag and histogram. The
    references are checked (``PRAGMA foreign_key_check``) before the transaction commits.
    """
    from dqm.errors import StorageError
    from dqm.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:  # a PRAGMA inside a transaction is a no-op: before BEGIN
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg = alembic_config(url)
                    cfg.attributes["connection"] = conn
                    run(cfg)
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StorageError(
                                f"migration left {len(broken)} rows referencing missing rows, "
                                f"e.g. {tuple(broken[0])}: rolled back"
                            )
            finally:
                if sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from dqm.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in ``db/versions`` (what ``dqm db upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
