"""What a run contains, its incidents, the sign-off proposal and the good-spill list (reads).

Layer: I/O shell (store), read-only. The rules are pure (:mod:`dqm.core.signoff`); this
module reads the rows they need. :func:`run_incidents` is the one place that says what a
run's incidents are: the stored, latched incidents (table ``incidents``), so what the wall
showed, what was acknowledged and what is signed off are the same objects; the
proposal, the summary page and the report follow it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP, Quality, quality_name
from dqm.core.numbering import ranges_text
from dqm.core.signoff import (
    CertificationRange,
    GoodSpillList,
    Proposal,
    RunIncident,
    SpillJudgement,
    good_fractions,
    good_spill_list,
    paint,
    propose,
)
from dqm.core.specs import SUBSYSTEMS
from dqm.core.spill_history import QUALITY_KEY
from dqm.store.models import Certification, Flag, Spill, StoredIncident
from dqm.store.queries import closed_spills

__all__ = [
    "RunContents",
    "RunSummary",
    "run_contents",
    "run_incidents",
    "propose_signoff",
    "certification_history",
    "certification_revision",
    "spill_judgements",
    "good_spills",
    "runs_between",
    "run_summaries",
]

_BAD = int(Quality.BAD)


def _qualities(sp: Spill) -> dict[str, int | None]:
    stored = (sp.summary or {}).get(QUALITY_KEY) or {}
    return {s: (int(q) if q is not None else None) for s, q in stored.items()}


@dataclass(frozen=True)
class RunContents:
    """What a run holds, as an expert choosing a reference needs to see it."""

    run: int
    spills: int
    by_quality: dict[str, int]  # spill roll-up quality name -> spills
    bad_spills: list[int]
    bad_by_subsystem: dict[str, list[int]]

    def describe(self) -> str:
        counts = ", ".join(f"{n} {q}" for q, n in sorted(self.by_quality.items()))
        text = f"{self.spills} closed spills: {counts or 'none judged'}"
        if self.bad_spills:
            where = "; ".join(
                f"{s} {ranges_text(sp)}" for s, sp in sorted(self.bad_by_subsystem.items())
            )
            text += f"; BAD spills {ranges_text(self.bad_spills)} ({where})"
        return text


def run_contents(session: Session, run: int) -> RunContents:
    """The run's closed spills by quality, and which are BAD in which subsystem."""
    spills = closed_spills(session, run)
    by_subsystem: dict[str, list[int]] = {}
    for sp in spills:
        for s, q in _qualities(sp).items():
            if q == _BAD:
                by_subsystem.setdefault(s, []).append(sp.spill)
    return RunContents(
        run=run,
        spills=len(spills),
        by_quality=dict(Counter(quality_name(sp.quality, unjudged="UNCHECKED") for sp in spills)),
        bad_spills=[sp.spill for sp in spills if sp.quality == _BAD],
        bad_by_subsystem=by_subsystem,
    )


def run_incidents(session: Session, run: int) -> list[RunIncident]:
    """The run's incidents: the stored, latched ones (:mod:`dqm.store.incidents`), the very
    objects the wall showed and a person acknowledged, in the order they opened.

    Each carries its acknowledgement and annotation, and what its flags say (the
    subsystems they are in, consequences included; how many a person acknowledged and
    their notes). A superseded incident is listed with why (its history is kept), but no
    proposal cites it.
    """
    rows = session.scalars(
        select(StoredIncident).where(StoredIncident.run == run).order_by(StoredIncident.id)
    ).all()
    if not rows:
        return []
    flags = session.scalars(
        select(Flag).where(
            Flag.run == run,
            Flag.spill.is_not(None),
            Flag.check != ROLLUP,
            Flag.quality >= int(Quality.WARNING),
            Flag.cause.in_({r.cause for r in rows}),
        )
    ).all()
    out = []
    for r in rows:
        mine = [
            f
            for f in flags
            if f.cause == r.cause and r.first_spill <= (f.spill or 0) <= r.last_spill
        ]
        acked = [f for f in mine if f.acknowledged_by]
        notes = [r.annotation] if r.annotation else []
        notes += [f.annotation for f in sorted(mine, key=lambda f: f.spill or 0) if f.annotation]
        out.append(
            RunIncident(
                cause=r.cause,
                subsystem=r.subsystem,
                subsystems=tuple(dict.fromkeys([r.subsystem, *(f.subsystem for f in mine)])),
                quality=r.quality,
                first_spill=r.first_spill,
                last_spill=r.last_spill,
                spills=r.n_spills,
                explanation=r.explanation,
                instruction=r.instruction,
                flags=len(mine),
                acknowledged=len(acked),
                acknowledged_by=tuple(dict.fromkeys(str(f.acknowledged_by) for f in acked)),
                annotations=tuple(dict.fromkeys(notes)),
                id=r.id,
                incident_acknowledged_by=r.acknowledged_by,
                incident_acknowledged_at=r.acknowledged_at,
                superseded=r.superseded_note or ("superseded" if r.superseded_at else ""),
            )
        )
    return out


