"""Prometheus metrics of one worker, read at scrape time: the worker's hot loop is untouched.

I/O shell. :class:`WorkerCollector` turns the counters the worker keeps anyway
(:class:`dqm.pipeline.worker.WorkerStats`) into Prometheus counters, and asks Redis for the
state of the stream (``XINFO GROUPS``, ``XINFO CONSUMERS``, ``XLEN``) only when
Prometheus scrapes. It never writes to the worker, the stream or the database.

Exposed by ``dqm worker --metrics-port 9100`` on ``http://HOST:9100/metrics``:

* ``dqm_worker_events_total``, ``dqm_worker_batches_total`` … (counters; the rate
  is Prometheus' job: ``rate(dqm_worker_events_total[1m])`` is events/s);
* ``dqm_worker_spill_close_latency_seconds`` (histogram: last message of a spill
  seen → spill closed);
* ``dqm_stream_lag_messages``, ``dqm_stream_pending_messages``,
  ``dqm_consumer_pending_messages``, ``dqm_stream_length_messages``,
  ``dqm_dead_letter_stream_length_messages`` (gauges; the group-wide ones are the
  same on every worker: aggregate them with ``max``, not ``sum``);
* ``dqm_metrics_redis_up`` (1 if the stream gauges could be read at this scrape).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from dqm.pipeline.stream import group_lag

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from dqm.pipeline.worker import Worker

__all__ = [
    "WorkerCollector",
    "MetricsServer",
    "serve_worker_metrics",
    "scrape_client",
    "CLOSE_LATENCY_BUCKETS_S",
    "WORKER_COUNTERS",
]

log = logging.getLogger("dqm.pipeline.metrics")

#: Upper bucket bounds of the spill-close latency histogram (a spill normally closes
#: within a commit interval of its last message; the spill timeout is 30 s).
CLOSE_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: WorkerStats field -> (metric name without ``_total``, help text).
WORKER_COUNTERS: dict[str, tuple[str, str]] = {
    "events": (
        "dqm_worker_events",
        "Events filled into histograms and stored by this worker (each event of a run counts "
        "once across the group; rate() gives events/s).",
    ),
    "batches": ("dqm_worker_batches", "Event batches (stream messages) filled and stored."),
    "markers": ("dqm_worker_spill_markers", "End-of-spill markers read."),
    "conditions": ("dqm_worker_run_conditions", "Run-conditions announcements read."),
    "rejudged": (
        "dqm_worker_spills_rejudged",
        "Spills judged again because their run's conditions arrived or changed after them.",
    ),
    "dead_letters": (
        "dqm_worker_dead_letters",
        "Messages sent to the dead-letter stream (malformed or late).",
    ),
    "duplicates_skipped": (
        "dqm_worker_duplicates_skipped",
        "Redelivered messages found stored already and skipped.",
    ),
    "commits": ("dqm_worker_commits", "Commit groups written to the database."),
    "conflicts": (
        "dqm_worker_commit_conflicts",
        "Commit groups dropped because another worker stored a message first.",
    ),
    "db_errors": (
        "dqm_worker_database_errors",
        "Failed database transactions (retried with back-off).",
    ),
    "redis_errors": ("dqm_worker_redis_errors", "Redis connection errors (retried with back-off)."),
    "spills_closed": (
        "dqm_worker_spills_closed",
        "Spills this worker closed (merged, summarised, checked).",
    ),
    "reclaimed": (
        "dqm_worker_reclaimed_messages",
        "Pending messages reclaimed from dead consumers (XAUTOCLAIM).",
    ),
    "check_errors": (
        "dqm_worker_check_errors",
        "Checks (or whole judgings) that failed: stored as CHECK_ERROR flags, see the log.",
    ),
    "late_batches": (
        "dqm_worker_late_batches",
        "Batches set aside: beyond the count their end-of-spill marker announced.",
    ),
}


class WorkerCollector(Collector):
    """Collects one worker's metrics when scraped.

    Args:
        worker: the running worker; only ``stats``, ``consumer`` and ``settings`` are read.
        redis_client: client for the stream gauges; give it a short ``socket_timeout`` so a
            hung Redis cannot hang a scrape. Default: the worker's own client.
        buckets: upper bounds of the close-latency histogram, in seconds.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        redis_client: redis.Redis | None = None,
        buckets: tuple[float, ...] = CLOSE_LATENCY_BUCKETS_S,
    ) -> None:
        self.worker = worker
        self.r = redis_client if redis_client is not None else worker.r
        self.buckets = tuple(sorted(buckets))
        # the latency list only grows: fold new entries in at each scrape, O(new)
        self._lock = threading.Lock()
        self._seen = 0
        self._bucket_counts = [0] * (len(self.buckets) + 1)  # last one: +Inf
        self._latency_sum = 0.0

    # ------------------------------------------------------------------ collect
    def collect(self) -> Iterator[Metric]:
        labels = self._labels()
        names, values = list(labels), list(labels.values())
        stats = self.worker.stats
        for field_name, (name, doc) in WORKER_COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=names)
            family.add_metric(values, float(getattr(stats, field_name)))
            yield family
        yield self._latency_histogram(names, values)
        yield from self._stream_gauges()

    def _labels(self) -> dict[str, str]:
        s = self.worker.settings
        return {"consumer": self.worker.consumer, "stream": s.stream, "group": s.group}

    def _latency_histogram(self, names: list[str], values: list[str]) -> HistogramMetricFamily:
        with self._lock:
            latencies = self.worker.stats.close_latency_s
            n = len(latencies)
            if n < self._seen:  # the list was replaced: start over
                self._seen, self._bucket_counts, self._latency_sum = (
                    0,
                    [0] * (len(self.buckets) + 1),
                    0.0,
                )
            for dt in latencies[self._seen : n]:
                self._bucket_counts[bisect.bisect_left(self.buckets, dt)] += 1
                self._latency_sum += dt
            self._seen = n
            cumulative, running = [], 0
            for bound, count in zip(
                (*self.buckets, float("inf")), self._bucket_counts, strict=False
            ):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            total = self._latency_sum
        family = HistogramMetricFamily(
            "dqm_worker_spill_close_latency_seconds",
            "Time from the last message of a spill seen by this worker to the spill closed.",
            labels=names,
        )
        family.add_metric(values, cumulative, sum_value=total)
        return family

    def _stream_gauges(self) -> Iterator[Metric]:
        s = self.worker.settings
        up = GaugeMetricFamily(
            "dqm_metrics_redis_up",
            "1 if Redis answered the stream queries of this scrape.",
            labels=["stream"],
        )
        try:
            state = _stream_state(
                self.r, s.stream, s.group, s.dead_letter_stream, self.worker.consumer
            )
        except redis.RedisError as exc:
            log.warning("metrics: could not read the state of %s from redis: %s", s.stream, exc)
            up.add_metric([s.stream], 0.0)
            yield up
            return
        up.add_metric([s.stream], 1.0)
        yield up
        group_labels, group_values = ["stream", "group"], [s.stream, s.group]
        gauges = (
            (
                "dqm_stream_length_messages",
                "Messages in the stream (capped by DQM_STREAM_MAXLEN).",
                ["stream"],
                [s.stream],
                state.length,
            ),
            (
                "dqm_stream_lag_messages",
                "Messages in the stream not yet delivered to any consumer of the group.",
                group_labels,
                group_values,
                state.lag,
            ),
            (
                "dqm_stream_pending_messages",
                "Messages delivered to the group's consumers and not yet acknowledged.",
                group_labels,
                group_values,
                state.pending,
            ),
            (
                "dqm_consumer_pending_messages",
                "Messages delivered to this consumer and not yet acknowledged.",
                [*group_labels, "consumer"],
                [*group_values, self.worker.consumer],
                state.consumer_pending,
            ),
            (
                "dqm_dead_letter_stream_length_messages",
                "Messages in the dead-letter stream (all workers).",
                ["stream"],
                [s.dead_letter_stream],
                state.dead_letters,
            ),
        )
        for name, doc, label_names, label_values, value in gauges:
            family = GaugeMetricFamily(name, doc, labels=label_names)
            if value is not None:  # unknown (e.g. the group does not exist yet): no sample
                family.add_metric(label_values, float(value))
            yield family


