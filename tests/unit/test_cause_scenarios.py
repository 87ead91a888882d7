"""One cause, one incident: each DAQ source absent in turn, and the beam moving or widening.

Given a reference (clean spills summed, as ``dqm reference set`` makes one) and a few clean
spills of history, when a spill with one injected cause is simulated, filled, summarised and
judged exactly as the worker does (shipped specs and cause rules), then:

* exactly one incident, whose cause names the source (``daq_source_absent:MS1``) or the beam
  change (``beam_position``, ``beam_width``);
* no other subsystem sends the shifter to its expert: every WARNING/BAD (or NO_DATA for
  want of events) flag elsewhere follows from that incident;
* a histogram that needs the source holds only the events that had it (no zeros filled in),
  and its checks say on how many events they judged.
"""

from __future__ import annotations

from functools import cache

import boost_histogram as bh
import numpy as np
import pytest

from dqm.checks import Quality
from dqm.core.causes import percent
from dqm.core.evaluate import Verdict, evaluate_spill, history_series
from dqm.core.events import DAQ_SOURCES
from dqm.core.fill import Filler
from dqm.core.histio import add_into
from dqm.core.specs import load_specs
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, SpillData, simulate_spill
from tests.conftest import ROOT

RUN, REFERENCE_RUN = 600, 601
EVENTS = 20_000  # the study's spill size: the thresholds are set for it
HISTORY = 6

PROBLEMS = (Quality.WARNING, Quality.BAD)


@cache
def _specs():
    return load_specs(ROOT / "histograms")


def _cfg(run: int) -> SimConfig:
    return SimConfig(run=run, events_per_spill=EVENTS, batch_size=EVENTS)


def _fill(data: SpillData) -> tuple[dict[str, bh.Histogram], dict]:
    filler = Filler(_specs())
    hists, moments = filler.book(), {}
    view = BatchView(data.columns)
    filler.fill(hists, view)
    accumulate(moments, view)
    return hists, finalize(moments)


@cache
def _baseline() -> tuple[dict[str, bh.Histogram], tuple[dict, ...]]:
    reference: dict[str, bh.Histogram] = {}
    for s in range(10):
        add_into(reference, _fill(simulate_spill(_cfg(REFERENCE_RUN), s))[0])
    history = tuple(_fill(simulate_spill(_cfg(RUN), s))[1] for s in range(HISTORY))
    return reference, history


def judge(anomaly: str, spill: int) -> tuple[SpillData, dict[str, bh.Histogram], Verdict]:
    """The spill ``spill`` of the run with ``anomaly``, judged as the worker judges it."""
    reference, history = _baseline()
    data = simulate_spill(_cfg(RUN), spill, [parse_anomaly(anomaly)])
    hists, summary = _fill(data)
    verdict = evaluate_spill(
        _specs(),
        hists,
        summary,
        history=history_series(list(history)),
        reference=reference,
        conditions=data.conditions,  # announced with the run, as the DAQ does
    )
    return data, hists, verdict


def assert_one_incident_and_no_second_expert(verdict: Verdict, cause: str) -> None:
    assert [i.cause for i in verdict.incidents] == [cause], [
        (i.cause, i.explanation) for i in verdict.incidents
    ]
    (incident,) = verdict.incidents
    for j in verdict.judgements:
        if j.result.quality in PROBLEMS:
            assert j.cause == cause, f"{j.histogram}/{j.check}: {j.result.explanation}"
    for subsystem, quality in verdict.subsystems.items():
        if subsystem != incident.subsystem and quality != Quality.GOOD:
            assert verdict.follows_from(subsystem) is incident, (subsystem, quality.name)


def has(columns: dict[str, np.ndarray], sources: tuple[str, ...]) -> np.ndarray:
    bits = sum(1 << DAQ_SOURCES.index(s) for s in sources)
    return (columns["daq_sources"] & bits) == bits