def propose_signoff(
    session: Session, run: int, subsystems: Sequence[str] = SUBSYSTEMS
) -> list[Proposal]:
    """The ranges the DQM proposes to certify in ``run``, per subsystem, with their reasons."""
    qualities = {sp.spill: _qualities(sp) for sp in closed_spills(session, run)}
    return propose(qualities, subsystems, run_incidents(session, run))


def certification_history(
    session: Session, run: int | None = None, *, upto: int | None = None
) -> list[Certification]:
    """Every certification (of ``run``), oldest first: nothing is ever overwritten."""
    stmt = select(Certification)
    if run is not None:
        stmt = stmt.where(Certification.run == run)
    if upto is not None:
        stmt = stmt.where(Certification.id <= upto)
    return list(session.scalars(stmt.order_by(Certification.id)))


def certification_revision(session: Session) -> int:
    """The newest certification id (0 before the first): the revision a list is made up to."""
    return int(session.scalar(select(func.max(Certification.id))) or 0)


def _ranges(certs: Sequence[Certification]) -> list[CertificationRange]:
    return [
        CertificationRange(
            c.id, c.run, c.subsystem, c.first_spill, c.last_spill, c.verdict, c.certified_by
        )
        for c in certs
    ]


def spill_judgements(
    session: Session, spills: Sequence[Spill], *, upto: int | None = None
) -> tuple[list[SpillJudgement], dict[tuple[int, int, str], CertificationRange]]:
    """Each spill's flag qualities and certifications in force (up to revision ``upto``)."""
    runs = sorted({sp.run for sp in spills})
    certs = select(Certification).where(Certification.run.in_(runs))
    if upto is not None:
        certs = certs.where(Certification.id <= upto)
    in_force = paint(_ranges(list(session.scalars(certs))), [(sp.run, sp.spill) for sp in spills])
    out = [
        SpillJudgement(
            run=sp.run,
            spill=sp.spill,
            n_events=int(sp.n_events or 0),
            qualities=_qualities(sp),
            certified={
                s: c.verdict for (r, n, s), c in in_force.items() if r == sp.run and n == sp.spill
            },
        )
        for sp in spills
    ]
    return out, in_force


def _selected_spills(
    session: Session,
    first_run: int | None,
    last_run: int | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Spill]:
    stmt = select(Spill).where(Spill.closed)
    if first_run is not None:
        stmt = stmt.where(Spill.run >= first_run)
    if last_run is not None:
        stmt = stmt.where(Spill.run <= last_run)
    if since is not None:
        stmt = stmt.where(Spill.closed_at >= since)
    if until is not None:
        stmt = stmt.where(Spill.closed_at < until)
    return list(session.scalars(stmt.order_by(Spill.run, Spill.spill)))


