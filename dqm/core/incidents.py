"""One incident per cause: group a spill's judgements under the causes that explain them.

The shifter acts on incidents, not on flags. A DAQ source missing from half the events
may still leave a flag on the beam tile, and a beam that moved lights calorimeter cells:
each such flag *follows from* the cause and must not send the shifter to a second expert.
:func:`find_incidents` applies the declared cause rules (:mod:`dqm.core.causes`) to the
judgements of one spill:

1. A cause is present when a WARNING/BAD judgement matches its rule's ``established_by``
   (a ``for_each`` rule makes one cause per instance the judgement lists, e.g.
   ``daq_source_absent:MS1`` and ``daq_source_absent:HCAL``).
2. Rules are taken in file order. A cause all of whose establishing judgements an earlier
   root cause explains is not a root of its own: it follows from that one.
3. Each root cause claims its establishing judgements, then the WARNING/BAD judgements its
   ``explains`` selectors match and no earlier root claimed. A NO_DATA judgement is
   claimed only if it judged no event at all (``details["n_judged"] == 0``): a source
   absent for the whole spill is why it could not judge; a missing reference is not.
4. Every WARNING/BAD judgement no rule explains belongs to one incident per subsystem
   (one tile, one expert), named after its worst judgement (``ecal_occupancy/dead_channels``);
   so does any other state but GOOD and NO_DATA (a check that could not run is never
   explained away by a cause).

An :class:`Incident` holds its cause's own flags (in its subsystem) and its consequences
(in other subsystems); every judgement it holds carries its ``cause``. A judgement that
establishes two causes (one DAQ flag listing two missing sources) names the first.

Layer: pure core, no I/O; same judgements in, same incidents out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dqm.checks import Quality
from dqm.core.causes import CauseRule
from dqm.core.specs import SUBSYSTEMS, SpecSet

if TYPE_CHECKING:
    from dqm.core.verdict import Judgement

__all__ = ["Incident", "find_incidents", "residual_cause"]

#: what a cause can explain: a verdict on the data. Any other state but GOOD and NO_DATA (a
#: check that failed to run, say) is never hidden under a cause: it is an incident of its own.
_PROBLEM = (Quality.WARNING, Quality.BAD)
_QUIET = (Quality.GOOD, Quality.NO_DATA)


def _severity(q: Quality) -> int:
    return -1 if q == Quality.NO_DATA else int(q)


@dataclass(frozen=True)
class Incident:
    """What the shifter acts on: one cause, its tile, its words, the flags it explains.

    Attributes:
        cause: ``rule[:instance]`` (``daq_source_absent:MS1``, ``beam_position``), or for a
            flag no rule explains ``histogram/check`` of the subsystem's worst flag.
        subsystem: the tile and expert the incident belongs to.
        quality: the worst of its flags and consequences.
        explanation: one line naming the cause ("MS1 absent in 50 % of events").
        instruction: what to do; consequences are not sent anywhere else.
        flags: its judgements in its own subsystem, the establishing ones first.
        consequences: its judgements in other subsystems: they follow from it.
        rule: the cause rule's name; ``None`` for a flag no rule explains.
        title: a short name for lists ("DAQ source MS1 absent"); the cause when no rule.
    """

    cause: str
    subsystem: str
    quality: Quality
    explanation: str
    instruction: str
    flags: tuple[Judgement, ...] = ()
    consequences: tuple[Judgement, ...] = ()
    rule: str | None = None
    title: str = ""

    @property
    def judgements(self) -> tuple[Judgement, ...]:
        return self.flags + self.consequences

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (announcements, logs): which checks, not their results."""

        def name(j: Judgement) -> str:
            return f"{j.histogram}/{j.check}" if j.histogram else f"{j.subsystem}/{j.check}"

        return {
            "cause": self.cause,
            "title": self.title or self.cause,
            "subsystem": self.subsystem,
            "quality": self.quality.name,
            "explanation": self.explanation,
            "instruction": self.instruction,
            "flags": [name(j) for j in self.flags],
            "consequences": [name(j) for j in self.consequences],
        }


def residual_cause(judgement: Judgement) -> str:
    """The name of an incident no rule explains: its worst flag's ``histogram/check``."""
    where = judgement.histogram or judgement.subsystem
    return f"{where}/{judgement.check}"


@dataclass
class _Cause:
    rule: CauseRule
    instance: str | None
    established: list[int]

    @property
    def id(self) -> str:
        return self.rule.cause_id(self.instance)


