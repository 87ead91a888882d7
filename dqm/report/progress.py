"""A tiny progress bar on stderr (tqdm is not a dependency of ``dqm``).

On a terminal it redraws one line in place; elsewhere (a log file, a container's
stdout collector) it prints at most one line per 10 % so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["Progress", "NullProgress"]


class Progress:
    """``with Progress("rendering", total=40) as bar: bar.update()``."""

    def __init__(
        self, label: str, total: int, *, stream: IO[str] | None = None, width: int = 30
    ) -> None:
        self.label, self.total, self.width = label, max(int(total), 0), width
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __enter__(self) -> Progress:
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total) if self.total else self.done + n
        self._draw()

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
        elif self._last_decile < 10:
            self._last_decile = 9
            self._draw(force=True)
        self.stream.flush()

    def _line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        return (
            f"{self.label:<18} [{bar}] {self.done}/{self.total} {time.monotonic() - self.t0:5.1f} s"
        )

    def _draw(self, force: bool = False) -> None:
        if self._tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()
            return
        decile = int(10 * self.done / self.total) if self.total else 10
        if force or decile > self._last_decile:
            self._last_decile = decile
            self.stream.write(self._line() + "\n")
            self.stream.flush()


class NullProgress(Progress):
    """Same interface, prints nothing (library callers and tests)."""

    def __init__(self, label: str = "", total: int = 0, **_: object) -> None:
        super().__init__(label, total)

    def _draw(self, force: bool = False) -> None:
        return None

    def close(self) -> None:
        return None
