"""Load on the control room: N browser sessions watching live spills for a while.

Measures what the issue promises a long shift needs: the web server's memory stays
flat, updates keep reaching every session, and the server process is mostly idle.
The event loop's busy fraction is the CPU time of the ``dqm serve`` process's main
thread (where Tornado's IO loop runs; ``/proc/PID/task/PID/stat``) over wall time; the
whole process's CPU (the refresher thread building snapshots and plots included) is
reported beside it.

Everything runs on this machine (loopback only): a private Redis, a SQLite file, one
worker, ``dqm serve``, the simulator, and Debian's Chromium driven by Playwright.
Bounded in time; stops everything it started.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dqm.pipeline.services import EmbeddedRedis, cpu_seconds, free_port, stop_processes, wait_http
from dqm.pipeline.stream import connect, publish_spill
from dqm.pipeline.stream import publish_conditions as rs_conditions
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store.migrate import upgrade_database

__all__ = ["LoadResult", "run_load", "CHROMIUM_ARGS"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: the spill a page shows, found inside Bokeh's (open) shadow roots
_SHOWN_SPILL = """() => {
  const find = (root) => {
    const el = root.querySelector('[data-spill]');
    if (el) return el.getAttribute('data-spill');
    for (const e of root.querySelectorAll('*')) {
      if (e.shadowRoot) { const v = find(e.shadowRoot); if (v) return v; }
    }
    return null;
  };
  return find(document);
}"""


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    cpu_s: float
    spills_closed: int
    pages_current: int
    loop_cpu_s: float = 0.0


@dataclass
class LoadResult:
    sessions: int
    duration_s: float
    spills_published: int
    samples: list[Sample] = field(default_factory=list)
    page_updates: list[int] = field(default_factory=list)

    @property
    def rss_first_mb(self) -> float:
        return self.samples[0].rss_mb

    @property
    def rss_last_mb(self) -> float:
        return self.samples[-1].rss_mb

    def rss_slope_mb_per_min(self) -> float:
        """Least-squares slope of RSS over the second half (after the caches warm up)."""
        half = self.samples[len(self.samples) // 2 :]
        if len(half) < 2:
            return 0.0
        ts = [s.t_s / 60 for s in half]
        ys = [s.rss_mb for s in half]
        return statistics.linear_regression(ts, ys).slope

    def cpu_fraction(self) -> float:
        first, last = self.samples[0], self.samples[-1]
        return (last.cpu_s - first.cpu_s) / max(last.t_s - first.t_s, 1e-9)

    def loop_fraction(self) -> float:
        first, last = self.samples[0], self.samples[-1]
        return (last.loop_cpu_s - first.loop_cpu_s) / max(last.t_s - first.t_s, 1e-9)

    def lines(self) -> list[str]:
        updates = sorted(self.page_updates)
        return [
            f"control-room load: {self.sessions} browser sessions, {self.duration_s / 60:.1f} min, "
            f"{self.spills_published} spills published",
            f"  server memory (RSS): first {self.rss_first_mb:.0f} MB, last {self.rss_last_mb:.0f} "
            "MB, "
            f"max {max(s.rss_mb for s in self.samples):.0f} MB, slope over the second half "
            f"{self.rss_slope_mb_per_min():+.2f} MB/min",
            f"  event loop busy (server main thread CPU / wall): {100 * self.loop_fraction():.1f} "
            "%; "
            f"whole server process incl. the refresher thread: {100 * self.cpu_fraction():.1f} % "
            "of one core",
            f"  updates seen per session (distinct spills shown): min {updates[0]}, median "
            f"{statistics.median(updates):.0f}, "
            f"max {updates[-1]}; sessions current at the last sample: "
            f"{self.samples[-1].pages_current}/{self.sessions}",
        ]


def _proc_stats(pid: int) -> tuple[float, float, float]:
    """(RSS in MB, process CPU s, main-thread CPU s) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss_kb / 1024, cpu_seconds(pid), cpu_seconds(pid, thread=pid)


