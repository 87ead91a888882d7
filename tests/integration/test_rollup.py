"""Per-run histograms and the histogram retention (issue 15, items 4 and 5).

Given a history of judged spills on a real PostgreSQL (:func:`copy_history`: 50 spills a
run, 200 a day), when the runs are rolled up into aggregates, then the report's sums of a
day, of a window that cuts runs at both ends and of one run are bin for bin those of the
spills summed one by one; an aggregate extended twice, or rolled up again, counts each
spill once; and one whose run gained a spill it does not cover is not trusted. When the
retention runs, exactly the old GOOD spills outside reference runs lose their own histograms,
every sum stays the same, and the readers say which spills' histograms are gone.
"""

from __future__ import annotations

import threading
import time
from argparse import Namespace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import uproot
from sqlalchemy import func, select, update

from dqm.checks import Quality
from dqm.commands import prune
from dqm.commands import report as report_command
from dqm.report.data import Period, gather
from dqm.report.integrate import Integrator
from dqm.report.rootio import export_run
from dqm.report.sample import judged_day
from dqm.store.bulk import analyse, copy_history
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Flag, RunHistograms, Spill, SpillHistograms
from dqm.store.periods import period_histogram_blobs, period_spills
from dqm.store.references import set_reference
from dqm.store.retention import prune_spill_histograms
from dqm.store.rollup import (
    aggregate_infos,
    aggregate_is_current,
    histograms_deleted,
    period_sum,
    roll_up_run,
    roll_up_runs,
)
from dqm.store.spills import run_histograms

N = 600
PER_RUN = 50
PER_DAY = 200
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(days=1) / PER_DAY
WARNING = int(Quality.WARNING)


@pytest.fixture(scope="module")
def templates(specs):
    return judged_day(
        specs, START, n_spills=3, distinct=3, events_per_spill=1000, first_run=100_000
    )


@pytest.fixture
def history(pg_url, templates):
    spills, conditions = templates
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        copy_history(
            session,
            spills,
            N,
            start=START,
            spills_per_day=PER_DAY,
            spills_per_run=PER_RUN,
            first_run=100_000,
            batches=4,
            conditions=conditions,
        )
    with sessions.begin() as session:
        analyse(session)
    yield sessions
    engine.dispose()


def _one_by_one(session, period) -> dict:
    acc = Integrator()
    acc.add_many(period_histogram_blobs(session, period))
    return acc.histograms()


def _assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want) and want
    for name, h in want.items():
        np.testing.assert_array_equal(got[name].view(flow=True), h.view(flow=True), err_msg=name)


