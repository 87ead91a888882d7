"""Cost of the learned detector (issue 14): training and scoring on simulated spills.

``dqm bench --learned N``: N clean spills simulated and filled as a worker would, one model
per subsystem that declares ``pca_score`` trained on them (as ``dqm model train`` does, the
scikit-learn import included), then every spill vectorised and scored by every model: the
time a spill close spends on the learned checks beyond the rules. Then the same as the
worker sees it (:func:`bench_close_latency`): the spill-close latency of a real worker with
checks on, a run without models and a run with the models trained on it, in one store.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqm.config import Settings
from dqm.core.specs import SpecSet
from dqm.learn.pca import score_vector
from dqm.learn.train import spec_layout, train_model
from dqm.learn.vector import vectorise
from dqm.sim.spill_judge import SpillJudge, StudyConfig

__all__ = ["LearnedCost", "bench_learned", "CloseLatency", "bench_close_latency"]


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
        layout = spec_layout(specs, subsystem, spills[0])
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


@dataclass(frozen=True)
class CloseLatency:
    """Spill-close latency of the real worker with checks on, without and with models."""

    n_spills: int
    events_per_spill: int
    without_ms: tuple[float, ...]
    with_ms: tuple[float, ...]
    models: tuple[str, ...]
    #: the judging step alone, the same spill without and with models: CPU ms
    judge_ms: tuple[tuple[float, float], ...] = ()
    #: spills of the timed run a model flagged (WARNING or worse)
    model_flagged: int = 0
    budget_ms: float = 50.0

    @staticmethod
    def _p(values: tuple[float, ...], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def lines(self) -> list[str]:
        p95_without, p95_with = self._p(self.without_ms, 0.95), self._p(self.with_ms, 0.95)
        change = p95_with - p95_without
        verdict = "within" if change <= self.budget_ms else "OVER"
        return [
            f"spill-close latency of the worker, checks on, against a certified reference: one "
            f"run of {2 * self.n_spills} spills of {self.events_per_spill} events published one "
            f"at a time, the models on for every other spill ({self.n_spills} each):",
            f"  without models: p50 {self._p(self.without_ms, 0.5):.0f} ms, "
            f"p95 {p95_without:.0f} ms",
            f"  with models ({', '.join(self.models) or 'none stored'}): p50 "
            f"{self._p(self.with_ms, 0.5):.0f} ms, p95 {p95_with:.0f} ms; the models flagged "
            f"{self.model_flagged} of these {len(self.with_ms)} clean spills",
            f"  p95 change {change:+.0f} ms: {verdict} the {self.budget_ms:.0f} ms budget",
            *self._judge_lines(),
        ]

    def _judge_lines(self) -> list[str]:
        if not self.judge_ms:
            return []
        off = tuple(a for a, _ in self.judge_ms)
        on = tuple(b for _, b in self.judge_ms)
        extra = tuple(b - a for a, b in self.judge_ms)
        return [
            f"  judging step alone (CPU time), the same {len(extra)} spills judged again without "
            f"and with models: without p50 {self._p(off, 0.5):.0f} ms, "
            f"p95 {self._p(off, 0.95):.0f} ms; "
            f"with p50 {self._p(on, 0.5):.0f} ms, p95 {self._p(on, 0.95):.0f} ms; "
            f"added per spill p50 {self._p(extra, 0.5):+.0f} ms, "
            f"p95 {self._p(extra, 0.95):+.0f} ms",
        ]


def _alternating(settings, r, specs, sessions, hooks, cfg, with_models) -> list[float]:
    """Spills published one at a time to a running worker (as the DAQ delivers them), the
    judge's models switched on for every other spill: both halves share the machine's load."""
    import threading

    from dqm.pipeline import stream as rs
    from dqm.pipeline.worker import Worker
    from dqm.sim.simulate import simulate_spill

    judge = next(h for h in hooks if hasattr(h, "models"))
    cache, none = judge.models, _NoModels()
    worker = Worker(
        settings,
        redis_client=r,
        sessions=sessions,
        specs=specs,
        consumer="bench-learned",
        close_hooks=hooks,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        for k in range(1, cfg.n_spills + 1):
            judge.models = cache if with_models(k) else none
            data = simulate_spill(cfg, k)
            first = data.conditions if k == 1 else None  # the run's conditions before its spills
            rs.publish_spill(r, settings.stream, data, conditions=first)
            deadline = time.monotonic() + 60.0
            while worker.stats.spills_closed < k and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        worker.stop()
        thread.join(30)
        judge.models = cache
    return list(worker.stats.close_latency_s)


class _NoModels:
    """A model cache that has none: the judge's ``pca_score`` checks then say NO_DATA."""

    def active(self, session: Any, beam_config: str | None) -> dict:
        return {}

    def recorded(self, session: Any, ids: dict) -> dict:
        return {}


