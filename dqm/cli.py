"""``dqm`` — the command line. Each subcommand lives in :mod:`dqm.commands`.

Any deliberate error (:class:`dqm.errors.DQMError`) prints one clear line and exits
with status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dqm import __version__
from dqm.errors import DQMError

__all__ = ["main", "build_parser"]

#: subcommand module names under dqm.commands, in help order
COMMANDS = ("demo", "simulate", "replay", "worker", "db", "status", "bench")
OPTIONAL_COMMANDS = ("serve", "flags", "reference", "recheck", "validate", "report", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dqm", description="NA64mu data-quality monitoring")
    parser.add_argument("--version", action="version", version=f"dqm {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS + OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(f"dqm.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dqm.commands.{name}":  # not built yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dqm.config import load_settings
    from dqm.runtime import setup_logging

    setup_logging(args.log_level)
    try:
        settings = load_settings()
        return int(args.func(args, settings) or 0)
    except DQMError as exc:
        print(f"dqm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
