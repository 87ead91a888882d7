"""How fast the expert page is in a real browser: opening it, and drawing another histogram.

The figure ``dqm bench --expert`` prints (targets, issue 13: the page opens in ≤ 2 s and
a histogram change draws in ≤ 0.5 s on a run of 300 spills). Everything runs on this
machine: a SQLite store holding one run of ``n_spills`` closed, judged spills
(:func:`dqm.report.sample.store_simulated_day`, not timed), ``dqm serve`` on it, and
Debian's Chromium driven by Playwright.

* open — from ``page.goto`` of ``/expert?run=R&histogram=H`` (the newest 20 spills summed,
  the histogram's flag, the check's series) until the explorer shows that view (its
  ``data-view`` marker) and the browser has drawn two frames after it. *Cold*: a new browser
  context each time (empty HTTP cache: Bokeh's and Panel's JavaScript downloaded and compiled
  again); *warm*: a new tab in a context that has opened the page before (an expert's
  browser, whose cache holds the scripts). The first open (cold server caches) is reported
  apart;
* change — choosing another histogram in the explorer's list until its view is shown and
  drawn, over 1D, 2D and cell-map histograms; median, p95 and max, and the median per kind.

Beside each wall clock: the CPU seconds (from ``/proc``) of the server and of Chromium's
processes. On a shared two-core machine the wall clock mostly measures the queue for the
cores; the CPU seconds do not depend on it (their sum bounds an open or a change on one
idle core; the two processes overlap on two).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.loadtest import CHROMIUM_ARGS
from dqm.core.specs import SpecSet
from dqm.pipeline.services import cpu_seconds, free_port, stop_processes, wait_http
from dqm.report.sample import store_simulated_day
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.migrate import upgrade_database

__all__ = ["ExpertBench", "bench_expert_page", "CHANGES"]

RUN = 5000
#: histograms the expert switches between (1D, 2D, cell map, 1D ...): every kind is timed
CHANGES = (
    "p_ms2",
    "beam_xy_ms1_0",
    "ecal_occupancy",
    "dp",
    "p_bms",
    "hcal_m1_energy",
    "time_in_spill",
    "beam_x_ms1_2",
)
#: the view the explorer shows, found inside Bokeh's (open) shadow roots; then two frames
_SHOWN = """(wanted) => {
  const find = (root) => {
    const el = root.querySelector('[data-view]');
    if (el) return el.getAttribute('data-view');
    for (const e of root.querySelectorAll('*')) {
      if (e.shadowRoot) { const v = find(e.shadowRoot); if (v) return v; }
    }
    return null;
  };
  const v = find(document);
  return v !== null && v.startsWith(wanted + ' ');
}"""
_TWO_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
#: every Bokeh document of the page rendered (the index page: no data-view marker)
_IDLE = (
    "() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
    " && Bokeh.documents.every((d) => d.is_idle)"
)


@dataclass
class Timed:
    """One kind of step timed several times: wall clock, server CPU, Chromium's CPU."""

    wall_s: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)
    browser_cpu_s: list[float] = field(default_factory=list)

    def add(self, wall: float, server: float, browser: float) -> None:
        self.wall_s.append(wall)
        self.server_cpu_s.append(server)
        self.browser_cpu_s.append(browser)

    def cpu_line(self) -> str:
        med = statistics.median
        return (
            f"server CPU {med(self.server_cpu_s):.2f} s + Chromium CPU "
            f"{med(self.browser_cpu_s):.2f} s (medians)"
        )


def _p95(values: list[float]) -> float:
    ranked = sorted(values)
    return ranked[max(0, int(round(0.95 * len(ranked))) - 1)] if ranked else float("nan")


