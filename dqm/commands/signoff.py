"""``dqm signoff`` — a run's sign-off: the DQM's proposal, the certifications, a new one.

``dqm signoff RUN`` prints the ranges the DQM proposes per subsystem (from the flags and
incidents), the certifications in force and their history. ``--certify FIRST-LAST``
records one (``--verdict good|bad``, ``--comment``, ``--subsystems``) as the stated user, a
shifter unless ``--expert`` (an expert may correct another person's certification).
"""

from __future__ import annotations

import getpass
import os

from dqm.core.roles import EXPERT, SHIFTER, Actor
from dqm.core.signoff import VERDICTS
from dqm.core.specs import SUBSYSTEMS
from dqm.errors import ConfigError
from dqm.store import open_store
from dqm.store.certification import certify
from dqm.store.signoff import certification_history, propose_signoff, run_summaries


def add_parser(sub) -> None:
    p = sub.add_parser("signoff", help="a run's sign-off: proposal, certifications, certify")
    p.add_argument("run", type=int, metavar="RUN")
    p.add_argument("--certify", metavar="FIRST-LAST", help="certify this spill range")
    p.add_argument("--verdict", choices=VERDICTS, default="good", help="good or bad for physics")
    p.add_argument(
        "--subsystems",
        default=",".join(SUBSYSTEMS),
        help="comma-separated (default: every subsystem)",
    )
    p.add_argument("--comment", default="", help="what was looked at, or why bad (required)")
    p.add_argument(
        "--user", default=None, help="who signs (default: $DQM_USER, else the login name)"
    )
    p.add_argument(
        "--expert", action="store_true", help="sign as an expert (may correct others' sign-off)"
    )
    p.set_defaults(func=run)


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise ConfigError("--certify", text, "a spill range such as 1-180") from None


def run(args, settings) -> int:
    with open_store(settings) as store:
        if args.certify:
            first, last = _range(args.certify)
            name = args.user or os.environ.get("DQM_USER") or getpass.getuser()
            actor = Actor(name, EXPERT if args.expert else SHIFTER)
            subsystems = [s.strip() for s in args.subsystems.split(",") if s.strip()]
            with store.sessions.begin() as session:
                rows = certify(
                    session, args.run, subsystems, first, last, args.verdict, actor, args.comment
                )
                print(
                    f"run {args.run} spills {first}–{last} certified {args.verdict} for "
                    f"{', '.join(r.subsystem for r in rows)} by {name} ({actor.role}), "
                    f"certification(s) {', '.join(str(r.id) for r in rows)}"
                )
        with store.sessions() as session:
            _print_state(session, args.run)
    return 0


def _print_state(session, run: int) -> None:
    summary = run_summaries(session, [run])[0]
    print(f"run {run}: {summary.spills} closed spills, {summary.status}")
    print("proposal (from the flags and incidents):")
    for p in propose_signoff(session, run):
        print(f"  {p.subsystem:<12} {p.first_spill:>5}–{p.last_spill:<5} {p.verdict:<7} {p.reason}")
    history = certification_history(session, run)
    print("certifications (oldest first; the newest covering a spill is in force):")
    for c in history:
        print(
            f"  #{c.id:<4} {c.subsystem:<12} {c.first_spill:>5}–{c.last_spill:<5} {c.verdict:<5} "
            f"{c.certified_by} ({c.role}) {c.certified_at:%Y-%m-%d %H:%M} UTC — {c.comment}"
        )
    if not history:
        print("  none yet")
