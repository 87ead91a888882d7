"""Evidence that the flags can be trusted: the detection study on simulated spills.

The same code (:mod:`dqm.sim.validate`) prints the table of docs/validation.md through
``dqm validate``; here it runs with fewer events per spill (5 000 instead of 20 000) to stay fast.
Only the π/K excess needs the nominal statistics: ×5 of 1e-4 is 2.5 hadrons per
5 000-event spill, so it is tested on its own at 20 000 events per spill.
"""

from __future__ import annotations

import pytest

from dqm.sim.validate import SCENARIOS, StudyConfig, format_report, run_study

FAST = StudyConfig(events_per_spill=5_000, clean_spills=200, reference_spills=20)


@pytest.fixture(scope="module")
def study(specs):
    # Given 200 clean spills, every anomaly injected in the middle of that run, and a drift
    without_pik = tuple(s for s in SCENARIOS if s.subsystem != "pik")
    return run_study(specs, FAST, scenarios=without_pik)


def test_at_most_one_percent_of_200_clean_spills_are_flagged_bad(study):
    # Then at most 1 % of clean spills are BAD for any reason
    assert study.config.clean_spills >= 200
    assert study.false_alarm_rate <= 0.01, format_report(study)


@pytest.mark.parametrize("label", [s.label for s in SCENARIOS if s.subsystem != "pik"])
def test_each_anomaly_is_bad_on_its_subsystem_within_two_spills_and_named(study, label):
    # Then the injected anomaly makes its subsystem BAD on the first or second anomalous spill,
    # and the BAD flag's explanation names the channel or quantity that was changed
    d = next(d for d in study.detections if d.scenario.label == label)
    assert d.spills_to_bad is not None and d.spills_to_bad <= 2, format_report(study)
    assert d.names_it, f"{label}: {d.explanation!r} names none of {d.scenario.names}"


def test_slow_momentum_drift_is_caught_by_change_detection_before_two_percent(study):
    # Then the CUSUM/EWMA says BAD while the scale is still less than 2 % off
    drift = study.drift
    assert drift.spills_to_bad is not None, format_report(study)
    assert drift.percent_at_detection < 2.0
    assert drift.check.split("/")[1] in ("cusum", "ewma") and "dp_mean" in drift.explanation
    assert study.failures() == []


def test_pik_times_five_is_bad_within_two_spills_at_nominal_statistics(specs):
    # Given spills of the simulator's nominal 20 000 events, π/K ×5 from spill 4 on
    pik = tuple(s for s in SCENARIOS if s.subsystem == "pik")
    config = StudyConfig(
        events_per_spill=20_000, clean_spills=6, reference_spills=4, first_anomaly_spill=4
    )
    # When the spills are judged
    result = run_study(specs, config, scenarios=pik, drift=False)
    # Then the π/K subsystem is BAD within two spills, the explanation naming the π/K fraction
    (d,) = result.detections
    assert d.spills_to_bad is not None and d.spills_to_bad <= 2, format_report(result)
    assert d.names_it and d.check == "hadron_tag/pik_fraction"


def test_report_is_a_markdown_table_with_one_row_per_anomaly(study):
    text = format_report(study)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(study.detections)
    assert "False alarms: " in text and "Drift" in text
