"""The validation scenario matrix: one declarative row per thing the flags must get right.

Why a table: the evidence that the DQM can be trusted must be as wide as the conditions it
meets (several beam momenta, each DAQ source lost, each calorimeter's cells, glitches, slow
ramps, a wandering clean beam), and it must grow by adding rows, not code. Each
:class:`Scenario` says *what* is injected (a simulator anomaly in its CLI syntax, a slow
ramp of a simulator setting), under which beam the run and its reference were taken, what
must happen (the subsystem that goes BAD, the cause an incident must name, the words its
explanation must hold) and *how* it is measured (:class:`Measure`). The engine
(:mod:`dqm.sim.validate`) runs the rows of :data:`dqm.sim.matrix.MATRIX`;
:mod:`dqm.sim.validate_report` prints them.

A row that needs what the code does not have yet (run conditions in the judge, an anomaly
kind the simulator lacks) is shown as *not yet run*, never as passed.

Layer: pure data (no simulation here). Must not: hold thresholds of checks (those live in
``histograms/*.toml``); a row states only what a shifter must see.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Measure",
    "Beam",
    "Ramp",
    "Wander",
    "CountBound",
    "Scenario",
    "NOMINAL_BEAM",
    "NOMINAL_WANDER",
    "STATIC_BEAM",
    "select",
]


class Measure(enum.StrEnum):
    """How a row is measured (each has its own table in the report)."""

    CLEAN = "clean"  # a clean run: the fraction of spills BAD for any reason
    DETECT = "detect"  # a change from spill S on: BAD on its subsystem within max_delay spills
    DELAY = "delay"  # the detection-delay distribution of a change over many seeds
    GLITCH = "glitch"  # one anomalous spill: flagged there, and no flag trails it
    PERSIST = "persist"  # a step held for many spills: the flag stays up all along
    RAMP = "ramp"  # a slow ramp: caught before it reaches a limit, then stays flagged


@dataclass(frozen=True)
class Beam:
    """The beam conditions of a run (the simulator settings that are run conditions)."""

    p_gev: float = 160.0
    particle: str = "mu-"

    @property
    def label(self) -> str:
        sign = {"mu-": "μ⁻", "mu+": "μ⁺"}.get(self.particle, self.particle)
        return f"{sign} {self.p_gev:g} GeV"

    def sim_overrides(self) -> dict[str, Any]:
        return {"p_beam_gev": self.p_gev, "beam_particle": self.particle}


NOMINAL_BEAM = Beam()


@dataclass(frozen=True)
class Ramp:
    """A simulator setting changed by ``per_spill`` on every spill since the ramp started.

    The change shown in the report is ``k·per_spill·scale`` in ``unit`` after k spills
    (e.g. ``ms2_scale`` +0.001/spill shown as 0.1 %/spill with scale 100, unit "%").
    """

    setting: str
    per_spill: float
    unit: str = ""
    scale: float = 1.0

    def change(self, spills: int) -> float:
        return spills * self.per_spill * self.scale


@dataclass(frozen=True)
class Wander:
    """Spill-to-spill wander of a clean beam: the simulator's own ``beam_wander_*`` settings.

    A perfectly static beam is not a clean sample: the M2 line delivers each spill a little
    off the last one. The study sets these σ on every run's
    :class:`~dqm.sim.simulate.SimConfig` and the simulator wanders the beam itself
    (:mod:`dqm.sim.wander`: Gaussian, deterministic per seed, run and spill; AR(1) across
    spills with ``correlation``, 0 = independent spills, the worst case for spill-to-spill
    checks). The defaults are the σ of a uniform wander of ± 0.5 mm, ± 5 % and ± 10 %: the
    DQM's warning windows (centroid ± 1 mm, width ± 10 %, intensity −20 % in
    ``histograms/beam.toml``) sit beyond 3σ and its BAD windows beyond 6σ, i.e. well inside
    what the beam is nominally allowed to do.
    """

    x_mm: float = 0.3
    y_mm: float = 0.3
    width_rel: float = 0.03
    intensity_rel: float = 0.06
    correlation: float = 0.0

    def sim_overrides(self) -> dict[str, Any]:
        """The SimConfig settings that make the simulator wander the beam so."""
        return {
            "beam_wander_x_mm": self.x_mm,
            "beam_wander_y_mm": self.y_mm,
            "beam_wander_width_rel": self.width_rel,
            "intensity_wander_rel": self.intensity_rel,
            "beam_wander_correlation": self.correlation,
        }

    def describe(self) -> str:
        spills = (
            "independent spills"
            if self.correlation == 0
            else f"AR(1) ρ = {self.correlation:g} between spills"
        )
        return (
            f"Gaussian σ {self.x_mm:g} mm in x, {self.y_mm:g} mm in y, "
            f"{100 * self.width_rel:g} % in each width, {100 * self.intensity_rel:g} % in "
            f"intensity ({spills}; SimConfig beam_wander_*)"
        )


NOMINAL_WANDER = Wander()
STATIC_BEAM = Wander(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class CountBound:
    """Compare a count-rate check with the best sequential test (:mod:`dqm.sim.sequential`).

    λ0 per spill = ``events_per_spill × <rate_setting>`` of the run's simulator settings and
    λ1 the same with the row's anomaly applied; the check is ``histogram/check`` of the specs.
    """

    histogram: str = "hadron_tag"
    check: str = "pik_cusum"
    rate_setting: str = "pik_fraction"
    max_ratio: float = 1.5


@dataclass(frozen=True)
class Scenario:
    """One row of the matrix (see the module docstring; the helpers below build rows)."""

    label: str
    measure: Measure
    anomaly: str = ""  # simulator anomaly, ``kind[:param=value,...]`` (spills set by the study)
    ramp: Ramp | None = None
    beam: Beam = NOMINAL_BEAM
    reference: Beam | None = None  # beam of the reference run (None: the run's own)
    subsystem: str = ""  # the subsystem that must go BAD ("" for clean rows)
    cause: str = ""  # what the one incident must name (e.g. the DAQ source)
    words: tuple[str, ...] = ()  # the BAD explanation must hold one of these
    needs: tuple[str, ...] = ()  # features beyond the anomaly kind (e.g. "conditions")
    spills: int = 0  # clean: run length; glitch: spills followed; persist/ramp/delay: horizon
    trials: int = 0  # delay: seeds (0: the study's --seeds)
    max_delay: int = 1  # detect/persist: BAD within this many anomalous spills
    limit: float | None = None  # ramp: caught before the change reaches this (ramp units)
    min_up: float = 1.0  # persist/ramp/delay: share of spills after the first BAD still flagged
    max_bad: float = 0.005  # clean: largest acceptable share of BAD spills
    bound: CountBound | None = None
    single_cause: bool = True  # the "one incident naming its cause" target applies
    quick: bool = False  # part of ``dqm validate --quick`` (the unit test's subset)
    note: str = ""
    extra: tuple[tuple[str, Any], ...] = ()  # other simulator settings of the run (name, value)

    @property
    def reference_beam(self) -> Beam:
        return self.reference or self.beam

    @property
    def anomaly_kind(self) -> str:
        return self.anomaly.partition(":")[0].partition("@")[0].strip()


def select(rows: tuple[Scenario, ...], only: list[str] | None, quick: bool) -> list[Scenario]:
    """Rows whose label contains any of ``only`` (case-insensitive); the quick subset if asked."""
    out = [r for r in rows if r.quick or not quick]
    if only:
        wanted = [w.lower() for w in only]
        out = [r for r in out if any(w in r.label.lower() for w in wanted)]
    return out