def test_the_reports_sums_equal_with_and_without_aggregates(history, specs):
    sessions = history
    windows = [
        Period("day 2", START + timedelta(days=1), START + timedelta(days=2)),
        # cuts runs 100 005 and 100 009: edges spill by spill, runs between from aggregates
        Period("cut", START + 270 * STEP, START + 470 * STEP),
        Period.for_run(100_003),
    ]
    with sessions() as session:
        before = [gather(session, specs, p) for p in windows]
        for p, data in zip(windows, before, strict=True):
            _assert_same(data.histograms, _one_by_one(session, p))
    # When every run is rolled up
    done = roll_up_runs(sessions, settle_s=0, now=START + timedelta(days=10))
    assert [r.added for r in done] == [PER_RUN] * (N // PER_RUN)
    with sessions() as session:
        for p, data in zip(windows, before, strict=True):
            spills = [(s.id, s.run, s.closed_at) for s in period_spills(session, p)]
            plan = period_sum(session, spills, p.start, p.end)
            after = gather(session, specs, p)
            # Then aggregates were used, and the sums are the same bin for bin
            assert plan.aggregate_runs, p.label
            assert sum(plan.aggregate_runs.values()) + len(plan.spill_ids) == len(spills)
            _assert_same(after.histograms, data.histograms)
            assert after.missing_histograms == 0
        cut = period_sum(
            session,
            [(s.id, s.run, s.closed_at) for s in period_spills(session, windows[1])],
            windows[1].start,
            windows[1].end,
        )
        assert sorted(cut.aggregate_runs) == [100_006, 100_007, 100_008]
        assert len(cut.spill_ids) == 200 - 3 * PER_RUN  # 30 of run 100 005, 20 of 100 009
        # the reference reader (a run's sum) reads the aggregate too, to the same sum
        _assert_same(run_histograms(session, 100_003), before[2].histograms)


def test_an_aggregate_extended_in_steps_counts_each_spill_once(history, specs):
    sessions = history
    run = 100_001  # spills 50..99 of the history, closing from START + 50.5 steps
    first = START + (PER_RUN + 20) * STEP  # 20 spills closed before this
    with sessions.begin() as session:
        assert roll_up_run(session, run, first).added == 20
    with sessions.begin() as session:
        again = roll_up_run(session, run, first)  # nothing new: nothing added
        assert (again.added, again.n_spills) == (0, 20)
        part = gather(session, specs, Period.for_run(run))  # 20 from the aggregate, 30 alone
        assert roll_up_run(session, run, START + timedelta(days=5)).added == 30
    with sessions() as session:
        info = aggregate_infos(session, [run])[run]
        assert info.n_spills == PER_RUN and aggregate_is_current(session, info)
        row = session.get(RunHistograms, run)
        assert row is not None and row.n_summed == PER_RUN
        whole = Period.for_run(run)
        _assert_same(gather(session, specs, whole).histograms, _one_by_one(session, whole))
        _assert_same(part.histograms, _one_by_one(session, whole))


def test_an_aggregate_that_misses_a_spill_is_not_trusted_and_is_rebuilt(history, specs):
    sessions = history
    run = 100_002
    roll_up_runs(sessions, settle_s=0, now=START + timedelta(days=10))
    # Given a spill of the run that now closes inside the aggregate's span (as no close can:
    # a close is always later than the run's last) — the aggregate does not cover it
    with sessions.begin() as session:
        info = aggregate_infos(session, [run])[run]
        sp = session.scalar(select(Spill).where(Spill.run == run).order_by(Spill.spill.desc()))
        assert sp is not None
        session.execute(
            update(Spill)
            .where(Spill.id == sp.id)
            .values(closed_at=info.closed_until - timedelta(seconds=1))
        )
        session.execute(
            update(RunHistograms).where(RunHistograms.run == run).values(n_spills=PER_RUN - 1)
        )
    with sessions() as session:
        info = aggregate_infos(session, [run])[run]
        assert not aggregate_is_current(session, info)
        rows = [(s.id, s.run, s.closed_at) for s in period_spills(session, Period.for_run(run))]
        plan = period_sum(session, rows, None, None)
        # Then the report sums the spills one by one instead of counting one twice
        assert plan.aggregate_runs == {} and len(plan.spill_ids) == PER_RUN
    # And rolling up again rebuilds it from every spill (their rows all exist)
    with sessions.begin() as session:
        redo = roll_up_run(session, run, START + timedelta(days=10))
        assert (redo.added, redo.n_spills) == (PER_RUN, PER_RUN)
    with sessions() as session:
        assert aggregate_is_current(session, aggregate_infos(session, [run])[run])
        whole = Period.for_run(run)
        _assert_same(gather(session, specs, whole).histograms, _one_by_one(session, whole))
        assert session.scalar(select(func.count()).select_from(RunHistograms)) == N // PER_RUN


def _prunable_by_rule(session, older_than: datetime, reference_run: int) -> set[int]:
    """The rule of docs/retention.md, applied in Python to every stored spill."""
    flagged = set(session.scalars(select(Flag.spill_id).where(Flag.quality >= WARNING)))
    return {
        sp.id
        for sp in session.scalars(select(Spill))
        if sp.closed_at < older_than
        and sp.run != reference_run
        and sp.quality is not None
        and sp.quality < WARNING
        and sp.id not in flagged
    }


def test_histogram_retention_deletes_only_what_the_policy_lets_go(
    history, specs, settings, tmp_path
):
    sessions = history
    ref_run = 100_000
    with sessions.begin() as session:
        set_reference(session, ref_run, "test", comment="the history's first run")
    cutoff = START + timedelta(days=2)  # spills 0-399 are older
    windows = [
        Period("day 2", START + timedelta(days=1), START + timedelta(days=2)),
        Period.for_run(100_003),
        Period.for_run(ref_run),
        Period("day 3", START + timedelta(days=2), START + timedelta(days=3)),
    ]
    with sessions() as session:
        before = [gather(session, specs, p).histograms for p in windows]
        expected = _prunable_by_rule(session, cutoff, ref_run)
        every = set(session.scalars(select(SpillHistograms.spill_id)))
        kept_old = {
            sp.id for sp in session.scalars(select(Spill).where(Spill.closed_at < cutoff))
        } - expected
    # Given spills of each kind among the old ones: GOOD ones, flagged ones, the reference's
    assert expected and kept_old and len(expected) < 400
    # Without aggregates nothing may go: the sums would be lost
    assert prune_spill_histograms(sessions, cutoff).deleted == 0
    roll_up_runs(sessions, settle_s=0, now=START + timedelta(days=10))
    # When the retention runs
    done = prune_spill_histograms(sessions, cutoff, runs_per_pass=3)
    # Then exactly the spills the rule names lost their own histograms
    assert done.deleted == len(expected) and done.stale_runs == []
    with sessions() as session:
        assert set(session.scalars(select(SpillHistograms.spill_id))) == every - expected
        # And every sum a reader asks for is unchanged: the report's day, a run, the reference
        for p, want in zip(windows, before, strict=True):
            data = gather(session, specs, p)
            _assert_same(data.histograms, want)
            assert data.missing_histograms == 0, p.label
        _assert_same(run_histograms(session, ref_run), before[2])
        # a window that cuts a pruned run cannot be summed whole: it says how many are missing
        cut = Period("cut", START + 270 * STEP, START + 470 * STEP)
        in_cut = {s.id for s in period_spills(session, cut)}
        gone_in_edge = {
            sp.id
            for sp in session.scalars(select(Spill).where(Spill.run == 100_005))
            if sp.id in in_cut and sp.id in expected
        }
        assert gone_in_edge and gather(session, specs, cut).missing_histograms == len(gone_in_edge)
        # the expert page and recheck learn which spills' histograms were deleted
        run3 = {
            sp.id: sp.spill for sp in session.scalars(select(Spill).where(Spill.run == 100_003))
        }
        assert histograms_deleted(session, run3) == expected & set(run3)
        result = recheck_run(session, 100_003, specs)
        assert sorted(result.not_rechecked) == sorted(run3[i] for i in expected & set(run3))
        assert result.spills == PER_RUN - len(result.not_rechecked) > 0
        # the ROOT export of the run sums it whole, from the run's sum
        exported = export_run(session, specs, tmp_path / "run.root", 100_003)
        assert exported["spills"] == PER_RUN
        with uproot.open(tmp_path / "run.root") as f:
            name = next(n for n in before[1] if before[1][n].ndim == 1)
            np.testing.assert_array_equal(f[name].values(), before[1][name].values())
    # A pruned run's aggregate is not rebuilt from what is left, and a second pass deletes nothing
    with sessions.begin() as session:
        assert roll_up_run(session, 100_003, START + timedelta(days=10), rebuild=True).added == 0
    assert prune_spill_histograms(sessions, cutoff).deleted == 0
    # And `dqm prune` with the default 30 days takes the rest of the old GOOD spills
    with sessions() as session:
        rest = _prunable_by_rule(session, datetime.now(UTC) - timedelta(days=30), ref_run)
    assert rest - expected
    code = prune.run(Namespace(dry_run=False, no_ledger=True), settings)
    assert code == 0
    with sessions() as session:
        assert set(session.scalars(select(SpillHistograms.spill_id))) == every - rest
        _assert_same(gather(session, specs, windows[3]).histograms, before[3])


def test_the_report_service_sums_runs_in_the_background_and_stops(history, settings):
    sessions = history
    # Given the report service's background pass (its thread, as `dqm report --schedule` runs it)
    stop = threading.Event()
    background = threading.Thread(
        target=report_command._retention_loop,
        args=(settings.with_(retention_interval_s=3600.0, rollup_settle_s=0.0), stop),
    )
    background.start()
    try:
        # Then every run gets its sum without anyone asking
        deadline = time.monotonic() + 120
        n = 0
        while time.monotonic() < deadline:
            with sessions() as session:
                n = session.scalar(select(func.count()).select_from(RunHistograms)) or 0
            if n == N // PER_RUN:
                break
            time.sleep(0.2)
        assert n == N // PER_RUN
    finally:
        # And it stops when the service stops, without waiting out its interval
        stop.set()
        background.join(timeout=60)
    assert not background.is_alive()
