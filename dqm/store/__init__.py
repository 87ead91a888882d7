"""Storage layer (I/O shell): SQLAlchemy models, engines and every query of the DQM.

Store functions take a SQLAlchemy ``Session`` and never commit: entry points (the
worker, the CLI, the apps' data store) own transactions. Nothing outside this package
(and the migrations in ``db/``) imports SQLAlchemy — ``tests/unit/test_layers.py``
fails if something does; no business logic lives in ``db/``.

Where to look:

========================  =====================================================================
module                    holds
========================  =====================================================================
``models``                the tables; spill statuses; ``UTCDateTime``: every time comes back
                          timezone-aware (UTC) on PostgreSQL and SQLite alike
``engine``                engines, ``Store``/``open_store``, the ``Session`` type and the
                          database errors the entry points catch
``spills``                the worker's writes: commit a group exactly once, close a spill
``queries``               named reads: ``closed_spills(session, run)``,
                          ``count_closed_spills``, ``recent_closed_spills``, ``change_token``…
``runs``                  a run's row and beam configuration
``inputs``                a spill's check inputs as they were when it closed
``flags``                 store the verdict, recheck a run, query the flags
``flag_reads``            what ``dqm flags`` reads (no checks imported): flags, their reference
``incidents``             incidents that stay until acknowledged: open, extend, acknowledge
``acknowledgements``      acknowledging an incident as a whole, kept for its later flags
``alarms``                silences of the alarm sound; the notifier's outbox
``references``            reference runs: set, import, suggest, which one is in force
``actions``               the audited actions (acknowledge, annotate; experts: reference, mask,
                          thresholds) and the role check (``require_expert``)
``certification``         sign-off: certify spill ranges per subsystem (append-only, audited)
``signoff``               a run's contents and incidents, the sign-off proposal, run summaries,
                          the good-spill list
``frames``                the expert pages' tables (pandas frames)
``periods``               what the report reads for a day, a run or a time window
``rollup``                per-run histograms: a run's closed spills summed once, extended,
                          trusted only while they count the run's spills
``retention``             what is deleted once nothing needs it: ledger ids, old spills' histograms
``flag_texts``            check instructions stored once per configuration version
``bulk``                  judged spills inserted in bulk (report tests and benchmarks)
``migrate``, ``backup``   Alembic migrations (``db/``) and consistent backups
========================  =====================================================================
"""

from dqm.store.engine import (
    DBAPIError,
    IntegrityError,
    OperationalError,
    Session,
    SQLAlchemyError,
    Store,
    make_engine,
    make_sessionmaker,
    open_store,
)
from dqm.store.migrate import upgrade_database

__all__ = [
    "Store",
    "open_store",
    "make_engine",
    "make_sessionmaker",
    "upgrade_database",
    "Session",
    "DBAPIError",
    "IntegrityError",
    "OperationalError",
    "SQLAlchemyError",
]
