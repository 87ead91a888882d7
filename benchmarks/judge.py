"""Benchmarks of the flags: spill-close latency with every check, and recheck time.

* close latency — the real worker with the checks as close hook, on a run judged
  against a certified reference (so the χ²/KS/pull checks really run, not NO_DATA),
  from a spill's last message to its flags stored and announced; p50/p95 over
  ``n_spills`` (≥ 100 for the figure in docs/performance.md). Spills are published one at a time to
  the running worker, as the DAQ delivers them every ~17 s: a pre-published backlog
  would time the next spill's filling too;
* recheck — a stored run of ``n_spills`` spills (histograms and summaries written
  directly, live flags stored by :func:`dqm.store.flags.recheck_run` with ``store=True``),
  then the time :func:`~dqm.store.flags.recheck_run` takes to recompute and compare them all.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from dqm.config import Settings
from dqm.core.fill import Filler
from dqm.core.histio import FORMAT_VERSION, encode_histograms
from dqm.core.specs import SpecSet
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.pipeline import stream as rs
from dqm.pipeline.worker import Worker
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import SPILL_COMPLETE, Run, Spill, SpillHistograms, utcnow
from dqm.store.references import set_reference
from dqm.store.spills import SUMMARY_COLUMNS

__all__ = ["LatencyResult", "bench_close_latency", "bench_recheck", "store_simulated_run"]


@dataclass
class LatencyResult:
    spills: int
    checks: int
    p50_s: float
    p95_s: float
    max_s: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _drain(settings: Settings, r, specs: SpecSet, sessions, hooks) -> list[float]:
    worker = Worker(
        settings,
        redis_client=r,
        sessions=sessions,
        specs=specs,
        consumer="bench-flags",
        close_hooks=hooks,
    )
    return worker.run(burst=True).close_latency_s


def _paced(settings: Settings, r, specs: SpecSet, sessions, hooks, cfg: SimConfig) -> list[float]:
    """Spills published one at a time to a running worker, as the DAQ delivers them (no backlog)."""
    spills = [simulate_spill(cfg, spill) for spill in range(1, cfg.n_spills + 1)]
    worker = Worker(
        settings,
        redis_client=r,
        sessions=sessions,
        specs=specs,
        consumer="bench-paced",
        close_hooks=hooks,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        for k, data in enumerate(spills, 1):
            first = data.conditions if k == 1 else None  # the run's conditions before its spills
            rs.publish_spill(r, settings.stream, data, conditions=first)
            deadline = time.monotonic() + 60.0
            while worker.stats.spills_closed < k and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        worker.stop()
        thread.join(30)
    return worker.stats.close_latency_s


def bench_close_latency(
    settings: Settings,
    r,
    specs: SpecSet,
    database_url: str,
    hooks: list,
    n_spills: int,
    events_per_spill: int,
    batch_size: int,
    reference_spills: int = 10,
) -> LatencyResult:
    """A reference run is processed and certified, then ``n_spills`` spills, paced, are timed."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    stream = f"bench:latency:{uuid.uuid4().hex[:6]}"
    s = settings.with_(stream=stream, group="bench-latency", database_url=database_url)
    try:
        reference = SimConfig(
            run=800_001,
            n_spills=reference_spills,
            events_per_spill=events_per_spill,
            batch_size=batch_size,
            seed=1,
        )
        rs.publish_conditions(r, stream, reference.conditions())
        for spill in range(1, reference_spills + 1):
            rs.publish_spill(r, stream, simulate_spill(reference, spill))
        _drain(s, r, specs, sessions, hooks)
        with sessions.begin() as session:
            set_reference(session, reference.run, "bench", comment="dqm bench reference")
        timed = SimConfig(
            run=800_002,
            n_spills=n_spills,
            events_per_spill=events_per_spill,
            batch_size=batch_size,
            seed=2,
        )
        latencies = _paced(s, r, specs, sessions, hooks, timed)
    finally:
        r.delete(stream)
        engine.dispose()
    return LatencyResult(
        len(latencies),
        sum(len(h.checks) for h in specs),
        statistics.median(latencies),
        _percentile(latencies, 0.95),
        max(latencies),
    )


def store_simulated_run(
    sessions, specs: SpecSet, run: int, n_spills: int, events_per_spill: int, distinct: int = 10
) -> None:
    """Write ``n_spills`` closed spills (``distinct`` simulated ones, repeated) without a worker."""
    filler = Filler(specs)
    cfg = SimConfig(
        run=run, events_per_spill=events_per_spill, batch_size=events_per_spill, seed=run
    )
    made = []
    for spill in range(1, distinct + 1):
        view = BatchView(simulate_spill(cfg, spill).columns)
        hists, moments = filler.book(), {}
        filler.fill(hists, view)
        accumulate(moments, view)
        made.append((encode_histograms(hists), finalize(moments)))
    t0 = utcnow() - timedelta(seconds=n_spills)
    with sessions.begin() as session:
        cond = cfg.conditions()
        session.add(
            Run(
                run=run,
                beam_config=cond.beam_config,
                conditions=cond.to_dict(),
                started_at=t0,
                comment="dqm bench recheck run",
            )
        )
        session.flush()
        for i in range(n_spills):
            blob, summary = made[i % distinct]
            at = t0 + timedelta(seconds=i)
            sp = Spill(
                run=run,
                spill=i + 1,
                status=SPILL_COMPLETE,
                opened_at=at,
                updated_at=at,
                closed_at=at,
                received_batches=1,
                expected_batches=1,
                n_events=int(summary["n_events"]),
                summary=dict(summary),
                **{c: summary.get(c) for c in SUMMARY_COLUMNS},
            )
            session.add(sp)
            session.flush()
            session.add(
                SpillHistograms(
                    spill_id=sp.id, format_version=FORMAT_VERSION, size_bytes=len(blob), blob=blob
                )
            )


def bench_recheck(
    specs: SpecSet, database_url: str, n_spills: int, events_per_spill: int = 4000
) -> tuple[float, float, int]:
    """``(seconds to store the live flags, seconds to recheck, differences)`` for a run of
    ``n_spills``."""
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    run = 800_003
    try:
        store_simulated_run(sessions, specs, run, n_spills, events_per_spill)
        t0 = time.perf_counter()
        with sessions.begin() as session:
            recheck_run(session, run, specs, store=True)
        t1 = time.perf_counter()
        with sessions() as session:
            result = recheck_run(session, run, specs)
        t2 = time.perf_counter()
    finally:
        engine.dispose()
    return t1 - t0, t2 - t1, len(result.differences)
