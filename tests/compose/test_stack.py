"""The compose stack brought up for real, from the README's deployment steps.

Given a Docker engine and no registry (the images are built here: a wheelhouse, a Debian base
from debootstrap, Redis and PostgreSQL from Debian's packages), when the README's steps run,
then the stack (redis, postgres, migrate, 3 workers, web, report) comes up healthy with migrate
done before any worker started, a run published from the host is stored once per spill with
its flags and histograms identical to a one-process fill, ``dqm status`` in a worker sees the
three consumers, each worker's metrics count its share, the control room renders in Chromium
from the host, a worker killed while it holds batches loses nothing, ``down`` then ``up``
keeps the data, and the report service writes PDFs into its volume.

Marked ``compose`` and deselected by default; ``.ci/compose`` runs it after the test suite.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select

from dqm.config import load_settings
from dqm.pipeline.stream import ConditionsAnnouncer, connect, publish_spill
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import Flag, Spill
from tests.compose.stack import (
    DOT_ENV,
    Stack,
    deploy_steps,
    engine_problem,
    finished,
    metric,
    started,
)
from tests.helpers import (
    assert_identical,
    closed_count,
    one_process_fill,
    small_run,
    stored,
    wait_until,
)

# slow too: `-m slow` (which replaces the default marker expression) must not bring it in alone
pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(5400)]

RUN_1, RUN_2 = 101, 102
TAGS = ("dqm:latest", "redis:7.4-alpine", "postgres:17", "dqm-debian:bookworm", "dqm-debian:trixie")
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


@pytest.fixture(scope="module")
def out(artifacts):
    folder = artifacts / "compose"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def stack(out):
    problem = engine_problem()
    if problem:
        pytest.skip(f"the compose stack needs a Docker engine: {problem}")
    if DOT_ENV.exists():
        pytest.fail("docker/.env exists: the README steps write their own; move it away first")
    log = out / "commands.log"
    log.write_text("")
    s = Stack.create(log)
    s.remove_leftovers()
    try:
        yield s
    finally:
        logs = s.c("logs", "--no-color", "--timestamps", check=False, timeout=300)
        (out / "services.log").write_text(logs.stdout + logs.stderr)
        s.c("down", "-v", "--remove-orphans", check=False, timeout=600)
        DOT_ENV.unlink(missing_ok=True)


def settings_of(stack: Stack):
    env = dict(line.split("=", 1) for line in DOT_ENV.read_text().split() if "=" in line)
    redis = stack.port("REDIS_PUBLISH")
    pg = stack.port("POSTGRES_PUBLISH")
    return load_settings(
        {
            "DQM_REDIS_URL": f"redis://:{env['REDIS_PASSWORD']}@127.0.0.1:{redis}/0",
            "DQM_DATABASE_URL": (
                f"postgresql+psycopg://dqm:{env['POSTGRES_PASSWORD']}@127.0.0.1:{pg}/dqm"
            ),
        }
    )


def publish_run(r, settings, spills, announcer: ConditionsAnnouncer) -> None:
    for s in spills:
        publish_spill(r, settings.stream, s, conditions=announcer.due(s.conditions))


def flags_once(url: str, run: int) -> dict[int | None, int]:
    """spill -> number of flags; fails if a spill is stored twice or a flag repeats."""
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(Spill.spill, func.count()).where(Spill.run == run).group_by(Spill.spill)
            ).all()
            assert all(n == 1 for _, n in rows), f"a spill stored more than once: {rows}"
            flags = session.execute(
                select(Flag.spill, Flag.subsystem, Flag.histogram, Flag.check, Flag.spill_id).where(
                    Flag.run == run
                )
            ).all()
    finally:
        engine.dispose()
    keys = [f[:4] for f in flags]
    assert len(keys) == len(set(keys)), "a flag stored twice"
    per_spill: dict[int | None, int] = {}
    for f in flags:
        per_spill[f[0]] = per_spill.get(f[0], 0) + 1
    return per_spill


def assert_run_stored(specs, spills, url: str, run: int) -> None:
    truth = one_process_fill(specs, spills)
    got = stored(url, run)
    assert {k: v[0] for k, v in got.items()} == {k: "complete" for k in truth}
    for key, hists in truth.items():
        assert_identical(hists, got[key][1], where=f"spill {key}")
    per_spill = flags_once(url, run)  # spill None: the run's own flags
    assert set(per_spill) - {None} == {s.spill for s in spills}, f"flags per spill: {per_spill}"


def test_the_readme_deployment_runs_and_the_stack_keeps_every_promise(stack, specs, out):
    figures: dict[str, object] = {"date": datetime.now().isoformat(timespec="minutes")}
    # Given the README's deployment steps, run as written (build, then up -d)
    timings = []
    for step in deploy_steps():
        timings.append((step.splitlines()[0], round(stack.run_step(step), 1)))
    figures["steps_s"] = timings
    figures["healthy_after_up_s"] = round(stack.wait_healthy(workers=3), 1)
    figures["image_bytes"] = stack.image_sizes(*TAGS)
    (out / "figures.json").write_text(json.dumps(figures, indent=2))

    # Then migrate exited 0 before any worker started, and every service is healthy
    (migrate,) = stack.containers("migrate")
    workers = stack.containers("worker")
    assert migrate["State"]["ExitCode"] == 0 and len(workers) == 3
    assert all(finished(migrate) <= started(w) for w in workers), (
        f"a worker started before migrate finished ({finished(migrate)}): "
        f"{[started(w) for w in workers]}"
    )
    states = stack.states()
    assert [v for k, v in states.items() if "migrate" not in k] == ["healthy"] * 7, states

    # When a simulated run is published into the stack's Redis from the host
    settings = settings_of(stack)
    r = connect(settings.redis_url)
    announcer = ConditionsAnnouncer()
    run_1 = small_run(run=RUN_1, n_spills=8, events=4000)
    publish_run(r, settings, run_1, announcer)
    wait_until(lambda: closed_count(settings.database_url, RUN_1) == 8, 600, 1, "run 1 closed")
    # Then every spill is stored once with its flags, histograms identical to one process
    assert_run_stored(specs, run_1, settings.database_url, RUN_1)
    # and `dqm status` in a worker container lists the three consumers
    status = stack.c("exec", "-T", "worker", "dqm", "status").stdout
    (out / "dqm-status.txt").write_text(status)
    assert len(re.findall(r"^\s+consumer \S+", status, re.M)) == 3, status
    # and each worker's metrics, scraped from the host, count its share of the events
    events = sum(s.n_events for s in run_1)
    wait_until(
        lambda: (
            sum(metric(t, "dqm_worker_events_total") for t in stack.worker_metrics().values())
            == events
        ),
        120,
        1,
        "the workers' metrics to count every event",
    )
    shares = {n: metric(t, "dqm_worker_events_total") for n, t in stack.worker_metrics().items()}
    assert len(shares) == 3 and sum(shares.values()) == events, shares
    figures["events_per_worker_run_1"] = shares

    # and the control room renders in Chromium on the host, through the published port
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(120_000)
        page.goto(f"http://localhost:{stack.port('WEB_PUBLISH')}/control_room")
        page.locator(".dqm-tile").first.wait_for()
        page.locator(f'span[data-spill^="{RUN_1} / "]').wait_for()
        page.locator("canvas").first.wait_for()
        page.wait_for_timeout(2000)  # let Bokeh finish drawing before the screenshot
        tiles = page.locator(".dqm-tile").count()
        page.screenshot(path=str(out / "control_room.png"), full_page=True)
        browser.close()
    assert tiles == 5

    # When a worker is killed (SIGKILL) while it holds unacknowledged batches of a second run,
    # and started again
    run_2 = small_run(run=RUN_2, n_spills=12, events=8000, batch=500)
    victim, held = None, 0
    for spill in run_2:
        publish_run(r, settings, [spill], announcer)
        if victim is None:
            victim, held = holding_worker(r, settings, workers)
            if victim is not None:
                stack.sh(["docker", "kill", "--signal", "KILL", victim["Id"]])
    if victim is None:
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            victim, held = holding_worker(r, settings, workers)
        assert victim is not None, "no worker ever held a batch: nothing to kill"
        stack.sh(["docker", "kill", "--signal", "KILL", victim["Id"]])
    time.sleep(3)
    stack.sh(["docker", "start", victim["Id"]])
    figures["killed_worker_held_messages"] = held
    # Then nothing is lost: every spill of run 2 stored once, identical, and nothing pending
    wait_until(lambda: closed_count(settings.database_url, RUN_2) == 12, 600, 1, "run 2 closed")
    wait_until(
        lambda: r.xpending(settings.stream, settings.group)["pending"] == 0,
        300,
        1,
        "the killed worker's batches to be acknowledged",
    )
    assert_run_stored(specs, run_2, settings.database_url, RUN_2)
    assert r.xlen(settings.dead_letter_stream) == 0

    # When the report service's volume is looked at, and today's report is asked of the service
    report = stack.c("exec", "-T", "report", "dqm", "report", "--dir", "/reports", "--quiet")
    assert "pages" in report.stdout, report.stdout
    listing = stack.c("exec", "-T", "web", "ls", "-l", "/data/reports").stdout
    # Then its PDFs are in the reports volume, which the web service sees too
    pdfs = re.findall(r"dqm-report-[\d-]+\.pdf", listing)
    # "today" is the report service's own date (its TZ, Europe/Zurich by default), not the host's:
    # between 23:00 and midnight UTC the two differ
    service_date = stack.c("exec", "-T", "report", "date", "+%F").stdout.strip()
    today = f"dqm-report-{service_date}.pdf"
    assert len(pdfs) >= 2 and today in pdfs, listing  # the nightly catch-up ones and today's
    (report_c,) = stack.containers("report")
    pdf = out / today
    stack.sh(["docker", "cp", f"{report_c['Id']}:/reports/{today}", str(pdf)])
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(out / "report")],
        check=True,
    )

    # When the stack goes down (volumes kept) and up again
    stream_length = r.xlen(settings.stream)
    r.close()
    stack.c("down", timeout=600)
    assert stack.containers() == []
    t0 = time.monotonic()
    stack.c("up", "-d", timeout=1200)
    stack.wait_healthy(workers=3)
    figures["up_again_until_healthy_s"] = round(time.monotonic() - t0, 1)
    # Then the runs, their flags, the stream and the reports are all still there
    assert_run_stored(specs, run_1, settings.database_url, RUN_1)
    assert_run_stored(specs, run_2, settings.database_url, RUN_2)
    r = connect(settings.redis_url)
    assert r.xlen(settings.stream) == stream_length
    r.close()
    assert today in stack.c("exec", "-T", "web", "ls", "/data/reports").stdout
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def holding_worker(r, settings, workers: list[dict]) -> tuple[dict | None, int]:
    """A worker container whose consumer holds unacknowledged messages, and how many."""
    by_host = {w["Config"]["Hostname"]: w for w in workers}
    try:
        pending = r.xpending(settings.stream, settings.group)
    except Exception:  # noqa: BLE001 - no group yet
        return None, 0
    for c in pending.get("consumers") or []:
        name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
        host = name.rsplit("-", 1)[0]
        if int(c["pending"]) > 0 and host in by_host:
            return by_host[host], int(c["pending"])
    return None, 0
