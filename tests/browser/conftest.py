"""A real ``dqm serve`` + worker on private PostgreSQL/Redis, and Debian's Chromium via Playwright.

One server per test module (starting Panel costs seconds); each test opens its own
browser context so cookies (logins) never leak between tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from apps.auth import hash_password
from dqm.checks import Quality
from dqm.config import Settings
from dqm.pipeline.services import free_port, stop_processes, wait_http
from dqm.pipeline.stream import connect
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.migrate import upgrade_database
from dqm.store.references import set_reference
from tests._services import create_database, drop_database
from tests.helpers import ROOT, closed_count, start_worker, wait_until, worker_env
from tests.web_helpers import publish_one, server_log_problems, specs_with_checks

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXPERT, PASSWORD = "alice", "correct horse battery staple"
SHIFTER = "sam"  # a login without the expert role (same password)
REFERENCE_RUN, LIVE_RUN = 1, 2


@dataclass
class WebServer:
    url: str
    settings: Settings
    redis: object
    next_spill: int = 1
    procs: list = field(default_factory=list)
    #: the next spill of the runs a test took for itself (:meth:`own_run`)
    own_runs: dict[int, int] = field(default_factory=dict)

    def close_spill(self, anomaly: str | None = None, run: int = LIVE_RUN) -> int:
        """Publish the next spill of ``run`` (the shared live run by default; optionally
        anomalous); the worker closes it."""
        if run == LIVE_RUN:
            spill = self.next_spill
            self.next_spill += 1
        else:
            spill = self.own_runs[run]
            self.own_runs[run] += 1
        publish_one(self.redis, self.settings.stream, run, spill, anomaly)
        return spill

    def own_run(self) -> int:
        """A run number no other test uses: a test that needs a particular state of a run
        (which spills are BAD, what is certified) makes it there, whatever ran before."""
        run = max([LIVE_RUN, *self.own_runs]) + 1
        self.own_runs[run] = 1
        return run

    def db(self):
        engine = make_engine(self.settings.database_url, writer=False)
        return engine, make_sessionmaker(engine)


@pytest.fixture(scope="module")
def web_server(pg_admin_url, redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    name, db_url = create_database(pg_admin_url)
    upgrade_database(db_url)
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        redis_url=redis_url,
        database_url=db_url,
        data_dir=str(tmp),
        stream=f"web:{tag}:events",
        group=f"web:{tag}:workers",
        dead_letter_stream=f"web:{tag}:dead",
        channel=f"web:{tag}:closed",
        commit_interval_s=0.05,
        block_ms=50,
        claim_idle_ms=1000,
    )
    specs_dir = specs_with_checks(tmp / "specs")
    (tmp / "reports").mkdir()
    (tmp / "reports" / "dqm-report-2026-11-24.pdf").write_bytes(
        b"%PDF-1.4\n% placeholder nightly report\n%%EOF\n"
    )
    extra = {
        "DQM_SPECS_DIR": str(specs_dir),
        "DQM_DATA_DIR": str(tmp),
        "DQM_STALE_AFTER_S": "600",
        "DQM_ALARM_REPEAT_S": "3",  # the alarm's repeat, seen within a test
        "DQM_WEB_USERS": ",".join(
            f"{name}:{hash_password(PASSWORD, iterations=1000)}" for name in (EXPERT, SHIFTER)
        ),
        "DQM_WEB_EXPERTS": EXPERT,
        "DQM_COOKIE_SECRET": "s" * 40,
    }
    r = connect(redis_url)
    server = WebServer(url="", settings=settings, redis=r)
    worker = start_worker(settings, f"web-{tag}", **extra)
    server.procs.append(worker)
    try:
        # the server starts (seconds: importing Panel) while the reference run is being processed
        port = free_port()
        serve_log = open(
            tmp / "serve.log", "wb"
        )  # read at the end: errors inside the served app fail the tests
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dqm",
                "--log-level",
                os.environ.get("DQM_TEST_SERVE_LOG", "WARNING"),
                "serve",
                "--port",
                str(port),
                "--poll-s",
                "1",
            ],
            env=worker_env(settings, **extra, PYTHONWARNINGS="default"),
            cwd=str(ROOT),
            stderr=serve_log,
        )
        server.procs.append(serve)
        server.url = f"http://127.0.0.1:{port}"
        # a reference run of three good spills, certified before the live run starts
        for spill in (1, 2, 3):
            publish_one(r, settings.stream, REFERENCE_RUN, spill)
        wait_until(
            lambda: closed_count(db_url, REFERENCE_RUN) == 3, 240, what="reference run closed"
        )
        engine = make_engine(db_url)
        with make_sessionmaker(engine).begin() as session:
            set_reference(session, REFERENCE_RUN, "fixture", comment="browser-test reference")
        engine.dispose()
        server.close_spill()
        wait_until(lambda: closed_count(db_url, LIVE_RUN) == 1, 240, what="first live spill closed")
        wait_http(server.url + "/", serve)
        yield server
    finally:
        stop_processes(server.procs, 15)
        r.close()
        drop_database(pg_admin_url, name)
    serve_log.close()
    problems = server_log_problems((tmp / "serve.log").read_text(errors="replace"))
    assert not problems, "the served app logged errors or warnings:\n" + "\n".join(problems[:20])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


class ConsoleLog:
    """Errors a page reported (console errors and uncaught exceptions)."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))


def log_in(page, server: WebServer, user: str, then: str) -> None:
    """Log ``user`` in through the login form, then open ``then`` (a path)."""
    page.goto(f"{server.url}/login?next={then}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.get_by_text(f"logged in as {user}").first.wait_for()
    if then not in page.url:
        page.goto(server.url + then)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.console_log = ConsoleLog(pg)
    yield pg
    context.close()


def bad_flag_id(server: WebServer, check: str, spill: int, run: int = LIVE_RUN) -> int | None:
    """The id of the BAD ``check`` flag of spill ``spill`` of ``run`` (None until it is
    stored)."""
    from dqm.store.models import Flag

    engine, sessions = server.db()
    try:
        with sessions() as s:
            return s.scalar(
                select(Flag.id).where(
                    Flag.check == check,
                    Flag.run == run,
                    Flag.spill == spill,
                    Flag.quality == int(Quality.BAD),
                )
            )
    finally:
        engine.dispose()
