"""Sign-off, the summary page, roles and the good-spill endpoint in Chromium, on a real server.

The shifter's round after an alarm: a BAD beam spill → the sign-off page proposes it as bad
→ the shifter certifies it (and the rest as good) → the summary shows who signed, the
incident and the fractions → the good-spill list leaves the bad spill out. A shifter has no
expert actions; an expert's reference form starts empty and shows what a run contains.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from dqm.store.models import Certification, StoredIncident
from tests.browser.conftest import EXPERT, LIVE_RUN, SHIFTER, bad_flag_id, log_in
from tests.helpers import closed_count, wait_until
from tests.web_helpers import BEAM_SHIFT

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def stored_beam_incident(web_server, run: int) -> int:
    """The id of the run's stored beam incident (the one the wall showed)."""
    engine, sessions = web_server.db()
    try:
        with sessions() as s:
            return s.scalars(
                select(StoredIncident.id).where(
                    StoredIncident.run == run, StoredIncident.subsystem == "beam"
                )
            ).one()
    finally:
        engine.dispose()


def _bad_spill(web_server, run: int = LIVE_RUN) -> int:
    spill = web_server.close_spill(BEAM_SHIFT, run=run)
    wait_until(
        lambda: bad_flag_id(web_server, "beam_centroid", spill, run) is not None,
        60,
        what="the BAD beam flag",
    )
    return spill


def test_shifter_signs_off_what_the_dqm_proposes(web_server, page, artifacts):
    # Given a run of its own (whatever other tests did to the live run) whose second and
    # latest spill has a BAD beam
    run = web_server.own_run()
    web_server.close_spill(run=run)
    bad = _bad_spill(web_server, run)
    wait_until(lambda: closed_count(web_server.settings.database_url, run) == 2, 60, what="spills")
    # When a guest opens the sign-off page, there is no form, only the proposal and a login link
    page.goto(f"{web_server.url}/signoff?run={run}")
    page.locator(".dqm-proposals .tabulator-cell", has_text="bad").first.wait_for()
    page.locator(".dqm-guest").wait_for()
    assert page.locator(".dqm-certify").count() == 0
    # When the shifter logs in and clicks the DQM's proposal "beam bad" for that spill
    log_in(page, web_server, SHIFTER, f"/signoff?run={run}")
    page.get_by_text(f"logged in as {SHIFTER} (shifter)").wait_for()

    def cell(field: str, text: str):
        return page.locator(f'.tabulator-cell[tabulator-field="{field}"]', has_text=re.compile(
            f"^{text}$"))  # fmt: skip

    row = (
        page.locator(".dqm-proposals .tabulator-row")
        .filter(has=cell("subsystem", "beam"))
        .filter(has=cell("proposed", "bad"))
        .filter(has=cell("last", str(bad)))
    )
    first = int(row.first.locator('.tabulator-cell[tabulator-field="first"]').inner_text())
    assert first <= bad
    row.first.locator('.tabulator-cell[tabulator-field="subsystem"]').click()
    # (both ends: each input is its own message from the server, the last one may come first)
    wait_until(
        lambda: (
            (
                page.locator(".dqm-first input").input_value(),
                page.locator(".dqm-last input").input_value(),
            )
            == (str(first), str(bad))
        ),
        20,
        what="the form filled from the proposal",
    )
    page.locator(".dqm-comment input").fill("beam shift, incident beam_position")
    page.locator(".dqm-certify button").click()
    # Then it is recorded under their name and role, and shown in the history
    page.get_by_text(f"done by {SHIFTER}").wait_for()
    page.locator(".dqm-history .tabulator-cell", has_text="shifter").first.wait_for()
    page.screenshot(path=str(artifacts / "signoff_page.png"), full_page=True)
    engine, sessions = web_server.db()
    try:
        with sessions() as s:
            rows = s.scalars(select(Certification).where(Certification.run == run)).all()
    finally:
        engine.dispose()
    assert [(c.subsystem, c.first_spill, c.last_spill, c.verdict, c.certified_by, c.role)
            for c in rows] == [("beam", first, bad, "bad", SHIFTER, "shifter")]  # fmt: skip
    assert page.console_log.errors == []
    # And the end-of-run summary shows the sign-off, the incident and the fractions
    page.goto(f"{web_server.url}/summary?run={run}")
    page.locator(".dqm-run-summary", has_text=f"Run {run} — partly signed").wait_for()
    page.get_by_text(f"signed by {SHIFTER}").first.wait_for()
    # the incident listed is the stored one the wall showed (the same id), not acknowledged yet
    incident = stored_beam_incident(web_server, run)
    row = page.locator(f".dqm-incidents tr[data-incident='{incident}']")
    row.wait_for()
    assert "beam" in row.inner_text() and "NOT acknowledged" in row.inner_text()
    page.get_by_text("good muons on target").first.wait_for()
    page.screenshot(path=str(artifacts / "summary_page.png"), full_page=True)
    assert page.console_log.errors == []
    # And the good-spill list leaves the certified bad spill out, with a version to cite
    reply = page.request.get(f"{web_server.url}/goodspills.json?runs={run}")
    assert reply.ok and reply.headers["x-dqm-goodspills-version"].startswith("r")
    body = reply.json()
    listed = [
        n
        for part in ("certified", "flags_only")
        for a, b in body[part].get(str(run), [])
        for n in range(a, b + 1)
    ]
    assert bad not in listed and body["certified"] == {}
    csv_reply = page.request.get(f"{web_server.url}/goodspills.csv?runs={run}")
    assert csv_reply.ok and csv_reply.text().startswith("run,first_spill,last_spill")
    refused = page.request.get(f"{web_server.url}/goodspills.json?runs=two")
    assert refused.status == 400 and "runs" in refused.text()


def test_a_shifter_has_no_expert_actions(web_server, page, artifacts):
    log_in(page, web_server, SHIFTER, "/expert")
    page.get_by_text("Actions", exact=True).click()
    page.locator(".dqm-shifter").wait_for()
    assert page.get_by_role("button", name="Set reference").count() == 0
    page.screenshot(path=str(artifacts / "expert_actions_shifter.png"))


def test_the_reference_form_starts_empty_and_refuses_bad_spills(web_server, page, artifacts):
    # Given the live run has a BAD spill, and the expert opens the actions
    _bad_spill(web_server)
    log_in(page, web_server, EXPERT, "/expert")
    page.get_by_text("Actions", exact=True).click()
    button = page.get_by_role("button", name="Set reference")
    button.wait_for()
    # When they click "Set reference" without choosing a run, nothing is set
    button.click()
    page.get_by_text("choose the run to certify first").wait_for()
    # When they choose the live run, the page shows what it contains, and refuses it without reason
    page.locator(".dqm-ref-run select").select_option(str(LIVE_RUN))
    page.locator(".dqm-ref-contents", has_text="BAD spills").wait_for()
    button.click()
    page.get_by_text("give a reason to use it anyway").wait_for()
    page.screenshot(path=str(artifacts / "expert_reference_refused.png"), full_page=True)
    assert page.console_log.errors == []
