"""Storage layer (I/O shell): SQLAlchemy models, engines and store functions.

Store functions take a SQLAlchemy ``Session`` and never commit: entry points (the
worker, the CLI, the apps' data store) own transactions. No business logic lives
in ``db/`` (migrations only).
"""

from dqm.store.engine import is_sqlite, make_engine, make_sessionmaker
from dqm.store.migrate import upgrade_database

__all__ = ["make_engine", "make_sessionmaker", "is_sqlite", "upgrade_database"]
