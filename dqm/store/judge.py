"""The worker's close hook: judge a closed spill, store its flags, say what to announce.

Judging never stops the DQM. Each check is guarded on its own
(:func:`dqm.core.evaluate.judge_check`: a check that raises becomes its CHECK_ERROR
flag); this hook guards the rest — gathering the inputs (history, reference, masks,
overrides), the roll-ups, storing the flags. Whatever of that raises is logged with
its traceback, the partial work is rolled back to a savepoint, and the spill is stored
with one ``judging`` flag per subsystem in ``CHECK_ERROR`` naming the stage and the
error (plus the DAQ arrival flag, which needs no input). The spill still closes and is
announced; the worker goes on.

One kind of error is *not* absorbed: a database outage (:func:`is_outage`). Storing
"could not judge" for every spill of an outage would turn a pause into a run of
unjudged spills; instead the error reaches the worker, which rolls the whole close
back and retries it once the database answers (its existing outage semantics).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import boost_histogram as bh
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.checks import CheckResult, Quality
from dqm.checks._core import error_text
from dqm.config import Settings
from dqm.core.arrival import arrival_judgement
from dqm.core.evaluate import (
    ARRIVAL_INSTRUCTION,
    Judgement,
    Verdict,
    config_version,
    evaluate_spill,
)
from dqm.core.incidents import find_incidents
from dqm.core.specs import SUBSYSTEMS, SpecSet
from dqm.store.engine import is_outage
from dqm.store.flags import (
    JUDGING_CHECK,
    CheckInputs,
    gather_inputs,
    recorded_inputs,
    spill_arrival,
    store_verdict,
)
from dqm.store.history import RecentHistograms
from dqm.store.incidents import record_incidents
from dqm.store.learned import ModelCache
from dqm.store.models import SPILL_OPEN, CheckOverride, Spill
from dqm.store.references import ReferenceCache
from dqm.store.runs import lock_run
from dqm.store.spills import ClosedSpill, spill_histograms

__all__ = ["SpillJudge", "JUDGING_CHECK", "JUDGING_FAILED_INSTRUCTION"]

log = logging.getLogger("dqm.store.judge")

JUDGING_FAILED_INSTRUCTION = (
    "The DQM could not judge this spill: call the DQM on-call expert with the error shown. "
    "The spill's data are stored; once fixed, 'dqm recheck --run N --store' judges it again."
)


def _announcement(verdict: Verdict, version: str, inputs: CheckInputs | None = None) -> dict:
    failed = sum(j.result.quality == Quality.CHECK_ERROR for j in verdict.judgements)
    conditions = inputs.conditions if inputs else None
    return {
        "quality": int(verdict.overall),
        "subsystems": {s: int(q) for s, q in verdict.subsystems.items()},
        "config_version": version,
        "incidents": [i.to_dict() for i in verdict.incidents],
        **({"check_errors": failed} if failed else {}),
        **({"beam_config": conditions.beam_config} if conditions else {}),
    }


class SpillJudge:
    """Close hook (``judge(session, closed) -> announcement``) with an ``amend`` for late data
    and a ``rejudge`` for a run whose conditions arrived or changed after spills were judged.

    Runs inside the worker's closing transaction. See the module docstring for what
    it absorbs and what it lets through.
    """

    def __init__(self, settings: Settings, specs: SpecSet) -> None:
        self.settings = settings
        self.specs = specs
        self.refs = ReferenceCache()
        self.recent = RecentHistograms()
        self.models = ModelCache()

    def __call__(self, session: Session, closed: ClosedSpill) -> dict:
        sp = session.get(Spill, closed.spill_id)
        if sp is None:  # cannot happen inside the closing transaction; never crash on it
            log.error("closed spill id %d not found: nothing to judge", closed.spill_id)
            return {}
        if closed.error:
            return self._failed(session, sp, closed.error, "merging its partial histograms")

        def gather() -> CheckInputs:
            # conditions being stored by another worker now: wait for them (or this
            # spill is judged again once they are, see rejudge)
            lock_run(session, sp.run)
            return gather_inputs(
                session, sp, self.specs, self.refs, recent=self.recent, models=self.models
            )

        return self._judge_guarded(
            session,
            sp,
            gather,
            lambda: (closed.hists, closed.summary, closed.status),
            stages=(
                "gathering its inputs (conditions, history, reference, masks, overrides)",
                "judging",
                "storing its flags",
            ),
        )

    def rejudge(self, session: Session, run: int) -> list[dict]:
        """Judge again the run's spills judged under conditions other than its current
        ones (:func:`dqm.store.rejudge.rejudge_run`); one announcement per spill."""
        from dqm.store.rejudge import rejudge_run  # it builds on this module's neighbours

        return rejudge_run(
            session,
            run,
            self.specs,
            self.refs,
            warning_spills=self.settings.incident_warning_spills,
        )

    def amend(self, session: Session, spill_id: int) -> dict | None:
        """Judge a closed spill again after late batches were counted against it.

        With the inputs it was judged with (:func:`dqm.store.flags.recorded_inputs`), so
        only the DAQ arrival flag changes, and the stored flags end up the same as if
        the late batches had been seen before the spill closed: the verdict does not
        depend on how the worker happened to group its reads.
        """
        sp = session.get(Spill, spill_id)
        if sp is None or sp.status == SPILL_OPEN:
            return None
        announced = self._judge_guarded(
            session,
            sp,
            lambda: recorded_inputs(
                session, sp, self.specs, self.refs, recent=self.recent, models=self.models
            ),
            lambda: (spill_histograms(session, sp.id), sp.summary or {}, sp.status),
            stages=(
                "gathering its inputs again for late batches",
                "judging it again for late batches",
                "storing its flags again for late batches",
            ),
        )
        return {**announced, "amended": "late"}

    def _judge_guarded(
        self,
        session: Session,
        sp: Spill,
        gather: Callable[[], CheckInputs],
        spill_data: Callable[[], tuple[Mapping[str, bh.Histogram], Mapping, str]],
        *,
        stages: tuple[str, str, str],
    ) -> dict:
        """Gather the inputs, judge, store the flags, inside one savepoint: the announcement.

        ``spill_data`` gives the spill's histograms, summary and closing status.

        Whatever raises (but a database outage, which the worker retries) is logged,
        rolled back to the savepoint and stored as the spill's ``judging`` CHECK_ERROR
        flags naming the stage (``stages``: gathering, judging, storing) and the error.
        """
        stage = stages[0]
        try:
            with session.begin_nested():
                inputs = gather()
                hists, summary, status = spill_data()
                stage = stages[1]
                verdict = evaluate_spill(
                    self.specs,
                    hists,
                    summary,
                    status=status,
                    arrival=spill_arrival(sp),
                    **inputs.evaluate_kwargs(),
                )
                stage = stages[2]
                store_verdict(session, sp, verdict, inputs)
            self._latch(session, sp, verdict)
        except Exception as error:  # noqa: BLE001 — stored as CHECK_ERROR, never a crash
            if is_outage(error):
                raise
            log.error(
                "judging failed while %s: %s",
                stage,
                error_text(error),
                exc_info=error,
                extra={"run": sp.run, "spill": sp.spill},
            )
            return self._failed(session, sp, error_text(error), stage)
        return _announcement(verdict, inputs.version, inputs)

    def _latch(self, session: Session, sp: Spill, verdict: Verdict) -> list[int]:
        """Open or extend the stored incidents (:mod:`dqm.store.incidents`); ids of new ones.

        In a savepoint of its own: the flags are stored already, and an incident that could
        not be stored is logged, never a reason to lose the verdict or stop the worker.
        """
        try:
            with session.begin_nested():
                opened = record_incidents(
                    session, sp, verdict, warning_spills=self.settings.incident_warning_spills
                )
                return [row.id for row in opened]
        except Exception as error:  # noqa: BLE001 — the spill's flags stand regardless
            if is_outage(error):
                raise
            log.error(
                "storing the spill's incidents failed: %s",
                error_text(error),
                exc_info=error,
                extra={"run": sp.run, "spill": sp.spill},
            )
            return []

    # ------------------------------------------------------------------ failure
    def _version(self, session: Session) -> str:
        try:
            with session.begin_nested():
                newest = session.scalar(select(func.max(CheckOverride.id)))
        except Exception as error:  # noqa: BLE001
            if is_outage(error):
                raise
            newest = None
        return config_version(self.specs, newest)

    def _failed(self, session: Session, sp: Spill, text: str, during: str) -> dict:
        """Store "judging failed" (CHECK_ERROR per subsystem) and the DAQ arrival flag."""
        failure = CheckResult(
            Quality.CHECK_ERROR,
            None,
            {},
            f"judging this spill failed while {during}: {text}",
            {"error": text, "during": during},
            JUDGING_CHECK,
        )
        verdict = Verdict(
            [
                Judgement(subsystem, None, JUDGING_CHECK, failure, JUDGING_FAILED_INSTRUCTION)
                for subsystem in SUBSYSTEMS
            ]
        )
        daq = arrival_judgement(sp.status, spill_arrival(sp))
        if daq is not None:
            verdict.judgements.append(Judgement("daq", None, daq.check, daq, ARRIVAL_INSTRUCTION))
        try:  # the same incidents as any verdict (pure: should not fail; never block on it)
            verdict.judgements, verdict.incidents = find_incidents(verdict.judgements, self.specs)
        except Exception:  # noqa: BLE001
            log.exception("grouping the judging failure into incidents failed")
        version = self._version(session)
        inputs = CheckInputs({}, {}, None, {}, {}, version)
        try:
            with session.begin_nested():
                store_verdict(session, sp, verdict, inputs)
            self._latch(session, sp, verdict)
        except Exception as error:  # noqa: BLE001 — the spill closes regardless
            if is_outage(error):
                raise
            log.error(
                "could not store the judging failure either: %s",
                error_text(error),
                exc_info=error,
                extra={"run": sp.run, "spill": sp.spill},
            )
        return {**_announcement(verdict, version), "judging_error": failure.explanation}
