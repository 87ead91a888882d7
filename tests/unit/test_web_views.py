"""Control-room rendering and the serve command's password hashing (no server, no database)."""

from __future__ import annotations

import argparse
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

pn = pytest.importorskip("panel")

from apps.auth import verify_password  # noqa: E402
from apps.control_room import ControlRoom, render_header, render_numbers, render_tiles  # noqa: E402
from apps.snapshot import Number, Snapshot, Tile  # noqa: E402
from dqm.core.specs import SpecSet  # noqa: E402

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _snap(age_s: float, **kw) -> Snapshot:
    return Snapshot(
        version=3, run=7, spill=12, closed_at=NOW - timedelta(seconds=age_s), quality="BAD", **kw
    )


def test_header_shows_run_spill_age_and_stale_only_after_the_limit():
    # Given a spill closed 30 s ago
    fresh, old = _snap(30), _snap(90)
    # Then with a 60 s limit it is shown with its age and not STALE; at 90 s it is STALE
    html = render_header(fresh, 60, NOW)
    assert 'data-spill="7 / 12"' in html and "30 s ago" in html and 'data-state="BAD"' in html
    assert "STALE" not in html
    assert 'data-state="STALE"' in render_header(old, 60, NOW)
    assert "data-missing" not in html
    # And spills of the run that never arrived are named in a banner
    gap = render_header(replace(fresh, missing=(9, 10, 11)), 60, NOW)
    assert 'data-missing="9–11"' in gap and "run 7: spills 9–11 never reached the DQM" in gap
    # And with no spill at all the wall says so and is STALE
    assert "no spill yet" in render_header(Snapshot(), 60, NOW) and "STALE" in render_header(
        Snapshot(), 60, NOW
    )


def test_tiles_escape_explanations_and_show_instruction_and_link():
    # Given a BAD tile whose explanation contains markup
    tile = Tile(
        "beam",
        "BAD",
        "x <script>alert(1)</script>",
        "call the CCC",
        "beam_x_ms1_0",
        "beam_centroid",
        "alice",
    )
    html = render_tiles(_snap(1, tiles=(tile,)), stale=False)
    # Then the markup is escaped, and instruction, acknowledgement and drill-down link are shown
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "call the CCC" in html and "acknowledged by alice" in html
    assert 'href="./expert?histogram=beam_x_ms1_0&amp;run=7&amp;spill=12"' in html
    assert 'data-quality="BAD"' in html and "stale" not in html
    assert "dqm-tile q-BAD stale" in render_tiles(_snap(1, tiles=(tile,)), stale=True)


def test_a_check_error_tile_has_its_own_colour_words_and_instruction():
    # Given the flags of a spill in which the momentum's ks check raised and a beam check is BAD
    from apps.snapshot import _tiles
    from apps.theme import CONTROL_ROOM_CSS, QUALITY_COLOURS
    from dqm.checks import Quality
    from dqm.core.evaluate import CHECK_ERROR_INSTRUCTION
    from dqm.store.models import Flag

    def flag(subsystem, check, quality, text, instruction="spec instruction", id_=1):
        return Flag(
            id=id_,
            subsystem=subsystem,
            histogram="h",
            check=check,
            quality=int(quality),
            explanation=text,
            instruction=instruction,
        )

    flags = [
        flag("momentum", "p_scale", Quality.GOOD, "fine", id_=1),
        flag(
            "momentum",
            "ks",
            Quality.CHECK_ERROR,
            "check 'ks' failed: ValueError: x",
            CHECK_ERROR_INSTRUCTION,
            2,
        ),
        flag("beam", "beam_width", Quality.CHECK_ERROR, "check 'beam_width' failed", id_=3),
        flag("beam", "beam_centroid", Quality.BAD, "beam x 3.1 mm from nominal", "call the CCC", 4),
    ]
    tiles = {t.subsystem: t for t in _tiles(flags)}
    # Then the momentum tile says CHECK ERROR with the error and whom to call (not GOOD)
    momentum = tiles["momentum"]
    assert momentum.quality == "CHECK_ERROR" and "ValueError" in momentum.explanation
    assert momentum.instruction == CHECK_ERROR_INSTRUCTION
    # and a BAD in the same subsystem is what its tile shows (a broken check never hides it)
    assert tiles["beam"].quality == "BAD" and tiles["beam"].instruction == "call the CCC"
    # and the wall renders it in words and in its own colour
    html = render_tiles(_snap(1, tiles=(momentum,)), stale=False)
    assert 'data-quality="CHECK_ERROR"' in html and ">CHECK ERROR<" in html
    assert f".q-CHECK_ERROR {{ background: {QUALITY_COLOURS['CHECK_ERROR'][0]}" in CONTROL_ROOM_CSS
    assert len({bg for bg, _ in QUALITY_COLOURS.values()}) == len(QUALITY_COLOURS)


