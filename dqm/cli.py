"""``dqm`` — the command line. Each subcommand lives in :mod:`dqm.commands`.

Any deliberate error (:class:`dqm.errors.DQMError`), an unreachable Redis or database,
a database without its tables and a missing file print one clear line (passwords
hidden) and exit with status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dqm import __version__
from dqm.errors import DQMError
from dqm.redact import redact

__all__ = ["main", "build_parser", "explain"]

#: subcommand module names under dqm.commands, in help order, with their one-line help.
#: ``dqm --help`` lists these without importing any command module; the module of the command
#: that runs is the only one imported (its own help must match: tests/unit/test_cli_startup.py).
COMMANDS = {
    "demo": "run the live demo: simulator -> Redis -> workers -> database -> web",
    "simulate": "generate spills (publish to Redis, or --out FILE for 'dqm replay')",
    "replay": "publish a recorded/simulated spill file to Redis",
    "worker": "consume event batches, fill and store histograms",
    "db": "database migrations (Alembic) and backups",
    "status": "streams, consumers, pending, dead letters, last spills",
    "bench": "measure worker throughput against the transport ceiling and numpy",
    "serve": "serve the control room and expert web pages",
    "flags": "list a run's data-quality flags with explanations and instructions",
    "prune": "delete ledger rows and old spills' histograms nothing needs (docs/retention.md)",
    "reference": "set, list, show or suggest reference runs",
    "signoff": "a run's sign-off: proposal, certifications, certify",
    "goodspills": "certified good spills (golden JSON or CSV) for the analysis",
    "model": "train, list or show the learned anomaly models",
    "recheck": "recompute a stored run's flags and compare with the live ones",
    "validate": (
        "validation scenario matrix on simulated spills: false alarms, detection delays, "
        "incidents, glitches, persistence, ramps"
    ),
    "report": "write the PDF data-quality report of a day, run or time window (or run nightly)",
    "export": "write a run's histograms to a ROOT file (TH1D/TH2D, titles and axis labels)",
    "loadtest": (
        "control-room load: N browser sessions for M minutes (needs Chromium + playwright)"
    ),
}


def chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), or None."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``dqm`` parser; with ``argv``, only the named command's module is imported.

    Every command module imports what its command needs (the store, Redis, NumPy, ...): a
    second of CPU altogether. ``dqm --help`` and ``dqm status`` must answer at once, so the
    other commands are listed by their help line alone. Without ``argv`` every command is
    built in full (tests and the docs parse any command line with one parser).
    """
    parser = argparse.ArgumentParser(prog="dqm", description="NA64mu data-quality monitoring")
    parser.add_argument("--version", action="version", version=f"dqm {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else chosen_command(argv)
    for name, help_line in COMMANDS.items():
        if argv is None or name == chosen:
            importlib.import_module(f"dqm.commands.{name}").add_parser(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    from dqm.config import Settings, load_settings
    from dqm.logs import setup_logging

    setup_logging(args.log_level)
    settings = Settings()
    try:
        settings = load_settings()
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - sorted below: known faults get one line, bugs a traceback
        message = explain(exc, settings)
        if message is None:
            raise
        logging.getLogger("dqm").debug("details of the error below", exc_info=True)
        print(redact(f"dqm {args.command}: error: {message}"), file=sys.stderr)
        return 2


def explain(exc: BaseException, settings) -> str | None:
    """One line for a deliberate error or an unreachable/unprepared service; None for a bug.

    A service that is down or a file that is missing is not a bug of the DQM: the user
    needs to know which one and what to do, not a traceback.
    """
    import redis

    from dqm.store.engine import DBAPIError

    if isinstance(exc, DQMError):
        return str(exc)
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"cannot reach Redis at {settings.redis_url or '(private)'}: {exc}"
    if isinstance(exc, DBAPIError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        url = settings.effective_database_url
        if "no such table" in first or ("relation" in first and "does not exist" in first):
            return f"the database at {url} has no DQM tables ({first}): run 'dqm db upgrade'"
        if exc.connection_invalidated or type(exc).__name__ == "OperationalError":
            return f"cannot use the database at {url}: {first}"
        return None
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
