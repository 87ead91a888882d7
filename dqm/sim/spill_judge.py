"""Judge simulated spills exactly as a worker does: the validation study's judge.

Layer: pure core (simulator → fill → summary → :func:`dqm.core.evaluate.evaluate_spill`), no
Redis and no database: same specs, same history window (:func:`dqm.core.evaluate.
history_series`), a reference made of a clean run's spills summed (as ``dqm reference set``
makes one), the reference's spill summaries anchoring change detection, and the cell maps of
the last spills for the cell windows. :class:`StudyConfig` holds the study's sizes and the
clean beam's wander (the simulator's ``beam_wander_*`` settings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boost_histogram as bh

from dqm.core.evaluate import (
    HISTORY_SPILLS,
    Verdict,
    accumulated,
    evaluate_spill,
    history_series,
    record_quality,
)
from dqm.core.fill import Filler
from dqm.core.specs import SpecSet
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import Anomaly
from dqm.sim.scenarios import NOMINAL_BEAM, NOMINAL_WANDER, Beam, Wander
from dqm.sim.simulate import SimConfig, simulate_spill

__all__ = ["StudyConfig", "QUICK", "SpillJudge", "RECENT_KEY"]


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of the study (the rows carry their own lengths; ``max_spills`` caps them)."""

    events_per_spill: int = 20_000
    clean_spills: int = 1_000
    reference_spills: int = 20
    seeds: int = 100
    history_spills: int = HISTORY_SPILLS
    follow_spills: int = 10  # spills watched after a first BAD (does the flag stay up?)
    max_spills: int | None = None
    seed: int = 42
    run: int = 500
    wander: Wander = NOMINAL_WANDER

    def sim(self, run: int, beam: Beam = NOMINAL_BEAM, seed: int | None = None) -> SimConfig:
        """The simulator settings of run ``run`` under ``beam``, with the clean beam's wander
        (the simulator applies it per spill)."""
        base = SimConfig(
            run=run,
            events_per_spill=self.events_per_spill,
            batch_size=self.events_per_spill,
            seed=self.seed if seed is None else seed,
        )
        return dataclasses.replace(base, **beam.sim_overrides(), **self.wander.sim_overrides())

    def length(self, wanted: int) -> int:
        return wanted if self.max_spills is None else max(1, min(wanted, self.max_spills))


#: ``dqm validate --quick``: the unit test's sizes (nominal statistics, few spills and seeds).
QUICK = StudyConfig(
    clean_spills=50, reference_spills=10, seeds=5, history_spills=25, follow_spills=4, max_spills=20
)


class SpillJudge:
    """Simulate, fill, summarise and judge spills as the worker would."""

    def __init__(self, specs: SpecSet, config: StudyConfig) -> None:
        self.specs, self.config = specs, config
        self.filler = Filler(specs)
        self.reference: dict[str, bh.Histogram] = {}
        #: the default reference's spill summaries: change detection anchors on them (as live)
        self.reference_summaries: list[Mapping] = []
        #: histograms whose checks add up spills, and how many earlier spills they need
        self.accumulate, self.n_recent = accumulated(specs)

    def spill(
        self,
        run: int,
        spill: int,
        anomalies: Sequence[Anomaly] = (),
        *,
        sim: SimConfig | None = None,
    ) -> tuple[dict[str, bh.Histogram], dict]:
        """Histograms and summary of one simulated spill (``sim`` overrides the settings)."""
        data = simulate_spill(sim or self.config.sim(run), spill, anomalies)
        if data is None:
            raise ValueError("the study injects no 'stale' anomaly")
        view = BatchView(data.columns)
        hists, moments = self.filler.book(), {}
        self.filler.fill(hists, view)
        accumulate(moments, view)
        return hists, finalize(moments)

    def judge(
        self,
        hists: Mapping[str, bh.Histogram],
        summary: Mapping,
        past: Sequence[Mapping],
        reference: Mapping[str, bh.Histogram] | None = None,
        conditions: Any = None,
        reference_summaries: Sequence[Mapping] | None = None,
        models: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """Judge a spill after ``past`` (the run's earlier spills' summaries, oldest first).

        As the store does, the verdict's roll-up is written into ``summary`` (a dict) — so
        later spills' change detection knows which spills were certified — together with the
        cell maps later spills add up (under :data:`RECENT_KEY`; never stored, and not a
        number, so :func:`history_series` leaves it out).
        """
        extra = {} if conditions is None else {"conditions": conditions}
        past = list(past)
        ref_summaries = (
            self.reference_summaries if reference_summaries is None else reference_summaries
        )
        recent = [p.get(RECENT_KEY) or {} for p in past[len(past) - self.n_recent :]]
        verdict = evaluate_spill(
            self.specs,
            hists,
            summary,
            history=history_series(past[-HISTORY_SPILLS:]),
            reference=self.reference if reference is None else reference,
            reference_history=history_series(ref_summaries, spills=range(len(ref_summaries)))
            if ref_summaries
            else None,
            recent=recent if self.n_recent else (),
            models=models,
            **extra,
        )
        if isinstance(summary, dict):
            summary.update(record_quality(summary, verdict))
            summary[RECENT_KEY] = {n: hists[n] for n in self.accumulate if n in hists}
        return verdict


_Judge = SpillJudge  # the name the earlier study (and tests written against it) used

#: Summary key under which the study keeps a spill's cell maps for later spills' judges.
RECENT_KEY = "_recent_maps"
