"""The producer's publisher: across a Redis outage every spill arrives, and only once.

On a private Redis: stopped while a spill is being published and started again; and the
two cases a broken connection leaves a producer unable to tell apart — the transaction
was applied and only its reply was lost, or it never reached Redis.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis as redislib

from dqm.pipeline import publisher as publisher_module
from dqm.pipeline.publisher import Publisher
from dqm.pipeline.services import EmbeddedRedis
from tests.helpers import small_run

pytestmark = pytest.mark.integration

STREAM = "p:events"


def copies(r: redislib.Redis, run: int, spill: int) -> tuple[int, int]:
    """(markers, batches) of one spill in the stream."""
    markers = batches = 0
    for _, fields in r.xrange(STREAM):
        if fields.get(b"type") == b"eos":
            markers += (fields[b"run"], fields[b"spill"]) == (b"%d" % run, b"%d" % spill)
        elif fields.get(b"type") == b"batch":
            batches += 1
    return markers, batches


@pytest.fixture
def server(tmp_path):
    srv = EmbeddedRedis(workdir=str(tmp_path), persistent=True, fsync="always").start()
    yield srv
    srv.stop()


def test_a_spill_published_during_an_outage_arrives_once(server):
    # Given a publisher and a Redis that is down when the spill is published
    spill = small_run(run=71, n_spills=1)[0]
    r = redislib.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=2)
    pub = Publisher(r, STREAM)
    server.stop(keep_files=True)
    thread = threading.Thread(
        target=pub.publish, args=(spill.run, spill.spill, spill.batches(), spill.n_events)
    )
    thread.start()
    # When Redis comes back 1.5 s later
    time.sleep(1.5)
    server.start()
    thread.join(30)
    # Then the spill is in the stream once, whole
    assert not thread.is_alive() and pub.retries > 0
    assert copies(r, spill.run, spill.spill) == (1, spill.n_batches)


@pytest.mark.parametrize("applied", [True, False], ids=["reply-lost", "never-sent"])
def test_after_a_broken_connection_it_looks_before_it_resends(server, monkeypatch, applied):
    # Given a connection that breaks once during the transaction: after Redis applied it
    # (only the reply is lost), or before it reached Redis
    spill = small_run(run=72, n_spills=1)[0]
    real = publisher_module.publish_batches
    broken = []

    def flaky(*args, **kwargs):
        if not broken:
            broken.append(True)
            if applied:
                real(*args, **kwargs)
            raise redislib.ConnectionError("connection reset by peer")
        return real(*args, **kwargs)

    monkeypatch.setattr(publisher_module, "publish_batches", flaky)
    r = redislib.Redis.from_url(server.url)
    r.xadd(STREAM, {b"type": b"eos", b"run": 72, b"spill": 99, b"n_batches": 0, b"n_events": 0})
    pub = Publisher(r, STREAM)
    # When the spill is published
    pub.publish(spill.run, spill.spill, spill.batches(), spill.n_events)
    # Then it is in the stream exactly once: not sent again if it was in, sent if it was not
    assert copies(r, spill.run, spill.spill) == (1, spill.n_batches)
    assert pub.found_published == int(applied) and pub.retries == 1