WINDOWS = {
    "whole spill": "fraction=1",
    "half the spill (1.2-3.6 s)": "start_s=1.2,end_s=3.6",
}


@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("source", DAQ_SOURCES)
def test_a_missing_source_is_one_incident_naming_it(source, window):
    # Given the source absent for the window, in a spill of its own
    spill = HISTORY + 2 * DAQ_SOURCES.index(source) + list(WINDOWS).index(window)
    data, hists, verdict = judge(f"missing_source:source={source},{WINDOWS[window]}", spill)
    absent = ~has(data.columns, (source,))
    assert absent.any() and (absent.all() == (window == "whole spill"))
    # Then one incident, on the DAQ tile, naming the source and how much of the spill it missed
    cause = f"daq_source_absent:{source}"
    assert_one_incident_and_no_second_expert(verdict, cause)
    (incident,) = verdict.incidents
    assert incident.subsystem == "daq" and incident.quality == Quality.BAD
    expected = percent(absent.mean())  # "100 %", or ≈ "50 %" for the half of the spill
    assert incident.explanation == f"{source} absent in {expected} of events"
    assert source in incident.instruction and "DAQ expert" in incident.instruction
    # and every histogram that needs the source was filled from the events that had it only
    needing = [s for s in _specs() if source in s.requires]
    for spec in needing:
        filled_events = int(np.count_nonzero(has(data.columns, spec.requires)))
        if spec.kind in ("h1", "h2"):  # one entry per event with the sources, selected
            selected = has(data.columns, spec.requires)
            if spec.selection is not None:
                selected &= BatchView(data.columns).evaluate(spec.selection).astype(bool)
            assert hists[spec.name].sum(flow=True) == np.count_nonzero(selected), spec.name
        for j in verdict.judgements:
            if j.histogram == spec.name:
                assert j.result.details["n_judged"] == filled_events, (spec.name, j.check)
                if window == "whole spill":
                    assert j.result.quality == Quality.NO_DATA and j.cause == cause
                    assert f"{source} absent in all" in j.result.explanation
                else:
                    assert f"{source} absent in {expected})" in j.result.explanation


def test_zeros_of_a_missing_tracker_are_not_a_beam_spot_nor_a_signal():
    # MS1 and MS2 absent in the second half of the spill: before, x = 0 and p_MS2 = 0
    # were filled for every such event (a spike on the beam profile, events in the signal
    # region)
    data, hists, _ = judge("missing_source:source=MS1,fraction=0.5", 40)
    profile = hists["beam_x_ms1_2"]
    at_zero = profile.values()[profile.axes[0].index(0.0)]
    assert at_zero < 0.05 * np.count_nonzero(has(data.columns, ("MS1",))), at_zero
    data, hists, _ = judge("missing_source:source=MS2,fraction=0.5", 41)
    n_ms2 = np.count_nonzero(has(data.columns, ("MS2",)))
    assert hists["p_ms2_low_tail"].sum(flow=True) < 0.01 * n_ms2


@pytest.mark.parametrize(
    "anomaly,cause",
    [
        ("beam_shift:dx_mm=3", "beam_position"),
        ("beam_shift:dy_mm=3", "beam_position"),
        ("beam_width:factor=1.3", "beam_width"),
    ],
)
def test_a_beam_change_is_one_incident_and_the_calorimeter_follows_from_it(anomaly, cause):
    _, _, verdict = judge(anomaly, 30)
    assert_one_incident_and_no_second_expert(verdict, cause)
    (incident,) = verdict.incidents
    assert incident.subsystem == "beam" and incident.quality == Quality.BAD
    assert "M2 beam operator" in incident.instruction
    for j in incident.consequences:
        assert j.subsystem == "calorimeter" and j.histogram in {
            s.name for s in _specs() if s.kind == "cellmap"
        }


