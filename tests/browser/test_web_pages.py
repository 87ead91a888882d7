"""Both pages in Debian's Chromium against a real ``dqm serve``, worker, PostgreSQL and Redis."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from dqm.checks import Quality
from dqm.core.specs import load_specs
from dqm.store.models import AuditEntry
from tests.browser.conftest import EXPERT, LIVE_RUN, PASSWORD, bad_flag_id
from tests.helpers import wait_until
from tests.web_helpers import BEAM_SHIFT, DOCUMENTS_IDLE, specs_with_checks

pytestmark = [pytest.mark.browser, pytest.mark.integration]

#: The target is p95 <= 1 s (docs/performance.md: measured 51 ms median, 92 ms p95). The test
#: fails above 2 s: on the shared 2-core test machine (load ~7) single spills occasionally take
#: ~1.1 s, and a real regression (a page reload, a per-session poll of seconds) costs far more.
LATENCY_LIMIT_S = float(os.environ.get("DQM_TEST_LATENCY_LIMIT_S", "2.0"))


#: true when a CSS selector matches anywhere in the page, inside (open) shadow roots too
_IN_SHADOW_DOM = """(sel) => {
  const find = (root) => root.querySelector(sel) !== null
    || [...root.querySelectorAll('*')].some((el) => el.shadowRoot && find(el.shadowRoot));
  return find(document);
}"""


def _beam_instructions() -> set[str]:
    """Every shifter instruction the beam subsystem's specs can put on its tile."""
    # the spec files are read here, at import: the folder goes when they are loaded
    with tempfile.TemporaryDirectory(prefix="dqm-specs-") as folder:
        specs = load_specs(specs_with_checks(Path(folder)))
    return {
        c.instruction or spec.instruction
        for spec in specs
        if spec.subsystem == "beam"
        for c in spec.checks
    }


BEAM_INSTRUCTIONS = _beam_instructions()


def _tile(page, subsystem: str, quality: str):
    return page.locator(f'.dqm-tile[data-subsystem="{subsystem}"][data-quality="{quality}"]')


def test_control_room_loads_and_draws(web_server, page, artifacts):
    # Given a served control room with one closed live spill
    # When a browser opens it
    page.goto(web_server.url + "/control_room")
    page.locator('.dqm-tile[data-subsystem="beam"]').wait_for()
    page.locator("canvas").first.wait_for()
    page.wait_for_timeout(1500)  # let bokeh finish drawing before the screenshot
    # Then five tiles, the run/spill header, key numbers and plots are there, without console errors
    assert page.locator(".dqm-tile").count() == 5
    assert page.locator(f'span[data-spill^="{LIVE_RUN} / "]').count() == 1
    assert page.locator(".dqm-number").count() >= 8
    assert page.locator("canvas").count() >= 5
    page.screenshot(path=str(artifacts / "control_room.png"), full_page=True)
    assert page.console_log.errors == []


def test_expert_page_loads_and_draws(web_server, page, artifacts):
    # Given the expert page opened from a control-room tile's link to a cell map of a spill
    page.goto(web_server.url + f"/expert?histogram=webtest_ecal_cells&run={LIVE_RUN}&spill=1")
    page.locator("canvas").first.wait_for()
    page.get_by_text("guest (read-only)").wait_for()
    page.get_by_text(f"run {LIVE_RUN}, spill 1 (").wait_for()
    # When the expert clicks the centre of the cell map
    page.wait_for_timeout(1500)
    box = page.locator(".dqm-cellmap canvas").first.bounding_box()
    assert box is not None
    # (the map's frame centre, left of the canvas centre by the colour bar, is the gap between
    # the central cells: aim a third of a cell up-right of it)
    page.mouse.click(box["x"] + box["width"] * 0.46 + 20, box["y"] + box["height"] * 0.48 - 20)
    # Then that channel's numbers and its history across the run are shown
    page.get_by_text("webtest_ecal_cells cell [").first.wait_for(timeout=20_000)
    assert page.locator("canvas").count() >= 2
    page.screenshot(path=str(artifacts / "expert_cell.png"), full_page=True)
    # And the other tabs show trends, flags with explanations and the nightly reports for download
    page.get_by_text("Trends", exact=True).click()
    page.wait_for_timeout(500)
    # (another quantity: queried off the server's event loop, then drawn)
    label = "mean outgoing momentum of passing muons (MS2) [GeV] (p_ms2_mean)"
    quantity = page.locator(f"select:has(option:text-is('{label}'))")
    quantity.select_option(label=label)
    page.wait_for_timeout(
        1500
    )  # a failure in the served callback fails the fixture (the server's log)
    assert quantity.input_value() == label and page.locator("canvas").count() >= 1
    page.screenshot(path=str(artifacts / "expert_trends.png"))
    page.get_by_text("Flags", exact=True).click()
    page.get_by_text("Reports", exact=True).click()
    link = page.locator('a[href="./reports/dqm-report-2026-11-24.pdf"]')
    link.wait_for()
    resp = page.request.get(web_server.url + "/reports/dqm-report-2026-11-24.pdf")
    assert resp.ok and resp.body().startswith(b"%PDF")
    page.get_by_text("Histograms", exact=True).click()
    # And picking another histogram redraws (loaded off the server's event loop, then shown)
    page.locator("select:has(optgroup)").select_option(label="p_bms")
    page.get_by_text("Incoming momentum (BMS)").first.wait_for(timeout=20_000)
    page.screenshot(path=str(artifacts / "expert.png"), full_page=True)
    assert page.console_log.errors == []


