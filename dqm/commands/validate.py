"""``dqm validate`` — the detection study: false alarms, detection delays, drift.

Runs :func:`dqm.sim.validate.run_study` on simulated spills (no Redis, no database) with
the specs in use and prints the Markdown table that docs/validation.md quotes. Exit status 1
when a requirement is not met (≤ 1 % false alarms, every anomaly BAD on its subsystem
within 2 spills and named, the drift caught before 2 %).
"""

from __future__ import annotations

import sys

from dqm.pipeline.runtime import load_default_specs
from dqm.sim.validate import StudyConfig, format_report, run_study


def add_parser(sub) -> None:
    d = StudyConfig()
    p = sub.add_parser(
        "validate", help="detection study on simulated spills: false alarms and detection delays"
    )
    p.add_argument("--events-per-spill", type=int, default=d.events_per_spill)
    p.add_argument(
        "--clean-spills",
        type=int,
        default=d.clean_spills,
        help="clean spills for the false-alarm rate",
    )
    p.add_argument(
        "--reference-spills",
        type=int,
        default=d.reference_spills,
        help="clean spills summed into the reference",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    specs = load_default_specs(settings)
    config = StudyConfig(
        events_per_spill=args.events_per_spill,
        clean_spills=args.clean_spills,
        reference_spills=args.reference_spills,
        seed=args.seed,
    )
    progress = (
        None if args.quiet else (lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    )
    result = run_study(specs, config, progress)
    print(format_report(result))
    failures = result.failures()
    for f in failures:
        print(f"NOT MET: {f}")
    if not failures:
        print(
            "all requirements met: ≤ 1 % false alarms, every anomaly BAD on its subsystem within 2 "
            "spills and named, "
            "drift caught before 2 %"
        )
    return 1 if failures else 0