def bench_close_latency(
    settings: Settings,
    r: Any,
    specs: SpecSet,
    n_spills: int = 45,
    events_per_spill: int = 20_000,
    batch_size: int = 2_000,
) -> CloseLatency:
    """The real worker with every check as close hook, in one temporary store: a reference
    run processed and certified, a training run of ``max(n_spills, 36)`` spills and the
    models trained on it as ``dqm model train`` does; then a run of ``2 × n_spills`` spills
    published one at a time (as :func:`benchmarks.judge.bench_close_latency` does), the
    judge's models on for every other spill and off for the others. The machine's load
    (shared by other jobs) then weighs on both halves alike; they differ only by the models.
    """
    import argparse
    import contextlib
    import io

    from benchmarks.judge import _drain
    from benchmarks.worker import temp_sqlite
    from dqm.commands.model import run_train
    from dqm.pipeline import stream as rs
    from dqm.pipeline.runtime import close_hooks
    from dqm.sim.simulate import SimConfig, simulate_spill
    from dqm.store.engine import make_engine, make_sessionmaker
    from dqm.store.references import set_reference

    db_url, tmp = temp_sqlite()
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    stream = f"bench:learned:{uuid.uuid4().hex[:6]}"
    s = settings.with_(stream=stream, group="bench-learned", database_url=db_url)
    hooks = close_hooks(s, specs)

    def sim(run: int, spills: int) -> SimConfig:
        return SimConfig(
            run=run,
            n_spills=spills,
            events_per_spill=events_per_spill,
            batch_size=batch_size,
            seed=run,
        )

    def drained(cfg: SimConfig) -> None:
        rs.publish_conditions(r, stream, cfg.conditions())
        for spill in range(1, cfg.n_spills + 1):
            rs.publish_spill(r, stream, simulate_spill(cfg, spill))
        _drain(s, r, specs, sessions, hooks)

    try:
        reference = sim(810_001, 10)
        drained(reference)
        with sessions.begin() as session:
            set_reference(session, reference.run, "bench", comment="dqm bench --learned")
        training = sim(810_002, max(n_spills, 36))
        drained(training)
        args = argparse.Namespace(
            beam_config=training.conditions().beam_config,
            runs=f"{training.run}-{training.run}",
            subsystem=None,
            false_alarm=1e-3,
            components=5,
            user="bench",
            comment="dqm bench --learned",
        )
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_train(args, s)
        models = tuple(
            line.split(":", 1)[1].split(",", 1)[0].strip()
            for line in out.getvalue().splitlines()
            if line.startswith("model ")
        )
        timed = sim(810_003, 2 * n_spills)
        latencies = _alternating(s, r, specs, sessions, hooks, timed, lambda k: k % 2 == 0)
        judge_ms = _judge_step(sessions, hooks, timed.run, n_spills)
        flagged = _model_flagged(sessions, timed.run)
    finally:
        r.delete(stream)
        engine.dispose()
        tmp.cleanup()
    return CloseLatency(
        n_spills,
        events_per_spill,
        tuple(1000 * x for k, x in enumerate(latencies, 1) if k % 2 == 1),
        tuple(1000 * x for k, x in enumerate(latencies, 1) if k % 2 == 0),
        models,
        judge_ms,
        flagged,
    )


def _model_flagged(sessions: Any, run: int) -> int:
    """How many spills of ``run`` a model flagged (``pca_score`` WARNING or worse)."""
    from dqm.checks import Quality
    from dqm.store.queries import closed_spills, spill_flags

    with sessions() as session:
        return sum(
            any(
                f.check == "pca_score" and f.quality >= int(Quality.WARNING)
                for f in spill_flags(session, sp.id)
            )
            for sp in closed_spills(session, run)
        )


def _judge_step(sessions: Any, hooks: list, run: int, n: int) -> tuple[tuple[float, float], ...]:
    """The close hook's judging of the run's last ``n`` spills again, each twice in a row —
    without and with models, in alternating order — inside a transaction rolled back:
    ``(without, with)`` CPU milliseconds of this process per spill (the worker has stopped,
    so that is the judge's). Paired on the same spill and counted in CPU time, the
    difference is the models' own cost (gathering them, scoring, words, storing the flag)
    without the shared machine's load, which wall-clock figures carry."""
    from dqm.store.closing import ClosedSpill
    from dqm.store.queries import closed_spills
    from dqm.store.spills import spill_histograms

    judge = next(h for h in hooks if hasattr(h, "models"))
    cache = judge.models
    with sessions() as session:
        spills = [
            ClosedSpill(
                sp.id, sp.run, sp.spill, sp.status, spill_histograms(session, sp.id), sp.summary
            )
            for sp in closed_spills(session, run)[-n:]
        ]
    pairs = []
    try:
        for k, closed in enumerate(spills):
            times = {}
            for on in (False, True) if k % 2 == 0 else (True, False):
                judge.models = cache if on else _NoModels()
                with sessions() as session:
                    started = time.process_time()
                    judge(session, closed)
                    session.flush()
                    times[on] = 1000 * (time.process_time() - started)
                    session.rollback()
            pairs.append((times[False], times[True]))
    finally:
        judge.models = cache
    return tuple(pairs)
