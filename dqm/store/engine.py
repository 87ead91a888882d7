"""Engines and sessions: the only place that knows PostgreSQL from SQLite.

SQLite (the embedded default) is put in WAL mode with a generous busy timeout so
several worker processes can share the file; PostgreSQL needs nothing special.
Sessions are opened by entry points only; store functions take a ``Session``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dqm.config import check_database_url

__all__ = ["make_engine", "make_sessionmaker", "is_sqlite", "is_outage", "CONNECT_TIMEOUT_S"]

#: Longest wait for a PostgreSQL or Redis server to answer a new connection.
CONNECT_TIMEOUT_S = 5


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """``writer=False`` (the web apps) opens SQLite transactions DEFERRED so reads never queue."""
    check_database_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, pool_pre_ping=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # noqa: ANN001
            # take the write lock up front: avoids SQLITE_BUSY on lock upgrade between workers
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

        return engine
    # connect_timeout: an unreachable server (a dropped network, not a refusal) must fail in
    # seconds, so the worker's retry with back-off runs instead of one connect hanging for minutes
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_outage(error: BaseException) -> bool:
    """A database that cannot be reached now (retry later), as opposed to one that refused.

    ``OperationalError`` covers a refused or dropped connection, a server shutting down,
    a deadlock or serialization failure: all worth retrying. A ``DBAPIError`` that
    invalidated its connection is one too. Anything else (a programming error, bad data,
    a constraint) will fail again the same way, so retrying it would only stall.
    """
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and bool(error.connection_invalidated)
    )
