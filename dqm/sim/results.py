"""What each measure records for a row: plain results the report and the JSON read.

Layer: pure records (no simulation). The definitions of *delay*, *named*, *one incident* and
*stays up* are in :mod:`dqm.sim.measures`.
"""

from __future__ import annotations

import enum
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dqm.checks import Quality
from dqm.core.evaluate import severity
from dqm.sim.count_bound import BoundResult
from dqm.sim.scenarios import Scenario

__all__ = [
    "Status",
    "RowResult",
    "CleanResult",
    "ChangeResult",
    "DelayResult",
    "GlitchResult",
]


class Status(enum.StrEnum):
    """A row's outcome; NOT_RUN rows are never counted as passed, nor as failed."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"  # the row raised: a FAIL that carries the error
    NOT_RUN = "not yet run"


@dataclass
class RowResult:
    scenario: Scenario
    status: Status
    reasons: list[str] = field(default_factory=list)
    detail: Any = None
    seconds: float = 0.0
    provisional: bool = False
    error: str = ""


@dataclass
class CleanResult:
    spills: int
    bad_spills: list[tuple[int, list[str]]]
    warning_spills: int
    bad_by_check: Counter
    words_found: bool | None

    @property
    def bad_fraction(self) -> float:
        return len(self.bad_spills) / self.spills if self.spills else 0.0


@dataclass
class ChangeResult:
    """A change from ``start`` on (detect, persist, ramp): when and how it was flagged."""

    start: int
    watched: int
    delay: int | None = None
    flagged_by: str = ""
    explanation: str = ""
    named: bool = False
    incidents: list[str] = field(default_factory=list)
    one_incident: bool = False
    after: list[Quality] = field(default_factory=list)  # the row's subsystem after the first BAD
    change_at_detection: float | None = None  # ramp only, in the ramp's unit

    @property
    def bad_up(self) -> float | None:
        return _share(self.after, Quality.BAD)

    @property
    def flag_up(self) -> float | None:
        return _share(self.after, Quality.WARNING)


@dataclass
class DelayResult:
    trials: int
    horizon: int
    delays: list[int | None]
    named: int
    one_incident: int
    flag_up: list[float]
    bad_up: list[float]
    bound: BoundResult | None = None

    @property
    def detected(self) -> list[int]:
        return [d for d in self.delays if d is not None]

    @property
    def undetected(self) -> int:
        return sum(d is None for d in self.delays)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.detected) if self.detected else None

    def quantile(self, q: float) -> float | None:
        d = sorted(self.detected)
        return float(d[min(len(d) - 1, int(q * len(d)))]) if d else None

    @property
    def mean_up(self) -> float | None:
        """Mean share of spills still flagged after detection (see *stays up*)."""
        return statistics.fmean(self.flag_up) if self.flag_up else None

    @property
    def mean_bad_up(self) -> float | None:
        return statistics.fmean(self.bad_up) if self.bad_up else None

    @property
    def ratio(self) -> float | None:
        if self.bound is None or self.mean is None:
            return None
        return self.mean / self.bound.delay


@dataclass
class GlitchResult:
    spill: int
    flagged_by: str
    explanation: str
    named: bool
    one_incident: bool
    incidents: list[str]
    followed: int
    trailing: list[tuple[int, list[str]]]  # (spills after the glitch, flags the clean run lacks)


def _share(qualities: Sequence[Quality], at_least: Quality) -> float | None:
    if not qualities:
        return None
    return sum(severity(q) >= severity(at_least) for q in qualities) / len(qualities)
