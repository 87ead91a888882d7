"""How far back a stream can still redeliver: the horizon the ledger is pruned to.

Redis delivers (and redelivers, and lets XAUTOCLAIM reclaim) only entries the stream still
holds; the stream is capped at ``DQM_STREAM_MAXLEN`` entries (XADD ``MAXLEN ~``), so its
oldest entry moves forward with the beam. A message id older than both the stream's oldest
entry and the oldest id of every consumer group's pending list cannot arrive again, and its
ledger row (:mod:`dqm.store.retention`) is no longer needed. ``margin_ms`` more is kept: a
batch re-published by a publisher that did not see its first XADD succeed carries a newer
id than the first copy, within the publisher's retry time of it.
"""

from __future__ import annotations

import redis

from dqm.pipeline.stream import _stream_id

__all__ = ["ledger_horizon"]


def ledger_horizon(r: redis.Redis, stream: str, margin_ms: int) -> int | None:
    """The millisecond before which no id of ``stream`` can be delivered again, less
    ``margin_ms``; None when the stream does not exist (nothing is pruned then)."""
    if not r.exists(stream):
        return None
    info = r.xinfo_stream(stream)
    first = info.get("first-entry")
    # empty stream: nothing left to deliver up to its last id
    oldest = _stream_id(first[0] if first else info.get("last-generated-id"))[0]
    if not first:
        oldest += 1
    for group in r.xinfo_groups(stream):
        pending = r.xpending(stream, group["name"])
        if pending.get("pending"):
            oldest = min(oldest, _stream_id(pending["min"])[0])
    if oldest < 0:
        return None
    return max(oldest - margin_ms, 0)
