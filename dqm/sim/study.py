"""The engine of the validation study: simulate, fill, summarise and judge spills as the
worker does, and keep what every row starts from (references, clean runs).

Layer: pure core (simulator → fill → summary → :func:`dqm.core.evaluate.evaluate_spill`), no
Redis and no database. It judges spills exactly as the worker does: same specs, same history
window (:func:`dqm.core.evaluate.history_series`), a reference made of a clean run's spills
summed (as ``dqm reference set`` makes one).

* One **clean run** per beam (its spills wander within tolerances: the simulator's own
  ``beam_wander_*`` settings, see :class:`~dqm.sim.scenarios.Wander`) is both the
  false-alarm sample and the history every change starts from: a change injected at
  spill S sees the clean run's spills before S.
* A change reuses the clean spill's random numbers (same seed, run, spill), so what differs
  from the clean spill is the change alone.
* The judge gets the run conditions the simulator announces (:func:`_run_conditions`) and
  the reference the store would pick for them (:meth:`Study.reference_for`); incidents are
  the judge's own, one per cause (:func:`incidents_of`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boost_histogram as bh

from dqm.core.histio import add_into
from dqm.core.specs import SpecSet
from dqm.sim.anomalies import ANOMALY_KINDS, Anomaly
from dqm.sim.outcomes import (
    Incident,
    SpillOutcome,
    alarm_episodes,
    incidents_of,
    name_of,
)
from dqm.sim.scenarios import NOMINAL_BEAM, Beam, Ramp, Scenario
from dqm.sim.simulate import SimConfig
from dqm.sim.spill_judge import QUICK, RECENT_KEY, SpillJudge, StudyConfig, _Judge

__all__ = [
    "StudyConfig",
    "QUICK",
    "SpillJudge",
    "Study",
    "CleanRun",
    "Incident",
    "SpillOutcome",
    "FEATURES",
    "incidents_of",
    "missing_features",
    "alarm_episodes",
    "name_of",
    "RECENT_KEY",
    "_Judge",
]


# --------------------------------------------------------------------------- features


def _run_conditions(cfg: SimConfig) -> Any:
    """The run conditions the judge gets for a run simulated with ``cfg``: what the
    simulator announces for it (:meth:`dqm.sim.simulate.SimConfig.conditions`), so the
    checks judge it against its own nominal momentum, as the worker does."""
    return cfg.conditions()


#: Features a row may need, with what the report says while one is missing.
FEATURES: dict[str, tuple[Callable[[], bool], str]] = {
    "conditions": (lambda: _run_conditions(SimConfig()) is not None, "needs run conditions"),
}


def missing_features(row: Scenario) -> list[str]:
    """Why ``row`` cannot run yet (empty: it can)."""
    out = []
    kind = row.anomaly_kind
    if kind and kind not in ANOMALY_KINDS:
        out.append(f"needs simulator anomaly '{kind}'")
    settings = {f.name for f in dataclasses.fields(SimConfig)}
    if row.ramp is not None and row.ramp.setting not in settings:
        out.append(f"needs simulator setting '{row.ramp.setting}'")
    needs = set(row.needs)
    if row.beam != NOMINAL_BEAM or row.reference_beam != row.beam:
        needs.add("conditions")
    for need in sorted(needs):
        available, text = FEATURES.get(need, (lambda: False, f"needs {need}"))
        if not available():
            out.append(text)
    return out


@dataclass
class CleanRun:
    """A clean run of one beam judged against one reference: history and control sample."""

    beam: Beam
    reference: Beam
    summaries: list[dict] = field(default_factory=list)
    outcomes: list[SpillOutcome] = field(default_factory=list)
    seconds: float = 0.0


class Study:
    """Runs rows: caches references and clean runs, simulates and judges single spills."""

    def __init__(
        self, specs: SpecSet, config: StudyConfig, say: Callable[[str], None] | None = None
    ) -> None:
        self.specs, self.config = specs, config
        self.say = say or (lambda _line: None)
        self.judge = SpillJudge(specs, config)
        self._references: dict[Beam, dict[str, bh.Histogram]] = {}
        self._reference_summaries: dict[Beam, list[dict]] = {}
        self._clean: dict[tuple[Beam, Beam], CleanRun] = {}
        #: judgements in the CHECK_ERROR state (a check that failed), by flag name
        self.check_errors: Counter = Counter()
        self.spills_judged = 0

    def run_number(self, beam: Beam, reference: bool = False) -> int:
        """Run numbers fixed by the beam: clean run r, its reference run r + 1.

        The nominal beam's clean run is ``config.run``; another beam's is offset by ten times
        its momentum, so a row's spills do not depend on which other rows ran.
        """
        offset = (
            0 if beam == NOMINAL_BEAM else 10 * round(beam.p_gev) + 5 * (beam.particle != "mu-")
        )
        return self.config.run + offset + (1 if reference else 0)

    def settings(
        self,
        beam: Beam,
        spill: int,
        *,
        seed: int | None = None,
        reference: bool = False,
        ramp: Ramp | None = None,
        ramp_spills: int = 0,
        extra: Sequence[tuple[str, Any]] = (),
    ) -> SimConfig:
        """Spill ``spill``'s simulator settings: the beam, its wander (applied by the
        simulator itself, per spill), a ramp if any."""
        cfg = self.config.sim(self.run_number(beam, reference), beam, seed)
        if extra:
            cfg = cfg.with_overrides(dict(extra))
        if ramp is not None:
            value = getattr(cfg, ramp.setting) + ramp.per_spill * ramp_spills
            cfg = dataclasses.replace(cfg, **{ramp.setting: value})
        return cfg

    def reference(self, beam: Beam) -> dict[str, bh.Histogram]:
        """The certified reference of ``beam``: its reference run's clean spills summed."""
        if beam not in self._references:
            n = self.config.reference_spills
            self.say(f"reference {beam.label}: {n} clean spills")
            ref: dict[str, bh.Histogram] = {}
            summaries: list[dict] = []
            for s in range(n):
                cfg = self.settings(beam, s, reference=True)
                hists, summary = self.judge.spill(cfg.run, s, sim=cfg)
                add_into(ref, hists)
                summaries.append(summary)
            self._references[beam] = ref
            self._reference_summaries[beam] = summaries
        return self._references[beam]

    def reference_for(self, conditions: Any, available: Beam) -> dict[str, bh.Histogram]:
        """The reference the live DQM would use: ``available``'s, if its beam configuration is
        the run's (the store picks the active reference of the run's configuration), else none
        ("no reference for mu100": a reference taken under other conditions is never used)."""
        ref_conditions = _run_conditions(self.settings(available, 0, reference=True))
        if conditions is None or ref_conditions is None:
            return self.reference(available)
        if ref_conditions.beam_config != conditions.beam_config:
            return {}
        return self.reference(available)

    def observe(
        self,
        cfg: SimConfig,
        spill: int,
        past: Sequence[Mapping],
        reference: Beam,
        anomalies: Sequence[Anomaly] = (),
    ) -> SpillOutcome:
        """Simulate spill ``spill`` with ``cfg`` and judge it after ``past`` (oldest first)."""
        hists, summary = self.judge.spill(cfg.run, spill, anomalies, sim=cfg)
        conditions = _run_conditions(cfg)
        chosen = self.reference_for(conditions, reference)
        verdict = self.judge.judge(
            hists,
            summary,
            past,
            chosen,
            conditions,
            self._reference_summaries[reference] if chosen else [],
        )
        incidents, provisional = incidents_of(verdict)
        self.spills_judged += 1
        self.check_errors.update(
            name_of(j) for j in verdict.judgements if j.result.quality.name == "CHECK_ERROR"
        )
        return SpillOutcome(
            spill, verdict.subsystems, verdict.judgements, incidents, provisional, summary
        )

    def clean_run(self, beam: Beam, reference: Beam, spills: int) -> CleanRun:
        """The clean run of ``beam`` judged against ``reference``, at least ``spills`` long."""
        run = self._clean.setdefault((beam, reference), CleanRun(beam, reference))
        if len(run.outcomes) < spills:
            self.say(f"clean run {beam.label} (reference {reference.label}): {spills} spills")
            t0 = time.perf_counter()
            for s in range(len(run.outcomes), spills):
                if s and s % 200 == 0:
                    self.say(f"  spill {s} of {spills} ({time.perf_counter() - t0:.0f} s)")
                outcome = self.observe(self.settings(beam, s), s, run.summaries, reference)
                run.summaries.append(outcome.summary)
                run.outcomes.append(outcome)
            run.seconds += time.perf_counter() - t0
        return run

    def history_for(self, row: Scenario, start: int) -> list[dict]:
        """The clean spills before ``start`` (the row's beam and reference)."""
        run = self.clean_run(row.beam, row.reference_beam, start)
        return list(run.summaries[max(0, start - self.config.history_spills) : start])

    def start_spill(self, index: int, count: int, horizon: int = 0) -> int:
        """Where change number ``index`` of ``count`` starts in the clean run (spread out)."""
        lo = self.config.history_spills
        room = max(1, self.config.clean_spills - lo - horizon)
        return lo + (index * max(1, room // max(1, count))) % room
