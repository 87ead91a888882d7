"""``dqm loadtest`` — N control-room browser sessions on live spills: memory, CPU, updates."""

from __future__ import annotations

from pathlib import Path

from dqm.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "loadtest",
        help="control-room load: N browser sessions for M minutes (needs Chromium + playwright)",
    )
    p.add_argument("--sessions", type=int, default=20, help="browser sessions (default 20)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    p.add_argument("--period-s", type=float, default=4.0, help="seconds between spills (default 4)")
    p.add_argument("--events-per-spill", type=int, default=10_000)
    p.add_argument(
        "--sample-s", type=float, default=10.0, help="seconds between samples (default 10)"
    )
    p.add_argument(
        "--chromium",
        default="/usr/bin/chromium",
        help="browser executable (default Debian's chromium)",
    )
    p.add_argument("--json", type=Path, help="also write the samples and summary to this file")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    if not Path(args.chromium).exists():
        raise ConfigError(
            "--chromium",
            args.chromium,
            "the path of a Chromium executable (Debian: apt-get install chromium)",
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise ConfigError(
            "playwright", "not installed", "the test extras: pip install -e .[test]"
        ) from None
    from benchmarks.loadtest import run_load, save

    result = run_load(
        sessions=args.sessions,
        minutes=args.minutes,
        period_s=args.period_s,
        events_per_spill=args.events_per_spill,
        sample_s=args.sample_s,
        chromium=args.chromium,
    )
    print("\n".join(result.lines()))
    if args.json:
        save(result, args.json)
    return 0
