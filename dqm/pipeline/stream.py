"""Redis Streams I/O: publish batches and end-of-spill markers, consume through a group.

Message layout (fields of one stream entry):

* batch: ``type=batch``, ``payload=<events.encode_batch bytes>``
* end of spill: ``type=eos``, ``run``, ``spill``, ``n_batches``, ``n_events``, each an
  unsigned integer written as ASCII decimal digits (what redis-py sends for a Python int)
* run conditions: ``type=conditions``, ``payload=<conditions.encode_conditions JSON>``,
  before the run's first batch and again whenever they change
  (``docs/wire-format-conditions.md``)

A whole spill is published in one pipeline so a reader never sees the marker before
the batches that precede it (nor the batches before the conditions announced with
them). The dead-letter stream keeps the original fields plus
``reason``, ``detail``, ``source_id`` and ``consumer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from dqm.config import check_redis_url
from dqm.core.conditions import RunConditions, encode_conditions
from dqm.core.numbering import MAX_ID
from dqm.errors import BatchError

__all__ = [
    "Message",
    "EndOfSpill",
    "connect",
    "ensure_group",
    "publish_spill",
    "publish_batches",
    "publish_conditions",
    "conditions_fields",
    "ConditionsAnnouncer",
    "read_group",
    "claim_stale",
    "ack",
    "dead_letter",
    "parse_eos",
    "group_lag",
]


@dataclass(frozen=True)
class Message:
    id: str
    fields: dict[bytes, bytes]

    @property
    def type(self) -> bytes:
        return self.fields.get(b"type", b"")


@dataclass(frozen=True)
class EndOfSpill:
    run: int
    spill: int
    n_batches: int
    n_events: int


def connect(url: str) -> redis.Redis:
    check_redis_url(url)
    # TCP keepalive exists only for TCP: a unix:// socket connection refuses the option;
    # a connect that hangs (a dropped network) fails after 5 s and the worker backs off and retries
    keepalive = {} if url.startswith("unix:") else {"socket_keepalive": True}
    return redis.Redis.from_url(
        url, decode_responses=False, health_check_interval=30, socket_connect_timeout=5, **keepalive
    )


def ensure_group(r: redis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing; start from the beginning."""
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def conditions_fields(conditions: RunConditions) -> dict[bytes, bytes]:
    """The stream fields of a run-conditions message."""
    return {b"type": b"conditions", b"payload": encode_conditions(conditions)}


def publish_conditions(
    r: redis.Redis, stream: str, conditions: RunConditions, *, maxlen: int | None = None
) -> bytes:
    """Announce a run's conditions on its own (e.g. before the run's first spill)."""
    kw = {"maxlen": maxlen, "approximate": True} if maxlen else {}
    return r.xadd(stream, conditions_fields(conditions), **kw)


class ConditionsAnnouncer:
    """Decides when a publisher announces a run's conditions: before the run's first
    spill, and again whenever they change (a repeat is harmless, but needless)."""

    def __init__(self) -> None:
        self._last: dict[int, RunConditions] = {}

    def due(self, conditions: RunConditions | None) -> RunConditions | None:
        """``conditions`` if they must be announced now, else None."""
        if conditions is None or conditions.same_as(self._last.get(conditions.run)):
            return None
        self._last[conditions.run] = conditions
        return conditions


def publish_batches(
    r: redis.Redis,
    stream: str,
    run: int,
    spill: int,
    batches: Sequence[bytes],
    n_events: int,
    *,
    maxlen: int | None = None,
    marker: bool = True,
    conditions: RunConditions | None = None,
) -> list[bytes]:
    """Publish a spill's batches (+ marker) atomically in one pipeline; returns the ids.

    ``conditions``, when given, are announced first in the same pipeline.
    """
    pipe = r.pipeline(transaction=True)
    kw = {"maxlen": maxlen, "approximate": True} if maxlen else {}
    if conditions is not None:
        pipe.xadd(stream, conditions_fields(conditions), **kw)
    for payload in batches:
        pipe.xadd(stream, {b"type": b"batch", b"payload": payload}, **kw)
    if marker:
        pipe.xadd(
            stream,
            {
                b"type": b"eos",
                b"run": run,
                b"spill": spill,
                b"n_batches": len(batches),
                b"n_events": n_events,
            },
            **kw,
        )
    return pipe.execute()