@dataclass(frozen=True)
class _StreamState:
    length: int
    lag: int | None
    pending: int | None
    consumer_pending: int | None
    dead_letters: int


def _stream_state(
    r: redis.Redis, stream: str, group: str, dead_stream: str, consumer: str
) -> _StreamState:
    length = int(r.xlen(stream))
    dead = int(r.xlen(dead_stream))
    lag = pending = consumer_pending = None
    try:
        groups = r.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        groups = []
    for g in groups:
        if _text(g.get("name")) == group:
            pending = int(g.get("pending") or 0)
            lag = group_lag(r, stream, g)  # None: Redis < 7 or lag unknown
            consumer_pending = 0
            for c in r.xinfo_consumers(stream, group):
                if _text(c.get("name")) == consumer:
                    consumer_pending = int(c.get("pending") or 0)
    return _StreamState(length, lag, pending, consumer_pending, dead)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def scrape_client(url: str, timeout_s: float = 2.0) -> redis.Redis:
    """A Redis client for the stream gauges that fails fast: short timeouts and no retries.

    redis-py retries a failed command 10 times by default; with a Redis that does not
    answer, a scrape would outlast Prometheus' scrape timeout and lose the worker's
    counters too. Failing fast reports ``dqm_metrics_redis_up 0`` instead.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
    )


class MetricsServer:
    """The ``/metrics`` HTTP endpoint of one worker (a daemon thread)."""

    def __init__(
        self, registry: CollectorRegistry, httpd: WSGIServer, thread: threading.Thread
    ) -> None:
        self.registry = registry
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve_worker_metrics(
    worker: Worker, port: int, host: str = "0.0.0.0", redis_client: redis.Redis | None = None
) -> MetricsServer:
    """Serve the worker's metrics (and its process' CPU/memory) on ``http://host:port/metrics``.

    ``port=0`` picks a free port (see :attr:`MetricsServer.port`). A registry of its
    own per worker, so several workers can live in one process (tests).
    """
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(worker, redis_client=redis_client))
    ProcessCollector(registry=registry)
    httpd, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(registry, httpd, thread)
