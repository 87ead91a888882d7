"""``dqm status`` — the state of streams, consumers, last spills and lag, in the terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import redis

from dqm.core.numbering import ranges_text, settled_gaps
from dqm.core.status import SPILL_COMPLETE
from dqm.errors import StorageError
from dqm.pipeline.runtime import effective_redis_url
from dqm.pipeline.stream import connect, group_lag
from dqm.redact import redact
from dqm.store import open_store
from dqm.store.queries import (
    newest_runs,
    newest_spills,
    recent_closed_spills,
    spill_opening_times,
    status_counts,
)


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="streams, consumers, pending, dead letters, last spills")
    p.add_argument("--spills", type=int, default=8, help="how many recent spills to list")
    p.set_defaults(func=run)


def _age(ts) -> str:
    if ts is None:
        return "-"
    return f"{(datetime.now(UTC) - ts).total_seconds():.0f} s ago"


def stream_report(r: redis.Redis, settings) -> list[str]:
    lines = []
    try:
        length = r.xlen(settings.stream)
        groups = (
            {g["name"].decode(): g for g in r.xinfo_groups(settings.stream)}
            if length or r.exists(settings.stream)
            else {}
        )
    except redis.ConnectionError as exc:
        return [redact(f"redis {settings.redis_url}: unreachable ({exc})")]
    lines.append(f"stream {settings.stream}: {length} messages")
    g = groups.get(settings.group)
    if g is None:
        lines.append(f"  group {settings.group}: not created yet (no worker has started)")
    else:
        lag = group_lag(r, settings.stream, g)
        lines.append(
            f"  group {settings.group}: {g['pending']} pending, lag "
            f"{lag if lag is not None else '?'} messages"
        )
        for c in r.xinfo_consumers(settings.stream, settings.group):
            lines.append(
                f"    consumer {c['name'].decode():<24} pending {c['pending']:>5}  idle "
                f"{c['idle'] / 1000:.1f} s"
            )
    lines.append(
        f"dead letters ({settings.dead_letter_stream}): {r.xlen(settings.dead_letter_stream)}"
    )
    return lines


def _run_lines(session, settle_s: float, n_runs: int = 3) -> list[str]:
    """The newest runs: their spill numbers, and the ones that never reached the DQM
    (gaps whose next spill opened more than ``settle_s`` ago: see :func:`settled_gaps`)."""
    lines = []
    now = datetime.now(UTC)
    for run in sorted(newest_runs(session, n_runs)):
        opened = spill_opening_times(session, run)
        gap = settled_gaps(opened, now, settle_s)
        lost = f"; NOT RECEIVED: {ranges_text(gap)} ({len(gap)})" if gap else ""
        lines.append(f"run {run}: spills {ranges_text(opened)}{lost}")
    return lines


def run(args, settings) -> int:
    url = effective_redis_url(settings)
    if url:
        settings = settings.with_(redis_url=url)
        print("\n".join(stream_report(connect(url), settings)))
    else:
        print("redis: DQM_REDIS_URL not set and no demo running in DQM_DATA_DIR")
    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url.split("///", 1)[1]).exists():
        # a status query must not leave an empty database behind where nothing has run yet
        raise StorageError(
            f"no database yet at {url}: nothing has stored a spill here "
            "(start 'dqm demo' or a worker, or point DQM_DATABASE_URL at the DQM database)"
        )
    with open_store(settings, writer=False) as store, store.sessions() as session:
        counts, estimated = status_counts(session)
        shown = ", ".join(
            f"{'≈ ' if estimated and s == SPILL_COMPLETE else ''}{n} {s}"
            for s, n in sorted(counts.items())
        )
        print(f"spills: {shown or 'none yet'}{' (≈: estimated)' if estimated else ''}")
        for line in _run_lines(session, settings.spill_timeout_s):
            print(line)
        for last in recent_closed_spills(session, 1):
            print(
                f"last closed: run {last.run} spill {last.spill} ({last.status}, {last.n_events} "
                f"events) {_age(last.closed_at)}"
            )
        rows = newest_spills(session, args.spills)
        if rows:
            print(
                f"{'run':>5} {'spill':>5} {'status':<10} {'events':>7} {'batches':>8} {'p_BMS':>7} "
                f"{'p_MS2':>7} {'pi/K':>9} {'closed':>10}"
            )
        for sp in rows:
            fmt = lambda v, f: format(v, f) if v is not None else "-"  # noqa: E731
            summary = sp.summary or {}
            batches = (
                f"{sp.received_batches}/"
                f"{sp.expected_batches if sp.expected_batches is not None else '?'}"
            )
            print(
                f"{sp.run:>5} {sp.spill:>5} {sp.status:<10} {sp.n_events:>7} {batches:>8} "
                f"{fmt(summary.get('p_bms_mean'), '7.2f')} "
                f"{fmt(summary.get('p_ms2_mean'), '7.2f')} "
                f"{fmt(summary.get('pik_fraction'), '9.2e')} "
                f"{_age(sp.closed_at):>10}"
            )
    return 0
