"""The good-spill list's selection as a person types it: on the command line or in a URL.

``dqm goodspills`` and the web server's ``/goodspills.json`` / ``/goodspills.csv`` take the
same words — ``runs=2-5``, ``subsystems=beam,momentum``, ``since``/``until`` (spill closing
times, ISO, naive = UTC), ``revision`` — and refuse a bad one with the same clear message.

Layer: pure core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dqm.core.specs import SUBSYSTEMS
from dqm.errors import ConfigError

__all__ = ["GoodSpillQuery", "parse_query"]


@dataclass(frozen=True)
class GoodSpillQuery:
    """Which spills, which subsystems must be good, and up to which certification."""

    first_run: int | None = None
    last_run: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    subsystems: tuple[str, ...] = SUBSYSTEMS
    revision: int | None = None

    def store_kwargs(self) -> dict:
        return {
            "first_run": self.first_run,
            "last_run": self.last_run,
            "since": self.since,
            "until": self.until,
            "subsystems": self.subsystems,
            "revision": self.revision,
        }


def _runs(text: str) -> tuple[int | None, int | None]:
    text = text.strip()
    if not text:
        return None, None
    try:
        first, sep, last = text.partition("-")
        a = int(first) if first.strip() else None
        b = (int(last) if last.strip() else None) if sep else a
    except ValueError:
        raise ConfigError("runs", text, "a run or a range such as 12, 12-40, 12- or -40") from None
    if a is not None and b is not None and a > b:
        raise ConfigError("runs", text, "a range whose first run is not after its last")
    return a, b


def _time(name: str, text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(name, text, "an ISO date or date-time, e.g. 2026-12-01T06:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_query(
    *,
    runs: str = "",
    subsystems: str = "",
    since: str = "",
    until: str = "",
    revision: str = "",
) -> GoodSpillQuery:
    """A :class:`GoodSpillQuery` from the words typed; :class:`ConfigError` names a bad one."""
    first, last = _runs(runs)
    wanted = tuple(dict.fromkeys(s.strip() for s in subsystems.split(",") if s.strip()))
    unknown = [s for s in wanted if s not in SUBSYSTEMS]
    if unknown:
        raise ConfigError("subsystems", ",".join(unknown), f"some of {', '.join(SUBSYSTEMS)}")
    rev = None
    if revision.strip():
        try:
            rev = int(revision)
        except ValueError:
            raise ConfigError("revision", revision, "a certification revision number") from None
    start, end = _time("since", since), _time("until", until)
    if start and end and not end > start:
        raise ConfigError("until", until, "a time after since")
    return GoodSpillQuery(first, last, start, end, wanted or SUBSYSTEMS, rev)
