"""Change detection as the worker runs it: simulated spills through every shipped check.

The whole judge (:class:`dqm.sim.validate._Judge`: simulate → fill → summarise → all
checks against a reference run, the run's history and its certified start) on a glitch,
a persistent 1 % momentum-scale step and a slow momentum ramp. 5 000 events per spill
keep it fast: a 1 % step is then 20σ of a spill's Δp mean.
"""

from __future__ import annotations

import pytest

from dqm.checks import Quality
from dqm.sim.anomalies import active_anomalies, parse_anomaly
from dqm.sim.validate import StudyConfig, _Judge

CONFIG = StudyConfig(events_per_spill=5_000, reference_spills=20, run=700)
TREND = {"cusum", "ewma"}


@pytest.fixture(scope="module")
def judge(specs) -> _Judge:
    j = _Judge(specs, CONFIG)
    for s in range(CONFIG.reference_spills):
        hists, summary = j.spill(CONFIG.run + 1, s)
        for name, h in hists.items():
            j.reference[name] = j.reference[name] + h if name in j.reference else h
        j.reference_summaries.append(summary)
    return j


#: (judge, run) -> (summary, verdict) of the run's spills before any anomaly starts: an anomaly
#: changes nothing before its first spill (a spill's random numbers depend on seed, run and
#: spill only), so runs that differ from that spill on share their clean start
_CLEAN_START: dict[tuple[int, int], list[tuple[dict, object]]] = {}


def judged_run(judge: _Judge, anomaly: str, n_spills: int, run: int) -> list:
    """Every spill's verdict of a run with ``anomaly`` injected."""
    anomalies = (parse_anomaly(anomaly),)
    clean = _CLEAN_START.setdefault((id(judge), run), [])
    past: list[dict] = []
    verdicts = []
    started = False  # has the anomaly acted on a spill yet (from then on, nothing is shared)
    for s in range(n_spills):
        started = started or bool(active_anomalies(anomalies, s))
        if not started and s < len(clean):
            summary, verdict = clean[s]
        else:
            hists, summary = judge.spill(run, s, anomalies)
            verdict = judge.judge(hists, summary, past)
            if not started:
                clean.append((summary, verdict))
        verdicts.append(verdict)
        past.append(summary)
    return verdicts


def momentum(verdict) -> Quality:
    return verdict.subsystems["momentum"]


def trend_flags(verdict) -> list[str]:
    return [
        f"{j.check}: {j.result.explanation}"
        for j in verdict.judgements
        if j.check in TREND and j.result.quality >= Quality.WARNING
    ]


def test_one_spill_glitch_flags_only_that_spill(judge) -> None:
    # Given a run in which spill 30 alone has its MS2 momentum scale 2 % off
    verdicts = judged_run(judge, "ms2_scale@30:factor=1.02", 52, CONFIG.run)
    # Then the momentum tile is BAD on that spill …
    assert momentum(verdicts[30]) is Quality.BAD
    # … and GOOD on every spill before and after it: no trail of "Δp is drifting"
    others = [s for s in range(52) if s != 30]
    assert [s for s in others if momentum(verdicts[s]) is not Quality.GOOD] == []
    assert all(trend_flags(verdicts[s]) == [] for s in others)


def test_persistent_one_percent_step_is_flagged_on_every_spill_while_it_lasts(judge) -> None:
    # Given a 1 % MS2 scale step from spill 25 that lasts 65 spills (beyond the 60-spill
    # history window), then ends
    verdicts = judged_run(judge, "ms2_scale@25-89:factor=1.01", 95, CONFIG.run)
    step = verdicts[25:90]
    # Then the momentum tile is flagged on every one of its spills …
    assert all(momentum(v) >= Quality.WARNING for v in step)
    # … with change detection BAD from its 4th spill to its last (never sliding back)
    cusum = [next(j.result for j in v.judgements if j.check == "cusum").quality for v in step]
    assert cusum[3:] == [Quality.BAD] * (len(step) - 3)
    last = next(j.result for j in step[-1].judgements if j.check == "cusum")
    assert "from the reference run's 20 certified spills" in last.explanation
    # and the alarm ends within two spills of the step ending
    assert all(momentum(v) is Quality.GOOD for v in verdicts[92:])


def test_slow_ramp_is_flagged_and_stays_flagged(judge) -> None:
    # Given the MS2 momentum scale creeping by 0.05 % per spill from spill 25
    verdicts = judged_run(judge, "momentum_drift@25-:per_spill=0.0005", 60, CONFIG.run)
    flagged = [s for s, v in enumerate(verdicts) if trend_flags(v)]
    # Then change detection flags it within 8 spills (0.4 %) and on every spill after
    assert flagged and 25 <= flagged[0] <= 33
    assert flagged == list(range(flagged[0], 60))


def test_run_start_anchor_without_reference(specs) -> None:
    # Given no reference at all: the run anchors on its own first 20 certified spills
    bare = _Judge(specs, CONFIG)
    verdicts = judged_run(bare, "ms2_scale@30-:factor=1.01", 45, CONFIG.run + 30)
    result = next(j.result for j in verdicts[-1].judgements if j.check == "cusum")
    assert result.quality is Quality.BAD
    assert "from this run's first 20 certified spills" in result.explanation
