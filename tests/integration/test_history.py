"""Years of data (issue 15, item 4): the history builder and the readers that must not scan it.

Given judged template spills written 600 times over by :func:`copy_history` on a real
PostgreSQL, then the store holds what the live path would leave (spills, histograms, flags,
ledger rows), and the readers a long history made slow answer the same questions: the runs
of the expert page, a run's spills, a downsampled trend that reads the right values, the
runs of a time span and a change token that moves when any spill closes, even late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from apps.snapshot import PlotCache, build_plots, build_snapshot
from dqm.report.sample import judged_day
from dqm.store.bulk import analyse, copy_history, without_secondary_indexes
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.frames import runs, spills_of_run, trend_frame
from dqm.store.models import Flag, ProcessedMessage, Spill, SpillHistograms
from dqm.store.queries import ChangeWatch, change_token, runs_in_period, status_counts
from dqm.store.references import ReferenceCache, set_reference

N = 600
PER_RUN = 50
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def templates(specs):
    spills, conditions = judged_day(
        specs, START, n_spills=3, distinct=3, events_per_spill=1000, first_run=100_000
    )
    return spills, conditions


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
            spills_per_day=200,
            spills_per_run=PER_RUN,
            first_run=100_000,
            batches=4,
            conditions=conditions,
        )
    with sessions.begin() as session:
        analyse(session)
    yield sessions, spills
    engine.dispose()


def test_the_builder_leaves_what_the_live_path_leaves(history):
    sessions, spills = history
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Spill)) == N
        assert session.scalar(select(func.count()).select_from(SpillHistograms)) == N
        flags_per_cycle = sum(len(t.flags) for t in spills)
        assert session.scalar(select(func.count()).select_from(Flag)) == (
            N // len(spills) * flags_per_cycle
        )
        # four batches and one end-of-spill marker per spill, ids unique in the stream
        assert session.scalar(select(func.count()).select_from(ProcessedMessage)) == N * 5
        sp = session.scalar(select(Spill).where(Spill.run == 100_001, Spill.spill == 7))
        template = spills[(PER_RUN + 6) % len(spills)]
        assert sp.summary == template.summary and sp.quality == template.quality
        assert sp.closed_at == START + timedelta(days=(PER_RUN + 6.5) / 200)
        blob = session.scalar(select(SpillHistograms.blob).where(SpillHistograms.spill_id == sp.id))
        assert blob == template.blob


def test_the_readers_answer_on_a_long_history(history):
    sessions, spills = history
    with sessions() as session:
        assert runs(session) == list(range(100_000 + N // PER_RUN - 1, 99_999, -1))
        infos = spills_of_run(session, 100_003)
        assert [i.spill for i in infos] == list(range(1, PER_RUN + 1))
        key = next(k for k, v in spills[0].summary.items() if isinstance(v, float))
        full = trend_frame(session, key, [100_000, 100_001])
        assert len(full) == 2 * PER_RUN and full.attrs["every"] == 1
        expected = [spills[i % len(spills)].summary[key] for i in range(2 * PER_RUN)]
        assert full["value"].tolist() == pytest.approx(expected)
        # Given more spills than points, every k-th spill number of each run is kept
        every_run = runs(session)
        thin = trend_frame(session, key, every_run, max_points=60)
        assert 0 < len(thin) <= 60 + len(every_run) and thin.attrs["every"] > 1
        for run, spill, value in zip(thin["run"], thin["spill"], thin["value"], strict=True):
            i = (run - 100_000) * PER_RUN + spill - 1
            assert value == pytest.approx(spills[i % len(spills)].summary[key])
        day2 = runs_in_period(session, START + timedelta(days=1), START + timedelta(days=2))
        assert day2 == [100_004, 100_005, 100_006, 100_007]


def test_the_change_token_moves_when_an_old_spill_closes_late(history):
    sessions, _ = history
    with sessions.begin() as session:
        before = change_token(session)
        session.execute(
            update(Spill)
            .where(Spill.run == 100_000, Spill.spill == 1)
            .values(status="open", closed_at=None)
        )
    with sessions.begin() as session:
        reopened = change_token(session)
        session.execute(
            update(Spill)
            .where(Spill.run == 100_000, Spill.spill == 1)
            .values(status="complete", closed_at=datetime.now(UTC))
        )
    with sessions() as session:
        assert change_token(session) not in (before, reopened)


def test_status_counts_are_exact_on_a_small_store_and_estimated_on_a_large_one(history):
    sessions, _ = history
    with sessions() as session:
        exact, estimated = status_counts(session)
        assert not estimated and sum(exact.values()) == N
        # Given a store larger than the threshold (here: any), the complete spills are
        # PostgreSQL's estimate (analysed: exact here) less the others, counted exactly
        approx, estimated = status_counts(session, exact_up_to=0)
        assert estimated and approx == exact


def _schema(engine) -> set[tuple]:
    """Every index and constraint of the tables the builder fills, with its definition."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes "
                    "WHERE tablename IN ('spills', 'spill_histograms', 'flags', "
                    "'processed_messages') UNION ALL "
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE conrelid::regclass::text IN ('spills', "
                    "'spill_histograms', 'flags', 'processed_messages')"
                )
            ).all()
        )


