"""The physics follows the run conditions: simulator, summary, judgement, replay files.

Given a run at another beam setting (100 GeV, μ⁺, the MBPL polarity or field changed),
when it is simulated, summarised and judged under its announced conditions, then the
momenta and the MS2 bending follow the setting, the passing-muon core stays unbiased,
and the momentum checks judge it against its own nominal — no false momentum BAD.
"""

from __future__ import annotations

import dataclasses
import struct
from functools import cache

import pytest

from dqm.checks import Quality
from dqm.core.evaluate import NO_CONDITIONS, evaluate_spill
from dqm.core.fill import Filler
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.errors import BatchError, ConfigError
from dqm.sim.simfile import read_spill_file, write_spill_file
from dqm.sim.simulate import CATEGORIES, SimConfig, simulate_run, simulate_spill

CFG = SimConfig(events_per_spill=10_000, batch_size=5_000)
MUON = CATEGORIES.index("muon")


@cache
def spill(**changes):
    return simulate_spill(dataclasses.replace(CFG, **changes), 1)


@cache
def judged_inputs(**changes):
    data = spill(**changes)
    view = BatchView(data.columns)
    moments: dict = {}
    accumulate(moments, view)
    return data, finalize(moments)


def ms2_x_offset_mm(**changes) -> float:
    data = spill(**changes)
    muon = data.truth["category"] == MUON
    return float(data.columns["ms2_x"][muon, 0].mean())


# --- the simulator announces what it simulates --------------------------------------------


def test_set_p_beam_gev_gives_matching_conditions():
    cfg = SimConfig().with_overrides({"p_beam_gev": "100", "magnet_bl_tm": "3.0"})
    cond = cfg.conditions()
    assert (cond.beam_particle, cond.p_beam_gev, cond.beam_config) == ("mu-", 100.0, "mu100")
    assert (cond.polarity, cond.mbpl_field_integral_tm, cond.setup) == ("-", 3.0, "simulation")
    # the simulator's own trigger settings, scaled with the beam (100 GeV of 160 at 160 GeV)
    assert "p_out<62.5 GeV" in cond.trigger and "HCAL>12.5 GeV" in cond.trigger
    assert SimConfig(beam_particle="mu+").conditions().polarity == "+"  # auto: the charge's
    assert SimConfig(magnet_polarity="+").conditions().polarity == "+"
    assert spill().conditions == CFG.conditions()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"beam_particle": "pi-"}, "SimConfig.beam_particle"),
        ({"magnet_polarity": "north"}, "SimConfig.magnet_polarity"),
        ({"setup": " "}, "SimConfig.setup"),
    ],
)
def test_settings_the_simulator_cannot_honour_are_refused(changes, field):
    with pytest.raises(ConfigError, match=field):
        SimConfig(**changes)


def test_ms2_bending_follows_field_polarity_charge_and_momentum():
    nominal = ms2_x_offset_mm()
    # 0.2998 · 1.5 T·m / 160 GeV over the 4 m from the MBPL to MS2 station 0 ≈ 11 mm
    assert nominal == pytest.approx(0.2998 * 1.5 * 4000 / 160, rel=0.05)
    assert ms2_x_offset_mm(beam_particle="mu+") == pytest.approx(nominal, rel=0.05)  # both flip
    assert ms2_x_offset_mm(magnet_polarity="+") == pytest.approx(-nominal, rel=0.05)
    assert ms2_x_offset_mm(magnet_bl_tm=3.0) == pytest.approx(2 * nominal, rel=0.05)
    assert ms2_x_offset_mm(p_beam_gev=100.0) == pytest.approx(1.6 * nominal, rel=0.05)


# --- the summary holds at any momentum ----------------------------------------------------


@pytest.mark.parametrize("p_beam", [50.0, 100.0, 160.0, 250.0])
def test_passing_muon_core_is_unbiased_at_any_beam_momentum(p_beam):
    _, summary = judged_inputs(p_beam_gev=p_beam)
    # a fixed p_MS2 > 100 GeV core cut would cut a 100 GeV beam in half (Δp ≈ −3 GeV)
    assert abs(summary["dp_mean"]) < 0.002 * p_beam
    assert summary["p_ms2_mean"] == pytest.approx(p_beam, rel=0.004)
    assert summary["p_bms_mean"] == pytest.approx(p_beam, rel=0.002)
    assert summary["low_pout_fraction"] < 0.01


