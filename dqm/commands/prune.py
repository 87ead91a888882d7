"""``dqm prune`` — delete what nothing can need again (docs/retention.md).

The exactly-once ledger's ids that the stream can no longer deliver; then the runs' spills
summed into per-run histograms (:mod:`dqm.store.rollup`) and the per-spill histograms the
policy lets go (``DQM_SPILL_HISTOGRAMS_KEEP_DAYS``). Small transactions, oldest rows first:
workers keep writing while it runs. The report service (``dqm report --schedule``) runs the
ledger part after each report and the histogram part in the background, every
``DQM_RETENTION_INTERVAL_S``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

log = logging.getLogger("dqm.prune")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prune",
        help="delete ledger rows and old spills' histograms nothing needs (docs/retention.md)",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    p.add_argument(
        "--no-ledger", action="store_true", help="leave the ledger alone (no Redis needed)"
    )
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


@dataclass
class HistogramRetention:
    """What one pass of :func:`histogram_retention` did."""

    runs_rolled_up: int = 0
    spills_rolled_up: int = 0
    deleted: int = 0  # per-spill histogram rows deleted (or, dry run, deletable)
    kept_forever: bool = False  # DQM_SPILL_HISTOGRAMS_KEEP_DAYS = 0
    stale_runs: list[int] = field(default_factory=list)
    skipped_runs: list[int] = field(default_factory=list)  # binning changed during the run

    def line(self) -> str:
        kept = (
            "per-spill histograms kept forever (DQM_SPILL_HISTOGRAMS_KEEP_DAYS=0)"
            if self.kept_forever
            else f"{self.deleted} spills' own histograms deleted"
        )
        extra = f"; {len(self.stale_runs)} runs' sums stale, left alone" if self.stale_runs else ""
        return (
            f"histograms: {self.spills_rolled_up} spills of {self.runs_rolled_up} runs summed "
            f"into run histograms; {kept}{extra}"
        )


def histogram_retention(
    settings,
    sessions,
    *,
    dry_run: bool = False,
    batch_runs: int = 20,
    should_stop: Callable[[], bool] = lambda: False,
) -> HistogramRetention:
    """Roll up settled runs, then delete the per-spill histograms the policy allows.

    One run per transaction, looked up ``batch_runs`` at a time, until nothing is left or
    ``should_stop`` (checked between runs: the report service stops within one run's work).
    """
    from dqm.store.models import utcnow
    from dqm.store.retention import prunable_spill_histograms, prune_spill_histograms
    from dqm.store.rollup import roll_up_runs

    out = HistogramRetention()
    stuck: set[int] = set()  # runs that could not be summed (binning changed, stale sum)
    while not dry_run and not should_stop():
        done = roll_up_runs(
            sessions,
            settle_s=settings.rollup_settle_s,
            limit=batch_runs,
            should_stop=should_stop,
            skip=stuck,
        )
        out.runs_rolled_up += sum(1 for d in done if d.added)
        out.spills_rolled_up += sum(d.added for d in done)
        out.skipped_runs += [d.run for d in done if d.skipped]
        stuck.update(d.run for d in done if not d.added)
        if len(done) < batch_runs:
            break
    keep_days = settings.spill_histograms_keep_days
    if keep_days <= 0:
        out.kept_forever = True
        return out
    older_than = utcnow() - timedelta(days=keep_days)
    if dry_run:
        with sessions() as session:
            out.deleted = prunable_spill_histograms(session, older_than)
        return out
    pruned = prune_spill_histograms(
        sessions, older_than, runs_per_pass=batch_runs, should_stop=should_stop
    )
    out.deleted, out.stale_runs = pruned.deleted, list(pruned.stale_runs or [])
    return out


def run(args, settings) -> int:
    from dqm.store import open_store

    t0 = time.perf_counter()
    if not args.no_ledger:
        horizon, n = prune_ledger_of(settings, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        if horizon is None:
            print(f"ledger: stream {settings.stream} does not exist: nothing can be pruned safely")
        else:
            print(
                f"ledger of {settings.stream}: {verb} {n} ids older than {horizon}-0 "
                f"({time.perf_counter() - t0:.1f} s)"
            )
    t1 = time.perf_counter()
    with open_store(settings) as store:
        done = histogram_retention(settings, store.sessions, dry_run=args.dry_run)
    line = done.line().replace("deleted", "would be deleted") if args.dry_run else done.line()
    print(f"{line} ({time.perf_counter() - t1:.1f} s)")
    return 0
