"""Judge one spill: run every check declared in the specs. Pure: no I/O.

The inputs are everything a flag depends on — the spill's histograms and summary,
the run's earlier spills (history), the reference histograms, masked channels and
the expert threshold overrides — so the same inputs always give the same flags.
That is what lets ``dqm recheck`` reproduce live flags exactly.

Each check judges the events that carry its histogram's DAQ sources and says on how many
(:mod:`dqm.core.coverage`); the judgements are then grouped into one incident per cause
(:mod:`dqm.core.incidents`, rules in ``histograms/causes.toml``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import boost_histogram as bh

from dqm.checks import (
    CHECKS,
    CheckContext,
    CheckResult,
    Quality,
    judged_worst,
    run_check,
    validate_check_params,
)
from dqm.checks._core import check_error, error_text
from dqm.core.arrival import Arrival, arrival_judgement
from dqm.core.conditions import RunConditions, UnresolvedCondition, resolve_params
from dqm.core.coverage import SourceCoverage
from dqm.core.incidents import Incident, find_incidents
from dqm.core.specs import SUBSYSTEMS, HistogramSpec, SpecSet
from dqm.core.status import SPILL_COMPLETE

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
    "NO_CONDITIONS",
    "with_conditions",
    "conditions_judgement",
]

log = logging.getLogger("dqm.core.evaluate")

#: How many earlier spills of the run the trend checks (CUSUM, EWMA, intensity) see; also how
#: many of the run's first spills (``run_start``) and at most how many spills of the reference
#: run (``REFERENCE_SPILLS``) change detection may anchor its baseline on.
HISTORY_SPILLS = 60
REFERENCE_SPILLS = 500
#: Summary key of the stored per-subsystem roll-up, and the history key of spill numbers.
QUALITY_KEY = "quality"
SPILL_KEY = "spill"
#: Why a check that needs the run's conditions (or a reference chosen by them) did not judge.
NO_CONDITIONS = "no run conditions received"


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
        its quality but sends the shifter to that incident instead of its own expert.
        """
        own = [j for j in self.judgements if j.subsystem == subsystem]
        rolled = judged_worst(j.result.quality for j in own)
        if rolled == Quality.GOOD:
            return None
        quiet = (Quality.GOOD,) if rolled == Quality.NO_DATA else (Quality.GOOD, Quality.NO_DATA)
        behind = [j for j in own if j.result.quality not in quiet]
        found = [self.consequence_of(j) for j in behind]
        causes = [i for i in found if i is not None]
        if not behind or len(causes) < len(found):
            return None
        return max(causes, key=lambda i: severity(i.quality))

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


def _flat(summary: Mapping | None) -> dict[str, float]:
    """A summary's numbers, with its stored roll-up ``{"quality": {subsystem: q}}`` flattened
    to ``"quality.<subsystem>"`` keys (see :func:`record_quality`)."""
    if not summary:
        return {}
    out = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    quality = summary.get(QUALITY_KEY)
    if isinstance(quality, Mapping):
        out.update(
            {f"{QUALITY_KEY}.{s}": float(q) for s, q in quality.items() if isinstance(q, int)}
        )
    return out


def history_series(
    summaries: Sequence[Mapping | None], spills: Sequence[int] | None = None
) -> dict[str, list[float]]:
    """Per-key series of earlier spills' summaries (oldest first), NaN where a key is missing.

    Live (:mod:`dqm.store.flags`), recheck and the detection study (:mod:`dqm.sim.validate`)
    all build the history with this one function, so they judge alike. Each spill's
    stored quality roll-up becomes ``"quality.<subsystem>"`` (change detection leaves
    flagged spills out of its baseline with it), and ``spills`` — the spill numbers, when
    given — becomes the ``"spill"`` series.
    """
    flat = [_flat(r) for r in summaries]
    keys = {k for r in flat for k in r}
    out = {k: [r.get(k, float("nan")) for r in flat] for k in sorted(keys)}
    if spills is not None:
        if len(spills) != len(summaries):
            raise ValueError(f"{len(spills)} spill numbers for {len(summaries)} summaries")
        out[SPILL_KEY] = [float(s) for s in spills]
    return out


