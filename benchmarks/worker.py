"""Benchmarks: figures with their baseline measured in the same run, never timed tests.

* transport ceiling — XREADGROUP + decode (validated) + XACK of the same batches, no fill:
  what the worker could do if filling and storing were free;
* worker — the real :class:`dqm.pipeline.worker.Worker` (decode, fill every spec histogram,
  summaries, grouped commits to the database, XACK, spill closing);
* fill stage alone — :class:`dqm.core.fill.Filler` against numpy.histogram/histogram2d
  filling the same histograms from the same batch;
* scale-out — N worker processes draining one pre-published stream.

CPU figures use ``time.process_time`` of the process doing the work (the publisher
runs before the clock starts), so they are "events per worker CPU-second".
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dqm.config import Settings
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.specs import SpecSet
from dqm.core.variables import BatchView
from dqm.pipeline import stream as rs
from dqm.pipeline.services import cpu_seconds
from dqm.pipeline.worker import Worker
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.migrate import upgrade_database

__all__ = [
    "BenchResult",
    "bench_fill",
    "bench_transport",
    "bench_worker",
    "bench_scaleout",
    "publish_bench_run",
]


@dataclass
class BenchResult:
    name: str
    events: int
    cpu_s: float
    wall_s: float
    extra: dict = field(default_factory=dict)

    @property
    def events_per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else float("nan")

    @property
    def events_per_wall_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else float("nan")


def publish_bench_run(
    r, stream: str, n_spills: int, events_per_spill: int, batch_size: int, seed: int = 7
) -> int:
    cfg = SimConfig(
        run=900_000 + seed,
        n_spills=n_spills,
        events_per_spill=events_per_spill,
        batch_size=batch_size,
        seed=seed,
        intensity_jitter=0.0,
    )
    n = 0
    for spill in simulate_run(cfg):
        first = spill.conditions if n == 0 else None  # the run's conditions before its spills
        rs.publish_spill(r, stream, spill, conditions=first)
        n += spill.n_events
    return n


def bench_transport(r, stream: str, count: int = 16) -> BenchResult:
    """Read + decode + ack every message of ``stream`` through a fresh group."""
    group = f"bench-ceiling-{uuid.uuid4().hex[:6]}"
    rs.ensure_group(r, stream, group)
    events = 0
    c0, w0 = time.process_time(), time.perf_counter()
    while True:
        msgs = rs.read_group(r, stream, group, "ceiling", count=count, block_ms=10)
        if not msgs:
            break
        for m in msgs:
            if m.type == b"batch":
                events += decode_batch(m.fields[b"payload"]).n_events
        rs.ack(r, stream, group, [m.id for m in msgs])
    return BenchResult(
        "transport ceiling (read+decode+ack)",
        events,
        time.process_time() - c0,
        time.perf_counter() - w0,
    )


def bench_worker(
    settings: Settings, r, specs: SpecSet, database_url: str, close_hooks=()
) -> BenchResult:
    """The real worker, burst mode, on the already published stream.

    SciPy, which the checks import on first use, is imported before the clock: a running
    worker imports it in a background thread while it waits for its first batch
    (``dqm.commands.worker.WARM_UP``), once per process (≈ 1 CPU-s, a quarter of a
    20-spill run's CPU if it were counted).
    """
    import importlib

    from dqm.commands.worker import WARM_UP

    for module in WARM_UP:
        importlib.import_module(module)
    group = f"bench-worker-{uuid.uuid4().hex[:6]}"
    s = settings.with_(group=group, database_url=database_url)
    engine = make_engine(database_url)
    worker = Worker(
        s,
        redis_client=r,
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="bench",
        close_hooks=list(close_hooks),
    )
    c0, w0 = time.process_time(), time.perf_counter()
    stats = worker.run(burst=True)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    engine.dispose()
    lat = sorted(stats.close_latency_s)
    extra = {"spills_closed": stats.spills_closed, "commits": stats.commits}
    if lat:
        extra["close_p50_s"] = statistics.median(lat)
        extra["close_p95_s"] = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
    return BenchResult(
        "worker (decode+fill all specs+summaries+commit+ack)", stats.events, cpu, wall, extra
    )


def _numpy_fill(specs: SpecSet, view: BatchView) -> None:
    """The same histograms with numpy.histogram / histogram2d (the baseline)."""
    for spec in specs:
        mask = view.evaluate(spec.selection) if spec.selection is not None else None
        sel = (lambda a: a) if mask is None else (lambda a, mask=mask: a[mask])
        if spec.kind == "h1":
            np.histogram(
                _numeric(sel(view.evaluate(spec.x.expr))).ravel(),
                bins=spec.x.bins,
                range=(spec.x.lo, spec.x.hi),
            )
        elif spec.kind == "h2":
            x, y = np.broadcast_arrays(
                _numeric(sel(view.evaluate(spec.x.expr))), _numeric(sel(view.evaluate(spec.y.expr)))
            )
            np.histogram2d(
                x.ravel(),
                y.ravel(),
                bins=(spec.x.bins, spec.y.bins),
                range=((spec.x.lo, spec.x.hi), (spec.y.lo, spec.y.hi)),
            )
        elif spec.kind == "channels":
            v = sel(view.evaluate(spec.values))
            v = v.reshape(v.shape[0], -1)
            ch = np.broadcast_to(np.arange(v.shape[1]), v.shape)
            np.histogram2d(
                ch.ravel(),
                v.ravel(),
                bins=(v.shape[1], spec.y.bins),
                range=((0, v.shape[1]), (spec.y.lo, spec.y.hi)),
            )
        else:
            cells = sel(view.evaluate(spec.values))
            flat = cells.reshape(cells.shape[0], -1)
            idx = np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
            hit = flat > spec.threshold_gev
            w = None if spec.stat == "occupancy" else np.rint(flat[hit] * 1000.0)
            np.histogram(idx[hit], bins=flat.shape[1], range=(0, flat.shape[1]), weights=w)


def _numeric(a: np.ndarray) -> np.ndarray:
    """Boolean variables (trigger bits) as 0/1 integers: numpy.histogram warns on bool input."""
    return a.view(np.uint8) if a.dtype == np.bool_ else a


def bench_fill(
    specs: SpecSet, batch_size: int = 2000, repeat: int = 50
) -> tuple[BenchResult, BenchResult]:
    """Filler vs numpy on the same decoded batch; derived variables precomputed for both."""
    cfg = SimConfig(
        n_spills=1, events_per_spill=batch_size, batch_size=batch_size, intensity_jitter=0.0
    )
    payload = next(simulate_run(cfg)).batches()[0]
    batch = decode_batch(payload)
    filler = Filler(specs)
    view = BatchView(batch.columns)
    hists = filler.book()
    filler.fill(hists, view)  # warm the variable cache: both sides then histogram cached arrays
    _numpy_fill(specs, view)
    out = []
    for name, fn in (
        ("fill stage: boost-histogram (Filler)", lambda: filler.fill(hists, view)),
        ("fill stage: numpy.histogram/histogram2d", lambda: _numpy_fill(specs, view)),
    ):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(repeat):
            fn()
        out.append(
            BenchResult(
                name, batch.n_events * repeat, time.process_time() - c0, time.perf_counter() - w0
            )
        )
    return out[0], out[1]


def bench_scaleout(
    settings: Settings,
    r,
    n_workers: int,
    n_spills: int,
    events_per_spill: int,
    batch_size: int,
    data_dir: Path,
    database_url: str | None = None,
) -> BenchResult:
    """N worker processes drain one pre-published run; start-up is not timed.

    The run is published first into a group positioned at its end, the N workers start
    and join the group (their imports and connections happen before the clock), then
    ``XGROUP SETID 0`` hands them the whole backlog at once. The clock stops when the
    last spill is closed in the store; CPU is the workers' own (``/proc``) over that span.
    The store is a fresh SQLite file, or ``database_url`` (a scratch database: the bench's
    run, numbered 9xxxxx at random, stays in it).
    """
    import os
    import signal

    from dqm.store.queries import count_closed_spills

    stream, group = f"bench:scale:{uuid.uuid4().hex[:6]}", "bench-scale"
    seed = n_workers if database_url is None else 10 + uuid.uuid4().int % 90_000
    events = publish_bench_run(r, stream, n_spills, events_per_spill, batch_size, seed=seed)
    run = 900_000 + seed  # publish_bench_run's run number
    r.xgroup_create(stream, group, id="$")
    db = (
        database_url or f"sqlite:///{data_dir / f'scale-{n_workers}-{uuid.uuid4().hex[:6]}.sqlite'}"
    )
    upgrade_database(db)
    env = {
        **os.environ,
        "DQM_REDIS_URL": settings.redis_url,
        "DQM_DATABASE_URL": db,
        "DQM_STREAM": stream,
        "DQM_GROUP": group,
        "DQM_BLOCK_MS": "20",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dqm",
                "--log-level",
                "WARNING",
                "worker",
                "--consumer",
                f"scale-{i}",
            ],
            env=env,
        )
        for i in range(n_workers)
    ]
    engine = make_engine(db, writer=False)
    try:
        _wait(
            lambda: len(r.xinfo_consumers(stream, group)) == n_workers,
            procs,
            "the workers to join the group",
        )
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        w0 = time.perf_counter()
        r.xgroup_setid(stream, group, id="0")

        def all_closed() -> bool:
            with make_sessionmaker(engine)() as session:
                return count_closed_spills(session, run) >= n_spills

        _wait(all_closed, procs, "every spill to close", every_s=0.02)
        wall = time.perf_counter() - w0
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        engine.dispose()
        r.delete(stream)
    return BenchResult(f"scale-out: {n_workers} worker process(es)", events, cpu, wall)


def _wait(
    predicate,
    procs: list[subprocess.Popen],
    what: str,
    timeout_s: float = 300.0,
    every_s: float = 0.05,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        dead = [p.args[-1] for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"bench worker(s) {', '.join(dead)} exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


def temp_sqlite() -> tuple[str, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory(prefix="dqm-bench-")
    url = f"sqlite:///{Path(tmp.name) / 'bench.sqlite'}"
    upgrade_database(url)
    return url, tmp