def _spills_closed(db_url: str) -> int:
    from sqlalchemy import func, select

    from dqm.store.engine import make_engine, make_sessionmaker
    from dqm.store.models import Spill

    engine = make_engine(db_url, writer=False)
    try:
        with make_sessionmaker(engine)() as s:
            return int(
                s.scalar(select(func.count()).select_from(Spill).where(Spill.status != "open")) or 0
            )
    finally:
        engine.dispose()


def run_load(
    *,
    sessions: int = 20,
    minutes: float = 10.0,
    period_s: float = 4.0,
    events_per_spill: int = 10_000,
    sample_s: float = 10.0,
    chromium: str = "/usr/bin/chromium",
    log=print,
) -> LoadResult:
    """Run the load and return its samples (see the module docstring)."""
    from playwright.sync_api import sync_playwright  # a test dependency: imported only here

    tmp = tempfile.TemporaryDirectory(prefix="dqm-load-")
    redis_server = EmbeddedRedis().start()
    db_url = f"sqlite:///{Path(tmp.name) / 'dqm.sqlite'}"
    upgrade_database(db_url)
    env = dict(
        os.environ,
        DQM_REDIS_URL=redis_server.url,
        DQM_DATABASE_URL=db_url,
        DQM_DATA_DIR=tmp.name,
        DQM_STALE_AFTER_S="600",
    )
    port = free_port()
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
                "load-w",
            ],
            env=env,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "dqm", "--log-level", "WARNING", "serve", "--port", str(port)],
            env=env,
        ),
    ]
    server = procs[1]
    stop = threading.Event()
    published = [0]

    def simulate() -> None:
        r = connect(redis_server.url)
        cfg = SimConfig(run=1, events_per_spill=events_per_spill)
        rs_conditions(r, "dqm:events", cfg.conditions())
        spill = 0
        while not stop.is_set():
            spill += 1
            anomalies = [parse_anomaly(f"beam_shift@{spill}:dx_mm=4")] if spill % 5 == 0 else []
            data = simulate_spill(cfg, spill, anomalies)
            if data is not None:
                publish_spill(r, "dqm:events", data)
                published[0] += 1
            stop.wait(period_s)

    result = LoadResult(sessions=sessions, duration_s=minutes * 60, spills_published=0)
    try:
        url = f"http://127.0.0.1:{port}/control_room"
        wait_http(url, server)
        sim = threading.Thread(target=simulate, daemon=True)
        sim.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            pages = []
            for _ in range(sessions):
                page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
                page.goto(url, timeout=120_000)
                pages.append(page)
            log(
                f"{sessions} sessions open on {url}; sampling every {sample_s:g} s for {minutes:g} "
                "min"
            )
            seen: list[set[str]] = [set() for _ in pages]
            t0 = time.monotonic()
            while True:
                t = time.monotonic() - t0
                shown = []
                for i, page in enumerate(pages):
                    value = page.evaluate(_SHOWN_SPILL)
                    shown.append(value)
                    if value:
                        seen[i].add(value)
                closed = _spills_closed(db_url)
                latest = max(
                    (v for v in shown if v), key=lambda v: int(v.split("/")[-1]), default=None
                )
                rss, cpu, loop_cpu = _proc_stats(server.pid)
                result.samples.append(
                    Sample(t, rss, cpu, closed, sum(v == latest for v in shown), loop_cpu)
                )
                log(
                    f"  t={t:6.0f} s  RSS {rss:6.1f} MB  CPU {cpu:7.1f} s (loop {loop_cpu:6.1f} s) "
                    f" spills closed {closed:4d}  "
                    f"sessions on the newest spill {result.samples[-1].pages_current}/{sessions}"
                )
                if t >= minutes * 60:
                    break
                pages[0].wait_for_timeout(
                    sample_s * 1000
                )  # keeps every page's event loop running meanwhile
            result.page_updates = [len(s) for s in seen]
            browser.close()
    finally:
        stop.set()
        stop_processes(procs, 20)
        redis_server.stop()
        tmp.cleanup()
    result.spills_published = published[0]
    return result


def save(result: LoadResult, path: Path) -> None:
    data = asdict(result) | {"summary": result.lines()}
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
