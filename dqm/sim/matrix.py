"""The rows of the validation matrix (the types are in :mod:`dqm.sim.scenarios`).

Adding evidence is adding a row here. Each row says what is injected and what a shifter must
then see; the engine (:mod:`dqm.sim.validate`) measures it, and a row whose needs are not met
yet (run conditions in the judge, a simulator anomaly kind) is shown as *not yet run*.
Words a flag must hold are the names a shifter reads ("ECAL cell (2,2)", "HCAL module 2
cell (1,1)", the DAQ source); thresholds are never repeated here (they live in the specs).
"""

from __future__ import annotations

from typing import Any

from dqm.core.events import DAQ_SOURCES
from dqm.sim.scenarios import NOMINAL_BEAM, Beam, CountBound, Measure, Ramp, Scenario

__all__ = ["MATRIX"]


def _clean(label: str, beam: Beam = NOMINAL_BEAM, **kw: Any) -> Scenario:
    return Scenario(label, Measure.CLEAN, beam=beam, single_cause=False, **kw)


def _detect(label: str, anomaly: str, subsystem: str, *words: str, **kw: Any) -> Scenario:
    return Scenario(label, Measure.DETECT, anomaly, subsystem=subsystem, words=words, **kw)


def _source_rows(source: str) -> list[Scenario]:
    """A DAQ source absent for the whole spill and for its last 30 %."""
    return [
        _detect(
            f"{source} absent, {what}",
            f"missing_source:source={source},fraction={fraction:g}",
            "daq",
            source,
            cause=source,
            quick=quick,
        )
        for what, fraction, quick in (
            ("whole spill", 1.0, source == "MS1"),
            ("last 30 % of the spill", 0.3, source == "MS2"),
        )
    ]


_PIK = CountBound()
_B100, _B80, _B20, _PLUS = Beam(100.0), Beam(80.0), Beam(20.0), Beam(160.0, "mu+")
_NEEDS_CONDITIONS = ("conditions",)