def good_spills(
    session: Session,
    *,
    first_run: int | None = None,
    last_run: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    subsystems: Sequence[str] = SUBSYSTEMS,
    revision: int | None = None,
) -> GoodSpillList:
    """The good-spill list of the selection: certified, and judged good by the flags only.

    ``revision`` reproduces the list as it was after that certification (default: the
    newest); the flags are those stored now (a recheck may change the flags-only part).
    """
    newest = certification_revision(session)
    upto = newest if revision is None else min(int(revision), newest)
    spills = _selected_spills(session, first_run, last_run, since, until)
    judged, _ = spill_judgements(session, spills, upto=upto)
    selection: dict[str, Any] = {
        "runs": [first_run, last_run],
        "closed_since": since.isoformat() if since else None,
        "closed_until": until.isoformat() if until else None,
    }
    return good_spill_list(judged, list(subsystems), revision=upto, selection=selection)


def runs_between(session: Session, since: datetime | None, until: datetime | None) -> list[int]:
    """Runs with a spill closed in ``[since, until)`` (a shift), in order."""
    stmt = select(Spill.run).where(Spill.closed).distinct()
    if since is not None:
        stmt = stmt.where(Spill.closed_at >= since)
    if until is not None:
        stmt = stmt.where(Spill.closed_at < until)
    return sorted(session.scalars(stmt))


@dataclass(frozen=True)
class RunSummary:
    """One run at the end of a run or a shift: incidents, sign-off, what is good."""

    run: int
    spills: int
    first_spill: int | None
    last_spill: int | None
    n_events: int
    incidents: list[RunIncident]
    #: subsystem -> (spills certified good, certified bad, not certified)
    certification: dict[str, tuple[int, int, int]]
    signed_by: list[str]  # who signed the certifications in force, first signer first
    fractions: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``signed off`` (every spill of every subsystem), ``partly signed`` or ``not signed``."""
        if not self.certification:
            return "not signed"
        unsigned = sum(c[2] for c in self.certification.values())
        signed = sum(c[0] + c[1] for c in self.certification.values())
        if signed and not unsigned:
            return "signed off"
        return "partly signed" if signed else "not signed"


@dataclass(frozen=True)
class _SpillVerdict:
    """What a run summary reads of a spill: its per-subsystem qualities, not its summary."""

    run: int
    spill: int
    n_events: int
    summary: dict


def _closed_spill_verdicts(session: Session, runs: Sequence[int]) -> dict[int, list]:
    """run -> its closed spills in spill order, with only the qualities of their summaries
    (one JSON key read in SQL: parsing 2000 whole summaries cost ≈ 0.4 s of a day's report)."""
    if not runs:
        return {}
    stmt = (
        select(Spill.run, Spill.spill, Spill.n_events, Spill.summary[QUALITY_KEY])
        .where(Spill.run.in_(list(runs)), Spill.closed)
        .order_by(Spill.run, Spill.spill)
    )
    out: dict[int, list] = {}
    for run, spill, n_events, quality in session.execute(stmt):
        out.setdefault(run, []).append(
            _SpillVerdict(run, spill, int(n_events or 0), {QUALITY_KEY: quality or {}})
        )
    return out


def run_summaries(
    session: Session, runs: Sequence[int], subsystems: Sequence[str] = SUBSYSTEMS
) -> list[RunSummary]:
    """The summary of each run (all its closed spills, every subsystem required)."""
    out = []
    verdicts_of = _closed_spill_verdicts(session, runs)
    for run in runs:
        spills = verdicts_of.get(run, [])
        judged, in_force = spill_judgements(session, spills)
        cert: dict[str, tuple[int, int, int]] = {}
        for s in subsystems:
            verdicts = [j.certified.get(s) for j in judged]
            cert[s] = (
                verdicts.count("good"),
                verdicts.count("bad"),
                sum(1 for v in verdicts if v is None),
            )
        signers = [c.certified_by for c in sorted(in_force.values(), key=lambda c: c.id)]
        out.append(
            RunSummary(
                run=run,
                spills=len(spills),
                first_spill=spills[0].spill if spills else None,
                last_spill=spills[-1].spill if spills else None,
                n_events=sum(int(sp.n_events or 0) for sp in spills),
                incidents=run_incidents(session, run),
                certification=cert,
                signed_by=list(dict.fromkeys(signers)),
                fractions=good_fractions(judged, list(subsystems)),
            )
        )
    return out
