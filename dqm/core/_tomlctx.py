"""Where we are in a spec file, and the key/type checks every spec table shares.

Private to :mod:`dqm.core.specs` and :mod:`dqm.core.causes`: both build their errors here,
so a mistake in a histogram or in a cause rule names its file, line, entry and key alike.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dqm.errors import SpecError

#: the line that opens an entry: ``[[histogram]]`` or ``[[cause]]``
_ENTRY_HEADER = re.compile(r"^\s*\[\[\s*(histogram|cause)\s*\]\]")


class _Ctx:
    """Where we are in a file, to build errors that point at the offending line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = str(path), text.splitlines()

    def line_of(self, entry: str | None, key: str | None) -> int | None:
        # Search only the entry's own [[histogram]] block, so that a key missing from this
        # entry is never reported at another entry's line.
        headers = [i for i, line in enumerate(self.lines) if _ENTRY_HEADER.match(line)]
        start, lo, hi = 0, 0, (headers[0] if headers else len(self.lines))
        if entry:
            pat = re.compile(rf"""^\s*name\s*=\s*["']{re.escape(entry)}["']""")
            for i, line in enumerate(self.lines):
                if pat.match(line):
                    start = i
                    break
            lo = max([h for h in headers if h <= start], default=0)
            hi = min([h for h in headers if h > start], default=len(self.lines))
        if key:
            kpat = re.compile(
                rf"^\s*(\[+[\w.]*\b{re.escape(key)}\]+|{re.escape(key)}\s*=|.*[{{,]\s*{re.escape(key)}\s*=)"
            )
            # the entry's block first (its keys may precede its name line), then the file's
            # top level (keys such as 'subsystem' an entry inherits), then anywhere
            preamble = range(0, headers[0] if headers else len(self.lines))
            search = [range(start, hi), range(lo, start), preamble]
            if not entry:
                search.append(range(len(self.lines)))
            for rng in search:
                for i in rng:
                    if kpat.match(self.lines[i]):
                        return i + 1
        return start + 1 if entry else None

    def kind_of(self, entry: str | None) -> str:
        """``histogram`` or ``cause``: the table the entry's name line belongs to."""
        pat = re.compile(rf"""^\s*name\s*=\s*["']{re.escape(entry or "")}["']""")
        found = "histogram"
        for line in self.lines:
            header = _ENTRY_HEADER.match(line)
            if header:
                found = header.group(1)
            elif entry and pat.match(line):
                return found
        return "histogram"

    def error(self, message: str, entry: str | None = None, key: str | None = None) -> SpecError:
        return SpecError(
            message,
            path=self.path,
            line=self.line_of(entry, key),
            entry=entry,
            key=key,
            what=self.kind_of(entry),
        )


def _check_keys(
    ctx: _Ctx, table: Mapping[str, Any], allowed: set[str], entry: str | None, what: str
) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else f" (valid: {', '.join(sorted(allowed))})"
            )
            raise ctx.error(f"unknown key in {what}{hint}", entry, key)


def _typed(
    ctx: _Ctx,
    table: Mapping[str, Any],
    key: str,
    types: type | tuple[type, ...],
    entry: str,
    default: Any = ...,
) -> Any:
    if key not in table:
        if default is ...:
            raise ctx.error("required key is missing", entry, key)
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ctx.error(f"expected {_tname(types)}, got {value!r}", entry, key)
    if not isinstance(value, types):
        raise ctx.error(f"expected {_tname(types)}, got {value!r}", entry, key)
    return value


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in ts)