def find_incidents(
    judgements: Sequence[Judgement], specs: SpecSet
) -> tuple[list[Judgement], list[Incident]]:
    """The judgements with their ``cause`` set, and the spill's incidents, worst first."""
    spec_of = {h.name: h for h in specs}
    quality = [j.result.quality for j in judgements]

    def spec(i: int) -> Any:
        found = spec_of.get(judgements[i].histogram or "")
        return found.judged_by(judgements[i].check) if found is not None else None

    def matches(sel: Any, i: int, instance: str | None) -> bool:
        j = judgements[i]
        return sel.matches(j.subsystem, j.histogram, j.check, spec(i), instance)

    def attributable(i: int) -> bool:
        if quality[i] in _PROBLEM:
            return True
        return quality[i] == Quality.NO_DATA and judgements[i].result.details.get("n_judged") == 0

    def explains(c: _Cause, i: int) -> bool:
        return attributable(i) and any(matches(s, i, c.instance) for s in c.rule.explains)

    candidates: list[_Cause] = []
    for rule in specs.causes:
        found: dict[str | None, list[int]] = {}
        for i, j in enumerate(judgements):
            if quality[i] in _PROBLEM and matches(rule.established_by, i, None):
                for instance in rule.instances(j.result.details):
                    found.setdefault(instance, []).append(i)
        candidates += [_Cause(rule, inst, idx) for inst, idx in found.items()]

    roots: list[_Cause] = []
    for c in candidates:
        if not all(any(explains(r, i) for r in roots) for i in c.established):
            roots.append(c)
    owner: dict[int, _Cause] = {}
    for c in roots:
        for i in c.established:
            owner.setdefault(i, c)
    for c in roots:
        for i in range(len(judgements)):
            if i not in owner and explains(c, i):
                owner[i] = c

    incidents = [_incident(c, judgements, owner) for c in roots]
    causes: dict[int, str] = {i: c.id for i, c in owner.items()}
    for subsystem in SUBSYSTEMS + tuple(
        sorted({j.subsystem for j in judgements} - set(SUBSYSTEMS))
    ):
        rest = [
            i
            for i, j in enumerate(judgements)
            if j.subsystem == subsystem and i not in owner and quality[i] not in _QUIET
        ]
        if rest:
            rest.sort(key=lambda i: -_severity(quality[i]))  # stable: spec order among equals
            worst = judgements[rest[0]]
            cause = residual_cause(worst)
            causes.update({i: cause for i in rest})
            incidents.append(
                Incident(
                    cause,
                    subsystem,
                    worst.result.quality,
                    worst.result.explanation,
                    worst.instruction,
                    tuple(judgements[i] for i in rest),
                    title=cause,
                )
            )
    incidents.sort(key=lambda inc: -_severity(inc.quality))
    marked = [
        replace(j, cause=causes[i]) if i in causes and j.cause != causes[i] else j
        for i, j in enumerate(judgements)
    ]
    return marked, incidents


def _incident(c: _Cause, judgements: Sequence[Judgement], owner: dict[int, _Cause]) -> Incident:
    established = sorted(c.established, key=lambda i: -_severity(judgements[i].result.quality))
    explained = [i for i, o in owner.items() if o is c and i not in c.established]
    explained.sort()
    own = [i for i in explained if judgements[i].subsystem == c.rule.subsystem]
    elsewhere = [i for i in explained if judgements[i].subsystem != c.rule.subsystem]
    flags = tuple(judgements[i] for i in established + own)
    consequences = tuple(judgements[i] for i in elsewhere)
    worst = judgements[established[0]]
    fields = {
        "explanation": worst.result.explanation,
        "quality": worst.result.quality.name,
        "value": worst.result.value,
        "histogram": worst.histogram or "",
        "check": worst.check,
        "subsystem": worst.subsystem,
        "details": worst.result.details,
    }
    qualities = [j.result.quality for j in flags + consequences if j.result.quality in _PROBLEM]
    return Incident(
        cause=c.id,
        subsystem=c.rule.subsystem,
        quality=max(qualities, key=_severity),
        explanation=c.rule.render(c.rule.explanation, fields, c.instance, worst.result.explanation),
        instruction=c.rule.render(c.rule.instruction, fields, c.instance, worst.instruction),
        flags=flags,
        consequences=consequences,
        rule=c.rule.name,
        title=c.rule.render(c.rule.title, fields, c.instance, c.id),
    )
