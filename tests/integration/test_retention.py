"""Retention of the exactly-once ledger (issue 15, item 5), with a real worker on PostgreSQL.

The ledger is pruned to the horizon Redis can still deliver from (the stream's oldest entry
and every pending list's oldest id). While a message can arrive again its id stays in the
ledger and its redelivery is skipped; once the stream has dropped it, its row goes.
"""

from __future__ import annotations

from sqlalchemy import select

from dqm.commands.prune import prune_ledger_of
from dqm.pipeline.retention import ledger_horizon
from dqm.pipeline.stream import _stream_id, ensure_group
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import ProcessedMessage
from dqm.store.retention import ledger_rows_before, prune_ledger
from tests.helpers import assert_identical, one_process_fill, publish, small_run, stored


def _ledger_ids(sessions, stream: str) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(
                select(ProcessedMessage.message_id).where(ProcessedMessage.stream == stream)
            )
        )


def _drain(settings, specs, redis_client, sessions, consumer: str) -> Worker:
    worker = Worker(
        settings, redis_client=redis_client, sessions=sessions, specs=specs, consumer=consumer
    )
    worker.run(burst=True, max_seconds=60)
    return worker


def test_pruned_ledger_still_catches_every_redelivery_the_stream_can_make(
    settings, specs, redis_client
):
    # Given a worker that stored a run of 4 spills, exactly once
    s = settings.with_(ledger_margin_s=0.0)
    spills = small_run(run=41, n_spills=4)
    publish(redis_client, s, spills)
    engine = make_engine(s.database_url)
    sessions = make_sessionmaker(engine)
    _drain(s, specs, redis_client, sessions, "first")
    truth = one_process_fill(specs, spills)
    entries = [mid.decode() for mid, _ in redis_client.xrange(s.stream)]
    assert _ledger_ids(sessions, s.stream) == set(entries)

    # When nothing has left the stream, pruning deletes nothing
    assert prune_ledger_of(s)[1] == 0
    # and when the stream is trimmed to its newest half, only the dropped ids go
    keep = entries[len(entries) // 2 :]
    redis_client.xtrim(s.stream, maxlen=len(keep), approximate=False)
    horizon = ledger_horizon(redis_client, s.stream, 0)
    assert horizon == _stream_id(keep[0])[0]
    with sessions() as session:
        counted = ledger_rows_before(session, s.stream, horizon)
    deleted = prune_ledger(sessions, s.stream, horizon, chunk=3)  # many small transactions
    assert deleted == counted
    ledger = _ledger_ids(sessions, s.stream)
    # every id the stream still holds is in the ledger; every id older than its oldest
    # millisecond is gone (ids of that same millisecond are kept: the horizon is in ms)
    assert set(keep) <= ledger
    assert all(_stream_id(m)[0] >= horizon for m in ledger)
    assert deleted == len(entries) - len(ledger) > 0

    # Then a redelivery of everything the stream still holds (the group rewound, as after
    # Redis lost it) is recognised message by message and counts nothing twice
    redis_client.xgroup_setid(s.stream, s.group, "0")
    again = _drain(s, specs, redis_client, sessions, "second")
    assert again.stats.batches == 0
    assert again.stats.duplicates_skipped + again.stats.conflicts > 0
    got = stored(s.database_url, 41)
    assert len(got) == 4
    for key, hists in truth.items():
        status, h = got[key]
        assert status == "complete"
        assert_identical(hists, h, str(key))
    assert redis_client.xpending(s.stream, s.group)["pending"] == 0
    engine.dispose()


def test_the_horizon_waits_for_the_oldest_pending_message(settings, redis_client):
    # Given a stream of 10 messages, 3 of them delivered to a consumer and never acknowledged
    s = settings
    ids = [redis_client.xadd(s.stream, {b"n": str(i).encode()}).decode() for i in range(10)]
    ensure_group(redis_client, s.stream, s.group)
    redis_client.xreadgroup(s.group, "ghost", {s.stream: ">"}, count=3)
    # When the stream is trimmed past them
    redis_client.xtrim(s.stream, maxlen=2, approximate=False)
    # Then the horizon stays at the oldest pending id, less the margin
    assert ledger_horizon(redis_client, s.stream, 0) == _stream_id(ids[0])[0]
    assert ledger_horizon(redis_client, s.stream, 500) == _stream_id(ids[0])[0] - 500
    # and once they are acknowledged it moves to the stream's oldest entry
    redis_client.xack(s.stream, s.group, *ids[:3])
    assert ledger_horizon(redis_client, s.stream, 0) == _stream_id(ids[-2])[0]
    # an empty stream: nothing up to its last id can come back
    redis_client.xtrim(s.stream, maxlen=0, approximate=False)
    assert ledger_horizon(redis_client, s.stream, 0) == _stream_id(ids[-1])[0] + 1
    # a stream that does not exist: no horizon, nothing is pruned
    assert ledger_horizon(redis_client, "test:no-such-stream", 0) is None
