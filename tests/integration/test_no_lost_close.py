"""No close is ever lost: a worker SIGKILLed between storing a spill's last batch and closing it.

A real ``dqm worker`` process (:mod:`tests.killpoint`) kills itself at a named instant,
on real Redis and PostgreSQL; then a surviving worker must close the spill promptly —
far below the spill timeout (60 s here), whose sweep would otherwise be the only rescue —
complete, identical to a one-process fill, with nothing left pending or dead-lettered.

* killed after the store, before the acknowledgement (the messages stay pending);
* killed after the acknowledgement, before the close (nothing will be redelivered);
* the redelivery path alone: a reclaimed message found already stored leads to the close.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.stream import publish_spill
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Spill
from tests.helpers import (
    ROOT,
    assert_identical,
    closed_count,
    one_process_fill,
    small_run,
    stored,
    wait_until,
    worker_env,
)
from tests.killpoint import POINTS

pytestmark = pytest.mark.integration

SPILL_TIMEOUT_S = 60.0


def killed_worker(settings, point: str, stderr) -> subprocess.Popen:
    """``dqm worker`` that SIGKILLs itself at ``point``."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.killpoint", point, "--log-level", "WARNING", "worker"]
        + ["--consumer", "victim"],
        env=worker_env(settings, DQM_SPILL_TIMEOUT_S=str(SPILL_TIMEOUT_S)),
        cwd=str(ROOT),
        stderr=stderr,
    )


def spill_row(url: str, run: int, spill: int) -> Spill:
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            return session.scalars(
                select(Spill).where(Spill.run == run, Spill.spill == spill)
            ).one()
    finally:
        engine.dispose()


def kill_at(point: str, settings, redis_client, spill, tmp_path) -> float:
    """Publish ``spill``, let a worker store all of it and die at ``point``; returns when."""
    publish_spill(redis_client, settings.stream, spill)
    with open(tmp_path / f"victim-{point}.log", "wb") as log:
        proc = killed_worker(settings, point, log)
        assert proc.wait(180) == -9, f"the worker was not killed at {point}"
    died_at = time.monotonic()
    row = spill_row(settings.database_url, spill.run, spill.spill)
    assert row.status == "open", f"killed at {point}, yet the spill closed"
    assert row.received_batches == row.expected_batches == spill.n_batches
    return died_at


class Survivor:
    """An in-process worker of the same group, with the checks' close hook, in a thread."""

    def __init__(self, settings, specs, redis_client) -> None:
        self.engine = make_engine(settings.database_url)
        self.worker = Worker(
            settings,
            redis_client=redis_client,
            sessions=make_sessionmaker(self.engine),
            specs=specs,
            consumer="survivor",
            close_hooks=close_hooks(settings, specs),
        )
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        self.thread.join(60)
        self.engine.dispose()
        assert not self.thread.is_alive()


def assert_closed_exactly(settings, specs, redis_client, spill) -> None:
    """Complete, identical to a one-process fill, nothing pending or dead, recheck exact."""
    got = stored(settings.database_url, spill.run)
    expected = one_process_fill(specs, [spill])
    assert {k: v[0] for k, v in got.items()} == {k: "complete" for k in expected}
    for key, hists in expected.items():
        assert_identical(hists, got[key][1], where=f"spill {key}")
    wait_until(
        lambda: redis_client.xpending(settings.stream, settings.group)["pending"] == 0,
        30,
        what="every message acknowledged",
    )
    assert redis_client.xlen(settings.dead_letter_stream) == 0
    engine = make_engine(settings.database_url, writer=False)
    with make_sessionmaker(engine)() as session:
        assert recheck_run(session, spill.run, specs).differences == []
    engine.dispose()


@pytest.mark.parametrize("point", POINTS)
def test_killed_between_store_and_close_the_spill_still_closes_promptly(
    point, settings, specs, redis_client, tmp_path
):
    # Given a worker killed (SIGKILL) at `point`, with all of a spill's batches stored
    s = settings.with_(spill_timeout_s=SPILL_TIMEOUT_S)
    run = 31 + POINTS.index(point)
    (spill,) = small_run(run=run, n_spills=1)
    kill_at(point, s, redis_client, spill, tmp_path)
    if point == "stored-not-acked":
        assert redis_client.xpending(s.stream, s.group)["pending"] > 0
    else:
        assert redis_client.xpending(s.stream, s.group)["pending"] == 0
    # When another worker of the group is running
    with Survivor(s, specs, redis_client) as survivor:
        t0 = time.monotonic()
        wait_until(
            lambda: closed_count(s.database_url, run) == 1, 30, what="the orphaned spill closed"
        )
        delay_s = time.monotonic() - t0
        # Then it closes the spill within seconds, not at the 60 s spill timeout
        assert delay_s < SPILL_TIMEOUT_S / 4, f"closed only after {delay_s:.1f} s"
        assert survivor.stats.spills_closed == 1
        # and the spill is whole and exact, and nothing is left pending
        assert_closed_exactly(s, specs, redis_client, spill)


def test_a_redelivered_message_found_stored_leads_to_its_spills_close(
    settings, specs, redis_client, tmp_path
):
    # Given a worker killed after storing a whole spill, before acknowledging it
    s = settings.with_(spill_timeout_s=SPILL_TIMEOUT_S)
    (spill,) = small_run(run=33, n_spills=1)
    kill_at("stored-not-acked", s, redis_client, spill, tmp_path)
    # When a worker whose only way to learn of the spill is reclaiming the dead one's
    # pending messages (its sweep for orphaned complete spills is switched off)
    with Survivor(s, specs, redis_client) as survivor:
        survivor._close_orphans = lambda: None  # type: ignore[method-assign]
        wait_until(
            lambda: closed_count(s.database_url, 33) == 1,
            30,
            what="the spill closed after the redelivery",
        )
        # Then the redelivered messages, found stored, are skipped and their spill closed
        assert survivor.stats.reclaimed > 0 and survivor.stats.duplicates_skipped > 0
        assert survivor.stats.spills_closed == 1 and survivor.stats.batches == 0
        assert_closed_exactly(s, specs, redis_client, spill)
