"""Judge one spill: run every check declared in the specs. Pure: no I/O.

The inputs are everything a flag depends on — the spill's histograms and summary,
the run's earlier spills (history), the reference histograms, masked channels and
the expert threshold overrides — so the same inputs always give the same flags.
That is what lets ``dqm recheck`` reproduce live flags exactly.

Each check judges the events that carry its histogram's DAQ sources and says on how many
(:mod:`dqm.core.coverage`); the judgements are then grouped into one incident per cause
(:mod:`dqm.core.incidents`, rules in ``histograms/causes.toml``).

The verdict's data model is in :mod:`dqm.core.verdict`, the run's history series in
:mod:`dqm.core.spill_history`, parameters from the run conditions in
:mod:`dqm.core.conditions_judgement`; their names are importable from here as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import boost_histogram as bh

from dqm.checks import CheckContext, CheckResult, Quality, run_check
from dqm.checks._core import check_error, error_text
from dqm.core.arrival import Arrival, arrival_judgement
from dqm.core.conditions import RunConditions
from dqm.core.conditions_judgement import NO_CONDITIONS, conditions_judgement, with_conditions
from dqm.core.coverage import SourceCoverage
from dqm.core.incidents import Incident, find_incidents
from dqm.core.specs import HistogramSpec, SpecSet
from dqm.core.spill_history import (
    HISTORY_SPILLS,
    QUALITY_KEY,
    REFERENCE_SPILLS,
    SPILL_KEY,
    accumulated,
    config_version,
    history_series,
    record_quality,
)
from dqm.core.status import SPILL_COMPLETE
from dqm.core.verdict import Judgement, Verdict, severity

__all__ = [
    "Arrival",
    "Judgement",
    "Verdict",
    "Incident",
    "evaluate_spill",
    "judge_check",
    "CHECK_ERROR_INSTRUCTION",
    "config_version",
    "history_series",
    "record_quality",
    "accumulated",
    "HISTORY_SPILLS",
    "REFERENCE_SPILLS",
    "QUALITY_KEY",
    "SPILL_KEY",
    "NO_CONDITIONS",
    "with_conditions",
    "conditions_judgement",
    "severity",
]

log = logging.getLogger("dqm.core.evaluate")


def evaluate_spill(
    specs: SpecSet,
    hists: Mapping[str, bh.Histogram],
    summary: Mapping[str, float | None],
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    reference: Mapping[str, bh.Histogram] | None = None,
    masked: Mapping[str, Sequence[Sequence[int]]] | None = None,
    overrides: Mapping[tuple[str, str], Mapping] | None = None,
    status: str = SPILL_COMPLETE,
    batches: tuple[int, int | None] | None = None,
    arrival: Arrival | None = None,
    conditions: RunConditions | None = None,
    reference_conditions: RunConditions | None = None,
    run_start: Mapping[str, Sequence[float]] | None = None,
    reference_history: Mapping[str, Sequence[float]] | None = None,
    recent: Sequence[Mapping[str, bh.Histogram]] = (),
    models: Mapping[str, object] | None = None,
) -> Verdict:
    """Run every spec check; ``overrides[(histogram, check)]`` replaces parameters.

    Never raises because of a check: whatever one raises becomes that check's
    ``CHECK_ERROR`` result (:func:`judge_check`) and the others still run.

    Args:
        status: ``"complete"`` or ``"incomplete"`` (closed by the timeout).
        batches: ``(received, expected)`` batches; kept for old callers, ``arrival``
            says more (events, batches after the marker).
        arrival: what the end-of-spill marker announced against what arrived; judged
            by :func:`dqm.core.arrival.arrival_judgement` (a ``daq`` flag when they
            disagree or the spill is incomplete). Neither ``arrival`` nor ``batches``
            on a complete spill (a simulation): nothing to judge.
        conditions: the run's conditions (None: never received); parameters written as
            ``"@p_beam_gev"`` take their value from them (:func:`with_conditions`).
        reference_conditions: those the reference was taken under (None: not recorded);
            a difference is a ``daq`` flag (:func:`conditions_judgement`).
        run_start, reference_history: per-spill series (as :func:`history_series` makes
            them) of the run's first spills and of the reference run's spills: the
            anchors of change detection (see :mod:`dqm.checks.trend`).
        recent: histograms of the run's last spills before this one (oldest first), for
            checks that add up spills (``spills`` > 1).
        models: the learned model per subsystem for the run's beam configuration
            (:class:`dqm.learn.LearnedModel`, the ``pca_score`` check's input).
    """
    no_reference = None
    if not reference:
        no_reference = (
            f"{NO_CONDITIONS}: no reference can be chosen"
            if conditions is None
            else f"no reference for {conditions.beam_config} (an expert certifies one: "
            f"dqm reference set RUN)"
        )
    reference = reference or {}
    masked = masked or {}
    overrides = overrides or {}
    numeric = {
        k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and v is not None
    }
    coverage = SourceCoverage.from_summary(summary)
    verdict = Verdict()
    for spec in specs:
        for check in spec.checks:
            params = dict(check.params)
            params.update(overrides.get((spec.name, check.type), {}))
            judged = spec.judged_by(check.type)  # the histogram's sources and the check's own
            result = coverage.not_judged(judged, check.type) if coverage else None
            if result is None:
                ready = with_conditions(check.type, params, conditions, no_reference=no_reference)
                result = (
                    ready
                    if isinstance(ready, CheckResult)
                    else judge_check(
                        check.type,
                        partial(
                            _context,
                            spec,
                            hists,
                            reference,
                            numeric,
                            history,
                            masked,
                            conditions=conditions,
                            anchors=(run_start, reference_history),
                            recent=recent,
                            model=(models or {}).get(spec.subsystem),
                        ),
                        ready,
                        where=spec.name,
                    )
                )
            if coverage:
                result = coverage.annotate(judged, result)
            instruction = check.instruction or spec.instruction
            if result.quality == Quality.CHECK_ERROR:
                instruction = CHECK_ERROR_INSTRUCTION  # not the detector's instruction
            verdict.judgements.append(
                Judgement(spec.subsystem, spec.name, check.type, result, instruction)
            )
    about_conditions = conditions_judgement(conditions, reference_conditions)
    if about_conditions is not None:
        verdict.judgements.append(about_conditions)
    if arrival is None and (batches is not None or status != SPILL_COMPLETE):
        got, expected = batches or (0, None)
        arrival = Arrival(received_batches=got, expected_batches=expected)
    daq = None if arrival is None else arrival_judgement(status, arrival)
    if daq is not None:
        verdict.judgements.append(Judgement("daq", None, daq.check, daq, ARRIVAL_INSTRUCTION))
    verdict.judgements, verdict.incidents = find_incidents(verdict.judgements, specs)
    return verdict


def _context(
    spec: HistogramSpec,
    hists: Mapping[str, bh.Histogram],
    reference: Mapping[str, bh.Histogram],
    summary: Mapping[str, float],
    history: Mapping[str, Sequence[float]] | None,
    masked: Mapping[str, Sequence[Sequence[int]]],
    *,
    conditions: RunConditions | None = None,
    anchors: tuple[Mapping[str, Sequence[float]] | None, Mapping[str, Sequence[float]] | None] = (
        None,
        None,
    ),
    recent: Sequence[Mapping[str, bh.Histogram]] = (),
    model: object = None,
) -> CheckContext:
    """One histogram's check inputs (built inside the judge's guard: it may raise too)."""
    name = spec.name
    return CheckContext(
        histogram=hists.get(name),
        reference=reference.get(name),
        summary=summary,
        history=history,
        masked=frozenset(tuple(c) for c in masked.get(name, ())),
        conditions=conditions,
        subsystem=spec.subsystem,
        run_start=anchors[0],
        reference_history=anchors[1],
        histograms=hists,
        references=reference,
        recent=tuple(r.get(name) for r in recent),
        model=model,
    )


#: What the shifter does about a check that could not run: its own instruction (call the
#: subsystem's expert) would send them after a detector problem nobody has seen.
CHECK_ERROR_INSTRUCTION = (
    "This check could not run (error shown): call the DQM on-call expert. The spill's other "
    "checks are valid; once fixed, 'dqm recheck --run N --store' judges the run again."
)

#: What the shifter does about a spill whose data and end-of-spill marker disagree.
ARRIVAL_INSTRUCTION = (
    "Spill data incomplete or not as announced: check the DAQ event builder and the network "
    "to the DQM; call the DAQ expert if it repeats."
)

#: Errors whose traceback was logged already (bounded): a check failing on every spill
#: logs its traceback once, then one line per spill.
_LOGGED: set[tuple[str, str, str]] = set()


def judge_check(
    name: str,
    context: CheckContext | Callable[[], CheckContext],
    params: Mapping | None = None,
    *,
    where: str = "",
) -> CheckResult:
    """:func:`dqm.checks.run_check` that never raises: an exception becomes CHECK_ERROR.

    Judging must never stop the DQM: a check that raises (a bug, an unusable
    reference, an invalid threshold override) becomes a :attr:`Quality.CHECK_ERROR`
    result naming the check and the error, the traceback is logged (once per
    distinct error, then one line per occurrence), and the spill's other checks run.

    Args:
        name: the registered check.
        context: the check's inputs, or a function making them (so an error while
            building them is caught too).
        params: the spec's parameters with overrides applied.
        where: the histogram, for the log line.
    """
    try:
        ctx = context() if callable(context) else context
        return run_check(name, ctx, params)
    except Exception as error:  # noqa: BLE001 — becomes a visible CHECK_ERROR result
        key = (where, name, error_text(error))
        first = key not in _LOGGED
        if first and len(_LOGGED) < 1024:
            _LOGGED.add(key)
        log.error(
            "check %s/%s raised %s%s",
            where or "-",
            name,
            key[2],
            "" if first else " (traceback logged before)",
            exc_info=error if first else None,
        )
        return check_error(name, error)