def publish_spill(
    r: redis.Redis,
    stream: str,
    spill_data,
    *,
    maxlen: int | None = None,
    conditions: RunConditions | None = None,
) -> list[bytes]:
    """Publish a :class:`dqm.sim.simulate.SpillData` (announcing ``conditions`` first)."""
    return publish_batches(
        r,
        stream,
        spill_data.run,
        spill_data.spill,
        spill_data.batches(),
        spill_data.n_events,
        maxlen=maxlen,
        conditions=conditions,
    )


def parse_eos(fields: dict[bytes, bytes]) -> EndOfSpill:
    """Validate an end-of-spill marker; raises :class:`BatchError` naming the bad field."""
    values = {}
    for key, hi in (
        (b"run", MAX_ID),
        (b"spill", MAX_ID),
        (b"n_batches", 1_000_000),
        (b"n_events", MAX_ID),
    ):
        raw = fields.get(key)
        # ASCII digits only, as the wire format says: int() would also take " 7", "+7",
        # "1_000" and other scripts' digits, which no producer should rely on; a long digit
        # string is refused before int() spends time on it
        if not isinstance(raw, bytes) or not raw.isdigit() or len(raw) > 20:
            raise BatchError(
                "bad-marker",
                f"end-of-spill field '{key.decode()}' = {raw!r:.60} is not an unsigned "
                "decimal integer (ASCII digits)",
            )
        v = int(raw)
        if not 0 <= v <= hi:
            raise BatchError(
                "bad-marker", f"end-of-spill field '{key.decode()}' = {v} outside [0, {hi}]"
            )
        values[key.decode()] = v
    return EndOfSpill(**values)


def _messages(entries) -> list[Message]:
    out = []
    for mid, fields in entries or []:
        if fields is None:  # deleted by trimming while pending
            fields = {}
        out.append(Message(mid.decode() if isinstance(mid, bytes) else str(mid), fields))
    return out


def read_group(
    r: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    count: int,
    block_ms: int | None,
    pending: bool = False,
) -> list[Message]:
    """New messages (``>``), or with ``pending`` this consumer's own unacknowledged ones."""
    resp = r.xreadgroup(
        group,
        consumer,
        {stream: "0" if pending else ">"},
        count=count,
        block=None if pending else block_ms,
    )
    if not resp:
        return []
    return _messages(resp[0][1])


def claim_stale(
    r: redis.Redis, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
) -> list[Message]:
    """Take over messages idle in a (dead) consumer's pending list longer than ``min_idle_ms``."""
    resp = r.xautoclaim(
        stream, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count
    )
    return _messages(resp[1]) if resp else []


def ack(r: redis.Redis, stream: str, group: str, ids: Iterable[str]) -> int:
    ids = list(ids)
    return r.xack(stream, group, *ids) if ids else 0


def fetch(r: redis.Redis, stream: str, message_id: str) -> Message | None:
    """One message of the stream by id (None once trimmed away)."""
    entries = r.xrange(stream, min=message_id, max=message_id, count=1)
    return _messages(entries)[0] if entries else None


def dead_letter(
    r: redis.Redis,
    dead_stream: str,
    msg: Message,
    reason: str,
    detail: str,
    consumer: str,
    *,
    maxlen: int = 100_000,
) -> None:
    fields = dict(msg.fields)
    fields.update(
        {b"reason": reason, b"detail": detail[:2000], b"source_id": msg.id, b"consumer": consumer}
    )
    r.xadd(dead_stream, fields, maxlen=maxlen, approximate=True)


def _stream_id(raw: bytes | str | None) -> tuple[int, int]:
    """A stream id ``<ms>-<seq>`` as a comparable pair ((-1, -1) when absent or odd)."""
    text = raw.decode() if isinstance(raw, bytes) else (raw or "")
    ms, _, seq = text.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return -1, -1


def group_lag(r: redis.Redis, stream: str, group: dict) -> int | None:
    """Messages of the stream not yet delivered to the group (``group``: its XINFO GROUPS entry).

    Redis derives its ``lag`` from a counter of entries read that a restart from the
    append-only file restores only approximately: it can report a lag that does not exist,
    and keep reporting it while nothing new arrives, so an alert on it would never clear.
    The ids cannot lie: once the group has been delivered the stream's newest entry
    (``last-delivered-id`` ≥ its id) the lag is 0, whatever the counter says.
    Otherwise Redis's figure, at most the stream's length; None when Redis cannot tell
    (``?`` in ``dqm status``, no sample in the metrics). Costs one read of the stream's
    newest entry per call.
    """
    lag = group.get("lag")
    newest = r.xrevrange(stream, count=1)
    if not newest or _stream_id(group.get("last-delivered-id")) >= _stream_id(newest[0][0]):
        return 0
    return None if lag is None else min(int(lag), int(r.xlen(stream)))
