"""``dqm prune`` — delete what nothing can need again (docs/retention.md).

Today: the exactly-once ledger's ids that the stream can no longer deliver. Small
transactions, oldest rows first: workers keep writing while it runs. The nightly report
(``dqm report --schedule``) runs the same after each report.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("dqm.prune")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prune", help="delete ledger rows the stream can no longer redeliver (docs/retention.md)"
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    p.set_defaults(func=run)


def prune_ledger_of(settings, *, dry_run: bool = False) -> tuple[int | None, int]:
    """(horizon ms or None, rows deleted or countable) for the configured stream."""
    from dqm.pipeline.retention import ledger_horizon
    from dqm.pipeline.runtime import require_redis
    from dqm.store import open_store
    from dqm.store.retention import ledger_rows_before, prune_ledger

    r = require_redis(settings)
    horizon = ledger_horizon(r, settings.stream, int(settings.ledger_margin_s * 1000))
    if horizon is None:
        return None, 0
    with open_store(settings) as store:
        if dry_run:
            with store.sessions() as session:
                return horizon, ledger_rows_before(session, settings.stream, horizon)
        return horizon, prune_ledger(store.sessions, settings.stream, horizon)


def run(args, settings) -> int:
    t0 = time.perf_counter()
    horizon, n = prune_ledger_of(settings, dry_run=args.dry_run)
    if horizon is None:
        print(f"ledger: stream {settings.stream} does not exist: nothing can be pruned safely")
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"ledger of {settings.stream}: {verb} {n} ids older than {horizon}-0 "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0