def test_the_bulk_load_restores_every_index_and_constraint_even_when_it_fails(pg_url):
    engine = make_engine(pg_url)
    before = _schema(engine)
    # Given the migrated schema, while a bulk load runs only the primary keys are left
    with pytest.raises(RuntimeError, match="load failed"):
        with without_secondary_indexes(engine) as dropped:
            during = _schema(engine)
            assert dropped > 0 and len(during) < len(before)
            assert all(name.startswith("pk_") for _, name, _ in during)
            raise RuntimeError("load failed")
    # Then, the load failed or not, every index and constraint is back as it was, the
    # foreign keys enforced for new rows (NOT VALID: the loaded rows are not checked again)
    after = _schema(engine)
    assert {(t, n, d.removesuffix(" NOT VALID")) for t, n, d in after} == before
    assert sorted(n for _, n, d in after if d.endswith(" NOT VALID")) == sorted(
        n for _, n, d in before if d.startswith("FOREIGN KEY")
    )
    engine.dispose()


def test_the_change_watch_answers_as_the_session_does_and_survives_a_lost_connection(history):
    sessions, _ = history
    engine = sessions.kw["bind"]
    watch = ChangeWatch(engine)
    with sessions() as session:
        assert watch.token() == change_token(session)
    # When a spill closes, the watch sees it (autocommit: no old snapshot held)
    with sessions.begin() as session:
        session.execute(
            update(Spill)
            .where(Spill.run == 100_000, Spill.spill == 2)
            .values(closed_at=datetime.now(UTC))
        )
    with sessions() as session:
        assert watch.token() == change_token(session)
    # When the server drops its connection, the next check answers on a new one
    with sessions.begin() as session:
        killed = session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert killed >= 1
    with sessions() as session:
        assert watch.token() == change_token(session)
    watch.close()


def test_the_walls_plots_are_decoded_once_per_spill_and_reference(history, specs):
    sessions, _ = history
    refs, cache = ReferenceCache(), PlotCache()
    with sessions.begin() as session:
        set_reference(session, 100_000, "test", comment="plots")
    with sessions() as session:
        snap = build_snapshot(session, specs)
        first = build_plots(session, specs, refs, snap, cache)
        # Given the same spill and reference (an expert acted), the plots are the same object
        assert build_plots(session, specs, refs, snap, cache) is first and cache.hits == 1
        # and they are what an uncached build draws: the wall's histograms, reference overlaid
        fresh = build_plots(session, specs, refs, snap)
        assert set(fresh) == set(first) == {s.name for s in specs if s.control_room}
        assert repr(fresh) == repr(first)
        assert any(p.get("_meta", {}).get("has_ref") for p in first.values())
    # When a new reference is set, the same spill is drawn again
    with sessions.begin() as session:
        set_reference(session, 100_001, "test", comment="newer")
    with sessions() as session:
        assert build_plots(session, specs, refs, snap, cache) is not first
        assert cache.hits == 1
