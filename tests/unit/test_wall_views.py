"""The wall's words, spill strip, rotation and alarm state (no server, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

pn = pytest.importorskip("panel")

from apps.alarms import AlarmPanel, alarm_rows  # noqa: E402
from apps.control_room import ControlRoom, render_strip  # noqa: E402
from apps.snapshot import Alarm, Silence, Snapshot, Tile  # noqa: E402
from dqm.core.specs import SpecSet  # noqa: E402
from dqm.core.words import CHECK_WORDS, plain_words  # noqa: E402
from dqm.errors import DQMError  # noqa: E402

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


class _Store:
    def __init__(self, specs, snap=None) -> None:
        self.specs = specs
        self.snapshot = snap or Snapshot()


def _alarm(i: int, subsystem: str = "beam", quality: str = "BAD") -> Alarm:
    return Alarm(
        i, 2, subsystem, quality, "Beam moved", "beam centre 4.1 mm from nominal",
        "call the CCC", 3, 5, 3, NOW - timedelta(minutes=12), "beam_x_ms1_2",
    )  # fmt: skip


def test_tile_words_name_what_was_looked_at_and_what_is_wrong():
    assert plain_words("ewma", "Momentum difference p_BMS - p_MS2", "WARNING") == (
        "Momentum difference p_BMS - p_MS2: drifting over the last spills"
    )
    assert plain_words("judging", None, "CHECK_ERROR") == "The DQM could not judge this spill"
    assert plain_words("some_new_check", "ECAL", "BAD") == "ECAL: some new check"
    assert plain_words("ks", "ECAL", "NO_DATA").startswith("ECAL: not judged")
    # every shipped check type has its words
    from dqm.checks import CHECKS

    shipped = {n for n, d in CHECKS.items() if d.function.__module__.startswith("dqm.")}
    assert shipped <= set(CHECK_WORDS), shipped - set(CHECK_WORDS)  # not the tests' planted ones


def test_strip_is_in_spill_order_with_links_and_run_labels():
    snap = Snapshot(recent=((1, 9, "GOOD"), (2, 1, "BAD"), (2, 2, "GOOD"), (2, 10, "WARNING")))
    html = render_strip(snap)
    assert html.index('data-strip-spill="9"') < html.index('data-strip-spill="1"')
    assert html.index('data-strip-spill="2"') < html.index('data-strip-spill="10"')
    assert 'href="./expert?run=2&amp;spill=10"' in html
    assert html.count('class="run"') == 2 and ">run 2<" in html


def test_rotation_stays_on_the_bad_subsystems(specs):
    three = SpecSet((specs["p_bms"], specs["ecal_total"], specs["beam_xy_ms1_0"]), "test")
    store = _Store(three)
    view = ControlRoom(store, stale_after_s=60, rotate_s=10)
    beam = view._tab_of["beam"]
    # Given the beam BAD on the last spill
    store.snapshot = replace(Snapshot(), version=5, tiles=(Tile("beam", "BAD"),))
    view.tick()
    view.tick()
    # When the rotation fires again and again, then it stays on the beam's tab
    for _ in range(4):
        view.rotate()
        assert view._tabs.active == beam
    # Given the beam GOOD again but an open BAD incident of the calorimeter
    store.snapshot = replace(
        store.snapshot, version=6, tiles=(Tile("beam", "GOOD"),), alarms=(_alarm(1, "calorimeter"),)
    )
    view.tick()
    view.rotate()
    assert view._tabs.active == view._tab_of["calorimeter"]
    view.rotate()
    assert view._tabs.active == view._tab_of["calorimeter"]
    # When nothing is BAD any more, it cycles through every tab
    store.snapshot = replace(store.snapshot, version=7, alarms=())
    view.tick()
    seen = set()
    for _ in range(3):
        view.rotate()
        seen.add(view._tabs.active)
    assert seen == {0, 1, 2}


def test_alarm_sounds_for_open_incidents_unless_silenced_and_the_silence_expires():
    snap = Snapshot(alarms=(_alarm(4), _alarm(7)))
    assert snap.sounding(NOW) == (4, 7)
    silenced = replace(snap, silence=Silence("carol", "CCC called", NOW + timedelta(minutes=30), 4))
    assert silenced.sounding(NOW) == (7,)  # incident 7 opened after the silence
    assert silenced.sounding(NOW + timedelta(minutes=31)) == (4, 7)  # expired
    rows = alarm_rows(snap, NOW)
    assert rows[0]["spills"] == "run 2, spills 3–5 (3)"
    assert rows[0]["since"] == "since 17:48 UTC (12 min)"
    assert rows[0]["link"] == "./expert?run=2&spill=5&histogram=beam_x_ms1_2"


def test_alarm_actions_are_refused_in_words_and_never_break_the_wall():
    done = []

    def act(action, data):
        if data.get("reason") == "":
            raise DQMError("silencing the alarm needs a reason")
        if action == "boom":
            raise RuntimeError("database gone")
        done.append((action, data))

    panel = AlarmPanel(act=act)
    panel._handle_msg({"action": "silence", "reason": "", "minutes": 30})
    assert panel.notice == "not done: silencing the alarm needs a reason"
    panel._handle_msg({"action": "boom"})
    assert panel.notice.startswith("not done: the server could not store it")
    panel._handle_msg({"action": "acknowledge", "id": 3})
    assert panel.notice == "" and done == [("acknowledge", {"action": "acknowledge", "id": 3})]
    panel._handle_msg("not a dict")  # ignored
