"""``dqm recheck`` — recompute a stored run's flags; do they reproduce the live ones?

Every input is read as it was when each spill closed (:mod:`dqm.store.flags`), so with the
same check-configuration version the recomputed flags must equal the stored ones —
quality, value, thresholds and explanation. A difference means something changed
that should not have, and the exit status is 1. ``--store`` replaces the stored
flags instead (e.g. after an expert changed thresholds: ``--version`` names the new one).
"""

from __future__ import annotations

import time

from dqm.errors import ConfigError
from dqm.pipeline.runtime import load_default_specs, open_store
from dqm.store.flags import recheck_run


def add_parser(sub) -> None:
    p = sub.add_parser(
        "recheck", help="recompute a stored run's flags and compare with the live ones"
    )
    p.add_argument("--run", type=int, required=True)
    p.add_argument(
        "--version", help="check-configuration version SPECHASH+N (default: each spill's own)"
    )
    p.add_argument(
        "--store", action="store_true", help="replace the stored flags with the recomputed ones"
    )
    p.set_defaults(func=run)


def run(args, settings) -> int:
    specs = load_default_specs(settings)
    if args.version:
        spec_hash, plus, overrides = args.version.partition("+")
        if not plus or not overrides.isdigit():
            raise ConfigError(
                "--version",
                args.version,
                "SPECHASH+N as stored with the flags, e.g. " + f"{specs.version}+0",
            )
        if spec_hash != specs.version:
            raise ConfigError(
                "--version",
                args.version,
                f"a version of the specs in use ({specs.version}+N); "
                "check out the histograms/ of that version to recheck with it",
            )
    t0 = time.perf_counter()
    with open_store(settings, writer=args.store) as store:
        if args.store:
            with store.sessions.begin() as session:
                result = recheck_run(session, args.run, specs, version=args.version, store=True)
        else:
            with store.sessions() as session:
                result = recheck_run(session, args.run, specs, version=args.version)
    took = time.perf_counter() - t0
    if result.not_rechecked:
        print(
            f"run {args.run}: {len(result.not_rechecked)} spills not rechecked: their own "
            f"histograms were deleted by the retention policy (older than "
            f"DQM_SPILL_HISTOGRAMS_KEEP_DAYS={settings.spill_histograms_keep_days:g} days, "
            f"summed into the run's histograms); their stored flags stand: "
            f"{_ranges(result.not_rechecked)}"
        )
    if args.store:
        print(
            f"run {args.run}: {result.spills} spills rechecked with configuration {result.version} "
            f"and stored ({took:.1f} s)"
        )
        return 0
    if not result.differences:
        print(
            f"run {args.run}: {result.spills} spills rechecked with configuration {result.version} "
            f"({took:.1f} s): "
            "reproduces the stored live flags exactly"
        )
        return 0
    print(
        f"run {args.run}: {result.spills} spills rechecked with configuration {result.version} "
        f"({took:.1f} s): "
        f"{len(result.differences)} difference(s) from the stored flags"
    )
    for line in result.differences[:50]:
        print(f"  {line}")
    if len(result.differences) > 50:
        print(f"  ... and {len(result.differences) - 50} more")
    return 1


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)
