"""A spill's verdict: one judgement per check, and the incidents they group into.

The data model every page reads (the wall's tiles, ``dqm flags``, the report): a
:class:`Judgement` is one check's result on one histogram with the shifter's instruction;
a :class:`Verdict` holds a spill's judgements, their incidents, and the per-subsystem
roll-up. Made by :func:`dqm.core.evaluate.evaluate_spill`.

Layer: pure core, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dqm.checks import CheckResult, Quality, judged_worst
from dqm.core.incidents import Incident
from dqm.core.specs import SUBSYSTEMS

__all__ = ["Judgement", "Verdict", "severity"]


@dataclass(frozen=True)
class Judgement:
    """One check's result on one histogram, with what the shifter needs to act on it."""

    subsystem: str
    histogram: str | None
    check: str
    result: CheckResult
    instruction: str = ""
    #: the incident it belongs to (:attr:`Incident.cause`); None for GOOD and unexplained NO_DATA
    cause: str | None = None


@dataclass
class Verdict:
    judgements: list[Judgement] = field(default_factory=list)
    #: one per cause, worst first (:func:`dqm.core.incidents.find_incidents`)
    incidents: list[Incident] = field(default_factory=list)

    def incident(self, cause: str | None) -> Incident | None:
        """The incident named ``cause`` (None if there is none)."""
        return next((i for i in self.incidents if i.cause == cause), None)

    def consequence_of(self, judgement: Judgement) -> Incident | None:
        """The incident of another subsystem ``judgement`` follows from, if any."""
        incident = self.incident(judgement.cause)
        return incident if incident and incident.subsystem != judgement.subsystem else None

    def follows_from(self, subsystem: str) -> Incident | None:
        """The incident elsewhere that the subsystem's whole state follows from, if any.

        When every flag behind the roll-up (WARNING/BAD ones; or, for a NO_DATA roll-up,
        every NO_DATA one) is a consequence of another subsystem's incident, the tile keeps
        its quality but sends the shifter to that incident instead of its own expert. A GOOD
        roll-up follows from an incident that left some of its checks without data (a source
        absent): GOOD on what could be judged, never read as a momentum nobody measured.
        """
        own = [j for j in self.judgements if j.subsystem == subsystem]
        rolled = judged_worst(j.result.quality for j in own)
        if rolled == Quality.GOOD:
            return self._unjudged_because(own)
        quiet = (Quality.GOOD,) if rolled == Quality.NO_DATA else (Quality.GOOD, Quality.NO_DATA)
        behind = [j for j in own if j.result.quality not in quiet]
        found = [self.consequence_of(j) for j in behind]
        causes = [i for i in found if i is not None]
        if not behind or len(causes) < len(found):
            return None
        return max(causes, key=lambda i: severity(i.quality))

    def _unjudged_because(self, own: list[Judgement]) -> Incident | None:
        """The worst incident elsewhere that left some of ``own`` without data, if any."""
        found = [self.consequence_of(j) for j in own if j.result.quality == Quality.NO_DATA]
        causes = [i for i in found if i is not None]
        return max(causes, key=lambda i: severity(i.quality), default=None)

    def unjudged_by(self, subsystem: str, incident: Incident) -> Judgement | None:
        """A check of ``subsystem`` that ``incident`` left without data (for the tile's text)."""
        return next(
            (
                j
                for j in self.judgements
                if j.subsystem == subsystem
                and j.result.quality == Quality.NO_DATA
                and j.cause == incident.cause
            ),
            None,
        )

    @property
    def subsystems(self) -> dict[str, Quality]:
        out = {
            s: judged_worst(j.result.quality for j in self.judgements if j.subsystem == s)
            for s in SUBSYSTEMS
        }
        return out

    @property
    def overall(self) -> Quality:
        return judged_worst(j.result.quality for j in self.judgements)

    def worst_in(self, subsystem: str) -> Judgement | None:
        """The judgement behind the subsystem's roll-up (a NO_DATA one only if none judged)."""
        cands = [j for j in self.judgements if j.subsystem == subsystem]
        return max(cands, key=lambda j: severity(j.result.quality), default=None)


def severity(q: Quality | int) -> int:
    """Order for picking the flag behind a roll-up: NO_DATA < GOOD < WARNING < BAD."""
    return -1 if int(q) == int(Quality.NO_DATA) else int(q)
