"""``dqm worker`` — run one consumer of the group (start several for scale-out)."""

from __future__ import annotations

import logging
import signal

from dqm.runtime import close_hooks, load_default_specs, open_store, require_redis
from dqm.worker import Worker

log = logging.getLogger("dqm.worker")


def add_parser(sub) -> None:
    p = sub.add_parser("worker", help="consume event batches, fill and store histograms")
    p.add_argument("--burst", action="store_true", help="drain the stream, commit, and exit")
    p.add_argument("--consumer", help="consumer name in the group (default host-pid)")
    p.add_argument("--max-seconds", type=float, help="stop after this long")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    specs = load_default_specs(settings)
    store = open_store(settings)
    r = require_redis(settings)
    worker = Worker(settings, redis_client=r, sessions=store.sessions, specs=specs, consumer=args.consumer, close_hooks=close_hooks(settings, specs))
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    log.info("worker %s consuming %s as group %s (%d histograms, specs %s)", worker.consumer, settings.stream, settings.group, len(specs), specs.version)
    stats = worker.run(burst=args.burst, max_seconds=args.max_seconds)
    log.info("worker %s done: %d events, %d batches, %d spills closed, %d dead letters", worker.consumer, stats.events, stats.batches, stats.spills_closed, stats.dead_letters)
    store.dispose()
    return 0