class Announcements:
    """Arrival times of the workers' "spill closed" messages, heard like the server hears them."""

    def __init__(self, url: str, channel: str) -> None:
        self.times: dict[int, float] = {}
        self._pubsub = redis.Redis.from_url(url).pubsub()
        self._pubsub.subscribe(channel)
        self._pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if m:
                self.times[json.loads(m["data"])["spill"]] = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pubsub.close()


def test_anomalous_spill_turns_the_tile_bad_without_reload(web_server, page, artifacts):
    # Given an open control room showing a good beam, as a wall is for hours: every tab drawn,
    # and one spill shown since it opened (the first update after opening refills every tab's
    # plots at once and takes ~2-4 s on this machine: printed, not counted; see the note in
    # docs/web-apps.md)
    page.goto(web_server.url + "/control_room")
    _tile(page, "beam", "GOOD").wait_for()
    page.wait_for_function(DOCUMENTS_IDLE, timeout=60_000)
    heard = Announcements(web_server.settings.redis_url, web_server.settings.channel)
    page.evaluate("window.__not_reloaded = true")
    latencies = []
    try:
        first = web_server.close_spill(None)
        page.wait_for_function(
            _IN_SHADOW_DOM, arg=f'[data-spill="{LIVE_RUN} / {first}"]', polling=20, timeout=30_000
        )
        shown = time.monotonic()
        wait_until(lambda: first in heard.times, 5, every_s=0.01, what="the first announcement")
        print(
            f"spill {first} (first after opening, not counted): {shown - heard.times[first]:.2f} s"
        )
        # When spills close (paced: the SPS leaves ~17 s between spills, we leave 1 s), every third
        # with the beam shifted by 5 mm
        for i in range(7):
            page.wait_for_timeout(1000)
            anomaly = BEAM_SHIFT if i % 3 == 1 else None
            spill = web_server.close_spill(anomaly)
            # (polled every 20 ms in the page: Playwright's own wait backs off to 500 ms steps)
            page.wait_for_function(
                _IN_SHADOW_DOM,
                arg=f'[data-spill="{LIVE_RUN} / {spill}"]',
                polling=20,
                timeout=30_000,
            )
            seen = time.monotonic()
            wait_until(
                lambda spill=spill: spill in heard.times,
                5,
                every_s=0.01,
                what=f"announcement of spill {spill}",
            )
            latencies.append(seen - heard.times[spill])
            print(
                f"spill {spill}{' (' + anomaly + ')' if anomaly else ''}: "
                f"{latencies[-1] * 1000:.0f} ms"
            )
            # Then the beam tile follows the spill: BAD for the shifted one (with what to do), GOOD
            # otherwise
            if anomaly:
                tile = _tile(page, "beam", "BAD")
                tile.wait_for(timeout=5_000)
                text = tile.inner_text()
                # what is wrong in a shifter's words (the statistic is on the expert page)
                assert "beam" in text.lower() and not re.search(r"\d\.\d{3,}|λ|≈", text), text
                assert any(f"▶ {i}" in text for i in BEAM_INSTRUCTIONS), (
                    text
                )  # what to do, from the specs
                if i == 1:
                    page.wait_for_timeout(2000)  # the beam tab comes to the front and draws
                    page.screenshot(path=str(artifacts / "control_room_bad.png"), full_page=True)
            else:
                _tile(page, "beam", "GOOD").wait_for(timeout=5_000)
    finally:
        heard.close()
    # And the page was never reloaded
    assert page.evaluate("window.__not_reloaded") is True
    ranked = sorted(latencies)
    p95 = ranked[math.ceil(0.95 * len(ranked)) - 1]  # nearest rank
    report = (
        f"spill close -> control-room tile: n={len(latencies)} "
        f"median={statistics.median(latencies) * 1000:.0f} ms "
        f"p95={p95 * 1000:.0f} ms max={max(latencies) * 1000:.0f} ms"
    )
    print("\n" + report)
    (artifacts / "web_latency.txt").write_text(report + "\n", encoding="utf-8")
    assert p95 <= LATENCY_LIMIT_S, report
    assert page.console_log.errors == []


