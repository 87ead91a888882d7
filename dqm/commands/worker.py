"""``dqm worker`` — run one consumer of the group (start several for scale-out)."""

from __future__ import annotations

import importlib
import logging
import signal
import threading

from dqm.pipeline.runtime import close_hooks, load_default_specs, open_store, require_redis
from dqm.pipeline.worker import Worker

log = logging.getLogger("dqm.pipeline.worker")


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="consume event batches, fill and store histograms")
    p.add_argument("--burst", action="store_true", help="drain the stream, commit, and exit")
    p.add_argument("--consumer", help="consumer name in the group (default host-pid)")
    p.add_argument("--max-seconds", type=float, help="stop after this long")
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=(
            "serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port; default: off)"
        ),
    )
    p.add_argument(
        "--metrics-host",
        default="0.0.0.0",
        metavar="HOST",
        help="address the metrics endpoint binds to (default 0.0.0.0: reachable by a Prometheus "
        "elsewhere)",
    )
    p.set_defaults(func=run)


class _ConsumerTag(logging.Filter):
    """Adds ``consumer=`` to this worker's log lines (several workers share one log)."""

    def __init__(self, consumer: str) -> None:
        super().__init__()
        self.consumer = consumer

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "consumer"):
            record.consumer = self.consumer
        return True


#: imported on first use by the checks (dqm._lazy); loaded once the worker is consuming
WARM_UP = ("scipy.stats", "scipy.special", "scipy.sparse.linalg", "scipy.interpolate")


def _warm_up_in_background() -> None:
    """Import what judging needs while the worker already waits for its first batch.

    The worker is ready without SciPy (a second of CPU); importing it here, in a thread,
    keeps that second out of the first spill's close latency. A broken SciPy prints its
    traceback from this thread at once, and the first check that needs it fails loudly too.
    """

    def load() -> None:
        for name in WARM_UP:
            importlib.import_module(name)

    threading.Thread(target=load, name="dqm-warm-up", daemon=True).start()


def run(args, settings) -> int:
    specs = load_default_specs(settings)
    store = open_store(settings)
    r = require_redis(settings)
    worker = Worker(
        settings,
        redis_client=r,
        sessions=store.sessions,
        specs=specs,
        consumer=args.consumer,
        close_hooks=close_hooks(settings, specs),
    )
    log.addFilter(_ConsumerTag(worker.consumer))
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    metrics = None
    if args.metrics_port is not None:
        from dqm.pipeline.metrics import scrape_client, serve_worker_metrics

        # a client of its own that fails fast: a hung Redis must not hang a scrape
        metrics = serve_worker_metrics(
            worker,
            args.metrics_port,
            args.metrics_host,
            redis_client=scrape_client(settings.redis_url),
        )
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, metrics.port)
    log.info(
        "worker %s consuming %s as group %s (%d histograms, specs %s)",
        worker.consumer,
        settings.stream,
        settings.group,
        len(specs),
        specs.version,
    )
    _warm_up_in_background()
    try:
        stats = worker.run(burst=args.burst, max_seconds=args.max_seconds)
    finally:
        if metrics is not None:
            metrics.close()
    log.info(
        "worker %s done: %d events, %d batches, %d spills closed, %d dead letters",
        worker.consumer,
        stats.events,
        stats.batches,
        stats.spills_closed,
        stats.dead_letters,
    )
    store.dispose()
    return 0