@dataclass
class ExpertBench:
    spills: int
    open_first_s: float
    cold: Timed = field(default_factory=Timed)
    warm: Timed = field(default_factory=Timed)
    change: Timed = field(default_factory=Timed)
    #: the index page (one HTML pane) opened the same way: what any Panel page costs here
    floor: Timed = field(default_factory=Timed)
    change_kinds: list[str] = field(default_factory=list)
    machine: str = ""

    def lines(self) -> list[str]:
        med = statistics.median
        ranked = self.change.wall_s
        kinds = sorted(set(self.change_kinds))
        pairs = list(zip(ranked, self.change_kinds, strict=True))
        by_kind = ", ".join(f"{k} {med([w for w, kk in pairs if kk == k]):.2f} s" for k in kinds)
        return [
            f"  expert page on a run of {self.spills} spills, Chromium ({self.machine}):",
            f"    open (first, cold server caches) {self.open_first_s:.2f} s (target <= 2 s)",
            f"    open cold (new browser context, empty cache): {len(self.cold.wall_s)} opens "
            f"median {med(self.cold.wall_s):.2f} s, max {max(self.cold.wall_s):.2f} s; "
            + self.cold.cpu_line(),
            f"    open warm (new tab, the browser has opened the page before): "
            f"{len(self.warm.wall_s)} opens median {med(self.warm.wall_s):.2f} s, max "
            f"{max(self.warm.wall_s):.2f} s; " + self.warm.cpu_line(),
            f"    floor: the index page (one HTML pane, the same JavaScript) warm: "
            f"{len(self.floor.wall_s)} opens median {med(self.floor.wall_s):.2f} s; "
            + self.floor.cpu_line(),
            f"    histogram change ({len(ranked)} changes over 1D/2D/cell maps) median "
            f"{med(ranked):.2f} s, p95 {_p95(ranked):.2f} s, max {max(ranked):.2f} s "
            f"(target <= 0.5 s); " + self.change.cpu_line(),
            f"    change median by kind: {by_kind}",
        ]


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores, load {load:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def _store(url: str, specs: SpecSet, n_spills: int) -> None:
    upgrade_database(url)
    engine = make_engine(url)
    try:
        start = datetime.now(UTC).replace(microsecond=0)
        store_simulated_day(
            make_sessionmaker(engine),
            specs,
            start,
            n_spills=n_spills,
            spills_per_run=n_spills,
            first_run=RUN,
        )
    finally:
        engine.dispose()


def _shown(page, histogram: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(_SHOWN, arg=histogram, polling=10, timeout=timeout_ms)
    page.evaluate(_TWO_FRAMES)


def _chromium_cpu_s() -> dict[int, float]:
    """CPU seconds of each Chromium process started under this one (browser, renderers,
    network, utility): what the browser spent, whatever else queues for the cores."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    out, todo = {}, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                is_chromium = b"chromium" in f.read()
        except OSError:
            continue
        if is_chromium:
            out[pid] = cpu_seconds(pid)
    return out


def _spent(before: dict[int, float]) -> float:
    """Chromium CPU seconds since ``before`` (processes started meanwhile count whole)."""
    now = _chromium_cpu_s()
    return sum(v - before.get(pid, 0.0) for pid, v in now.items())


def _open(context, url: str, histogram: str, server_pid: int, timed: Timed | None):
    """Open ``url`` in a new tab of ``context`` until ``histogram`` is shown (no histogram: until
    the page is drawn); time it into ``timed``; return the tab."""
    page = context.new_page()
    t0, c0, b0 = time.perf_counter(), cpu_seconds(server_pid), _chromium_cpu_s()
    page.goto(url)
    if histogram:
        _shown(page, histogram)
    else:
        page.wait_for_function(_IDLE, polling=10, timeout=60_000)
        page.evaluate(_TWO_FRAMES)
    wall, server = time.perf_counter() - t0, cpu_seconds(server_pid) - c0
    if timed is not None:
        timed.add(wall, server, _spent(b0))
    return page


def bench_expert_page(
    specs: SpecSet, specs_dir: str | None = None, *, n_spills: int = 300, opens: int = 5
) -> ExpertBench:
    """Store a run of ``n_spills``, serve it, and time the expert page in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dqm-expert-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        _store(url, specs, n_spills)
        port = free_port()
        env = {
            **os.environ,
            "DQM_DATABASE_URL": url,
            "DQM_DATA_DIR": tmp,
            "DQM_REDIS_URL": "",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        if specs_dir:
            env["DQM_SPECS_DIR"] = specs_dir
        log = open(Path(tmp) / "serve.log", "wb")
        serve = subprocess.Popen(
            [sys.executable, "-m", "dqm", "serve", "--port", str(port), "--poll-s", "5"],
            env=env,
            stderr=log,
            stdout=log,
        )
        first = "p_bms"
        page_url = f"http://127.0.0.1:{port}/expert?run={RUN}&histogram={first}"
        result = ExpertBench(n_spills, float("nan"))
        try:
            wait_http(f"http://127.0.0.1:{port}/", serve)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                viewport: Any = {"width": 1920, "height": 1080}
                first_open = Timed()
                for i in range(opens + 1):  # cold: a new context (empty cache) every time
                    context = browser.new_context(viewport=viewport)
                    _open(
                        context, page_url, first, serve.pid, first_open if i == 0 else result.cold
                    )
                    context.close()
                result.open_first_s = first_open.wall_s[0]
                context = browser.new_context(viewport=viewport)  # warm: one expert's browser
                page = _open(context, page_url, first, serve.pid, None)
                for _ in range(opens):
                    page.close()
                    page = _open(context, page_url, first, serve.pid, result.warm)
                    floor = _open(context, page_url.split("expert")[0], "", serve.pid, result.floor)
                    floor.close()
                kinds = {s.name: s.kind for s in specs}
                for name in CHANGES * 2:  # the second round: caches warm, as in a session
                    t0, c0, b0 = time.perf_counter(), cpu_seconds(serve.pid), _chromium_cpu_s()
                    page.locator("select:has(optgroup)").select_option(label=name)
                    _shown(page, name)
                    result.change.add(
                        time.perf_counter() - t0, cpu_seconds(serve.pid) - c0, _spent(b0)
                    )
                    result.change_kinds.append(kinds.get(name, "?"))
                context.close()
                browser.close()
        finally:
            stop_processes([serve], 15)
            log.close()
    result.machine = _machine()
    return result