def record_quality(summary: Mapping, verdict: Verdict) -> dict:
    """The summary with the verdict's per-subsystem roll-up under ``"quality"``.

    This is what later spills' change detection reads back through
    :func:`history_series` to know which spills were certified.
    """
    out = dict(summary)
    out[QUALITY_KEY] = {s: int(q) for s, q in verdict.subsystems.items()}
    return out


def accumulated(
    specs: SpecSet, overrides: Mapping[tuple[str, str], Mapping] | None = None
) -> tuple[set[str], int]:
    """Histograms whose checks add up earlier spills (``spills`` > 1), and how many earlier
    spills the largest of them needs."""
    names, most = set(), 1
    for spec in specs:
        for check in spec.checks:
            params = {**check.params, **(overrides or {}).get((spec.name, check.type), {})}
            spills = int(params.get("spills") or 1)
            if spills > 1:
                names.add(spec.name)
                most = max(most, spills)
    return names, most - 1


def severity(q: Quality | int) -> int:
    """Order for picking the flag behind a roll-up: NO_DATA < GOOD < WARNING < BAD."""
    return -1 if int(q) == int(Quality.NO_DATA) else int(q)


def config_version(specs: SpecSet, override_id: int | None) -> str:
    """``<spec hash>+<newest override id>``: names everything that sets a threshold."""
    return f"{specs.version}+{override_id or 0}"


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
            result = coverage.not_judged(spec, check.type) if coverage else None
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
                        ),
                        ready,
                        where=spec.name,
                    )
                )
            if coverage:
                result = coverage.annotate(spec, result)
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


def with_conditions(
    check: str,
    params: Mapping,
    conditions: RunConditions | None,
    *,
    no_reference: str | None = None,
) -> dict | CheckResult:
    """A check's parameters with ``"@name"`` resolved from the run conditions — or, when it
    cannot judge for want of them, the NO_DATA result that says why (never an error).

    ``no_reference`` is why the spill has no reference at all (no conditions, or none
    certified for this beam configuration); checks that need one get it as their reason,
    unless their parameters are invalid (an expert's override), which is CHECK_ERROR first.
    """
    try:
        resolved = resolve_params(params, conditions)
    except UnresolvedCondition as exc:
        return CheckResult(
            Quality.NO_DATA, None, {}, f"{NO_CONDITIONS} ({exc})", {"needs": "conditions"}, check
        )
    except ValueError as exc:  # a malformed reference in an override written by hand
        return check_error(check, exc)
    registered = CHECKS.get(check)
    if no_reference and registered is not None and registered.needs_reference:
        try:
            validate_check_params(check, resolved)
        except Exception as exc:  # noqa: BLE001 — a broken configuration is reported first
            return check_error(check, exc)
        return CheckResult(Quality.NO_DATA, None, {}, no_reference, {}, check)
    return resolved


def conditions_judgement(
    conditions: RunConditions | None, reference_conditions: RunConditions | None
) -> Judgement | None:
    """The DAQ flag about the run conditions: none received, or a reference taken under others.

    Nothing to say (None) when the run has its conditions and the reference matches them
    or did not record any (a reference set before conditions were recorded).
    """
    if conditions is None:
        return Judgement(
            "daq",
            None,
            "run_conditions",
            CheckResult(
                Quality.WARNING,
                None,
                {},
                f"{NO_CONDITIONS} from the DAQ for this run: momentum-scale checks and reference "
                "comparisons give NO_DATA",
                {"conditions": None},
                "run_conditions",
            ),
            "The DAQ did not announce this run's conditions (beam, momentum, magnets, trigger): "
            "call the DAQ expert. The spills are judged without them until they arrive.",
        )
    if reference_conditions is None:
        return None
    diffs = conditions.differences(reference_conditions)
    if not diffs:
        return None
    return Judgement(
        "daq",
        None,
        "reference_conditions",
        CheckResult(
            Quality.WARNING,
            float(len(diffs)),
            {},
            "the reference was taken under other conditions (this run vs reference): "
            + "; ".join(diffs),
            {
                "conditions": conditions.to_dict(),
                "reference_conditions": reference_conditions.to_dict(),
            },
            "reference_conditions",
        ),
        "Shape comparisons may flag the change of conditions, not the detector: ask the DQM "
        "expert to certify a reference for these conditions (dqm reference suggest).",
    )
