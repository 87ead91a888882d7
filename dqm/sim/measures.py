"""One function per :class:`~dqm.sim.scenarios.Measure`: run a row, say whether it passed.

Each returns a :class:`~dqm.sim.validate.RowResult` whose ``detail`` is the measure's own
record (what the report's table for that measure shows) and whose ``reasons`` say, in a
sentence each, what fell short. Definitions shared by all of them:

* *detected* — the row's subsystem is BAD (the level that sends someone to an expert);
* *delay* — the number of anomalous spills up to and including the first BAD one
  (1 = flagged on the first spill of the change);
* *named* — a BAD flag of that subsystem names one of the row's words (in its histogram or
  explanation, case-insensitively);
* *one incident* — exactly one BAD incident on the detection spill, on the row's subsystem
  (and naming its cause once incidents are grouped by cause);
* *stays up* — the share of the spills after the first BAD one on which the subsystem is
  still flagged (WARNING or BAD: the tile does not turn green while the fault persists);
  the share still BAD is reported beside it.

Layer: pure (drives :class:`~dqm.sim.validate.Study`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

from dqm.checks import Quality
from dqm.core.evaluate import severity
from dqm.sim.anomalies import Anomaly, parse_anomaly
from dqm.sim.count_bound import count_bound
from dqm.sim.matrix import MATRIX
from dqm.sim.results import (
    ChangeResult,
    CleanResult,
    DelayResult,
    GlitchResult,
    RowResult,
    Status,
)
from dqm.sim.scenarios import Measure, Scenario
from dqm.sim.study import SpillOutcome, Study, name_of

__all__ = [
    "MEASURES",
    "measure_clean",
    "measure_detect",
    "measure_delay",
    "measure_glitch",
    "measure_persist",
    "measure_ramp",
]


def _anomaly(row: Scenario, first: int, last: int | None = None) -> tuple[Anomaly, ...]:
    if not row.anomaly:
        return ()
    return (dataclasses.replace(parse_anomaly(row.anomaly), first_spill=first, last_spill=last),)


def _one_incident(row: Scenario, outcome: SpillOutcome) -> bool:
    if not row.single_cause or len(outcome.incidents) != 1:
        return not row.single_cause
    (incident,) = outcome.incidents
    if incident.subsystem != row.subsystem:
        return False
    if outcome.provisional or not row.cause:
        return True
    return row.cause in incident.cause or row.cause in incident.explanation


def _incident_names(outcome: SpillOutcome) -> list[str]:
    return [f"{i.subsystem}: {i.cause}" for i in outcome.incidents]


def _result(row: Scenario, detail: object, reasons: list[str], provisional: bool) -> RowResult:
    return RowResult(
        row, Status.FAIL if reasons else Status.PASS, reasons, detail, 0.0, provisional
    )


# --------------------------------------------------------------------------- clean


def measure_clean(study: Study, row: Scenario, index: int) -> RowResult:
    n = study.config.length(row.spills) if row.spills else study.config.clean_spills
    outcomes = study.clean_run(row.beam, row.reference_beam, n).outcomes[:n]
    bad = [(o.spill, [name_of(j) for j in o.bad]) for o in outcomes if o.bad]
    result = CleanResult(
        n,
        bad,
        sum(1 for o in outcomes if o.warning and not o.bad),
        Counter(name for _, names in bad for name in names),
        any(o.says(row.words) for o in outcomes) if row.words else None,
    )
    reasons = []
    if result.bad_fraction > row.max_bad:
        reasons.append(
            f"{len(bad)} of {n} clean spills BAD ({100 * result.bad_fraction:.2f} %) > "
            f"{100 * row.max_bad:g} %"
        )
    if result.words_found is False:
        reasons.append(f"no explanation says {' or '.join(map(repr, row.words))}")
    return _result(row, result, reasons, False)


# --------------------------------------------------------------------------- changes


def _watch(
    study: Study,
    row: Scenario,
    start: int,
    spills: int,
    *,
    follow: int | None = None,
    seed: int | None = None,
    on_first: Callable[[int, SpillOutcome], None] | None = None,
) -> ChangeResult:
    """Judge ``spills`` spills of the change from ``start``; stop ``follow`` after the first BAD."""
    past = study.history_for(row, start)
    anomalies = _anomaly(row, start)
    result = ChangeResult(start, 0)
    for k in range(1, spills + 1):
        s = start + k - 1
        cfg = study.settings(row.beam, s, seed=seed, ramp=row.ramp, ramp_spills=k, extra=row.extra)
        outcome = study.observe(cfg, s, past, row.reference_beam, anomalies)
        past.append(outcome.summary)
        result.watched = k
        if result.delay is None:
            first = outcome.first_bad(row.subsystem)
            if first is None:
                continue
            named = outcome.named(row.subsystem, row.words)
            shown = named or first
            result.delay, result.flagged_by = k, name_of(shown)
            result.explanation, result.named = shown.result.explanation, named is not None
            result.incidents = _incident_names(outcome)
            result.one_incident = _one_incident(row, outcome)
            if row.ramp is not None:
                result.change_at_detection = row.ramp.change(k)
            if on_first is not None:
                on_first(k, outcome)
        else:
            result.after.append(outcome.qualities[row.subsystem])
        if result.delay is not None and follow is not None and len(result.after) >= follow:
            break
    return result


def _change_reasons(row: Scenario, r: ChangeResult, max_delay: int | None) -> list[str]:
    if r.delay is None:
        return [f"{row.subsystem} not BAD within {r.watched} spills"]
    reasons = []
    if max_delay is not None and r.delay > max_delay:
        reasons.append(f"{row.subsystem} BAD only on anomalous spill {r.delay} > {max_delay}")
    if not r.named:
        reasons.append(f"the BAD explanation names none of {', '.join(row.words)}")
    if not r.one_incident:
        reasons.append(f"{len(r.incidents)} incidents ({'; '.join(r.incidents)}), not one")
    return reasons


def _up_reason(row: Scenario, r: ChangeResult) -> list[str]:
    if r.flag_up is not None and r.flag_up < row.min_up:
        return [
            f"flagged on only {100 * r.flag_up:.0f} % of the {len(r.after)} spills after the "
            f"first BAD one (target {100 * row.min_up:g} %)"
        ]
    return []


def _provisional(row: Scenario, study: Study) -> bool:
    """Incident counts are final: the judge groups flags by cause (:mod:`dqm.core.incidents`)."""
    return False


def measure_detect(study: Study, row: Scenario, index: int) -> RowResult:
    watch = row.max_delay + 2
    start = study.start_spill(index, len(MATRIX), watch)
    r = _watch(study, row, start, watch)
    return _result(row, r, _change_reasons(row, r, row.max_delay), _provisional(row, study))


def measure_persist(study: Study, row: Scenario, index: int) -> RowResult:
    spills = study.config.length(row.spills)
    start = study.start_spill(index, len(MATRIX), spills)
    r = _watch(study, row, start, spills)
    reasons = _change_reasons(row, r, row.max_delay) + _up_reason(row, r)
    return _result(row, r, reasons, _provisional(row, study))


def measure_ramp(study: Study, row: Scenario, index: int) -> RowResult:
    assert row.ramp is not None and row.limit is not None, "a ramp row needs ramp and limit"
    spills = study.config.length(row.spills)
    start = study.start_spill(index, len(MATRIX), spills)
    r = _watch(study, row, start, spills, follow=study.config.follow_spills)
    reasons = _change_reasons(row, r, None) + _up_reason(row, r)
    if r.change_at_detection is not None and r.change_at_detection >= row.limit:
        reasons.append(
            f"caught at {r.change_at_detection:g} {row.ramp.unit}, not before {row.limit:g}"
        )
    return _result(row, r, reasons, _provisional(row, study))


def measure_delay(study: Study, row: Scenario, index: int) -> RowResult:
    cfg = study.config
    trials = row.trials or cfg.seeds
    horizon = cfg.length(row.spills)
    runs = [
        _watch(
            study,
            row,
            study.start_spill(j, trials),
            horizon,
            follow=cfg.follow_spills,
            seed=cfg.seed + 1000 * (index + 1) + j,
        )
        for j in range(trials)
    ]
    result = DelayResult(
        trials,
        horizon,
        [r.delay for r in runs],
        sum(r.named for r in runs),
        sum(r.one_incident for r in runs),
        [r.flag_up for r in runs if r.flag_up is not None],
        [r.bad_up for r in runs if r.bad_up is not None],
    )
    if row.bound is not None:
        clean = study.clean_run(row.beam, row.reference_beam, cfg.clean_spills)
        result.bound = count_bound(study, row, clean.outcomes)
    reasons = []
    if result.undetected:
        reasons.append(f"{result.undetected} of {trials} trials not BAD within {horizon} spills")
    if result.named < len(result.detected):
        reasons.append(f"named in {result.named} of {len(result.detected)} detections")
    if row.single_cause and result.one_incident < len(result.detected):
        reasons.append(f"one incident in {result.one_incident} of {len(result.detected)}")
    ratio, bound = result.ratio, row.bound
    if ratio is not None and bound is not None and ratio > bound.max_ratio:
        reasons.append(f"mean delay {ratio:.2f}× the best test's, > {bound.max_ratio:g}×")
    if result.mean_up is not None and result.mean_up < row.min_up:
        reasons.append(
            f"flagged on {100 * result.mean_up:.0f} % of spills after detection while the "
            f"excess persists (target {100 * row.min_up:g} %)"
        )
    return _result(row, result, reasons, _provisional(row, study))


# --------------------------------------------------------------------------- glitch


def measure_glitch(study: Study, row: Scenario, index: int) -> RowResult:
    follow = study.config.length(row.spills)
    start = study.start_spill(index, len(MATRIX), follow + 1)
    control = study.clean_run(row.beam, row.reference_beam, start + follow + 1).outcomes
    past = study.history_for(row, start)
    cfg = study.settings(row.beam, start, extra=row.extra)
    glitch = study.observe(cfg, start, past, row.reference_beam, _anomaly(row, start, start))
    past.append(glitch.summary)
    trailing = []
    for k in range(1, follow + 1):
        s = start + k
        outcome = study.observe(
            study.settings(row.beam, s, extra=row.extra), s, past, row.reference_beam
        )
        past.append(outcome.summary)
        clean = control[s]
        worse = [
            sub
            for sub, q in outcome.qualities.items()
            if q in (Quality.WARNING, Quality.BAD)
            and severity(q) > severity(clean.qualities.get(sub, Quality.NO_DATA))
        ]
        if worse:
            before = {name_of(j) for j in clean.bad + clean.warning}
            new = [
                f"{name_of(j)} {j.result.quality.name}"
                for j in outcome.bad + outcome.warning
                if j.subsystem in worse and name_of(j) not in before
            ]
            trailing.append((k, new or worse))
    first = glitch.first_bad(row.subsystem)
    named = glitch.named(row.subsystem, row.words)
    shown = named or first
    result = GlitchResult(
        start,
        name_of(shown) if shown else "",
        shown.result.explanation if shown else "",
        named is not None,
        _one_incident(row, glitch),
        _incident_names(glitch),
        follow,
        trailing,
    )
    reasons = []
    if first is None:
        reasons.append(f"{row.subsystem} not BAD on the glitch spill")
    elif not result.named:
        reasons.append(f"the BAD explanation names none of {', '.join(row.words)}")
    if first is not None and not result.one_incident:
        reasons.append(f"{len(result.incidents)} incidents on the glitch spill, not one")
    if trailing:
        reasons.append(
            f"flags trail the glitch on {len(trailing)} of {follow} later spills "
            f"(first: +{trailing[0][0]}: {', '.join(trailing[0][1])})"
        )
    return _result(row, result, reasons, _provisional(row, study))


MEASURES: dict[str, Callable[[Study, Scenario, int], RowResult]] = {
    Measure.CLEAN: measure_clean,
    Measure.DETECT: measure_detect,
    Measure.DELAY: measure_delay,
    Measure.GLITCH: measure_glitch,
    Measure.PERSIST: measure_persist,
    Measure.RAMP: measure_ramp,
}