def test_numbers_with_error_and_sparkline():
    html = render_numbers(
        (
            Number("π/K fraction", "%", 0.07, 0.05, (0.05, None, 0.07), 2),
            Number("intensity", "events", None, None, (), 0),
        )
    )
    assert "0.07 <span" in html and "± 0.05" in html and "<polyline" in html
    assert "—" in html  # a missing value is a dash, not 'None'


class _Store:
    """The two attributes a ControlRoom reads from its DataStore."""

    def __init__(self, specs) -> None:
        self.specs = specs
        self.snapshot = _snap(5)


def test_tab_rotation_cycles_through_subsystems(specs):
    # Given a wall screen with plots of two subsystems and rotation on
    two = SpecSet((specs["p_bms"], specs["ecal_total"]), "test")
    view = ControlRoom(_Store(two), stale_after_s=60, rotate_s=10)
    # When the rotation timer fires twice
    seen = [view._tabs.active]
    for _ in range(2):
        view.rotate()
        seen.append(view._tabs.active)
    # Then it went to the other tab and back
    assert seen == [0, 1, 0]


def test_hash_password_command(monkeypatch, capsys):
    from dqm.commands import serve

    # Given a password on stdin
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    # When `dqm serve --hash-password` runs
    assert serve.run(argparse.Namespace(hash_password=True), None) == 0
    # Then it prints a hash that verifies that password only
    encoded = capsys.readouterr().out.strip()
    assert verify_password("s3cret", encoded) and not verify_password("secret", encoded)


def test_a_subsystem_turning_bad_brings_its_plots_to_the_front(specs):
    # Given a wall screen showing the first tab, all tiles GOOD
    two = SpecSet((specs["p_bms"], specs["ecal_total"]), "test")
    store = _Store(two)
    store.snapshot = _snap(1, tiles=(Tile("calorimeter", "GOOD"), Tile("momentum", "GOOD")))
    view = ControlRoom(store, stale_after_s=60)
    first = view._tabs.active
    # When the next spill's snapshot has the other subsystem BAD
    other = "momentum" if view._tab_of["calorimeter"] == first else "calorimeter"
    store.snapshot = replace(store.snapshot, version=9, tiles=(Tile(other, "BAD"),))
    view.tick()
    view.tick()  # the text first, the tab switch on the next tick
    # Then its tab is shown; and it is not forced again while it stays BAD
    assert view._tabs.active == view._tab_of[other] != first
    view._tabs.active = first
    store.snapshot = replace(store.snapshot, version=10)
    view.tick()
    assert view._tabs.active == first


def test_wall_html_is_rendered_once_per_snapshot_for_all_sessions(specs, monkeypatch):
    # Given two wall sessions on the same store, and a counter on the tile rendering
    import apps.control_room as cr

    calls = []
    real = cr.render_tiles
    monkeypatch.setattr(
        cr, "render_tiles", lambda snap, stale: calls.append(snap.version) or real(snap, stale)
    )
    store = _Store(specs)
    store.snapshot = replace(_snap(1), version=41, closed_at=datetime.now(UTC))
    walls = [ControlRoom(store, stale_after_s=60) for _ in range(2)]
    # Then the first snapshot was rendered once for both
    assert calls == [41]
    # When a new spill's snapshot arrives and both sessions redraw
    store.snapshot = replace(store.snapshot, version=42, spill=13)
    for wall in walls:
        wall.tick()
    # Then it is rendered once more, and both sessions show the new spill
    assert calls == [41, 42]
    assert all('data-spill="7 / 13"' in wall._header.object for wall in walls)
    # And the next snapshot is rendered from its own content, not from the cache
    store.snapshot = replace(
        store.snapshot, version=43, tiles=(Tile("beam", "WARNING", "drifting"),)
    )
    walls[0].tick()
    assert calls[-1] == 43 and "drifting" in walls[0]._tiles.object


