"""``dqm replay FILE`` — publish a file written by ``dqm simulate --out`` to Redis.

The run conditions recorded in the file are announced again before the spills they
precede, exactly as the simulator announced them (version-1 files have none).
"""

from __future__ import annotations

import time

from dqm.pipeline.publisher import Publisher
from dqm.pipeline.runtime import require_redis
from dqm.sim.simfile import read_spill_file


def add_parser(sub) -> None:
    p = sub.add_parser("replay", help="publish a recorded/simulated spill file to Redis")
    p.add_argument("file")
    p.add_argument(
        "--realtime", action="store_true", help="pace spills by their recorded start offsets"
    )
    p.set_defaults(func=run)


def run(args, settings) -> int:
    r = require_redis(settings)
    # a Redis outage holds the spill in hand until Redis is back, never sends it twice
    publisher = Publisher(r, settings.stream, maxlen=settings.stream_maxlen)
    t0 = time.monotonic()
    n = announced = 0
    for spill in read_spill_file(args.file):
        if args.realtime:
            delay = t0 + spill.start_offset_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        publisher.publish(
            spill.run,
            spill.spill,
            list(spill.batches),
            spill.n_events,
            conditions=spill.conditions,
        )
        n += 1
        announced += spill.conditions is not None
    note = "" if announced else " (the file records no run conditions: runs judged without them)"
    print(f"replayed {n} spills from {args.file} to {settings.stream}{note}")
    return 0
