"""The web apps' data layer on real Redis + PostgreSQL: one refresher, sessions that only bind."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from apps.control_room import ControlRoom
from apps.datastore import DataStore
from apps.expert import HistogramExplorer, Trends
from apps.expert_actions import run_action
from dqm.checks import Quality
from dqm.core.specs import load_specs
from dqm.pipeline.runtime import close_hooks, open_store
from dqm.pipeline.worker import Worker
from dqm.store import actions
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import AuditEntry, Flag, Spill
from tests.helpers import wait_until
from tests.web_helpers import BEAM_SHIFT, publish_one, specs_with_checks

pytestmark = pytest.mark.integration


@pytest.fixture
def web(settings, redis_client, tmp_path):
    """Settings on a specs copy with known checks, an in-process worker, a web DataStore."""
    specs_dir = specs_with_checks(tmp_path / "specs", wall_plots=False)
    s = replace(settings, specs_dir=str(specs_dir))
    specs = load_specs(specs_dir)
    writer = open_store(s)
    worker = Worker(
        s,
        redis_client=redis_client,
        sessions=writer.sessions,
        specs=specs,
        consumer="t",
        close_hooks=close_hooks(s, specs),
    )
    reader = open_store(s, writer=False)
    store = DataStore(s, specs, reader, poll_s=0.5)
    queries: list[str] = []
    event.listen(reader.engine, "before_cursor_execute", lambda *a: queries.append(a[2]))

    def close(run: int, spill: int, anomaly: str | None = None) -> None:
        publish_one(redis_client, s.stream, run, spill, anomaly)
        worker.run(burst=True)

    yield s, store, close, queries
    store.stop()
    reader.dispose()
    writer.dispose()


def test_twenty_sessions_cost_the_queries_of_one(web):
    s, store, close, queries = web
    # Given two closed spills and 20 control-room sessions bound to one DataStore
    close(1, 1)
    close(1, 2)
    store.refresh()
    views = [ControlRoom(store, stale_after_s=60) for _ in range(20)]
    # When a new spill closes and the refresher runs once, and every session ticks many times
    close(1, 3)
    queries.clear()
    store.refresh()
    per_refresh = len(queries)
    for _ in range(5):
        for v in views:
            v.tick()
    # Then the sessions added no query at all, and every one of them shows spill 3
    assert len(queries) == per_refresh
    assert 0 < per_refresh <= 10, queries
    assert all('data-spill="1 / 3"' in v._header.object for v in views)
    # And a second refresh costs the same queries whatever the number of sessions, less the
    # spill's histograms: the same spill against the same reference keeps its plots
    queries.clear()
    store.refresh()
    assert len(queries) == per_refresh - 1
    assert not any("spill_histograms" in q for q in queries)
    print(f"\nqueries per refresh: {per_refresh} (20 sessions)")


def test_refresher_follows_the_spill_closed_channel(web):
    s, store, close, _ = web
    # Given a started refresher (subscribed to the channel) and one closed good spill
    close(2, 1)
    store.start()
    wait_until(lambda: store.snapshot.spill == 1, 10, what="first snapshot")
    beam = {t.subsystem: t for t in store.snapshot.tiles}["beam"]
    assert beam.quality in ("GOOD", "NO_DATA"), (
        "no reference yet: shape checks may say NO_DATA, never BAD"
    )
    # When an anomalous spill (beam shifted by 5 mm) is closed by the worker
    close(2, 2, BEAM_SHIFT)
    t0 = time.monotonic()
    wait_until(lambda: store.snapshot.spill == 2, 5, every_s=0.01, what="snapshot of spill 2")
    latency = time.monotonic() - t0
    # Then the snapshot follows within a second, the beam tile is BAD with its explanation and
    # instruction
    tile = {t.subsystem: t for t in store.snapshot.tiles}["beam"]
    assert tile.quality == "BAD"
    assert "beam centre moved" in tile.explanation  # the wall's words (dqm.core.words)
    spec = load_specs(s.specs_path)[tile.histogram]
    assert tile.instruction in {c.instruction or spec.instruction for c in spec.checks}, (
        "the spec's shifter instruction"
    )
    assert latency < 1.0
    numbers = {n.label: n for n in store.snapshot.numbers}
    assert numbers["beam x (MS1)"].value == pytest.approx(5.0, abs=1.0)
    assert len(numbers["beam x (MS1)"].trend) == 2


def test_spills_that_never_arrived_are_named_on_the_wall(web):
    s, store, close, _ = web
    # Given spills 1, 2 and 5 of a run closed, 3 and 4 lost before the DQM
    for spill in (1, 2, 5):
        close(8, spill)
    # When the refresher builds the wall's snapshot at once
    store.refresh()
    # Then no gap is shown yet: another worker may still be filling 3 and 4
    assert store.snapshot.spill == 5 and store.snapshot.missing == ()
    # When spill 5 is older than the spill timeout
    engine = make_engine(s.database_url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(
            update(Spill)
            .where(Spill.run == 8, Spill.spill == 5)
            .values(opened_at=datetime.now(UTC) - timedelta(seconds=s.spill_timeout_s + 5))
        )
    engine.dispose()
    store.refresh()
    # Then the snapshot and the wall's header name the gap
    assert store.snapshot.missing == (3, 4)
    wall = ControlRoom(store, stale_after_s=60)
    assert "run 8: spills 3–4 never reached the DQM" in wall._header.object
    # And once they arrive late the banner goes away
    close(8, 3)
    close(8, 4)
    store.refresh()
    wall.tick()
    assert store.snapshot.missing == () and "data-missing" not in wall._header.object


def test_expert_histograms_load_off_the_event_loop_and_show_the_latest_choice(web):
    s, store, close, _ = web
    # Given two closed spills and the expert's histogram explorer on them
    close(1, 1)
    close(1, 2)
    explorer = HistogramExplorer(store, view={"histogram": "p_bms"})
    assert "spills 1–2" in explorer.info.object
    loading_threads = []
    real_load = explorer._load
    main, second_loaded = threading.get_ident(), threading.Event()

    def load(request):
        loading_threads.append(threading.get_ident())
        if threading.get_ident() != main and request.histogram == "p_ms2":
            second_loaded.wait(10)  # the first choice is the slower to load: it finishes last
        loaded = real_load(request)
        if threading.get_ident() != main and request.histogram == "beam_x_ms1_0":
            second_loaded.set()
        return loaded

    explorer._load = load

    async def choose(*names):
        """The expert picks histograms one after the other, faster than they load."""
        tasks = []
        for name in names:
            explorer.histogram.value = name  # (outside a server the watcher draws at once, too)
            tasks.append(asyncio.ensure_future(explorer.draw_async()))
            await asyncio.sleep(0)  # it takes this request and starts loading
        await asyncio.gather(*tasks)
        return threading.get_ident()

    # When two histograms are chosen in a row in a served session's way (draw_async on a loop)
    loop_thread = asyncio.run(choose("p_ms2", "beam_x_ms1_0"))
    # Then the decoding and summing ran in other threads than the loop's (the wall screens keep
    # updating)
    # (outside a server the watcher also draws at once on the loop's thread: those are the others)
    assert sum(t != loop_thread for t in loading_threads) == 2
    # and the page shows the last choice, not whichever load finished last
    title = store.specs["beam_x_ms1_0"].title
    assert title in explorer.info.object and not explorer.plot_area.loading


def test_expert_trends_query_off_the_event_loop(web):
    s, store, close, _ = web
    # Given closed spills of two runs and the trends tab
    close(1, 1)
    close(2, 1)
    trends = Trends(store)
    threads = []
    real_load = trends._load
    trends._load = lambda *a: threads.append(threading.get_ident()) or real_load(*a)

    async def choose():
        trends.runs.value = [1, 2]
        await trends.draw_async()
        return threading.get_ident()

    # When the expert adds a run in a served session's way
    loop_thread = asyncio.run(choose())
    # Then the query ran in another thread than the loop's, and the plot shows both runs' spills
    assert sum(t != loop_thread for t in threads) == 1
    figure = trends.area[0].object
    assert len(figure.renderers[0].data_source.data["run"]) == 2 and not trends.area.loading


def test_stale_after_no_spill(web):
    s, store, close, _ = web
    # Given one closed spill
    close(3, 1)
    snap = store.refresh()
    # Then it is fresh now and stale once stale_after_s has passed
    assert not snap.is_stale(60)
    assert snap.is_stale(0.0) or snap.age_s() == 0.0
    view = ControlRoom(store, stale_after_s=0.0)
    time.sleep(0.01)
    view.tick()
    assert 'data-state="STALE"' in view._header.object
    assert 'data-state="STALE"' not in ControlRoom(store, stale_after_s=3600)._header.object


def test_actions_need_a_named_user_and_land_in_the_audit_trail(web):
    s, store, close, _ = web
    # Given a spill whose beam tile is BAD (the shift trips more than one beam check)
    close(4, 1, BEAM_SHIFT)
    shown = {t.subsystem: t for t in store.refresh().tiles}["beam"]  # the flag the wall tile shows
    assert shown.quality == "BAD"
    bad_ids = store.read(
        lambda db: list(
            db.scalars(
                select(Flag.id)
                .where(
                    Flag.run == 4,
                    Flag.spill == 1,
                    Flag.subsystem == "beam",
                    Flag.quality == int(Quality.BAD),
                    Flag.check != "rollup",
                )
                .order_by(Flag.id)
            )
        )
    )
    shown_id = store.read(
        lambda db: db.scalar(
            select(Flag.id).where(
                Flag.run == 4,
                Flag.spill == 1,
                Flag.check == shown.check,
                Flag.histogram == shown.histogram,
            )
        )
    )
    assert shown_id in bad_ids
    # When a guest tries to acknowledge the flag on the tile
    ok, text = run_action(
        store, "guest", "acknowledge", lambda db: actions.acknowledge_flag(db, shown_id, "guest")
    )
    # Then it is refused and nothing is recorded
    assert not ok and "logged-in" in text
    assert store.read(lambda db: db.scalar(select(AuditEntry.id))) is None
    # When a named expert acknowledges it
    ok, text = run_action(
        store,
        "alice",
        "acknowledge",
        lambda db: actions.acknowledge_flag(db, shown_id, "alice", annotation="known"),
    )
    # Then the audit trail has who and what
    assert ok, text
    entry = store.read(lambda db: db.scalars(select(AuditEntry)).one())
    assert (entry.user, entry.action, entry.target) == (
        "alice",
        "acknowledge_flag",
        f"flag {shown_id}",
    )
    tile = {t.subsystem: t for t in store.snapshot.tiles}["beam"]
    others = [i for i in bad_ids if i != shown_id]
    if others:
        # and while another BAD beam flag is unacknowledged the tile shows that one, not "handled"
        assert tile.quality == "BAD" and tile.acknowledged_by is None
        for i in others:
            ok, text = run_action(
                store,
                "alice",
                "acknowledge",
                lambda db, i=i: actions.acknowledge_flag(db, i, "alice"),
            )
            assert ok, text
        tile = {t.subsystem: t for t in store.snapshot.tiles}["beam"]
    # and once every BAD beam flag is acknowledged, the wall shows who did it
    assert tile.quality == "BAD" and tile.acknowledged_by == "alice"


def test_action_forms_write_through_dqm_actions(web):
    from apps.expert_actions import ActionsPanel
    from dqm.core.roles import EXPERT, Actor
    from dqm.store.models import ChannelMask, CheckOverride, Reference

    s, store, close, _ = web
    # Given a closed run and the action forms of a logged-in expert and of a guest
    close(5, 1)
    expert = ActionsPanel(
        store,
        user=Actor("bob", EXPERT),
        auth_enabled=True,
        selected_cell=lambda: ("webtest_ecal_cells", (2, 3)),
    )
    guest = ActionsPanel(store, user=None, auth_enabled=True, selected_cell=lambda: None)
    # When the guest tries to set a reference
    guest.ref_run.value = 5
    guest.set_reference()
    # Then it is refused
    assert "refused" in guest.result[0].object
    # When the expert sets the reference, masks the clicked cell until a date and loosens a
    # threshold
    expert.ref_run.value = 5
    expert.set_reference()
    expert._fill_cell()
    expert.mask_until.value = "2099-01-01 08:00"
    expert.mask_reason.value = "dead since HV trip"
    expert.mask_cell()
    expert.th_hist.value = "webtest_beam_x"
    expert.th_check.value = "beam_centroid"
    expert.th_params.value = '{"window_mm": 2.0}'
    expert.save_thresholds()
    # Then each landed, with the expert's name in the audit trail
    assert "done by bob" in expert.result[0].object

    def rows(db):
        return (
            db.scalars(select(Reference.run).where(Reference.active.is_(True))).all(),
            [(m.histogram, m.channel) for m in db.scalars(select(ChannelMask))],
            [o.params["window_mm"] for o in db.scalars(select(CheckOverride))],
            sorted((a.user, a.action) for a in db.scalars(select(AuditEntry))),
        )

    refs, masks, overrides, audit = store.read(rows)
    assert refs == [5] and masks == [("webtest_ecal_cells", [2, 3])] and overrides == [2.0]
    assert audit == [
        ("bob", "edit_check_thresholds"),
        ("bob", "mask_channel"),
        ("bob", "set_reference"),
    ]
    # And a malformed date is refused with a message, not an exception
    expert.mask_until.value = "next tuesday"
    expert.mask_cell()
    assert "refused" in expert.result[0].object


def test_without_redis_the_refresher_falls_back_to_polling(web):
    from dqm.pipeline.services import free_port

    s, store, close, _ = web
    # Given a web process whose Redis is unreachable (the workers' Redis is fine)
    blind = DataStore(
        replace(s, redis_url=f"redis://127.0.0.1:{free_port()}/0"),
        store.specs,
        store.store,
        poll_s=0.3,
    )
    blind.start()
    try:
        # When a spill closes
        close(6, 1)
        # Then the poll of the change token still brings it to the wall within a few poll periods
        wait_until(
            lambda: blind.snapshot.spill == 1 and blind.snapshot.run == 6,
            10,
            what="snapshot via polling",
        )
    finally:
        blind.stop()


def test_experts_opening_the_same_view_share_its_reads_until_the_store_changes(web):
    s, store, close, queries = web
    # Given two closed spills and an expert's explorer on p_bms
    close(1, 1)
    close(1, 2)
    store.refresh()
    first = HistogramExplorer(store, view={"histogram": "p_bms"})
    assert "spills 1–2" in first.info.object
    # When a second expert opens the same view
    queries.clear()
    second = HistogramExplorer(store, view={"histogram": "p_bms"})
    # Then the page is drawn from what the first open read: no query at all
    assert queries == [] and second.info.object == first.info.object
    # And once a new spill is stored and the snapshot moves, the next open reads it
    close(1, 3)
    store.refresh()
    queries.clear()
    third = HistogramExplorer(store, view={"histogram": "p_bms"})
    assert queries and "spills 1–3" in third.info.object
