"""How long the nightly report takes for a simulated day: the figure ``dqm bench --report`` prints.

The day is stored first (:func:`dqm.report.sample.store_simulated_day`, not timed), its
gathering timed once spill by spill (the baseline), its runs summed into run histograms
(what the report service does in the background during the day); the clock then covers
what the nightly job does: gather the period from the store
(queries, summing ≈2000 spills' histograms and the reference run's) and render every
page to PDF. Wall and CPU time are both reported: the target (≤ 30 s for 2000 spills
with every spec histogram on a 2-core machine) is wall-clock.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from dqm.core.specs import SpecSet
from dqm.report.data import Period, gather
from dqm.report.render import render_report
from dqm.report.sample import store_simulated_day
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.migrate import upgrade_database
from dqm.store.rollup import roll_up_runs

__all__ = ["ReportBench", "bench_report"]


@dataclass
class ReportBench:
    spills: int
    histograms: int
    pages: int
    flagged_spills: int
    gather_s: float
    render_s: float
    cpu_s: float
    pdf_bytes: int
    rollup_s: float = 0.0  # summing the day's runs into run histograms (background, not timed)
    gather_baseline_s: float = 0.0  # the gathering spill by spill, same store, same run

    @property
    def total_s(self) -> float:
        return self.gather_s + self.render_s

    def line(self) -> str:
        return (
            f"  report for a simulated day: {self.spills} spills, {self.histograms} spec "
            f"histograms, {self.flagged_spills} flagged spills"
            f" -> {self.pages} pages, {self.pdf_bytes / 1e6:.1f} MB in {self.total_s:.1f} s wall"
            f" (gather {self.gather_s:.2f} s + render {self.render_s:.1f} s; {self.cpu_s:.1f} "
            f"CPU-s); gathering spill by spill instead of from run histograms: "
            f"{self.gather_baseline_s:.2f} s; the runs summed beforehand in {self.rollup_s:.1f} s"
        )


def bench_report(
    specs: SpecSet,
    *,
    n_spills: int = 2000,
    database_url: str | None = None,
    out_dir: Path | None = None,
    day: date = date(2025, 6, 1),
) -> ReportBench:
    """Store a simulated day in ``database_url`` (default: a temporary SQLite file) and time its
    report."""
    with tempfile.TemporaryDirectory(prefix="dqm-report-bench-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        upgrade_database(url)
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            start = datetime.combine(day, dtime(0), tzinfo=UTC)
            store_simulated_day(sessions, specs, start, n_spills=n_spills)
            out = (out_dir or Path(tmp)) / f"dqm-report-bench-{day.isoformat()}.pdf"
            period = Period("bench day", start, start + timedelta(days=1))
            b0 = time.perf_counter()
            with sessions() as session:
                gather(session, specs, period, aggregates=False)
            baseline = time.perf_counter() - b0
            r0 = time.perf_counter()
            roll_up_runs(sessions, settle_s=0.0, limit=1_000_000)
            rollup = time.perf_counter() - r0
            c0, w0 = time.process_time(), time.perf_counter()
            with sessions() as session:
                data = gather(session, specs, period)
            w1 = time.perf_counter()
            pages = render_report(data, out)
            w2 = time.perf_counter()
            cpu = time.process_time() - c0
            return ReportBench(
                len(data.spills),
                len(specs),
                pages,
                len(data.problem_spills),
                w1 - w0,
                w2 - w1,
                cpu,
                out.stat().st_size,
                rollup,
                baseline,
            )
        finally:
            engine.dispose()
