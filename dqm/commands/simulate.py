"""``dqm simulate`` — generate NA64mu spills and publish them to Redis (or write a replay file)."""

from __future__ import annotations

import logging
import time

from dqm.errors import ConfigError
from dqm.pipeline.publisher import Publisher
from dqm.pipeline.stream import ConditionsAnnouncer
from dqm.sim.anomalies import parse_anomalies
from dqm.sim.simulate import SimConfig, simulate_run

log = logging.getLogger("dqm.sim.simulate")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate", help="generate spills (publish to Redis, or --out FILE for 'dqm replay')"
    )
    p.add_argument("--run", type=int, default=SimConfig.run)
    p.add_argument("--spills", type=int, default=SimConfig.n_spills, help="number of spills")
    p.add_argument("--first-spill", type=int, default=1)
    p.add_argument("--events-per-spill", type=int, default=SimConfig.events_per_spill)
    p.add_argument("--batch-size", type=int, default=SimConfig.batch_size)
    p.add_argument("--seed", type=int, default=SimConfig.seed)
    p.add_argument(
        "--anomaly",
        action="append",
        default=[],
        metavar="KIND@SPILLS:K=V,…",
        help="inject an anomaly, e.g. 'beam_shift@5-8:dx_mm=3' (repeatable)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any simulator default, e.g. --set pik_fraction=5e-4 or --set "
        "p_beam_gev=100 (the run's announced conditions follow: beam_particle, p_beam_gev, "
        "magnet_polarity, magnet_bl_tm, trigger_config, setup)",
    )
    p.add_argument("--realtime", action="store_true", help="pace spills by spill_period_s")
    p.add_argument("--period-s", type=float, help="override the spill period when pacing")
    p.add_argument("--out", help="write a replay file instead of publishing")
    p.set_defaults(func=run)


def parse_sets(items: list[str]) -> dict[str, str]:
    """``--set FIELD=VALUE`` items as a dict of SimConfig overrides."""
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError("--set", item, "FIELD=VALUE, e.g. pik_fraction=5e-4")
        overrides[key.strip()] = value.strip()
    return overrides


def sim_config_from_args(args) -> SimConfig:
    overrides = parse_sets(args.set)
    cfg = SimConfig(
        run=args.run,
        n_spills=args.spills,
        events_per_spill=args.events_per_spill,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    return cfg.with_overrides(overrides)


def run(args, settings) -> int:
    cfg = sim_config_from_args(args)
    anomalies = parse_anomalies(args.anomaly)
    spills = simulate_run(cfg, anomalies, first_spill=args.first_spill)
    if args.out:
        from dqm.sim.simfile import write_spill_file

        summary = write_spill_file(args.out, spills)
        print(f"wrote {args.out}: {summary}")
        return 0
    from dqm.pipeline.runtime import require_redis

    r = require_redis(settings)
    period = args.period_s if args.period_s is not None else cfg.spill_period_s
    n = 0
    # the run's conditions go first, before its first batch (and again if they changed)
    announcer = ConditionsAnnouncer()
    # a Redis outage holds the spill in hand until Redis is back, never sends it twice
    publisher = Publisher(r, settings.stream, maxlen=settings.stream_maxlen)
    publisher.announce(announcer.due(cfg.conditions()))
    print(f"announced run {cfg.run}: {cfg.conditions().describe()}")
    t0 = time.monotonic()
    for spill in simulate_run(
        cfg, anomalies, first_spill=args.first_spill
    ):  # stale spills are gaps
        if args.realtime:
            _sleep_until(t0 + (spill.spill - args.first_spill) * period)
        publisher.publish(
            spill.run,
            spill.spill,
            spill.batches(),
            spill.n_events,
            conditions=announcer.due(spill.conditions),
        )
        n += 1
        tag = f" anomalies: {', '.join(spill.anomalies)}" if spill.anomalies else ""
        log.info(
            "published %d events in %d batches%s",
            spill.n_events,
            spill.n_batches,
            tag,
            extra={"run": spill.run, "spill": spill.spill},
        )
    print(f"published {n} spills of run {cfg.run} to {settings.stream}")
    return 0


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