def test_only_a_logged_in_expert_can_act(web_server, page, browser, artifacts):
    # Given a BAD flag to acknowledge
    spill = web_server.close_spill(BEAM_SHIFT)
    wait_until(
        lambda: bad_flag_id(web_server, "beam_centroid", spill) is not None,
        30,
        what="the BAD beam flag",
    )
    flag_id = bad_flag_id(web_server, "beam_centroid", spill)
    # When a guest opens the expert page
    page.goto(web_server.url + "/expert")
    page.get_by_text("guest (read-only)").wait_for()
    page.get_by_text("Actions", exact=True).click()
    # Then there is no action form, only the way to log in
    page.locator(".dqm-guest").wait_for()
    assert page.get_by_role("button", name="Set reference").count() == 0
    page.get_by_text("Flags", exact=True).click()
    assert page.locator(".dqm-ack").count() == 0
    # When the expert logs in with a wrong and then the right password
    page.goto(web_server.url + "/login?next=/expert")
    page.fill("#username", EXPERT)
    page.fill("#password", "wrong")
    page.click("#login-button")
    page.get_by_text("Invalid username or password").wait_for()
    page.fill("#username", EXPERT)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    # Then the pages greet them by name and acknowledging the flag is recorded under their name
    page.get_by_text(f"logged in as {EXPERT}").wait_for()
    if "/expert" not in page.url:
        page.goto(web_server.url + "/expert")
    page.locator(".dqm-user", has_text=f"logged in as {EXPERT}").wait_for()
    page.get_by_text("Flags", exact=True).click()
    page.locator(".dqm-flag-id input").fill(str(flag_id))
    page.locator(".dqm-flag-id input").press("Enter")
    page.locator(".dqm-ack button").click()
    page.get_by_text(f"done by {EXPERT}").wait_for()
    wait_until(
        lambda: EXPERT in page.locator(".dqm-flags .tabulator-cell").all_inner_texts(),
        20,
        what="acknowledged_by in the flag list",
    )
    page.screenshot(path=str(artifacts / "expert_flags.png"))
    engine, sessions = web_server.db()
    try:
        with sessions() as s:
            entry = s.scalars(
                select(AuditEntry).where(AuditEntry.action == "acknowledge_flag")
            ).one()
    finally:
        engine.dispose()
    assert (entry.user, entry.target) == (EXPERT, f"flag {flag_id}")
    page.get_by_text("Audit trail", exact=True).click()
    page.get_by_text(f"flag {flag_id}").first.wait_for()
    page.screenshot(path=str(artifacts / "expert_audit.png"), full_page=True)
    assert page.console_log.errors == []
    # And once the expert has acknowledged every BAD beam flag of that spill (the shift trips
    # several beam checks; the tile keeps showing one nobody acknowledged until then) ...
    from dqm.store import actions
    from dqm.store.models import Flag

    engine, sessions = web_server.db()
    try:
        with sessions.begin() as s:
            for other in s.scalars(
                select(Flag.id).where(
                    Flag.run == LIVE_RUN,
                    Flag.spill == spill,
                    Flag.subsystem == "beam",
                    Flag.quality == int(Quality.BAD),
                    Flag.check != "rollup",
                    Flag.id != flag_id,
                )
            ):
                actions.acknowledge_flag(s, other, EXPERT)
    finally:
        engine.dispose()
    # ... the wall screen's beam tile says who acknowledged it
    page.goto(web_server.url + "/control_room")
    _tile(page, "beam", "BAD").get_by_text(f"acknowledged by {EXPERT}").wait_for()
