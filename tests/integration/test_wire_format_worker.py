"""A producer written from docs/wire-format.md alone feeds a real worker.

Given the page's example producer (its ``encode`` and ``publish_spill``, run as printed, with
plain redis-py: no dqm code on the producing side) publishing simulated spills to a real
Redis, when a worker drains the stream into a real PostgreSQL, then every spill is complete,
nothing is dead-lettered, and the histograms are bin-identical to a one-process fill.
"""

from __future__ import annotations

import pytest
import redis as redislib

from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from tests import wire_spec
from tests.helpers import assert_identical, one_process_fill, small_run, stored

pytestmark = pytest.mark.integration


def test_spills_from_the_pages_producer_are_stored_like_dqms_own(settings, redis_client, specs):
    # Given three simulated spills, split in batches and published by the page's producer
    spills = small_run(run=31, n_spills=3, events=3000, batch=1000)
    example = wire_spec.example_code()
    for s in spills:
        batches = [
            {k: v[i : i + s.batch_size] for k, v in s.columns.items()}
            for i in range(0, s.n_events, s.batch_size)
        ]
        example["publish_spill"](redis_client, settings.stream, s.run, s.spill, batches)
    # When a worker drains the stream
    engine = make_engine(settings.database_url)
    worker = Worker(
        settings,
        redis_client=redislib.Redis.from_url(settings.redis_url),
        sessions=make_sessionmaker(engine),
        specs=specs,
        consumer="w-wire",
    )
    stats = worker.run(burst=True, max_seconds=60)
    engine.dispose()
    # Then nothing was refused, and each spill is complete and identical to a one-process fill
    assert stats.dead_letters == 0 and redis_client.xlen(settings.dead_letter_stream) == 0
    got = stored(settings.database_url, 31)
    for key, hists in one_process_fill(specs, spills).items():
        assert got[key][0] == "complete", key
        assert_identical(hists, got[key][1], where=f"spill {key}")
