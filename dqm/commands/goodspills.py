"""``dqm goodspills`` — the good-spill list the analysis selects its data with.

Certified good spills per run as golden JSON (``{"run": [[first, last], …]}``), beside the
spills only judged good by the flags, with the list's version (certification revision and
content hash) to cite; ``--format csv`` gives one line per range. ``--revision N``
reproduces the list as it was after certification N. See docs/good-spills.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dqm.core.goodspill_query import parse_query
from dqm.core.specs import SUBSYSTEMS
from dqm.store import open_store
from dqm.store.signoff import good_spills


def add_parser(sub) -> None:
    p = sub.add_parser(
        "goodspills", help="certified good spills (golden JSON or CSV) for the analysis"
    )
    p.add_argument("--runs", default="", help="a run or a range: 12, 12-40, 12- (default: all)")
    p.add_argument("--since", default="", help="spills closed from this time (ISO; naive = UTC)")
    p.add_argument("--until", default="", help="spills closed before this time")
    p.add_argument(
        "--subsystems",
        default="",
        help=f"subsystems that must be good, comma-separated (default: {','.join(SUBSYSTEMS)})",
    )
    p.add_argument(
        "--revision", default="", help="the list as it was after this certification (default: now)"
    )
    p.add_argument(
        "--format",
        choices=["json", "golden", "csv"],
        default="json",
        help="json: both lists and the version; golden: only the certified "
        "{run: ranges}; csv: one line per range",
    )
    p.add_argument("--out", help="write to this file (default: standard output)")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    query = parse_query(
        runs=args.runs,
        subsystems=args.subsystems,
        since=args.since,
        until=args.until,
        revision=args.revision,
    )
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            good = good_spills(session, **query.store_kwargs())
    text = good.render(args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"good-spill list {good.version} written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    print(
        f"{good.spills['certified']} spills certified good, {good.spills['flags_only']} good by "
        f"the flags only, {good.spills['not_good']} not good (of {good.spills['total']}); "
        f"version {good.version}",
        file=sys.stderr,
    )
    return 0