#: The matrix. Order is the report's order within each measure's table.
MATRIX: tuple[Scenario, ...] = (
    # --- clean samples: several beam momenta, each against its own reference and another's
    _clean("clean μ⁻ 160 GeV, wandering beam", quick=True),
    _clean("clean μ⁻ 100 GeV vs its own reference", _B100, spills=100, needs=_NEEDS_CONDITIONS),
    _clean("clean μ⁻ 80 GeV vs its own reference", _B80, spills=100, needs=_NEEDS_CONDITIONS),
    _clean("clean μ⁻ 20 GeV vs its own reference", _B20, spills=100, needs=_NEEDS_CONDITIONS),
    _clean("clean μ⁺ 160 GeV vs its own reference", _PLUS, spills=100, needs=_NEEDS_CONDITIONS),
    _clean(
        "clean μ⁺ 160 GeV, only a μ⁻ 160 GeV reference",
        _PLUS,
        reference=NOMINAL_BEAM,
        spills=50,
        words=("no reference",),
        needs=_NEEDS_CONDITIONS,
    ),
    _clean(
        "clean μ⁻ 100 GeV, only a 160 GeV reference",
        _B100,
        reference=NOMINAL_BEAM,
        spills=50,
        words=("no reference",),
        needs=_NEEDS_CONDITIONS,
    ),
    _clean(
        "clean μ⁻ 160 GeV, only a 100 GeV reference",
        reference=_B100,
        spills=50,
        words=("no reference",),
        needs=_NEEDS_CONDITIONS,
    ),
    _clean(
        "clean μ⁻ 80 GeV, only a 160 GeV reference",
        _B80,
        reference=NOMINAL_BEAM,
        spills=50,
        words=("no reference",),
        needs=_NEEDS_CONDITIONS,
    ),
    # --- per-cell faults in each calorimeter
    _detect(
        "ECAL main cell (2,2) dead",
        "dead_cell:detector=ecal,cell=1/2/2",
        "calorimeter",
        "ECAL cell (2,2)",
        quick=True,
    ),
    _detect(
        "ECAL preshower cell (3,2) dead",
        "dead_cell:detector=ecal,cell=0/3/2",
        "calorimeter",
        "ECAL preshower cell (3,2)",
    ),
    _detect(
        "ECAL main cell (4,1) hot", "hot_cell:detector=ecal,cell=1/4/1", "calorimeter", "(4,1)"
    ),
    _detect(
        "ECAL corner cell (0,5) hot, few hits expected",
        "hot_cell:detector=ecal,cell=1/0/5,fraction=0.002",
        "calorimeter",
        "(0,5)",
    ),
    _detect(
        "ECAL main cell (2,3) gain ×0.7",
        "cell_gain:detector=ecal,cell=1/2/3,factor=0.7",
        "calorimeter",
        "ECAL cell (2,3)",
    ),
    *(
        _detect(
            f"HCAL module {m} cell (1,1) dead",
            f"dead_cell:detector=hcal,cell={m}/1/1",
            "calorimeter",
            f"HCAL module {m} cell (1,1)",
        )
        for m in range(4)
    ),
    _detect(
        "HCAL module 3 corner cell (0,0) hot, few hits expected",
        "hot_cell:detector=hcal,cell=3/0/0,fraction=0.002,mean_gev=10",
        "calorimeter",
        "HCAL module 3 cell (0,0)",
    ),
    _detect(
        "HCAL module 2 cell (1,1) gain ×0.7",
        "cell_gain:detector=hcal,cell=2/1/1,factor=0.7",
        "calorimeter",
        "HCAL module 2 cell (1,1)",
    ),
    _detect(
        "HCAL module 1 gain −20 %",
        "hcal_gain_drop:module=1,factor=0.8",
        "calorimeter",
        "HCAL module 1",
    ),
    _detect(
        "VETO plane 1 counter 0 dead",
        "dead_cell:detector=veto,cell=1/0",
        "calorimeter",
        "VETO counter (1,0)",
    ),
    _detect(
        "VETO plane 2 counter 1 hot",
        "hot_cell:detector=veto,cell=2/1",
        "calorimeter",
        "VETO counter (2,1)",
    ),
    _detect(
        "VHCAL cell (0,1) hot",
        "hot_cell:detector=vhcal,cell=0/1",
        "calorimeter",
        "VHCAL cell (0,1)",
    ),
    _detect(
        "VHCAL cell (1,0) hot, rarely firing",
        "hot_cell:detector=vhcal,cell=1/0,fraction=0.002",
        "calorimeter",
        "VHCAL cell (1,0)",
    ),
    # --- beam and momenta
    _detect("beam x shift 3 mm", "beam_shift:dx_mm=3", "beam", "beam x", quick=True),
    _detect("beam y shift 3 mm", "beam_shift:dx_mm=0,dy_mm=3", "beam", "beam y"),
    _detect("beam width +30 %", "beam_width:factor=1.3", "beam", "beam σ_x", "beam σ_y"),
    _detect("intensity −50 %", "intensity_drop:factor=0.5", "beam", "n_events"),
    _detect("BMS momentum scale +2 %", "bms_scale:factor=1.02", "momentum", "p_bms"),
    _detect("MS2 momentum scale −2 %", "ms2_scale:factor=0.98", "momentum", "p_ms2", "Δp"),
    _detect(
        "MS2 momentum scale −2 % at 100 GeV",
        "ms2_scale:factor=0.98",
        "momentum",
        "p_ms2",
        "Δp",
        beam=_B100,
        needs=_NEEDS_CONDITIONS,
    ),
    # --- each DAQ source absent for a whole spill and for part of one
    *(row for source in DAQ_SOURCES for row in _source_rows(source)),
    # --- π/K excesses: detection-delay distributions over many seeds, against the bound
    *(
        Scenario(
            f"π/K ×{r}",
            Measure.DELAY,
            f"pik_boost:factor={r}",
            subsystem="pik",
            words=("π/K",),
            spills=60,
            bound=_PIK,
            min_up=0.95,
            quick=r == 5,
        )
        for r in (2, 3, 5)
    ),
    Scenario(
        "π/K ×5 at 100 GeV",
        Measure.DELAY,
        "pik_boost:factor=5",
        beam=_B100,
        subsystem="pik",
        words=("π/K",),
        spills=60,
        bound=_PIK,
        min_up=0.95,
        needs=_NEEDS_CONDITIONS,
    ),
    # --- one-spill glitches: flagged on that spill, no trail of flags after it
    Scenario(
        "MS2 momentum scale −2 % for one spill",
        Measure.GLITCH,
        "ms2_scale:factor=0.98",
        subsystem="momentum",
        words=("p_ms2", "Δp"),
        spills=12,
        quick=True,
    ),
    Scenario(
        "beam x shift 3 mm for one spill",
        Measure.GLITCH,
        "beam_shift:dx_mm=3",
        subsystem="beam",
        words=("beam x",),
        spills=12,
    ),
    Scenario(
        "intensity −50 % for one spill",
        Measure.GLITCH,
        "intensity_drop:factor=0.5",
        subsystem="beam",
        words=("n_events",),
        spills=12,
    ),
    Scenario(
        "π/K ×10 for one spill",
        Measure.GLITCH,
        "pik_boost:factor=10",
        subsystem="pik",
        words=("π/K",),
        spills=12,
    ),
    Scenario(
        "MS1 absent for one spill",
        Measure.GLITCH,
        "missing_source:source=MS1,fraction=1",
        subsystem="daq",
        words=("MS1",),
        spills=12,
    ),
    # --- persistent steps: the flag stays up while the change persists
    Scenario(
        "MS2 momentum scale −0.8 % held 60 spills",
        Measure.PERSIST,
        "ms2_scale:factor=0.992",
        subsystem="momentum",
        words=("p_ms2", "Δp", "dp_mean"),
        spills=60,
        max_delay=5,
        quick=True,
    ),
    Scenario(
        "HCAL module 1 gain −20 % held 60 spills",
        Measure.PERSIST,
        "hcal_gain_drop:module=1,factor=0.8",
        subsystem="calorimeter",
        words=("HCAL module 1",),
        spills=60,
    ),
    # --- slow ramps: caught before they reach a limit, flagged while they go on
    Scenario(
        "beam x ramp 0.05 mm/spill",
        Measure.RAMP,
        ramp=Ramp("beam_x_mm", 0.05, "mm"),
        subsystem="beam",
        words=("beam x", "beam_x"),
        limit=2.5,
        spills=70,
    ),
    Scenario(
        "beam y ramp 0.05 mm/spill",
        Measure.RAMP,
        ramp=Ramp("beam_y_mm", 0.05, "mm"),
        subsystem="beam",
        words=("beam y", "beam_y"),
        limit=2.5,
        spills=70,
    ),
    Scenario(
        "MS2 momentum scale drift +0.1 %/spill",
        Measure.RAMP,
        ramp=Ramp("ms2_scale", 0.001, "%", 100.0),
        subsystem="momentum",
        words=("dp_mean", "p_ms2", "Δp"),
        limit=1.0,
        spills=20,
        quick=True,
        note="the instruction promises a call before the scale is 1 % off",
    ),
)
