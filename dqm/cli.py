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

#: subcommand module names under dqm.commands, in help order
COMMANDS = (
    "demo",
    "simulate",
    "replay",
    "worker",
    "db",
    "status",
    "bench",
    "serve",
    "flags",
    "reference",
    "signoff",
    "goodspills",
    "recheck",
    "validate",
    "report",
    "export",
    "loadtest",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqm", description="NA64mu data-quality monitoring")
    parser.add_argument("--version", action="version", version=f"dqm {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"dqm.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dqm.config import Settings, load_settings
    from dqm.pipeline.runtime import setup_logging

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
