"""The expert page in Chromium (issue 13): from a flag to its evidence, plots, navigation, URL,
trends, flags by incident, comparison, and the benchmark that times it.

Against a real ``dqm serve`` + worker on private PostgreSQL/Redis (tests/browser/conftest.py).
Every test takes screenshots into the artifacts folder; none asserts a time (speed is
``dqm bench --expert``'s job, run here once on a small run to show it works).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from dqm.checks import Quality
from dqm.store.models import Flag, Reference
from tests.browser.conftest import EXPERT, LIVE_RUN, PASSWORD, REFERENCE_RUN, bad_flag_id
from tests.helpers import ROOT, wait_until
from tests.web_helpers import BEAM_SHIFT

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DEAD_CELL = "dead_cell:detector=ecal,cell=1/2/2"


@pytest.fixture(scope="module")
def spills(web_server):
    """Live spills 2 (beam shifted), 3 (a dead ECAL cell) and 4 (good), judged and stored."""
    shifted = web_server.close_spill(BEAM_SHIFT)
    dead = web_server.close_spill(DEAD_CELL)
    good = web_server.close_spill()
    wait_until(
        lambda: bad_flag_id(web_server, "beam_centroid", shifted) is not None,
        180,
        what="the BAD beam flag",
    )
    wait_until(
        lambda: bad_flag_id(web_server, "dead_channels", dead) is not None,
        180,
        what="the BAD dead-cell flag",
    )
    wait_until(lambda: _flag_count(web_server, good) > 0, 180, what="the good spill judged")
    return {"shifted": shifted, "dead": dead, "good": good}


def _flag_count(server, spill: int) -> int:
    engine, sessions = server.db()
    try:
        with sessions() as s:
            return len(
                s.scalars(select(Flag.id).where(Flag.run == LIVE_RUN, Flag.spill == spill)).all()
            )
    finally:
        engine.dispose()


def _flag_row(server, flag_id: int) -> tuple[str, str]:
    """(histogram, instruction) of a stored flag."""
    engine, sessions = server.db()
    try:
        with sessions() as s:
            row = s.execute(
                select(Flag.histogram, Flag.instruction).where(Flag.id == flag_id)
            ).one()
    finally:
        engine.dispose()
    return row[0], row[1]


def _view(page, text: str) -> None:
    """Wait until the explorer shows ``text`` ("histogram run lo-hi")."""
    page.locator(f'[data-view="{text}"]').wait_for(timeout=60_000)


def _url_has(page, *parts: str) -> None:
    page.wait_for_function(
        "(parts) => parts.every((p) => window.location.search.includes(p))", arg=list(parts)
    )


def _login(page, url: str) -> None:
    page.goto(url + "/login?next=/expert")
    page.fill("#username", EXPERT)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.get_by_text(f"logged in as {EXPERT}").wait_for()


def test_a_flag_opens_its_evidence(web_server, spills, page, artifacts):
    # Given the BAD beam-centroid flag of the shifted spill
    flag = bad_flag_id(web_server, "beam_centroid", spills["shifted"])
    histogram, instruction = _flag_row(web_server, flag)
    # When the expert follows its link
    page.goto(web_server.url + f"/expert?flag={flag}")
    # Then the page shows that histogram at that spill, with the flag's quality, explanation
    # and the instruction the wall shows, and the check's number over the run with its bands
    _view(page, f"{histogram} {LIVE_RUN} {spills['shifted']}-{spills['shifted']}")
    evidence = page.locator(f'.dqm-evidence[data-flag="{flag}"]')
    evidence.wait_for()
    text = evidence.inner_text()
    assert "BAD" in text and "mm from nominal" in text
    assert f"▶ {instruction}" in text
    page.locator(".dqm-evidence-area canvas").first.wait_for()  # the check's series
    page.wait_for_timeout(1500)
    assert page.locator("canvas").count() >= 4  # series + overlay + ratio + significance
    page.screenshot(path=str(artifacts / "expert_evidence_beam.png"), full_page=True)
    # And a wall tile's link (histogram, run, spill) lands on that histogram's worst flag
    dead = bad_flag_id(web_server, "dead_channels", spills["dead"])
    cells, _ = _flag_row(web_server, dead)
    page.goto(web_server.url + f"/expert?histogram={cells}&run={LIVE_RUN}&spill={spills['dead']}")
    page.locator('.dqm-evidence[data-quality="BAD"]').wait_for()
    assert "dead" in page.locator(".dqm-evidence").inner_text()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "expert_evidence_dead_cell.png"), full_page=True)
    assert page.console_log.errors == []


def test_plots_an_expert_expects(web_server, spills, page, artifacts):
    # Given a 1D histogram of one spill
    s = spills["good"]
    page.goto(web_server.url + f"/expert?histogram=p_bms&run={LIVE_RUN}&spill={s}")
    _view(page, f"p_bms {LIVE_RUN} {s}-{s}")
    # Then its statistics box gives entries, mean, RMS, under- and overflow
    stats = page.locator(".dqm-stats")
    stats.wait_for()
    for word in ("entries", "mean", "RMS", "underflow", "overflow"):
        assert word in stats.inner_text()
    # When the expert chooses a log scale and merges bins by 2
    page.locator(".dqm-log input").check()
    _url_has(page, "log=1")
    page.locator("select:has(option[value='8'])").select_option("2")
    _url_has(page, "log=1", "rebin=2")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "expert_1d_log_rebin.png"), full_page=True)
    # And a 2D x-y map: this selection, the reference and their significance side by side
    page.locator("select:has(optgroup)").select_option(label="beam_xy_ms1_0")
    _view(page, f"beam_xy_ms1_0 {LIVE_RUN} {s}-{s}")
    page.wait_for_timeout(1500)
    assert page.locator("canvas").count() >= 4  # series + this + reference + significance
    page.screenshot(path=str(artifacts / "expert_2d_triple.png"), full_page=True)
    # And the cell map of the dead-cell spill, coloured by significance
    page.goto(
        web_server.url
        + f"/expert?histogram=webtest_ecal_cells&run={LIVE_RUN}&spill={spills['dead']}"
    )
    _view(page, f"webtest_ecal_cells {LIVE_RUN} {spills['dead']}-{spills['dead']}")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "expert_cells_significance.png"), full_page=True)
    assert page.console_log.errors == []


def test_navigation_and_the_url_hold_the_view(web_server, spills, page, artifacts):
    # Given the explorer on one spill
    first = spills["shifted"]
    page.goto(web_server.url + f"/expert?histogram=p_bms&run={LIVE_RUN}&spill={first}")
    _view(page, f"p_bms {LIVE_RUN} {first}-{first}")
    # When the expert steps to the next spill, back, and goes to another by number
    page.locator(".dqm-next button").click()
    _view(page, f"p_bms {LIVE_RUN} {first + 1}-{first + 1}")
    page.locator(".dqm-prev button").click()
    _view(page, f"p_bms {LIVE_RUN} {first}-{first}")
    page.locator(".dqm-goto input").fill(str(spills["good"]))
    page.locator(".dqm-goto input").press("Enter")
    _view(page, f"p_bms {LIVE_RUN} {spills['good']}-{spills['good']}")
    # Then the URL holds the view, and opening that URL shows the same view
    _url_has(page, "histogram=p_bms", f"run={LIVE_RUN}", f"spill={spills['good']}")
    link = page.url
    assert page.locator(".dqm-link").get_attribute("href").startswith("./expert?")
    page.goto(link)
    _view(page, f"p_bms {LIVE_RUN} {spills['good']}-{spills['good']}")
    # And the run view shows spills x subsystems; a click opens that spill on the histograms
    page.locator(".bk-tab:text-is('Run')").click()
    page.get_by_text("with a BAD subsystem").wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "expert_run_map.png"), full_page=True)
    canvas = page.locator(".dqm-runmap canvas").first
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5)
    page.wait_for_function(
        """() => /tab=histograms/.test(window.location.search)
                && /spill=\\d+/.test(window.location.search)
                && !/to=/.test(window.location.search)"""
    )
    page.locator(".dqm-evidence, .dqm-view").first.wait_for()
    page.screenshot(path=str(artifacts / "expert_run_map_opened.png"), full_page=True)
    assert page.console_log.errors == []


def test_trends_in_words_by_spill_or_time_with_their_checks(web_server, spills, page, artifacts):
    # Given the trends tab
    page.goto(web_server.url + "/expert?tab=trends")
    quantity = page.locator(
        "select:has(option:text-is('mean incoming momentum (BMS) [GeV] (p_bms_mean)'))"
    )
    quantity.wait_for()
    # Then quantities are named in words with units, and the quantity's own check is drawn
    assert "beam position in x at MS1 station 0 [mm]" in quantity.inner_text()
    page.locator(".dqm-trends canvas").first.wait_for(timeout=180_000)  # the quantity
    page.locator(".dqm-trends canvas").nth(1).wait_for(timeout=180_000)  # its check's number
    assert page.get_by_text("No check of the specs judges").count() == 0
    # When the expert switches to time
    page.get_by_role("button", name="time").click()
    page.wait_for_timeout(2000)
    page.screenshot(path=str(artifacts / "expert_trends_time.png"), full_page=True)
    assert page.console_log.errors == []


def test_flags_by_incident_coloured_acknowledged_and_opening_evidence(
    web_server, spills, page, artifacts
):
    # Given a logged-in expert on the flags tab
    _login(page, web_server.url)
    page.goto(web_server.url + "/expert?tab=flags")
    page.locator(".dqm-flags .tabulator-group").first.wait_for()
    # Then flags are grouped by incident, with time and coloured quality
    groups = page.locator(".dqm-flags .tabulator-group").all_inner_texts()
    shifted = spills["shifted"]
    assert any(f"spill {shifted}" in g and "to acknowledge" in g for g in groups), groups
    bad = page.locator('.dqm-flags .tabulator-cell[tabulator-field="quality"]', has_text="BAD")
    colour = bad.first.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert colour == "rgb(196, 22, 28)"
    assert page.locator('.dqm-flags .tabulator-col[tabulator-field="time"]').count() == 1
    page.screenshot(path=str(artifacts / "expert_flags_incidents.png"), full_page=True)
    # When the expert acknowledges the beam incident of the shifted spill at once
    incidents = page.locator(".dqm-incident select")
    label = next(
        o
        for o in incidents.locator("option").all_inner_texts()
        if f"spill {shifted} " in o and "beam" in o
    )
    incidents.select_option(label=label)
    page.locator(".dqm-ack-incident button").click()
    page.get_by_text(f"done by {EXPERT}").wait_for()
    # Then every flag of that incident is acknowledged by them
    cause = re.search(r"· (\S+) · spill", label).group(1)
    engine, sessions = web_server.db()
    try:
        with sessions() as s:
            rows = s.execute(
                select(Flag.acknowledged_by).where(
                    Flag.run == LIVE_RUN,
                    Flag.spill == shifted,
                    Flag.cause == cause,
                    Flag.quality >= int(Quality.WARNING),  # the incident's rows as listed
                )
            ).all()
    finally:
        engine.dispose()
    assert rows and {r[0] for r in rows} == {EXPERT}
    # And a click on a row opens that flag's evidence on the histograms tab
    page.locator(
        ".dqm-flags .tabulator-row .tabulator-cell[tabulator-field='explanation']"
    ).first.click()
    page.locator(".dqm-evidence").wait_for()
    page.screenshot(path=str(artifacts / "expert_flag_row_evidence.png"), full_page=True)
    assert page.console_log.errors == []


def test_compare_with_another_run_leaves_the_active_reference(web_server, spills, page, artifacts):
    # Given the explorer on the good live spill
    s = spills["good"]
    page.goto(web_server.url + f"/expert?histogram=p_bms&run={LIVE_RUN}&spill={s}")
    _view(page, f"p_bms {LIVE_RUN} {s}-{s}")
    # When the expert compares it with spills 1-2 of the reference run
    page.locator("select:has(option[value='active reference'])").select_option(str(REFERENCE_RUN))
    page.locator("input[placeholder='all']").fill("1-2")
    page.locator("input[placeholder='all']").press("Enter")
    # Then that comparison is drawn and written in the URL
    page.get_by_text(f"run {REFERENCE_RUN} spills 1–2 (chosen for comparison)").wait_for()
    _url_has(page, f"compare={REFERENCE_RUN}", "cmp_spills=1-2")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(artifacts / "expert_compare.png"), full_page=True)
    # And the active reference is unchanged
    engine, sessions = web_server.db()
    try:
        with sessions() as db:
            active = db.scalars(select(Reference.run).where(Reference.active)).all()
    finally:
        engine.dispose()
    assert active == [REFERENCE_RUN]
    assert page.console_log.errors == []


@pytest.mark.timeout(1800)  # a store, a server and 18 timed page loads on a loaded machine
def test_the_expert_page_benchmark_runs(artifacts):
    # Given a small stored run (the figure in the docs is on 300 spills: dqm bench --expert)
    # When the benchmark command opens the page and changes histograms in Chromium
    done = subprocess.run(
        [sys.executable, "-m", "dqm", "bench", "--expert", "30", "--opens", "1"],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    # Then it reports the opens and every histogram change (figures, not a gate: no limit)
    (artifacts / "expert_bench.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "open (first, cold server caches)" in done.stdout
    assert "histogram change (16 changes" in done.stdout