def test_server_log_problems_catch_our_warnings_and_errors_not_known_library_ones():
    from tests.web_helpers import server_log_problems

    known = (
        "/x/site-packages/bokeh/models/sources.py:318: Pandas4Warning: The inplace keyword is "
        "deprecated\n"
        "  _df.reset_index(inplace=True)\n"
    )
    ours = "/work/apps/plots.py:88: RuntimeWarning: invalid value encountered in divide\n"
    crash = (
        "2026-11-25T16:02:13 ERROR   bokeh.server.protocol_handler error handling message\n"
        'Traceback (most recent call last):\n  File "/work/apps/expert.py", line 9, in '
        "draw\nKeyError: 'x'\n"
    )
    closed_tab = (
        "2026-11-25T16:02:13 ERROR   asyncio Task exception was never retrieved\nTraceback (most "
        "recent call last):\n"
        "tornado.iostream.StreamClosedError: Stream is "
        "closed\ntornado.websocket.WebSocketClosedError\n"
    )
    assert server_log_problems(known + closed_tab) == []
    assert server_log_problems(known + ours) == [ours.strip()]
    assert server_log_problems(closed_tab + crash) == [crash.splitlines()[0]]


def test_a_tile_that_follows_from_a_cause_elsewhere_sends_the_shifter_there():
    # Given the beam tile BAD only because MS1 was absent (a consequence), and the DAQ tile
    beam = Tile(
        "beam",
        "BAD",
        "largest pull 37σ",
        "",
        "beam_x_ms1_2",
        "max_pull",
        None,
        "MS1 absent in 50 % of events",
        "daq",
    )
    daq = Tile("daq", "BAD", "MS1 present in 50 %", "call the DAQ expert", "daq_source_presence")
    html = render_tiles(_snap(1, tiles=(beam, daq)), stale=False)
    # Then the beam tile keeps its quality and its why, but says what it follows from
    beam_html, daq_html = html.split('data-subsystem="daq"')
    assert 'data-quality="BAD"' in beam_html and "largest pull 37σ" in beam_html
    # (the number kept with its unit: no line break inside "50 %")
    assert "follows from: MS1 absent in 50\u00a0% of events — see DAQ" in beam_html
    assert 'data-follows-from="daq"' in beam_html and "consequence" in beam_html
    assert "▶" not in beam_html  # no instruction: nobody else to call
    # and the DAQ tile, the cause, keeps its instruction
    assert "▶ call the DAQ expert" in daq_html and "follows from" not in daq_html


def test_snapshot_tiles_read_the_cause_from_the_stored_flags():
    from apps.snapshot import _tiles
    from dqm.checks import Quality
    from dqm.store.models import Flag

    BAD = int(Quality.BAD)  # stored integers: BAD is 4 since CHECK_ERROR (3) came in

    follows = {"cause": "daq_source_absent:MS1", "subsystem": "daq", "explanation": "MS1 gone"}

    def flag(subsystem, check, quality, explanation="", details=None, instruction=""):
        return Flag(
            subsystem=subsystem,
            histogram=None if check == "rollup" else f"h_{check}",
            check=check,
            quality=quality,
            explanation=explanation,
            details=details,
            instruction=instruction,
        )

    flags = [
        flag("daq", "daq_completeness", BAD, "MS1 present in 50 %", instruction="call DAQ"),
        flag("beam", "max_pull", BAD, "pull 37σ", {"follows_from": follows}, "call M2"),
        flag("beam", "intensity", 0, "fine"),
        flag("beam", "rollup", BAD, "pull 37σ", {"follows_from": follows}, "follows from …"),
        flag("calorimeter", "chi2", 0, "fine"),
        flag(
            "calorimeter",
            "dead_channels",
            1,
            "not judged",
            {"n_judged": 0, "follows_from": follows},
        ),
        flag("calorimeter", "hot_channels", 1, "no reference"),
    ]
    tiles = {t.subsystem: t for t in _tiles(flags)}
    assert tiles["beam"].quality == "BAD" and tiles["beam"].follows_from == "MS1 gone"
    assert tiles["beam"].follows_subsystem == "daq" and tiles["beam"].instruction == ""
    assert tiles["daq"].instruction == "call DAQ" and tiles["daq"].follows_from == ""
    assert tiles["calorimeter"].quality == "GOOD"
    assert tiles["calorimeter"].explanation == (
        "all checks passed (1 not judged: MS1 gone; 1 waiting for data or a reference)"
    )
