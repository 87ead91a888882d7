"""Malformed input on the stream: dead-lettered with its reason, good spills untouched.

Given good spills with malformed batches and markers interleaved on a real Redis
stream, when a worker drains it into a real PostgreSQL, then every bad message is in
the dead-letter stream with a reason that says what was wrong, the worker did not
crash, nothing is left pending, and the good spills are stored bin-identical to a
one-process fill.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import redis as redislib

from dqm.core.events import SCHEMA_VERSION
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from tests.helpers import assert_identical, one_process_fill, publish, small_run, stored

pytestmark = pytest.mark.integration


def malformed(good: bytes) -> dict[str, dict[bytes, bytes]]:
    """Bad messages derived from a good batch, keyed by the reason the worker must give."""
    nan_batch = bytearray(good)
    # the first float column after the 32-byte header and the int columns: overwrite its tail with
    # NaN
    nan_batch[-4:] = struct.pack("<f", float("nan"))
    wrong_version = bytearray(good)
    struct.pack_into("<H", wrong_version, 4, SCHEMA_VERSION + 7)
    return {
        "truncated": {b"type": b"batch", b"payload": good[: len(good) // 2]},
        "bad-magic": {b"type": b"batch", b"payload": b"XXXX" + good[4:]},
        "unknown-version": {b"type": b"batch", b"payload": bytes(wrong_version)},
        "random-bytes": {b"type": b"batch", b"payload": np.random.default_rng(1).bytes(5000)},
        "nan-tail": {b"type": b"batch", b"payload": bytes(nan_batch)},
        "bad-marker": {
            b"type": b"eos",
            b"run": b"7",
            b"spill": b"minus one",
            b"n_batches": b"4",
            b"n_events": b"4000",
        },
        "unknown-type": {b"type": b"gossip", b"payload": b"hello"},
    }


def test_malformed_messages_reach_the_dead_letter_stream(settings, redis_client, specs):
    # Given three good spills with every kind of malformed message published between them
    spills = small_run(run=21, n_spills=3)
    bad = malformed(spills[0].batches()[0])
    publish(redis_client, settings, spills[:1])
    for fields in bad.values():
        redis_client.xadd(settings.stream, fields)
    publish(redis_client, settings, spills[1:])
    # When a worker drains the stream
    engine = make_engine(settings.database_url)
    worker = Worker(
        settings,
        redis_client=redislib.Redis.from_url(settings.redis_url),
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="w-dead",
    )
    stats = worker.run(burst=True, max_seconds=60)
    engine.dispose()
    # Then each bad message is dead-lettered once, with a reason and a human-readable detail
    dead = redis_client.xrange(settings.dead_letter_stream)
    assert stats.dead_letters == len(bad) == len(dead)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert all(reasons) and all(fields[b"detail"] for _, fields in dead)
    assert "truncated" in reasons[0] or "size" in reasons[0], reasons[0]
    assert (
        reasons[1] == "bad-magic" and reasons[2] == "unknown-version" and reasons[5] == "bad-marker"
    )
    assert b"spill" in dead[5][1][b"detail"], "the marker's reason names the bad field"
    # and nothing is left pending, and the good spills are complete and bin-identical
    assert redis_client.xpending(settings.stream, settings.group)["pending"] == 0
    got = stored(settings.database_url, 21)
    for key, hists in one_process_fill(specs, spills).items():
        assert got[key][0] == "complete"
        assert_identical(hists, got[key][1], where=f"spill {key}")
