"""``dqm bench`` — throughput figures with their baselines, measured in the same run."""

from __future__ import annotations

import uuid
from pathlib import Path

from dqm.bench import bench_fill, bench_scaleout, bench_transport, bench_worker, publish_bench_run, temp_sqlite
from dqm.redact import redact
from dqm.runtime import close_hooks, load_default_specs
from dqm.services import EmbeddedRedis
from dqm.stream import connect


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure worker throughput against the transport ceiling and numpy")
    p.add_argument("--spills", type=int, default=20, help="spills published for the worker benchmark")
    p.add_argument("--events-per-spill", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=2_000)
    p.add_argument("--workers", default="", help="scale-out: comma-separated worker counts, e.g. 1,2,3")
    p.add_argument("--no-checks", action="store_true", help="do not run the checks when spills close")
    p.set_defaults(func=run)


def _line(res, base=None) -> str:
    s = f"  {res.name:<52} {res.events:>10,d} ev  {res.events_per_cpu_s:>12,.0f} ev/CPU-s  {res.events_per_wall_s:>12,.0f} ev/s"
    if base is not None:
        s += f"  ratio {res.events_per_cpu_s / base.events_per_cpu_s:5.2f}"
    return s


def run(args, settings) -> int:
    server = None
    if not settings.redis_url:
        server = EmbeddedRedis().start()
        settings = settings.with_(redis_url=server.url)
    r = connect(settings.redis_url)
    specs = load_default_specs(settings)
    db_url, tmp = temp_sqlite()
    stream = f"bench:{uuid.uuid4().hex[:6]}"
    try:
        print(f"dqm bench: {len(specs)} spec histograms, batches of {args.batch_size} events, Redis {redact(settings.redis_url)}, store {db_url}")
        fill, numpy_fill = bench_fill(specs, args.batch_size)
        print("fill stage alone (one decoded batch, all spec histograms):")
        print(_line(numpy_fill))
        print(_line(fill) + f"  speed-up vs numpy {fill.events_per_cpu_s / numpy_fill.events_per_cpu_s:5.1f}x")
        n = publish_bench_run(r, stream, args.spills, args.events_per_spill, args.batch_size)
        print(f"published {n:,d} events in {args.spills} spills to {stream}")
        ceiling = bench_transport(r, stream)
        hooks = [] if args.no_checks else close_hooks(settings, specs)
        worker = bench_worker(settings.with_(stream=stream), r, specs, db_url, hooks)
        print("Redis -> worker (events per worker CPU-second):")
        print(_line(ceiling))
        print(_line(worker, ceiling))
        if "close_p50_s" in worker.extra:
            print(f"  spill close latency (last message -> flags stored + announced), {worker.extra['spills_closed']} spills, "
                  f"checks {'off' if args.no_checks or not hooks else 'on'}: p50 {worker.extra['close_p50_s'] * 1000:.0f} ms, "
                  f"p95 {worker.extra['close_p95_s'] * 1000:.0f} ms")
        r.delete(stream)
        if args.workers:
            print("scale-out (wall clock, including each process's start-up):")
            base = None
            for k in [int(x) for x in args.workers.split(",")]:
                res = bench_scaleout(settings, r, k, args.spills, args.events_per_spill, args.batch_size, Path(tmp.name))
                base = base or res
                print(_line(res) + f"  speed-up {res.events_per_wall_s / base.events_per_wall_s:4.2f}x")
    finally:
        r.delete(stream)
        tmp.cleanup()
        if server:
            server.stop()
    return 0