def test_a_wider_beam_moves_calorimeter_occupancy_and_it_is_marked_as_following():
    # the effect is real (the outer ECAL cells see more hits), so the rule is exercised
    _, _, verdict = judge("beam_width:factor=1.3", 31)
    (incident,) = verdict.incidents
    assert verdict.subsystems["calorimeter"] == Quality.BAD
    assert {j.check for j in incident.consequences} >= {"hot_channels"}
    assert verdict.follows_from("calorimeter") is incident
    assert incident.explanation.startswith("beam size changed: beam σ_x")


def test_a_clean_spill_has_no_incident_and_checks_judged_every_event():
    _, _, verdict = judge("beam_shift:dx_mm=0", 32)
    assert verdict.incidents == []
    n = {j.result.details.get("n_events") for j in verdict.judgements} - {None}
    assert len(n) == 1
    for j in verdict.judgements:
        if "n_judged" in j.result.details:
            assert j.result.details["n_judged"] == j.result.details["n_events"]
            assert "absent" not in j.result.explanation


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_check_needing_more_sources_than_its_histogram_follows_from_the_missing_one(window):
    # Given the BMS absent: the p_MS2 histogram needs only MS2, but its p_scale check reads
    # the passing-muon mean, whose core cut is relative to each event's p_BMS (before, it
    # said "'p_ms2_mean' missing from the summary" and sent the shifter to the tracking
    # expert, claiming to have judged every event)
    data, _, verdict = judge(f"missing_source:source=BMS,{WINDOWS[window]}", 50 + len(window))
    (j,) = [j for j in verdict.judgements if (j.histogram, j.check) == ("p_ms2", "p_scale")]
    # Then it says on how many events it judged, and why fewer
    assert j.result.details["n_judged"] == int(np.count_nonzero(has(data.columns, ("BMS", "MS2"))))
    if window == "whole spill":
        assert j.result.quality == Quality.NO_DATA and j.cause == "daq_source_absent:BMS"
        assert "BMS absent in all" in j.result.explanation
    else:
        assert j.result.quality == Quality.GOOD, j.result.explanation
        assert "BMS absent in" in j.result.explanation


def test_a_hot_ecal_cell_is_one_incident_and_the_pik_flag_follows_from_it():
    # Given ECAL main cell (4,1) firing with a few GeV in every event, for a few spills: the
    # π/K tag sums every ECAL cell, so events that showered in the HCAL alone now pass its
    # ECAL threshold and the π/K count rises (before: two incidents, the calorimeter's and
    # a π/K excess sending the shifter to the beam as well)
    anomaly = [parse_anomaly("hot_cell:detector=ecal,cell=1/4/1,fraction=1,mean_gev=20")]
    reference, history = _baseline()
    summaries = list(history)
    for spill in range(33, 37):
        data = simulate_spill(_cfg(RUN), spill, anomaly)
        hists, summary = _fill(data)
        verdict = evaluate_spill(
            _specs(),
            hists,
            summary,
            history=history_series(summaries),
            reference=reference,
            conditions=data.conditions,
        )
        summaries.append(summary)
    # Then, once the π/K flag is up too, one incident, on the calorimeter tile, naming the cell
    assert verdict.subsystems["pik"] != Quality.GOOD  # the hot cell really moved it
    assert_one_incident_and_no_second_expert(verdict, "hot_calorimeter_cell")
    (incident,) = verdict.incidents
    assert incident.subsystem == "calorimeter" and incident.quality == Quality.BAD
    assert "ECAL cell (4,1)" in incident.explanation
    # and the π/K tile is marked as following from it
    assert verdict.follows_from("pik") is incident
    assert [(j.histogram, j.check) for j in incident.consequences] == [("hadron_tag", "pik_cusum")]


def test_a_real_pik_excess_is_not_put_on_the_calorimeter():
    # the rule explains the π/K flag only when a cell is hot: an excess of hadrons showers
    # over many cells and lights none
    _, _, verdict = judge("pik_boost:factor=10", 34)
    assert [i.cause for i in verdict.incidents] == ["pik_excess"]