def test_momentum_histograms_hold_every_beam_the_line_delivers(specs):
    hists = Filler(specs).book()
    for name in ("p_bms", "p_ms2", "dp", "p_bms_vs_p_ms2"):
        assert hists[name].axes[0].edges[-1] >= 320.0, name
    data = spill(p_beam_gev=250.0)
    filled = Filler(specs).book()
    Filler(specs).fill(filled, BatchView(data.columns))
    p_bms = filled["p_bms"]
    assert p_bms.values(flow=True)[[0, -1]].sum() == 0  # nothing under- or overflows


# --- judged against the run's own nominal -------------------------------------------------


def verdict(specs, conditions, **changes):
    data, summary = judged_inputs(**changes)
    hists = Filler(specs).book()
    Filler(specs).fill(hists, BatchView(data.columns))
    v = evaluate_spill(specs, hists, summary, conditions=conditions)
    return {(j.histogram, j.check): j.result for j in v.judgements}


def test_a_100_gev_run_is_judged_against_100_gev(specs):
    mine = verdict(specs, spill(p_beam_gev=100.0).conditions, p_beam_gev=100.0)
    for key in (("p_bms", "p_scale"), ("p_ms2", "p_scale"), ("dp", "momentum_scale")):
        assert mine[key].quality is Quality.GOOD, mine[key].explanation
    assert "from nominal 100 GeV" in mine[("p_bms", "p_scale")].explanation
    # shape checks have no reference for this configuration, and say so
    ks = mine[("p_bms", "ks")]
    assert ks.quality is Quality.NO_DATA and ks.explanation.startswith("no reference for mu100")
    # the same spill judged as if it were a 160 GeV run is BAD: the conditions decide
    wrong = verdict(specs, CFG.conditions(), p_beam_gev=100.0)
    assert wrong[("p_bms", "p_scale")].quality is Quality.BAD


def test_without_conditions_the_momentum_checks_wait_and_the_daq_says_why(specs):
    none = verdict(specs, None, p_beam_gev=100.0)
    p_scale = none[("p_bms", "p_scale")]
    assert p_scale.quality is Quality.NO_DATA and p_scale.explanation.startswith(NO_CONDITIONS)
    assert none[("p_bms", "ks")].explanation.startswith(NO_CONDITIONS)
    daq = none[(None, "run_conditions")]
    assert daq.quality is Quality.WARNING and NO_CONDITIONS in daq.explanation


# --- replay files keep the conditions -----------------------------------------------------


def test_replay_file_announces_each_runs_conditions_before_its_first_spill(tmp_path):
    small = dataclasses.replace(CFG, events_per_spill=1000, batch_size=1000, n_spills=3)
    run7 = list(simulate_run(dataclasses.replace(small, run=7)))
    run8 = list(simulate_run(dataclasses.replace(small, run=8, p_beam_gev=100.0)))
    changed = simulate_spill(dataclasses.replace(small, run=8, magnet_bl_tm=3.0), 4)
    path = tmp_path / "runs.n64r"
    write_spill_file(path, [*run7, *run8, changed])
    back = list(read_spill_file(path))
    announced = [(s.run, s.spill, s.conditions) for s in back if s.conditions is not None]
    assert announced == [
        (7, 1, run7[0].conditions),
        (8, 1, run8[0].conditions),
        (8, 4, changed.conditions),  # re-announced when they changed
    ]
    assert announced[1][2].beam_config == "mu100"


def test_version_1_files_still_replay_without_conditions(tmp_path):
    small = dataclasses.replace(CFG, events_per_spill=1000, batch_size=1000, n_spills=2)
    spills = [dataclasses.replace(s, conditions=None) for s in simulate_run(small)]
    path = tmp_path / "old.n64r"
    write_spill_file(path, spills)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, 4, 1)  # a file written before conditions existed
    path.write_bytes(bytes(raw))
    assert [s.conditions for s in read_spill_file(path)] == [None, None]
    # but a conditions frame in a version-1 file is damage, not data
    write_spill_file(path, list(simulate_run(small)))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<H", raw, 4, 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(BatchError, match="bad frame header"):
        list(read_spill_file(path))
