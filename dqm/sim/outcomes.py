"""What a shifter would have seen for one judged spill: its flags and its incidents.

Layer: pure (reads :class:`dqm.core.evaluate.Verdict`). An *incident* is the judge's own
(one per cause, :mod:`dqm.core.incidents`): what one alarm sends a person to look at. A flag
*names* what its line in ``dqm flags`` says: its histogram and its explanation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from dqm.checks import Quality
from dqm.core.evaluate import Judgement, Verdict

__all__ = [
    "Incident",
    "SpillOutcome",
    "incidents_of",
    "alarm_episodes",
    "name_of",
]


@dataclass(frozen=True)
class Incident:
    """What one alarm sends a person to look at: its cause, subsystem and sentence."""

    cause: str
    subsystem: str
    explanation: str


def incidents_of(verdict: Verdict) -> tuple[list[Incident], bool]:
    """The spill's BAD incidents (one per cause, :mod:`dqm.core.incidents`), and ``False``:
    the count is no longer provisional now that the judge groups flags by cause."""
    return [
        Incident(str(i.cause), str(i.subsystem), str(i.explanation))
        for i in verdict.incidents
        if int(i.quality) == int(Quality.BAD)
    ], False


def _is_bad(j: Judgement, subsystem: str | None = None) -> bool:
    return j.result.quality == Quality.BAD and (subsystem is None or j.subsystem == subsystem)


def name_of(j: Judgement) -> str:
    return f"{j.histogram}/{j.check}" if j.histogram else j.check


def alarm_episodes(outcomes: Sequence[SpillOutcome]) -> Counter:
    """Per check, BAD spills whose previous spill was not BAD on that check (alarm starts)."""
    episodes: Counter = Counter()
    before: set[str] = set()
    for o in outcomes:
        now = {name_of(j) for j in o.bad}
        episodes.update(now - before)
        before = now
    return episodes


# --------------------------------------------------------------------------- one spill


@dataclass
class SpillOutcome:
    """What the shifter would have seen for one spill: its judgements and incidents."""

    spill: int
    qualities: dict[str, Quality]
    judgements: list[Judgement] = field(repr=False)
    incidents: list[Incident]
    provisional: bool
    summary: dict = field(repr=False, default_factory=dict)

    @property
    def bad(self) -> list[Judgement]:
        return [j for j in self.judgements if j.result.quality == Quality.BAD]

    @property
    def warning(self) -> list[Judgement]:
        return [j for j in self.judgements if j.result.quality == Quality.WARNING]

    def named(self, subsystem: str, words: Sequence[str]) -> Judgement | None:
        """The BAD judgement of ``subsystem`` whose flag names one of ``words``.

        A flag names what its line in ``dqm flags`` says: the histogram and the explanation
        (compared case-insensitively: "p_MS2" names p_ms2).
        """
        wanted = [w.lower() for w in words]
        bad = [j for j in self.bad if j.subsystem == subsystem]
        return next((j for j in bad if any(w in _flag_text(j) for w in wanted)), None)

    def first_bad(self, subsystem: str) -> Judgement | None:
        return next((j for j in self.bad if j.subsystem == subsystem), None)

    def says(self, words: Sequence[str]) -> bool:
        """Does any judgement's flag (of any quality) name one of ``words``?"""
        wanted = [w.lower() for w in words]
        return any(w in _flag_text(j) for j in self.judgements for w in wanted)


def _flag_text(j: Judgement) -> str:
    return f"{j.histogram or ''} {j.result.explanation}".lower()
