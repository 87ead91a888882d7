"""Test helpers: publish simulated spills, fill them in one process, read stored results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boost_histogram as bh
import numpy as np
from sqlalchemy import select

from dqm.config import Settings
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.histio import add_into
from dqm.core.variables import BatchView
from dqm.pipeline.stream import ConditionsAnnouncer, publish_spill
from dqm.sim.simulate import SimConfig, SpillData, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import Spill
from dqm.store.spills import spill_histograms

ROOT = Path(__file__).resolve().parents[1]


def small_run(
    run: int = 7, n_spills: int = 20, events: int = 4000, batch: int = 1000, **kw
) -> list[SpillData]:
    cfg = SimConfig(run=run, n_spills=n_spills, events_per_spill=events, batch_size=batch, **kw)
    return list(simulate_run(cfg))


def publish(r, settings: Settings, spills: list[SpillData], *, conditions: bool = True) -> None:
    """Publish spills as the simulator does: each run's conditions before its first spill."""
    announcer = ConditionsAnnouncer()
    for s in spills:
        cond = announcer.due(s.conditions) if conditions else None
        publish_spill(r, settings.stream, s, conditions=cond)


def one_process_fill(
    specs, spills: list[SpillData]
) -> dict[tuple[int, int], dict[str, bh.Histogram]]:
    """The truth: every spill's batches decoded and filled in this process."""
    filler = Filler(specs)
    out = {}
    for s in spills:
        hists = filler.book()
        for payload in s.batches():
            filler.fill(hists, BatchView(decode_batch(payload).columns))
        out[(s.run, s.spill)] = hists
    return out


def stored(url: str, run: int) -> dict[tuple[int, int], tuple[str, dict[str, bh.Histogram]]]:
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Spill.id, Spill.spill, Spill.status).where(Spill.run == run)
            ).all()
            return {(run, sp): (status, spill_histograms(session, sid)) for sid, sp, status in rows}
    finally:
        engine.dispose()


def assert_identical(
    expected: dict[str, bh.Histogram], got: dict[str, bh.Histogram], where: str = ""
) -> None:
    assert set(expected) == set(got), f"{where}: histogram names differ"
    for name, h in expected.items():
        a, b = h.view(flow=True), got[name].view(flow=True)
        assert a.shape == b.shape, f"{where} {name}: shapes {a.shape} vs {b.shape}"
        diff = np.argwhere(a != b)
        assert diff.size == 0, (
            f"{where} {name}: {len(diff)} bins differ, first at {diff[0].tolist()}: "
            f"{a[tuple(diff[0])]} vs {b[tuple(diff[0])]}"
        )


def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float = 60.0,
    every_s: float = 0.05,
    what: str = "condition",
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def closed_count(url: str, run: int) -> int:
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            return len(
                session.scalars(
                    select(Spill.id).where(Spill.run == run, Spill.status != "open")
                ).all()
            )
    finally:
        engine.dispose()


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DQM_REDIS_URL": settings.redis_url,
            "DQM_DATABASE_URL": settings.database_url,
            "DQM_STREAM": settings.stream,
            "DQM_GROUP": settings.group,
            "DQM_DEAD_LETTER_STREAM": settings.dead_letter_stream,
            "DQM_CHANNEL": settings.channel,
            "DQM_COMMIT_INTERVAL_S": str(settings.commit_interval_s),
            "DQM_BLOCK_MS": str(settings.block_ms),
            "DQM_CLAIM_IDLE_MS": str(settings.claim_idle_ms),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def start_worker(
    settings: Settings, consumer: str, *args: str, stderr=None, **extra: str
) -> subprocess.Popen:
    """A ``dqm worker`` process; ``stderr`` (an open file) keeps its log for the test to read."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dqm",
            "--log-level",
            "WARNING",
            "worker",
            "--consumer",
            consumer,
            *args,
        ],
        env=worker_env(settings, **extra),
        cwd=str(ROOT),
        stderr=stderr,
    )


def run_totals(per_spill: dict) -> dict[str, bh.Histogram]:
    total: dict[str, bh.Histogram] = {}
    for hists in per_spill.values():
        add_into(total, hists if isinstance(hists, dict) else hists[1])
    return total
