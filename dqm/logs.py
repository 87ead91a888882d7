"""Logging set-up of every ``dqm`` command: one ``key=value`` line per event, on stderr.

Its own module, importing nothing heavy: the command line sets logging up before it knows
whether its command needs Redis, NumPy or the store (``dqm db check`` needs neither of
the first two).
"""

from __future__ import annotations

import logging
import sys

from dqm.redact import redact

__all__ = ["LOG_FIELDS", "setup_logging"]

#: Structured fields a log call may pass as ``extra={...}``; printed as ``key=value`` in this order.
LOG_FIELDS = ("run", "spill", "consumer", "status", "n_events", "message_id", "reason")


class _KeyValueFormatter(logging.Formatter):
    """``ts level logger message key=value…``: structured enough for grep and Loki alike.

    Lines that concern a spill carry ``run=`` and ``spill=`` (from ``extra=``), so
    ``grep 'run=7 spill=12'`` finds everything that happened to it. Passwords in URLs
    are hidden (:func:`dqm.redact.redact`): a driver's message may quote one.
    """

    def format(self, record: logging.LogRecord) -> str:
        base = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} {record.name} "
            f"{redact(record.getMessage())}"
        )
        pairs = [
            f"{k}={_logfmt_value(record.__dict__[k])}"
            for k in LOG_FIELDS
            if record.__dict__.get(k) is not None
        ]
        if pairs:
            base += " " + " ".join(pairs)
        if record.exc_info:
            base += "\n" + redact(self.formatException(record.exc_info))
        return base


def _logfmt_value(value: object) -> str:
    """A value as logfmt writes it: bare if it is one word, else double-quoted."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=\\' for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every migration step at INFO; a user only needs to hear about problems.
    logging.getLogger("alembic").setLevel(max(logging.getLevelName(level), logging.WARNING))
