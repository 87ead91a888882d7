"""A producer that survives Redis outages without publishing a spill twice.

A spill goes out in one ``MULTI``/``EXEC`` (:func:`dqm.pipeline.stream.publish_batches`):
Redis applies all of it or none. When the connection breaks, the producer cannot always
tell which: the ``EXEC`` may have been applied with its reply lost. Sending it again
blindly could publish every batch twice; giving up loses the spill. So, once Redis answers
again, :class:`Publisher` *looks* before it resends: it reads the stream backwards from
its end for this spill's end-of-spill marker, among the entries added since the first
attempt. The marker is the last entry of the transaction, so finding it means the whole
spill is in; not finding it means none of it is, and the spill is sent again.

The rule for any producer (also in the wire-format docs): publish a spill atomically, with
its marker last; after a failure, wait for Redis, look for the marker, send again only if
it is absent. The worker would also refuse a second copy of a batch (``duplicate-batch``)
and of a marker, but as dead letters an operator has to look at.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis

from dqm.core.conditions import RunConditions
from dqm.pipeline.state import Backoff
from dqm.pipeline.stream import publish_batches, publish_conditions

__all__ = ["Publisher", "LOOK_BACK_MAX"]

log = logging.getLogger("dqm.pipeline.publisher")

#: At most this many entries are read back from the stream's end looking for a marker.
LOOK_BACK_MAX = 20_000
#: Entries read back per round trip (batch payloads are large: keep each reply small).
LOOK_BACK_CHUNK = 16
#: Margin for a Redis clock ahead of the producer's, when judging an entry "too old".
CLOCK_MARGIN_MS = 60_000


class Publisher:
    """Publishes whole spills to a stream, retrying across Redis outages, never twice.

    ``give_up_s``: how long one spill may wait for Redis before the error is raised
    (``None``: for ever, as a DAQ that must not lose a spill would).
    """

    def __init__(
        self,
        r: redis.Redis,
        stream: str,
        *,
        maxlen: int | None = None,
        give_up_s: float | None = None,
    ) -> None:
        self.r, self.stream, self.maxlen, self.give_up_s = r, stream, maxlen, give_up_s
        self.backoff = Backoff()
        self.retries = 0  # failed attempts (each followed by a wait)
        self.found_published = 0  # spills found in the stream after a failed attempt

    def publish(
        self,
        run: int,
        spill: int,
        batches: Sequence[bytes],
        n_events: int,
        *,
        conditions: RunConditions | None = None,
    ) -> None:
        """Publish one spill (batches, then its marker; ``conditions`` first if given)."""
        since_ms = int(time.time() * 1000) - CLOCK_MARGIN_MS
        t0 = time.monotonic()
        uncertain = False  # a failed attempt may have been applied
        while True:
            try:
                if uncertain and self._marker_in_stream(run, spill, since_ms):
                    self.found_published += 1
                    log.warning(
                        "spill found in the stream after a failed attempt: not sent again",
                        extra={"run": run, "spill": spill},
                    )
                    break
                publish_batches(
                    self.r,
                    self.stream,
                    run,
                    spill,
                    batches,
                    n_events,
                    maxlen=self.maxlen,
                    conditions=conditions,
                )
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                uncertain = True
                self.retries += 1
                if self.give_up_s is not None and time.monotonic() - t0 > self.give_up_s:
                    raise
                wait = self.backoff.failed()
                log.warning(
                    "redis unavailable (%s); spill held, retrying in %.1f s",
                    exc,
                    wait,
                    extra={"run": run, "spill": spill},
                )
                time.sleep(wait)
        self.backoff.reset()

    def announce(self, conditions: RunConditions | None) -> None:
        """Announce a run's conditions on their own, retrying across an outage (a repeated
        announcement is harmless: the worker stores the same conditions once)."""
        if conditions is None:
            return
        t0 = time.monotonic()
        while True:
            try:
                publish_conditions(self.r, self.stream, conditions, maxlen=self.maxlen)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.retries += 1
                if self.give_up_s is not None and time.monotonic() - t0 > self.give_up_s:
                    raise
                wait = self.backoff.failed()
                log.warning("redis unavailable (%s); retrying in %.1f s", exc, wait)
                time.sleep(wait)
        self.backoff.reset()

    def _marker_in_stream(self, run: int, spill: int, since_ms: int) -> bool:
        """Is this spill's end-of-spill marker among the stream's entries since ``since_ms``?"""
        want_run, want_spill = str(run).encode(), str(spill).encode()
        end: bytes | str = "+"
        seen = 0
        while seen < LOOK_BACK_MAX:
            entries = self.r.xrevrange(self.stream, max=end, min="-", count=LOOK_BACK_CHUNK)
            if not entries:
                return False
            for mid, fields in entries:
                seen += 1
                if (
                    fields.get(b"type") == b"eos"
                    and fields.get(b"run") == want_run
                    and fields.get(b"spill") == want_spill
                ):
                    return True
                if int(mid.split(b"-")[0]) < since_ms:
                    return False  # older than the first attempt: it was not applied
            last = entries[-1][0].decode()
            ms, _, seq = last.partition("-")
            end = f"({ms}-{seq}"
        return False
