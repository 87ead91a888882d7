"""Cost of the learned detector (issue 14): training and scoring on simulated spills.

``dqm bench --learned N``: N clean spills simulated and filled as a worker would, one model
per subsystem that declares ``pca_score`` trained on them (as ``dqm model train`` does, the
scikit-learn import included), then every spill vectorised and scored by every model: the
time a spill close spends on the learned checks beyond the rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dqm.core.specs import SpecSet
from dqm.learn.pca import score_vector
from dqm.learn.train import subsystem_layout, train_model
from dqm.learn.vector import vectorise
from dqm.sim.spill_judge import SpillJudge, StudyConfig

__all__ = ["LearnedCost", "bench_learned"]


@dataclass(frozen=True)
class LearnedCost:
    n_spills: int
    events_per_spill: int
    train_s: float
    score_ms: tuple[float, ...]
    bins: dict[str, int]

    def lines(self) -> list[str]:
        ms = np.asarray(self.score_ms)
        sizes = ", ".join(f"{s} {n} bins" for s, n in self.bins.items())
        return [
            f"learned models ({sizes}) on {self.n_spills} spills of {self.events_per_spill} "
            "events:",
            f"  training (scikit-learn import included): {self.train_s:.1f} s",
            f"  scoring a spill with every model: p50 {np.percentile(ms, 50):.1f} ms, "
            f"p95 {np.percentile(ms, 95):.1f} ms",
        ]


def bench_learned(
    specs: SpecSet, n_spills: int = 45, events_per_spill: int = 20_000
) -> LearnedCost:
    judge = SpillJudge(specs, StudyConfig(events_per_spill=events_per_spill))
    spills = [judge.spill(900, spill)[0] for spill in range(1, n_spills + 1)]
    beam = judge.config.sim(900).conditions().beam_config
    subsystems = sorted({s.subsystem for s in specs for c in s.checks if c.type == "pca_score"})
    started = time.perf_counter()
    models = {}
    for subsystem in subsystems:
        layout = subsystem_layout([s.name for s in specs if s.subsystem == subsystem], spills[0])
        models[subsystem] = train_model(spills, layout, subsystem=subsystem, beam_config=beam).model
    train_s = time.perf_counter() - started
    score_ms = []
    for hists in spills:
        t0 = time.perf_counter()
        for model in models.values():
            score_vector(model, vectorise(hists, model.layout))
        score_ms.append(1000 * (time.perf_counter() - t0))
    return LearnedCost(
        n_spills,
        events_per_spill,
        train_s,
        tuple(score_ms),
        {s: m.n_bins for s, m in models.items()},
    )
