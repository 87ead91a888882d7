"""One error tree for the whole DQM.

Every error the library raises on purpose derives from :class:`DQMError`, so the
CLI can turn any of them into one clear line instead of a traceback. The message
is built before ``raise`` and the context (file, key, column, URL) travels in the
exception's attributes so callers can act on it programmatically.
"""

from __future__ import annotations

from dqm.redact import redact

__all__ = [
    "DQMError",
    "ConfigError",
    "SpecError",
    "BatchError",
    "StreamError",
    "StorageError",
    "CheckError",
]


class DQMError(Exception):
    """Base class of every deliberate DQM error."""


class ConfigError(DQMError):
    """A setting (environment variable, URL, CLI argument) has a value we cannot use."""

    def __init__(self, setting: str, value: object, expected: str) -> None:
        self.setting = setting
        self.value = value
        self.expected = expected
        super().__init__(f"{setting}={redact(repr(value))}: expected {expected}")


class SpecError(DQMError):
    """A histogram/check specification file is invalid.

    The message names the file, the line (when known), the entry and the key, and
    suggests the closest valid key when the key is unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        entry: str | None = None,
        key: str | None = None,
        what: str = "histogram",
    ) -> None:
        self.path, self.line, self.entry, self.key = path, line, entry, key
        where = []
        if path:
            where.append(f"{path}:{line}" if line else path)
        if entry:
            where.append(f"{what} '{entry}'")  # the kind of entry: histogram or cause
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BatchError(DQMError):
    """An event batch (or end-of-spill marker) payload is malformed.

    ``reason`` is a short machine-friendly tag (``bad-magic``, ``unknown-version``,
    ``truncated``, ``non-finite``, ``out-of-range`` …) recorded in the dead-letter stream.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class StreamError(DQMError):
    """Redis stream I/O failed in a way the caller must handle."""


class StorageError(DQMError):
    """The database refused an operation or is in an unexpected state."""


class CheckError(DQMError):
    """A data-quality check was configured or invoked incorrectly."""
