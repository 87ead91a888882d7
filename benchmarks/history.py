"""Years of data: ``dqm bench --history N`` builds N closed spills and times every reader.

The store is a scratch PostgreSQL database (``--history-database``, migrated here). Its
spills repeat a few dozen simulated, filled and *really judged* spills
(:func:`dqm.report.sample.judged_day`) at 2000 spills a day and 200 spills a run, with
their histograms, flags and exactly-once ledger rows, written with ``COPY``
(:func:`dqm.store.bulk.copy_history`). Each reader is then timed as its page or command
calls it — median of ``repeats`` after one warm-up — beside its target from issue 15.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apps.snapshot import PlotCache, build_plots, build_snapshot
from dqm.checks import Quality
from dqm.config import Settings
from dqm.core.specs import SpecSet
from dqm.report.data import Period, gather
from dqm.report.sample import judged_day
from dqm.store.bulk import copy_history, vacuum_history, without_secondary_indexes
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.frames import (
    audit_frame,
    flags_frame,
    references_frame,
    runs,
    spills_of_run,
    summary_keys,
    trend_frame,
)
from dqm.store.migrate import upgrade_database
from dqm.store.periods import period_spills
from dqm.store.queries import ChangeWatch, change_token, runs_in_period
from dqm.store.references import ReferenceCache, set_reference
from dqm.store.rollup import period_sum, roll_up_runs

__all__ = ["HistoryFigure", "build_history", "time_readers"]

SPILLS_PER_DAY = 2000
SPILLS_PER_RUN = 200


@dataclass
class HistoryFigure:
    name: str
    median_s: float
    target_s: float | None
    #: median CPU seconds of this process (the wall time minus waiting for PostgreSQL and
    #: for a CPU: on a loaded machine the wall time is mostly the latter)
    cpu_s: float = 0.0

    def line(self) -> str:
        target = f"target <= {self.target_s * 1000:.0f} ms" if self.target_s else ""
        ok = "" if self.target_s is None else ("ok" if self.median_s <= self.target_s else "OVER")
        return (
            f"  {self.name:<58} {self.median_s * 1000:9.1f} ms  (cpu {self.cpu_s * 1000:7.1f} ms)"
            f"  {target:<18} {ok}"
        )


def build_history(database_url: str, specs: SpecSet, n_spills: int, *, chunk: int = 100_000):
    """Migrate ``database_url`` and write ``n_spills`` spills ending now; returns the seconds."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    t0 = time.perf_counter()
    start = datetime.now(UTC) - timedelta(days=n_spills / SPILLS_PER_DAY)
    templates, conditions = judged_day(specs, start, n_spills=24, first_run=100_000)
    print(f"    24 spills simulated, filled and judged ({time.perf_counter() - t0:.0f} s)")
    with without_secondary_indexes(engine) as dropped:
        print(f"    {dropped} indexes and constraints dropped for the load", flush=True)
        done = 0
        while done < n_spills:
            n = min(chunk, n_spills - done)
            with sessions.begin() as session:
                copy_history(
                    session,
                    templates,
                    n,
                    start=start + done * timedelta(days=1) / SPILLS_PER_DAY,
                    spills_per_day=SPILLS_PER_DAY,
                    spills_per_run=SPILLS_PER_RUN,
                    first_run=100_000 + done // SPILLS_PER_RUN,
                    conditions=conditions,
                )
            done += n
            print(f"    {done:,d} spills written ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"    indexes and constraints created again ({time.perf_counter() - t0:.0f} s)")
    with sessions.begin() as session:
        set_reference(session, 100_000, "history bench", comment="first run of the history")
    vacuum_history(engine)
    print(f"    vacuumed and analysed ({time.perf_counter() - t0:.0f} s)", flush=True)
    engine.dispose()
    return time.perf_counter() - t0


def _median(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeats`` calls after one warm-up."""
    fn()  # warm-up: the first call pays for the page cache and the statement caches
    times, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(times), statistics.median(cpus)


def time_readers(
    database_url: str, specs: SpecSet, tmp_dir: str, repeats: int = 5
) -> list[HistoryFigure]:
    """Each reader of a long history, timed as its page or command calls it."""
    from dqm.commands import status

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    refs = ReferenceCache()
    now = datetime.now(UTC)
    figures: list[HistoryFigure] = []

    def timed(name: str, target: float | None, fn: Callable[[], object]) -> None:
        wall, cpu = _median(fn, repeats)
        figures.append(HistoryFigure(name, wall, target, cpu))
        print(figures[-1].line(), flush=True)

    def with_session(fn: Callable) -> Callable[[], object]:
        def call():
            with sessions() as session:
                return fn(session)

        return call

    def refresh(session):
        snap = build_snapshot(session, specs)
        return build_plots(session, specs, refs, snap)

    with sessions() as session:
        newest = runs(session)[0]
        key = (
            "mean_n_tracks"
            if "mean_n_tracks" in summary_keys(session)
            else summary_keys(session)[0]
        )
        year = runs_in_period(session, now - timedelta(days=365), now)
        week = runs_in_period(session, now - timedelta(days=7), now)
    timed(
        "control room: verdict after a closed spill (tiles, numbers)",
        0.050,
        with_session(lambda s: build_snapshot(s, specs)),
    )
    timed("control room: refresh after a closed spill (and plots)", 0.050, with_session(refresh))
    plot_cache = PlotCache()

    def refresh_same_spill(session):
        snap = build_snapshot(session, specs)
        return build_plots(session, specs, refs, snap, plot_cache)

    timed(
        "control room: refresh after an expert's action (plots kept)",
        0.050,
        with_session(refresh_same_spill),
    )
    timed(
        "control room: change check, through a session (before)",
        None,
        with_session(change_token),
    )
    watch = ChangeWatch(engine)
    timed("control room: change check (every 2 s)", 0.005, watch.token)
    watch.close()
    timed(
        f"Trends: {key} over a week ({len(week)} runs)",
        0.100,
        with_session(lambda s: trend_frame(s, key, week)),
    )
    timed(
        f"Trends: {key} over a year ({len(year)} runs)",
        0.500,
        with_session(lambda s: trend_frame(s, key, year)),
    )
    timed("expert page: runs", 0.100, with_session(runs))
    timed(
        "expert page: spills of the newest run",
        0.100,
        with_session(lambda s: spills_of_run(s, newest)),
    )
    timed("expert page: summary quantities", 0.100, with_session(summary_keys))
    timed(
        "expert page: WARNING+ flags (500 newest)",
        0.100,
        with_session(lambda s: flags_frame(s, min_quality=int(Quality.WARNING))),
    )
    timed(
        "expert page: BAD flags of the newest run",
        0.100,
        with_session(lambda s: flags_frame(s, run=newest, min_quality=int(Quality.BAD))),
    )
    timed(
        "expert page: audit and references",
        0.100,
        with_session(lambda s: (audit_frame(s), references_frame(s))),
    )
    # the store's part of `dqm status` (no Redis: the data directory names no demo Redis)
    settings = Settings().with_(database_url=database_url, redis_url="", data_dir=tmp_dir)

    def status_command():
        with contextlib.redirect_stdout(io.StringIO()):
            status.run(Namespace(spills=8), settings)

    timed("dqm status (its store queries)", 1.0, status_command)
    # what the report service's background pass does (DQM_ROLLUP_SETTLE_S): a store built
    # before per-run histograms existed is rolled up here once, timed
    t0, c0 = time.perf_counter(), time.process_time()
    done = roll_up_runs(sessions, settle_s=Settings().rollup_settle_s, limit=1_000_000)
    print(
        f"    runs summed into run histograms: {sum(1 for d in done if d.added)} runs, "
        f"{sum(d.added for d in done)} spills in {time.perf_counter() - t0:.1f} s "
        f"({time.process_time() - c0:.1f} CPU-s)",
        flush=True,
    )
    day = Period("last day", now - timedelta(days=1), now)
    with sessions() as session:
        rows = [(s.id, s.run, s.closed_at) for s in period_spills(session, day)]
        plan = period_sum(session, rows, day.start, day.end)
    print(
        f"    the last day: {len(rows)} spills, {sum(plan.aggregate_runs.values())} of them in "
        f"{len(plan.aggregate_runs)} run histograms, {len(plan.spill_ids)} summed one by one",
        flush=True,
    )
    timed(
        "report: gathering of the last day, spill by spill (baseline)",
        None,
        with_session(lambda s: gather(s, specs, day, aggregates=False)),
    )
    timed("report: gathering of the last day", 1.0, with_session(lambda s: gather(s, specs, day)))
    engine.dispose()
    return figures
