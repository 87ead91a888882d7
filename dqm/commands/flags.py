"""``dqm flags`` — a run's flags in the terminal: what is wrong, why, and what to do.

Each flag row shows where (run, spill, subsystem, histogram, check), the verdict
(quality, value, thresholds), then on its own lines the explanation and the
shifter instruction, and the check-configuration version that reproduces it
(``dqm recheck --run N --version V``).
"""

from __future__ import annotations

import math
import textwrap

from dqm.core.subsystems import SUBSYSTEMS
from dqm.errors import ConfigError
from dqm.quality import Quality, quality_name
from dqm.store.engine import open_store
from dqm.store.flag_reads import (
    count_flags,
    newest_reference_of_run,
    query_flags,
    reference_warnings,
)
from dqm.store.models import Run
from dqm.store.queries import count_closed_spills, flag_reference_runs
from dqm.store.runs import as_conditions, get_run, run_conditions

# Reading stored flags needs neither the checks (NumPy, boost-histogram, every check) nor
# the judging: `dqm flags` answers at once (tests/unit/test_cli_startup.py keeps it so).

#: The registered checks that compare with the reference (``needs_reference``), written out
#: so that printing a flag does not import the check registry and with it every check;
#: ``tests/unit/test_cli_startup.py`` fails if this differs from the registry.
REFERENCE_CHECKS = frozenset({"beam_profile", "bins_beyond", "chi2", "ks", "max_pull"})


def add_parser(sub) -> None:
    p = sub.add_parser(
        "flags", help="list a run's data-quality flags with explanations and instructions"
    )
    p.add_argument("--run", type=int, required=True, help="run number")
    p.add_argument("--spill", type=int, help="only this spill")
    p.add_argument("--subsystem", choices=SUBSYSTEMS, help="only this subsystem")
    p.add_argument(
        "--quality",
        default="WARNING",
        type=str.upper,
        metavar="Q",
        help="show flags of this quality or worse: GOOD (all), NO_DATA, WARNING (default), "
        "CHECK_ERROR (the judging failed: CHECK_ERROR and BAD), BAD",
    )
    p.set_defaults(func=run)


def _quality(name: str) -> Quality:
    try:
        return Quality[name]
    except KeyError:
        raise ConfigError(
            "--quality", name, "one of " + ", ".join(q.name for q in Quality)
        ) from None


def format_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


def format_thresholds(thresholds: dict | None) -> str:
    return (
        " ".join(
            f"{k}={format_value(v) if isinstance(v, (int, float)) else v}"
            for k, v in (thresholds or {}).items()
        )
        or "-"
    )


def _rollup_line(run_row: Run | None, n_spills: int, rollups) -> str:
    per = {f.subsystem: quality_name(f.quality) for f in rollups if f.spill is None}
    beam = f", beam {run_row.beam_config or 'unknown'}" if run_row else ""
    worst = "  ".join(f"{s} {per.get(s, '-')}" for s in SUBSYSTEMS)
    return (
        f"run {run_row.run if run_row else '?'}{beam}: {n_spills} closed spills; "
        f"worst per subsystem: {worst}"
    )


def conditions_line(run_row: Run) -> str:
    """The run's conditions as the shifter reads them (the wall's header says the same)."""
    cond = as_conditions(run_row.conditions)
    if cond is None:
        return (
            "conditions: none received from the DAQ (momentum-scale checks and reference "
            "comparisons give NO_DATA)"
        )
    return f"conditions: {cond.describe()}"


def _reference_line(session, run: int, max_age_days: float) -> str:
    """Provenance of the reference the run's flags were computed against, and its warnings."""
    ref_runs = flag_reference_runs(session, run)
    if not ref_runs:
        cond = run_conditions(session, run)
        if cond is None:
            return "compared with: no reference (no run conditions, so no beam configuration)"
        return (
            f"compared with: no reference for {cond.beam_config} (shape checks NO_DATA); "
            f"'dqm reference suggest --beam-config {cond.beam_config}' proposes one"
        )
    refs = [newest_reference_of_run(session, r) for r in ref_runs]
    lines = [
        "compared with: "
        + "; ".join(
            f"reference run {r.run} (beam '{r.beam_config}', set {r.set_at:%Y-%m-%d} by {r.set_by})"
            for r in refs
            if r is not None
        )
    ]
    for r in refs:
        lines += [f"warning: {w}" for w in reference_warnings(session, r, run, max_age_days)]
    return "\n".join(lines)


def run(args, settings) -> int:
    min_quality = _quality(args.quality)
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            run_row = get_run(session, args.run)
            if run_row is None:
                print(f"run {args.run}: not in the database")
                return 1
            n_spills = count_closed_spills(session, args.run)
            print(_rollup_line(run_row, n_spills, query_flags(session, args.run, rollups=True)))
            print(_reference_line(session, args.run, settings.reference_max_age_days))
            print(conditions_line(run_row))
            flags = query_flags(
                session,
                args.run,
                spill=args.spill,
                subsystem=args.subsystem,
                min_quality=min_quality,
            )
            hidden = count_flags(
                session, args.run, spill=args.spill, subsystem=args.subsystem
            ) - len(flags)
            print_flags(flags)
            if hidden:
                print(
                    f"({hidden} flags better than {min_quality.name} not shown; --quality GOOD "
                    "lists all)"
                )
    return 0


def _uses_reference(check: str, explanation: str | None) -> bool:
    """Whether a flag's check compared with the reference: one that needs it, or one that
    says it did ("… from the reference"); a momentum scale or a DAQ count did not, and
    "(reference run N)" after it would send the reader to a run that played no part."""
    return check in REFERENCE_CHECKS or "reference" in (explanation or "")


def print_flags(flags) -> None:
    """A table of flags; the explanation and instruction wrap under their row."""
    if not flags:
        print("no flags match")
        return
    # columns as wide as their longest entry: a long check name ("reference_conditions")
    # must not push the quality out from under its heading
    hw = max([22, *(len(f.histogram or "-") for f in flags)])
    cw = max([16, *(len(f.check) for f in flags)])
    header = (
        f"{'run':>5} {'spill':>5} {'subsystem':<11} {'histogram':<{hw}} {'check':<{cw}} "
        f"{'quality':<11} {'value':>10}  {'config':<15} thresholds"
    )
    print(header)
    print("-" * len(header))
    for f in flags:
        spill = "-" if f.spill is None else str(f.spill)
        print(
            f"{f.run:>5} {spill:>5} {f.subsystem:<11} {(f.histogram or '-'):<{hw}} "
            f"{f.check:<{cw}} {quality_name(f.quality):<11} "
            f"{format_value(f.value):>10}  {f.config_version:<15} {format_thresholds(f.thresholds)}"
        )
        ref = (
            f" (reference run {f.reference_run})"
            if f.reference_run is not None and _uses_reference(f.check, f.explanation)
            else ""
        )
        follows = (f.details or {}).get("follows_from") if isinstance(f.details, dict) else None
        do = (
            f"follows from: {follows.get('explanation')} (see {follows.get('subsystem')})"
            if isinstance(follows, dict)
            else f.instruction or ""
        )
        cause = f"incident {f.cause}" if getattr(f, "cause", None) else ""
        for label, text in (("why", (f.explanation or "") + ref), ("do", do), ("of", cause)):
            if text.strip():
                print(
                    textwrap.fill(
                        text,
                        width=118,
                        initial_indent=f"      {label}: ",
                        subsequent_indent=" " * 11,
                    )
                )
