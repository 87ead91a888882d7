"""``dqm bench`` — throughput figures with their baselines, measured in the same run."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from dqm.pipeline.runtime import close_hooks, load_default_specs
from dqm.pipeline.services import EmbeddedRedis
from dqm.pipeline.stream import connect
from dqm.redact import hide_password, redact


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure worker throughput against the transport ceiling and numpy"
    )
    p.add_argument(
        "--spills", type=int, default=20, help="spills published for the worker benchmark"
    )
    p.add_argument("--events-per-spill", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=2_000)
    p.add_argument(
        "--workers", default="", help="scale-out: comma-separated worker counts, e.g. 1,2,3"
    )
    p.add_argument(
        "--scale-database",
        metavar="URL",
        help="scale-out store: a scratch database (e.g. PostgreSQL) instead of a fresh SQLite file",
    )
    p.add_argument(
        "--no-checks", action="store_true", help="do not run the checks when spills close"
    )
    p.add_argument(
        "--report",
        type=int,
        nargs="?",
        const=2000,
        metavar="SPILLS",
        help="instead: time the nightly PDF report of a simulated day of SPILLS spills (default "
        "2000)",
    )
    p.add_argument(
        "--latency-spills",
        type=int,
        default=100,
        help="spills timed for the close latency with every spec check against a reference (0: "
        "skip)",
    )
    p.add_argument(
        "--recheck-spills",
        type=int,
        default=1000,
        help="spills of the stored run timed by recheck (0: skip)",
    )
    p.add_argument(
        "--history",
        type=int,
        metavar="N",
        help="instead: build a store of N closed spills (2000 a day) in --history-database and "
        "time the control room, Trends, the expert page, dqm status and the report's gathering",
    )
    p.add_argument(
        "--history-database",
        metavar="URL",
        help="a scratch PostgreSQL database for --history (its tables are filled: never a "
        "production one)",
    )
    p.add_argument(
        "--history-reuse",
        action="store_true",
        help="time the readers of the store --history-database already holds (do not build)",
    )
    p.add_argument(
        "--expert",
        type=int,
        nargs="?",
        const=300,
        metavar="SPILLS",
        help="instead: time the expert page in Chromium on a stored run of SPILLS spills "
        "(default 300): opening it and drawing another histogram",
    )
    p.add_argument(
        "--opens", type=int, default=5, help="with --expert: page opens timed after the first"
    )
    p.add_argument(
        "--reach",
        metavar="SMALL,LARGE",
        help="also: the worker at two spill sizes (e.g. 20000,200000), the events per SPS cycle "
        "one worker sustains and the π/K and beam-drift detection delays at those sizes",
    )
    p.add_argument(
        "--learned",
        type=int,
        metavar="SPILLS",
        help="instead: train the learned models on SPILLS simulated spills (at least 30) and "
        "time scoring a spill with them; then a real worker's spill-close latency (checks on) "
        "on a run without models and one with them, SPILLS each (docs/learned.md)",
    )
    p.set_defaults(func=run)


def _line(res, base=None) -> str:
    s = (
        f"  {res.name:<52} {res.events:>10,d} ev  {res.events_per_cpu_s:>12,.0f} ev/CPU-s  "
        f"{res.events_per_wall_s:>12,.0f} ev/s"
    )
    if base is not None:
        s += f"  ratio {res.events_per_cpu_s / base.events_per_cpu_s:5.2f}"
    return s


def _quiet_logs(level: str) -> None:
    """Figures, not chatter: Alembic's migration lines and the worker's per-spill lines off
    (shown again with ``dqm --log-level DEBUG bench``)."""
    if level != "DEBUG":
        for name in ("alembic", "dqm.pipeline.worker"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _close_learned(args, settings) -> int:
    """``--learned``: the worker's close latency without and with models (a private Redis
    unless ``DQM_REDIS_URL`` is set)."""
    from benchmarks.learned import bench_close_latency

    server = None
    if not settings.redis_url:
        server = EmbeddedRedis().start()
        settings = settings.with_(redis_url=server.url)
    try:
        latency = bench_close_latency(
            settings,
            connect(settings.redis_url),
            load_default_specs(settings),
            args.learned,
            args.events_per_spill,
            args.batch_size,
        )
    finally:
        if server is not None:
            server.stop()
    print("\n".join(latency.lines()))
    return 0


def run(args, settings) -> int:
    # benchmarks/ is not part of the library: imported only when a benchmark runs
    from benchmarks.worker import (
        bench_fill,
        bench_scaleout,
        bench_transport,
        bench_worker,
        publish_bench_run,
        temp_sqlite,
    )

    _quiet_logs(getattr(args, "log_level", "INFO"))
    if args.history is not None or args.history_reuse:
        return _history(args, settings)
    if getattr(args, "learned", None):
        from benchmarks.learned import bench_learned

        cost = bench_learned(load_default_specs(settings), args.learned, args.events_per_spill)
        print("\n".join(cost.lines()), flush=True)
        return _close_learned(args, settings)
    if getattr(args, "expert", None):
        from benchmarks.web import bench_expert_page

        result = bench_expert_page(
            load_default_specs(settings),
            settings.specs_dir or None,
            n_spills=args.expert,
            opens=args.opens,
        )
        print("\n".join(result.lines()))
        return 0
    if args.report:
        from benchmarks.report import bench_report

        print(bench_report(load_default_specs(settings), n_spills=args.report).line())
        return 0
    server = None
    if not settings.redis_url:
        server = EmbeddedRedis().start()
        settings = settings.with_(redis_url=server.url)
    r = connect(settings.redis_url)
    specs = load_default_specs(settings)
    db_url, tmp = temp_sqlite()
    stream = f"bench:{uuid.uuid4().hex[:6]}"
    try:
        print(
            f"dqm bench: {len(specs)} spec histograms, batches of {args.batch_size} events, Redis "
            f"{redact(settings.redis_url)}, store {db_url}"
        )
        fill, numpy_fill = bench_fill(specs, args.batch_size)
        print("fill stage alone (one decoded batch, all spec histograms):")
        print(_line(numpy_fill))
        print(
            _line(fill)
            + f"  speed-up vs numpy {fill.events_per_cpu_s / numpy_fill.events_per_cpu_s:5.1f}x"
        )
        n = publish_bench_run(r, stream, args.spills, args.events_per_spill, args.batch_size)
        print(f"published {n:,d} events in {args.spills} spills to {stream}")
        ceiling = bench_transport(r, stream)
        hooks = [] if args.no_checks else close_hooks(settings, specs)
        worker = bench_worker(settings.with_(stream=stream), r, specs, db_url, hooks)
        print("Redis -> worker (events per worker CPU-second):")
        print(_line(ceiling))
        print(_line(worker, ceiling))
        if "close_p50_s" in worker.extra:
            print(
                "  spill close latency (last message -> flags stored + announced), "
                f"{worker.extra['spills_closed']} spills, "
                f"checks {'off' if args.no_checks or not hooks else 'on'}: p50 "
                f"{worker.extra['close_p50_s'] * 1000:.0f} ms, "
                f"p95 {worker.extra['close_p95_s'] * 1000:.0f} ms"
            )
        r.delete(stream)
        if getattr(args, "reach", None):
            from benchmarks.reach import bench_reach

            small, large = (int(x) for x in args.reach.split(","))
            print("what the speed buys (worker CPU per spill at two sizes; delays in spills):")
            bench_reach(settings, r, specs, db_url, hooks, (small, large), args.batch_size)
        _flags_figures(args, settings, r, specs, db_url)
        if args.workers:
            print(
                f"scale-out: {args.spills} spills handed at once to N worker processes in one "
                "group, store "
                f"{hide_password(args.scale_database) if args.scale_database else 'SQLite'} (wall "
                "clock to the last spill closed; start-up excluded):"
            )
            base = None
            for k in [int(x) for x in args.workers.split(",")]:
                res = bench_scaleout(
                    settings,
                    r,
                    k,
                    args.spills,
                    args.events_per_spill,
                    args.batch_size,
                    Path(tmp.name),
                    args.scale_database,
                )
                base = base or res
                # cores used = worker CPU / wall: on a busy machine it shows the workers were
                # starved, not slow
                print(
                    _line(res)
                    + f"  speed-up {res.events_per_wall_s / base.events_per_wall_s:4.2f}x  cores "
                    f"used {res.cpu_s / res.wall_s:4.2f}"
                )
    finally:
        r.delete(stream)
        tmp.cleanup()
        if server:
            server.stop()
    return 0


def _flags_figures(args, settings, r, specs, db_url: str) -> None:
    from benchmarks.judge import bench_close_latency, bench_recheck

    hooks = [] if args.no_checks else close_hooks(settings, specs)
    if args.latency_spills and hooks:
        lat = bench_close_latency(
            settings,
            r,
            specs,
            db_url,
            hooks,
            args.latency_spills,
            args.events_per_spill,
            args.batch_size,
        )
        print(
            f"spill close latency with all {lat.checks} spec checks against a reference, "
            f"{lat.spills} spills "
            f"(last message -> flags stored + announced): p50 {lat.p50_s * 1000:.0f} ms, p95 "
            f"{lat.p95_s * 1000:.0f} ms, "
            f"max {lat.max_s * 1000:.0f} ms"
        )
    if args.recheck_spills and hooks:
        store_s, recheck_s, diffs = bench_recheck(specs, db_url, args.recheck_spills)
        print(
            f"recheck of a stored run of {args.recheck_spills} spills: {recheck_s:.1f} s "
            f"({1000 * recheck_s / args.recheck_spills:.0f} ms/spill; storing its flags first took "
            f"{store_s:.1f} s), "
            f"{'reproduced exactly' if not diffs else f'{diffs} differences'}"
        )


def _history(args, settings) -> int:
    import os
    import tempfile

    from benchmarks.history import build_history, time_readers
    from dqm.errors import ConfigError

    url = args.history_database
    if not url or not url.startswith("postgresql"):
        raise ConfigError("--history needs --history-database postgresql+psycopg://... (scratch)")
    specs = load_default_specs(settings)
    print(f"dqm bench --history: store {hide_password(url)}, load average {os.getloadavg()[0]:.1f}")
    if not args.history_reuse:
        print(f"  building {args.history:,d} closed spills (COPY) ...")
        seconds = build_history(url, specs, args.history)
        print(f"  built in {seconds:.0f} s ({args.history / seconds:,.0f} spills/s)")
    with tempfile.TemporaryDirectory() as tmp:
        time_readers(url, specs, tmp)
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return 0
