"""``dqm validate`` — the validation scenario matrix on simulated spills.

Runs :func:`dqm.sim.validate.run_matrix` (no Redis, no database) with the specs in use and
prints the matrix as Markdown: the issue's targets with PASS/FAIL, then one table per
measure. ``--markdown FILE`` writes the same text between the generated-block markers of a
documentation page (``docs/validation.md``), ``--json FILE`` every figure for machines.
Exit status 1 when a target is not met (rows not yet run are never counted as passed, nor
as failed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from dqm.pipeline.runtime import load_default_specs
from dqm.sim.matrix import MATRIX
from dqm.sim.scenarios import select
from dqm.sim.validate import QUICK, Status, StudyConfig, missing_features, run_matrix
from dqm.sim.validate_report import format_markdown, replace_block
from dqm.sim.validate_targets import targets, to_json


def add_parser(sub) -> None:
    d = StudyConfig()
    p = sub.add_parser(
        "validate",
        help="validation scenario matrix on simulated spills: false alarms, detection delays, "
        "incidents, glitches, persistence, ramps",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"the test suite's subset and sizes ({QUICK.clean_spills} clean spills, "
        f"{QUICK.seeds} seeds, rows capped at {QUICK.max_spills} spills)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="LABEL",
        help="run only rows whose label contains LABEL (case-insensitive; repeatable)",
    )
    p.add_argument("--seeds", type=int, help=f"trials per delay distribution (default {d.seeds})")
    p.add_argument(
        "--spills",
        type=int,
        help=f"spills of the clean false-alarm sample (default {d.clean_spills})",
    )
    p.add_argument("--events-per-spill", type=int, help=f"default {d.events_per_spill}")
    p.add_argument(
        "--reference-spills",
        type=int,
        help=f"clean spills summed into each reference (default {d.reference_spills})",
    )
    p.add_argument("--seed", type=int, help=f"master seed (default {d.seed})")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    p.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="write the tables into FILE between its generated-block markers "
        "(e.g. docs/validation.md)",
    )
    p.add_argument("--list", action="store_true", help="list the rows (and what each still needs)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--learned",
        action="store_true",
        help="the learned detector beside the rules, one table instead of the matrix: false "
        "alarms on clean spills and detection of each one-spill detection row of the matrix "
        "(and the kinds only the model sees), training and scoring cost (docs/learned.md)",
    )
    p.set_defaults(func=run)


def _config(args) -> StudyConfig:
    base = QUICK if args.quick else StudyConfig()
    changes = {
        "seeds": args.seeds,
        "clean_spills": args.spills,
        "events_per_spill": args.events_per_spill,
        "reference_spills": args.reference_spills,
        "seed": args.seed,
    }
    config = dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    if config.clean_spills <= config.history_spills:
        raise SystemExit(
            f"dqm validate: --spills must exceed the {config.history_spills}-spill history "
            "that every change starts from"
        )
    return config


def command_line(args) -> str:
    """The command as a reader would retype it (from the parsed options, not from argv)."""
    words = ["dqm", "validate"]
    if args.quick:
        words.append("--quick")
    for label in args.only or ():
        words += ["--only", label]
    for option in ("seeds", "spills", "events_per_spill", "reference_spills", "seed"):
        value = getattr(args, option)
        if value is not None:
            words += ["--" + option.replace("_", "-"), str(value)]
    for option in ("json", "markdown"):
        if getattr(args, option) is not None:
            words += ["--" + option, str(getattr(args, option))]
    return shlex.join(words)


def run_learned(args, settings) -> int:
    """``dqm validate --learned``: :func:`dqm.sim.learned_study.learned_study` over the
    matrix's one-spill detection rows (:func:`~dqm.sim.learned_study.matrix_scenarios`), as
    one Markdown table; ``--markdown FILE`` writes it between FILE's generated-block markers."""
    from datetime import UTC, datetime

    from dqm.sim.learned_study import learned_markdown, learned_study, matrix_scenarios

    progress = (
        None if args.quiet else (lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    )
    scenarios = [
        (label, anomaly)
        for label, anomaly in matrix_scenarios(args.quick)
        if not args.only or any(o.lower() in label.lower() for o in args.only)
    ]
    study = learned_study(
        load_default_specs(settings),
        events_per_spill=args.events_per_spill or StudyConfig().events_per_spill,
        train_spills=45 if args.quick else 90,
        clean_spills=args.spills or (20 if args.quick else 200),
        anomaly_spills=4 if args.quick else 10,
        kinds=scenarios,
        say=progress,
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = (
        f"Made with `{command_line(args)} --learned` at {when}, load average {load}.\n\n"
        f"{learned_markdown(study)}\n\nCost: {study.cost()}."
    )
    print(text)
    if args.markdown:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_block(old, text), encoding="utf-8")
    return 0


def run(args, settings) -> int:
    if args.learned:
        return run_learned(args, settings)
    rows = select(MATRIX, args.only, args.quick)
    if args.list:
        for row in rows:
            missing = missing_features(row)
            print(f"{row.measure:8} {row.label}" + (f"  [{'; '.join(missing)}]" if missing else ""))
        return 0
    if not rows:
        print(f"dqm validate: no row matches {args.only}", file=sys.stderr)
        return 2
    config = _config(args)
    specs = load_default_specs(settings)
    progress = (
        None if args.quiet else (lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    )
    result = run_matrix(specs, config, rows, progress)
    command = command_line(args)
    text = format_markdown(result, command)
    print(text)
    if args.markdown:
        old = args.markdown.read_text(encoding="utf-8") if args.markdown.exists() else ""
        args.markdown.write_text(replace_block(old, text), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(to_json(result, command), indent=1, allow_nan=False))
    unmet = [t for t in targets(result) if "FAIL" in t.status]
    errors = [r for r in result.rows if r.status == Status.ERROR]
    return 1 if unmet or errors else 0
