"""VETO and VHCAL are judged like the other calorimeters: dead and hot counters/cells, named.

Simulated spills judged as the worker judges them (the validation study's judge: same
specs, a reference summed from clean spills, the run's history), with one fault injected
by the simulator. A shifter must see the counter or cell by name, in one incident, and a
clean spill must raise nothing on either detector.
"""

from __future__ import annotations

import pytest

from dqm.checks import Quality
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.scenarios import NOMINAL_BEAM
from dqm.sim.study import Study, StudyConfig

SPILL = 4  # judged after 4 clean spills of the run's own history


@pytest.fixture(scope="module")
def study(specs):
    config = StudyConfig(reference_spills=6, clean_spills=SPILL + 1, history_spills=SPILL)
    s = Study(specs, config)
    s.clean_run(NOMINAL_BEAM, NOMINAL_BEAM, SPILL + 1)
    return s


def judged(study: Study, anomaly: str = ""):
    history = study.clean_run(NOMINAL_BEAM, NOMINAL_BEAM, SPILL)
    faults = [parse_anomaly(anomaly.replace(":", f"@{SPILL}:", 1))] if anomaly else []
    cfg = study.settings(NOMINAL_BEAM, SPILL)
    return study.observe(cfg, SPILL, history.summaries[:SPILL], NOMINAL_BEAM, faults)


def _ours(outcome):
    return [
        j
        for j in outcome.judgements
        if (j.histogram or "").startswith(("veto", "vhcal"))
        and j.result.quality in (Quality.WARNING, Quality.BAD, Quality.CHECK_ERROR)
    ]


def test_a_clean_spill_raises_nothing_on_veto_or_vhcal(study):
    outcome = judged(study)
    assert _ours(outcome) == [], [f"{j.histogram}/{j.check}" for j in _ours(outcome)]


@pytest.mark.parametrize(
    ("anomaly", "name", "check"),
    [
        ("dead_cell:detector=veto,cell=1/0", "VETO counter (1,0)", "dead_channels"),
        ("hot_cell:detector=veto,cell=2/1", "VETO counter (2,1)", "hot_channels"),
        ("hot_cell:detector=vhcal,cell=0/1", "VHCAL cell (0,1)", "hot_channels"),
        # a cell firing in 0.2 % of the events: ≈ 40 hits where the reference expects ≈ 2
        ("hot_cell:detector=vhcal,cell=1/0,fraction=0.002", "VHCAL cell (1,0)", "hot_channels"),
    ],
)
def test_a_dead_or_hot_counter_is_named_in_one_incident(study, anomaly, name, check):
    # When a spill carries the fault
    outcome = judged(study, anomaly)
    # Then the calorimeter tile is BAD, a BAD flag of that check names the counter or cell
    assert outcome.qualities["calorimeter"] is Quality.BAD
    named = [j for j in outcome.bad if j.check == check and name in j.result.explanation]
    assert named, [f"{j.histogram}/{j.check}: {j.result.explanation}" for j in outcome.bad]
    # and the shifter is sent to one expert: one incident, on the calorimeter
    assert [i.subsystem for i in outcome.incidents] == ["calorimeter"], outcome.incidents
