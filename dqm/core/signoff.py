"""Sign-off and the good-spill list: from judged spills to what the analysis selects data with.

The checks judge each spill; a person certifies. This module holds the pure rules that
turn stored judgements and certifications into what the shifter and the analysis see:

* :func:`group_incidents` — a run's flags as incidents: one per cause, extended while the
  cause persists (first spill, last spill, how many), with who acknowledged and the notes.
* :func:`propose` — the ranges the DQM proposes for sign-off per subsystem: runs of
  consecutive spills that the flags judge alike (GOOD → good, BAD → bad, anything else →
  *review*: a person must look), each with the incidents that explain it.
* :func:`paint` — which certification is in force for each spill: the newest one (highest
  id) covering it; certifications are append-only, so an expert's correction is a new one.
* :func:`good_spill_list` — certified good spills in the golden-JSON style
  (``{"run": [[first, last], …]}``), beside the spills judged good only by the flags,
  versioned by a content hash and the certification revision it was made up to.

Layer: pure core: no I/O; the store (:mod:`dqm.store.signoff`) reads the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dqm.checks import Quality

__all__ = [
    "GOOD_FOR_PHYSICS",
    "BAD_FOR_PHYSICS",
    "REVIEW",
    "VERDICTS",
    "spill_ranges",
    "RunIncident",
    "Proposal",
    "propose",
    "CertificationRange",
    "paint",
    "SpillJudgement",
    "GoodSpillList",
    "good_spill_list",
    "good_fractions",
]

GOOD_FOR_PHYSICS, BAD_FOR_PHYSICS, REVIEW = "good", "bad", "review"
#: what a person may certify a range as
VERDICTS = (GOOD_FOR_PHYSICS, BAD_FOR_PHYSICS)
CERTIFIED, FLAGS_ONLY = "certified", "flags_only"


def spill_ranges(numbers: Iterable[int]) -> list[list[int]]:
    """``[1, 2, 3, 7]`` -> ``[[1, 3], [7, 7]]``: sorted, duplicates ignored (golden-JSON style)."""
    out: list[list[int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out


# ---------------------------------------------------------------------- incidents of a run
@dataclass(frozen=True)
class RunIncident:
    """One stored incident of a run: what the wall showed, the summary lists and the sign-off
    cites.

    Attributes:
        cause: the incident's cause (``beam_position``, ``daq_source_absent:MS1``, or
            ``histogram/check`` for a flag no rule explains).
        subsystem: the tile it belongs to (its own flags'; consequences are elsewhere).
        subsystems: every subsystem it left a flag in (its consequences included).
        quality: the worst quality of its flags.
        first_spill, last_spill, spills: where it was seen, and in how many spills.
        explanation, instruction: the words of its worst, latest flag.
        flags, acknowledged: how many flags it holds, how many a person acknowledged.
        acknowledged_by: who acknowledged them; annotations: the incident's note, then the
            flags' notes, in spill order.
    """

    cause: str
    subsystem: str
    subsystems: tuple[str, ...]
    quality: int
    first_spill: int
    last_spill: int
    spills: int
    explanation: str
    instruction: str
    flags: int
    acknowledged: int
    acknowledged_by: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    #: the stored (latched) incident it is: its id, who acknowledged it and when, and why
    #: it was superseded (its spills judged again showed its cause no more)
    id: int | None = None
    incident_acknowledged_by: str | None = None
    incident_acknowledged_at: datetime | None = None
    superseded: str = ""

    @property
    def fully_acknowledged(self) -> bool:
        if self.id is not None:
            return self.incident_acknowledged_at is not None
        return self.acknowledged == self.flags

    @property
    def acknowledgement(self) -> str:
        """Who acknowledged it, in words ("acknowledged by sam at 14:05 UTC")."""
        if self.incident_acknowledged_at is not None:
            return (
                f"acknowledged by {self.incident_acknowledged_by} at "
                f"{self.incident_acknowledged_at:%Y-%m-%d %H:%M} UTC"
            )
        by = (
            f"; flags acknowledged {self.acknowledged}/{self.flags} by "
            if self.acknowledged
            else ""
        )
        return "NOT acknowledged" + (by + ", ".join(self.acknowledged_by) if by else "")

    def overlaps(self, first: int, last: int) -> bool:
        return self.first_spill <= last and first <= self.last_spill


# ---------------------------------------------------------------------- proposals
@dataclass(frozen=True)
class Proposal:
    """A range the DQM proposes to certify, and why."""

    subsystem: str
    first_spill: int
    last_spill: int
    spills: int
    verdict: str  # good | bad | review
    reason: str


def _proposed(quality: int | None) -> str:
    if quality == int(Quality.GOOD):
        return GOOD_FOR_PHYSICS
    if quality == int(Quality.BAD):
        return BAD_FOR_PHYSICS
    return REVIEW  # WARNING, CHECK_ERROR, NO_DATA or never judged: a person looks


def propose(
    qualities: Mapping[int, Mapping[str, int | None]],
    subsystems: Sequence[str],
    incidents: Sequence[RunIncident] = (),
) -> list[Proposal]:
    """Per subsystem, consecutive closed spills (``spill -> {subsystem: quality}``) that the
    flags judge alike, each with the incidents in that subsystem that overlap it."""
    spills = sorted(qualities)
    out: list[Proposal] = []
    for subsystem in subsystems:
        stretch: list[int] = []
        verdict = ""
        for spill in spills:
            v = _proposed(qualities[spill].get(subsystem))
            if stretch and v != verdict:
                out.append(_proposal(subsystem, stretch, verdict, incidents))
                stretch = []
            stretch.append(spill)
            verdict = v
        if stretch:
            out.append(_proposal(subsystem, stretch, verdict, incidents))
    return out


def _proposal(
    subsystem: str, spills: list[int], verdict: str, incidents: Sequence[RunIncident]
) -> Proposal:
    first, last = spills[0], spills[-1]
    why = [
        f"{i.cause} ({Quality(i.quality).name}, spills {i.first_spill}–{i.last_spill})"
        for i in incidents
        if subsystem in i.subsystems and i.overlaps(first, last) and not i.superseded
    ]
    if verdict == GOOD_FOR_PHYSICS:
        reason = "every check GOOD"
    elif verdict == BAD_FOR_PHYSICS:
        reason = "BAD: " + ("; ".join(why) or "a check judged BAD")
    else:
        reason = "look first: " + (
            "; ".join(why) or "WARNING, a check that could not run, or no data"
        )
    return Proposal(subsystem, first, last, len(spills), verdict, reason)


# ---------------------------------------------------------------------- certifications in force
@dataclass(frozen=True)
class CertificationRange:
    """One stored certification (the columns the rules need)."""

    id: int
    run: int
    subsystem: str
    first_spill: int
    last_spill: int
    verdict: str
    certified_by: str = ""


def paint(
    certifications: Iterable[CertificationRange], spills: Iterable[tuple[int, int]]
) -> dict[tuple[int, int, str], CertificationRange]:
    """``(run, spill, subsystem) -> the certification in force`` for the given spills: the
    one with the highest id covering it (later decisions win; earlier ones stay stored)."""
    wanted: dict[int, list[int]] = {}
    for run, spill in spills:
        wanted.setdefault(run, []).append(spill)
    out: dict[tuple[int, int, str], CertificationRange] = {}
    for c in sorted(certifications, key=lambda c: c.id):
        for spill in wanted.get(c.run, ()):
            if c.first_spill <= spill <= c.last_spill:
                out[(c.run, spill, c.subsystem)] = c
    return out


# ---------------------------------------------------------------------- the good-spill list
@dataclass(frozen=True)
class SpillJudgement:
    """A closed spill: its per-subsystem flag qualities and the certifications in force."""

    run: int
    spill: int
    n_events: int
    qualities: Mapping[str, int | None]
    certified: Mapping[str, str] = field(default_factory=dict)  # subsystem -> good | bad

    def status(self, required: Sequence[str]) -> str | None:
        """``certified`` (every required subsystem certified good), ``flags_only`` (none
        certified bad, the rest judged GOOD by the flags) or None (not good)."""
        verdicts = [self.certified.get(s) for s in required]
        if BAD_FOR_PHYSICS in verdicts:
            return None
        if all(v == GOOD_FOR_PHYSICS for v in verdicts):
            return CERTIFIED
        unsigned = [s for s, v in zip(required, verdicts, strict=True) if v is None]
        if all(self.qualities.get(s) == int(Quality.GOOD) for s in unsigned):
            return FLAGS_ONLY
        return None


@dataclass(frozen=True)
class GoodSpillList:
    """The list an analysis selects its data with, and what it needs to cite it."""

    selection: Mapping[str, Any]
    certified: dict[str, list[list[int]]]
    flags_only: dict[str, list[list[int]]]
    revision: int  # the newest certification id it takes into account (0: none)
    spills: dict[str, int]  # certified / flags_only / not_good / total: spill counts

    @property
    def content_hash(self) -> str:
        """SHA-256 of the selection and both lists (canonical JSON): same list, same hash."""
        body = {
            "selection": dict(self.selection),
            "certified": self.certified,
            "flags_only": self.flags_only,
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def version(self) -> str:
        """``r<revision>-<hash prefix>``: cite it; ``--revision`` reproduces the list."""
        return f"r{self.revision}-{self.content_hash[:12]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "certification_revision": self.revision,
            "content_sha256": self.content_hash,
            "selection": dict(self.selection),
            "certified": self.certified,
            "flags_only": self.flags_only,
            "spills": dict(self.spills),
        }

    def render(self, fmt: str) -> str:
        """``json`` (both lists, the version), ``golden`` (only the certified ranges) or ``csv``."""
        if fmt == "csv":
            return self.to_csv()
        body = self.certified if fmt == "golden" else self.to_json()
        return json.dumps(body, indent=1) + "\n"

    def to_csv(self) -> str:
        """One line per range: run, first_spill, last_spill, spills, basis, version."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["run", "first_spill", "last_spill", "spills", "basis", "version"])
        rows = [
            (int(run), a, b, basis)
            for basis, ranges in ((CERTIFIED, self.certified), (FLAGS_ONLY, self.flags_only))
            for run, pairs in ranges.items()
            for a, b in pairs
        ]
        for run, a, b, basis in sorted(rows):
            w.writerow([run, a, b, b - a + 1, basis, self.version])
        return buf.getvalue()


def good_spill_list(
    spills: Iterable[SpillJudgement],
    required: Sequence[str],
    *,
    revision: int,
    selection: Mapping[str, Any],
) -> GoodSpillList:
    """Certified good spills and spills good by the flags only, per run, as ranges."""
    certified: dict[int, list[int]] = {}
    flags_only: dict[int, list[int]] = {}
    counts = {CERTIFIED: 0, FLAGS_ONLY: 0, "not_good": 0, "total": 0}
    for sp in spills:
        counts["total"] += 1
        status = sp.status(required)
        if status is None:
            counts["not_good"] += 1
            continue
        counts[status] += 1
        (certified if status == CERTIFIED else flags_only).setdefault(sp.run, []).append(sp.spill)

    def golden(by_run: dict[int, list[int]]) -> dict[str, list[list[int]]]:
        return {str(run): spill_ranges(by_run[run]) for run in sorted(by_run)}

    return GoodSpillList(
        selection={**selection, "subsystems": list(required)},
        certified=golden(certified),
        flags_only=golden(flags_only),
        revision=revision,
        spills=counts,
    )


def good_fractions(spills: Sequence[SpillJudgement], required: Sequence[str]) -> dict[str, float]:
    """Fractions of spills and of sampled events (∝ muons on target) that are good
    (certified or by the flags) and that are certified good; NaN without spills."""
    n = len(spills)
    events = sum(s.n_events for s in spills)
    status = [s.status(required) for s in spills]
    good = [s for s, st in zip(spills, status, strict=True) if st is not None]
    signed = [s for s, st in zip(spills, status, strict=True) if st == CERTIFIED]
    nan = float("nan")
    return {
        "good_spills": len(good) / n if n else nan,
        "certified_spills": len(signed) / n if n else nan,
        "good_mot": sum(s.n_events for s in good) / events if events else nan,
        "certified_mot": sum(s.n_events for s in signed) / events if events else nan,
    }
