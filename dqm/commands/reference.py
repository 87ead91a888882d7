"""``dqm reference`` — certify, list, inspect and suggest reference runs.

A reference is chosen per beam configuration; setting one is an expert action done
by a named user and audited (:func:`dqm.store.actions.set_reference`): the command acts as
an expert (``--user``, default ``$DQM_USER``), shows what the run contains, and refuses a
run with BAD spills unless ``--reason`` says why. ``show`` gives the
provenance that travels with every comparison and the warnings (too old, other
beam conditions) for a given run. ``import FILE.root`` is in
:mod:`dqm.commands.reference_import`, beside the ROOT I/O.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC

from dqm.commands import reference_import
from dqm.core.roles import EXPERT, Actor
from dqm.errors import StorageError
from dqm.store import open_store
from dqm.store.actions import set_reference
from dqm.store.models import Reference
from dqm.store.queries import flag_reference_runs
from dqm.store.references import (
    DEFAULT_BEAM_CONFIG,
    active_beam_configs,
    active_reference,
    list_references,
    reference_histograms,
    reference_warnings,
    runs_judged_against,
    suggest_reference,
)
from dqm.store.runs import as_conditions, get_run, newest_beam_config
from dqm.store.signoff import run_contents


def add_parser(sub) -> None:
    p = sub.add_parser("reference", help="set, list, show or suggest reference runs")
    rsub = p.add_subparsers(dest="reference_command", metavar="ACTION", required=True)
    s = rsub.add_parser("set", help="make RUN the reference of its beam configuration (audited)")
    s.add_argument("run", type=int, metavar="RUN")
    s.add_argument("--beam-config", help="beam configuration (default: the run's)")
    s.add_argument(
        "--user", default=None, help="who certifies it (default: $DQM_USER, else the login name)"
    )
    s.add_argument("--comment", default="", help="why this run (shown with every comparison)")
    s.add_argument(
        "--reason",
        default="",
        help="why a run with BAD spills is nevertheless the reference (refused without; audited)",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="certify RUN for a beam configuration its conditions do not give (audited; every "
        "run compared with it is told so)",
    )
    s.set_defaults(func=run_set)
    lst = rsub.add_parser("list", help="every reference ever set, newest first")
    lst.set_defaults(func=run_list)
    sh = rsub.add_parser(
        "show", help="the active reference(s); with RUN: the one RUN is compared with, and warnings"
    )
    sh.add_argument("run", type=int, nargs="?", metavar="RUN")
    sh.set_defaults(func=run_show)
    sg = rsub.add_parser(
        "suggest", help="best candidates among recent runs with matching conditions"
    )
    sg.add_argument(
        "--beam-config",
        default=None,
        help="beam configuration, e.g. mu100 (default: that of the latest run with conditions)",
    )
    sg.add_argument(
        "--min-spills", type=int, default=10, help="ignore runs with fewer closed spills"
    )
    sg.set_defaults(func=run_suggest)
    reference_import.add_parser(rsub)  # 'import FILE.root' lives with the ROOT I/O


def _user(args) -> str:
    return args.user or os.environ.get("DQM_USER") or getpass.getuser()


def _when(ts) -> str:
    if ts is None:
        return "-"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _source(ref: Reference) -> str:
    return "imported" if ref.blob else "run"


def _print_warnings(session, ref, run: int, settings) -> None:
    """What a shifter should know about the reference of ``run`` (age, beam, statistics)."""
    for w in reference_warnings(session, ref, run, settings.reference_max_age_days):
        print(f"warning: {w}")


def run_set(args, settings) -> int:
    with open_store(settings) as store:
        with store.sessions.begin() as session:
            run_row = get_run(session, args.run)
            config = args.beam_config or (run_row.beam_config if run_row else None)
            previous = active_reference(session, config)
            # what the run contains, before it becomes what every later spill is compared with
            print(f"run {args.run}: {run_contents(session, args.run).describe()}")
            ref = set_reference(
                session,
                args.run,
                Actor(_user(args), EXPERT),  # the command line acts as an expert, named
                beam_config=args.beam_config,
                comment=args.comment,
                force=args.force,
                bad_spills_reason=args.reason,
            )
            print(
                f"reference for beam '{ref.beam_config}' is now run {ref.run} (set by "
                f"{ref.set_by}, {_when(ref.set_at)})"
            )
            cond = as_conditions(ref.conditions)
            print(f"  taken under: {cond.describe() if cond else 'conditions not recorded'}")
            before = as_conditions(previous.conditions) if previous else None
            if cond and before and (diffs := before.differences(cond)):
                print(
                    f"warning: the previous reference of '{ref.beam_config}' (run {previous.run}) "
                    f"was taken under other conditions ({'; '.join(diffs)}): runs under those are "
                    "now flagged 'reference taken under other conditions'"
                )
            _print_warnings(session, ref, args.run, settings)
    return 0


def run_list(args, settings) -> int:
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            refs = list_references(session)
            if not refs:
                print(
                    "no reference set yet: 'dqm reference suggest' proposes candidates, 'dqm "
                    "reference set RUN' certifies one"
                )
                return 0
            print(
                f"{'id':>4} {'beam':<10} {'run':>6} {'active':<6} {'source':<8} {'set at':<20} "
                f"{'set by':<14} comment"
            )
            for r in refs:
                print(
                    f"{r.id:>4} {r.beam_config:<10} {r.run:>6} {'yes' if r.active else 'no':<6} "
                    f"{_source(r):<8} {_when(r.set_at):<20} {r.set_by:<14} {r.comment}"
                )
    return 0


def _describe(session, ref: Reference) -> list[str]:
    hists = reference_histograms(session, ref)
    entries = sum(float(h.values(flow=True).sum()) for h in hists.values())
    cond = as_conditions(ref.conditions)
    lines = [
        f"reference for beam '{ref.beam_config}': run {ref.run} ({_source(ref)}), set "
        f"{_when(ref.set_at)} by {ref.set_by}" + (f" — {ref.comment}" if ref.comment else ""),
        f"  taken under: {cond.describe() if cond else 'conditions not recorded'}",
        f"  {len(hists)} histograms, {entries:,.0f} entries in total",
    ]
    used = runs_judged_against(session, ref.run)
    lines.append(f"  compared with in the flags of {used} run(s)")
    return lines


def run_show(args, settings) -> int:
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            if args.run is None:
                configs = active_beam_configs(session)
                if not configs:
                    print("no active reference")
                    return 0
                for config in sorted(configs):
                    print("\n".join(_describe(session, active_reference(session, config))))
                return 0
            run_row = get_run(session, args.run)
            if run_row is None:
                raise StorageError(f"run {args.run} is not in the database")
            ref = active_reference(session, run_row.beam_config)
            cond = as_conditions(run_row.conditions)
            what = cond.describe() if cond else "no run conditions received"
            print(f"run {args.run} (beam '{run_row.beam_config or 'unknown'}': {what})")
            if ref is not None:
                print("\n".join(_describe(session, ref)))
            recorded = flag_reference_runs(session, args.run)
            if recorded:
                print(
                    "  its stored flags were computed against reference run(s) "
                    f"{', '.join(map(str, recorded))}"
                )
            _print_warnings(session, ref, args.run, settings)
    return 0


def run_suggest(args, settings) -> int:
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            if args.beam_config is None:
                args.beam_config = newest_beam_config(session) or DEFAULT_BEAM_CONFIG
            cands = suggest_reference(session, args.beam_config, min_spills=args.min_spills)
            if not cands:
                print(
                    f"no run with beam '{args.beam_config}' and at least {args.min_spills} closed "
                    "spills"
                )
                return 0
            print(f"candidates for beam '{args.beam_config}' (best first):")
            print(
                f"{'run':>6} {'spills':>7} {'clean':>7} {'events':>12}   (clean: spills without "
                "WARNING or BAD)"
            )
            for c in cands:
                print(f"{c.run:>6} {c.spills:>7} {100 * c.good_fraction:>6.1f}% {c.n_events:>12,d}")
            print(f"certify with: dqm reference set {cands[0].run} --comment '...'")
    return 0
