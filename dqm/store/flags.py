"""Flags in the database: store a spill's verdict, recheck a run, query the flags.

The inputs a spill is judged with, read as they were when it closed, are gathered by
:mod:`dqm.store.inputs` (re-exported here); so ``dqm recheck`` with the same configuration
version reproduces the live flags.

Each flag row names the incident it belongs to (``cause``); a flag that follows from a
cause in another subsystem also carries ``details["follows_from"]``, and so does the
roll-up row of a subsystem whose whole state follows from one (its instruction then
says "follows from: …" instead of sending the shifter to that subsystem's expert).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP, Quality, judged_worst
from dqm.checks._core import to_jsonable
from dqm.config import Settings
from dqm.core.evaluate import (
    HISTORY_SPILLS,
    Incident,
    Verdict,
    evaluate_spill,
    record_quality,
)
from dqm.core.specs import SpecSet
from dqm.errors import StorageError
from dqm.store.acknowledgements import carry_over, remember
from dqm.store.flag_reads import query_flags
from dqm.store.flag_texts import compact_instructions
from dqm.store.history import RecentHistograms
from dqm.store.inputs import (
    JUDGING_CHECK,
    CheckInputs,
    gather_inputs,
    recorded_inputs,
    spill_arrival,
)
from dqm.store.learned import ModelCache
from dqm.store.models import Flag, Run, Spill
from dqm.store.queries import closed_spills
from dqm.store.references import ReferenceCache
from dqm.store.rollup import histograms_deleted
from dqm.store.spills import spill_histograms

__all__ = [
    "CheckInputs",
    "gather_inputs",
    "store_verdict",
    "make_close_hook",
    "recorded_inputs",
    "spill_arrival",
    "recheck_run",
    "query_flags",
    "HISTORY_SPILLS",
    "ROLLUP",
    "JUDGING_CHECK",
]


def follows_from(incident: Incident) -> dict:
    """What a consequence row keeps of the incident it follows from: ``details["follows_from"]``."""
    return {
        "cause": incident.cause,
        "subsystem": incident.subsystem,
        "explanation": incident.explanation,
    }


def stored_instruction(quality: int, instruction: str) -> str:
    """The shifter instruction a flag row keeps: none on a GOOD row.

    The instruction says what to do when the check fails; it follows from the check and
    its configuration version (the spec), and 85 % of the rows are GOOD: copying it onto
    them cost ≈ 97 bytes a row, ≈ 3.4 kB a spill (docs/retention.md).
    """
    return instruction if quality != Quality.GOOD else ""


def store_verdict(
    session: Session, sp: Spill, verdict: Verdict, inputs: CheckInputs, *, update_run: bool = True
) -> None:
    """Replace the spill's flags with ``verdict``: a row per check, roll-ups per subsystem.

    The roll-ups also go into the spill's summary (``"quality"``), where change detection
    of later spills reads which spills were certified.
    """
    acknowledged = remember(session, sp.id)  # a spill judged again keeps them
    session.execute(delete(Flag).where(Flag.spill_id == sp.id))
    rows = []
    for j in verdict.judgements:
        r = j.result
        details = to_jsonable(r.details)
        elsewhere = verdict.consequence_of(j)
        if elsewhere is not None:
            details["follows_from"] = follows_from(elsewhere)
        rows.append(
            Flag(
                run=sp.run,
                spill=sp.spill,
                spill_id=sp.id,
                subsystem=j.subsystem,
                histogram=j.histogram,
                check=j.check,
                quality=int(r.quality),
                value=r.value,
                thresholds=to_jsonable(r.threshold),
                explanation=r.explanation,
                details=details,
                instruction=stored_instruction(r.quality, j.instruction),
                config_version=inputs.version,
                reference_run=inputs.reference_run,
                cause=j.cause,
            )
        )
    for subsystem, q in verdict.subsystems.items():
        worst_j = verdict.worst_in(subsystem)
        follows = verdict.follows_from(subsystem)
        if follows is not None and q == Quality.GOOD:  # GOOD on part: say what was not judged
            worst_j = verdict.unjudged_by(subsystem, follows) or worst_j
        shown = q >= Quality.WARNING or follows is not None
        rows.append(
            Flag(
                run=sp.run,
                spill=sp.spill,
                spill_id=sp.id,
                subsystem=subsystem,
                histogram=None,
                check=ROLLUP,
                quality=int(q),
                value=None,
                thresholds=None,
                explanation=worst_j.result.explanation if worst_j and shown else "",
                details={"follows_from": follows_from(follows)} if follows else None,
                instruction=(
                    f"follows from: {follows.explanation} (see {follows.subsystem})"
                    if follows
                    else worst_j.instruction
                    if worst_j and shown
                    else ""
                ),
                config_version=inputs.version,
                reference_run=inputs.reference_run,
                cause=follows.cause if follows else None,
            )
        )
    carry_over(rows, acknowledged)
    compact_instructions(session, inputs.version, rows)  # the spec's texts stored once
    session.add_all(rows)
    sp.quality = int(verdict.overall)
    sp.config_version = inputs.version
    sp.conditions = inputs.conditions.to_dict() if inputs.conditions else None
    sp.summary = record_quality(sp.summary or {}, verdict)
    if update_run:
        _store_run_rollup(session, sp.run, inputs, verdict)


def _store_run_rollup(
    session: Session, run: int, inputs: CheckInputs, verdict: Verdict | None = None
) -> None:
    """Run-level roll-up rows (spill NULL): the worst spill roll-up per subsystem.

    Live (``verdict`` given) it is updated in place — worst of itself and this spill —
    so the cost does not grow with the run; the run row is locked first (PostgreSQL)
    so two workers closing spills of one run cannot lose each other's verdict. It is
    ``FOR NO KEY UPDATE``: a plain ``FOR UPDATE`` conflicts with the key-share lock that
    every insert of a spill or flag row referencing the run takes, and deadlocked
    workers that were storing partials of the same run while another closed a spill.
    Without ``verdict`` (a stored recheck) it is recomputed from every spill roll-up.
    """
    session.execute(select(Run.run).where(Run.run == run).with_for_update(key_share=True))
    existing = {
        f.subsystem: f
        for f in session.scalars(
            select(Flag).where(Flag.run == run, Flag.check == ROLLUP, Flag.spill.is_(None))
        )
    }
    if verdict is not None:
        worst = {
            s: judged_worst([q] + ([existing[s].quality] if s in existing else []))
            for s, q in verdict.subsystems.items()
        }
    else:
        session.flush()
        per_subsystem: dict[str, list[int]] = {}
        for subsystem, q in session.execute(
            select(Flag.subsystem, Flag.quality).where(
                Flag.run == run, Flag.check == ROLLUP, Flag.spill.is_not(None)
            )
        ).all():
            per_subsystem.setdefault(subsystem, []).append(q)
        worst = {s: judged_worst(qs) for s, qs in per_subsystem.items()}
    for subsystem, q in worst.items():
        row = existing.get(subsystem)
        if row is None:
            session.add(
                Flag(
                    run=run,
                    spill=None,
                    spill_id=None,
                    subsystem=subsystem,
                    histogram=None,
                    check=ROLLUP,
                    quality=int(q),
                    explanation="worst spill of the run",
                    config_version=inputs.version,
                    reference_run=inputs.reference_run,
                )
            )
        elif row.quality != int(q) or row.config_version != inputs.version:
            row.quality, row.config_version, row.reference_run = (
                int(q),
                inputs.version,
                inputs.reference_run,
            )


def make_close_hook(settings: Settings, specs: SpecSet):
    """The worker's close hook: judge the spill, store flags, return what to announce.

    See :class:`dqm.store.judge.SpillJudge` (it never lets a judging error stop the worker).
    """
    from dqm.store.judge import SpillJudge  # judge builds on this module

    return SpillJudge(settings, specs)


@dataclass
class RecheckResult:
    spills: int
    differences: list[str]
    version: str
    #: spill numbers not rechecked: their own histograms were deleted by the retention
    #: policy (docs/retention.md); their stored flags stand
    not_rechecked: list[int] = field(default_factory=list)


def recheck_run(
    session: Session, run: int, specs: SpecSet, *, version: str | None = None, store: bool = False
) -> RecheckResult:
    """Recompute a stored run's flags; compare with the stored ones (or replace them)."""
    refs = ReferenceCache()
    recent = RecentHistograms()
    models = ModelCache()
    spills = closed_spills(session, run)
    if not spills:
        raise StorageError(f"run {run} has no closed spills")
    diffs: list[str] = []
    used = version or ""
    deleted = histograms_deleted(session, [sp.id for sp in spills])
    skipped = [sp.spill for sp in spills if sp.id in deleted]
    last_inputs = None
    for sp in spills:
        if sp.id in deleted:
            continue  # nothing to judge: only the run's sum holds its histograms
        inputs = recorded_inputs(
            session, sp, specs, refs, version=version, recent=recent, models=models
        )
        used = inputs.version
        verdict = evaluate_spill(
            specs,
            spill_histograms(session, sp.id),
            sp.summary or {},
            status=sp.status,
            arrival=spill_arrival(sp),
            **inputs.evaluate_kwargs(),
        )
        if store:
            store_verdict(session, sp, verdict, inputs, update_run=False)
            last_inputs = inputs
            continue
        stored = {
            (f.histogram, f.check): f
            for f in session.scalars(
                select(Flag).where(Flag.spill_id == sp.id, Flag.check != ROLLUP)
            )
        }
        for j in verdict.judgements:
            f = stored.pop((j.histogram, j.check), None)
            if f is None:
                diffs.append(f"spill {sp.spill} {j.histogram}/{j.check}: not stored")
            elif f.quality != int(j.result.quality) or not _same(f.value, j.result.value):
                diffs.append(
                    f"spill {sp.spill} {j.histogram}/{j.check}: stored {Quality(f.quality).name} "
                    f"{f.value}, recomputed {j.result.quality.name} {j.result.value}"
                )
            elif f.cause != j.cause:
                diffs.append(
                    f"spill {sp.spill} {j.histogram}/{j.check}: same result, but stored as part "
                    f"of incident {f.cause!r}, recomputed {j.cause!r}"
                )
            elif f.explanation != j.result.explanation or (f.thresholds or {}) != to_jsonable(
                j.result.threshold
            ):
                diffs.append(
                    f"spill {sp.spill} {j.histogram}/{j.check}: same quality and value, but "
                    "explanation or thresholds "
                    f"differ: stored {f.explanation!r}, recomputed {j.result.explanation!r}"
                )
        diffs.extend(f"spill {sp.spill} {h}/{c}: stored but not recomputed" for h, c in stored)
    if store and last_inputs is not None:
        _store_run_rollup(
            session, run, last_inputs
        )  # replaced spills may have got better: recompute
    return RecheckResult(len(spills) - len(skipped), diffs, used, skipped)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
