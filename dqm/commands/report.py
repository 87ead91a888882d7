"""``dqm report`` — the data-quality report of a day, a run or a time window, as a PDF.

``dqm report`` alone reports today (local time) into ``<DQM_DATA_DIR>/reports``;
``--schedule HH:MM`` runs forever and writes yesterday's report every day at that
local time (the deployment's nightly job).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import date, datetime
from pathlib import Path

from dqm.errors import ConfigError
from dqm.pipeline.runtime import load_default_specs, open_store
from dqm.report.data import Period, gather, parse_utc
from dqm.report.progress import NullProgress, Progress
from dqm.report.schedule import parse_hhmm, report_filename, run_schedule


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write the PDF data-quality report of a day, run or time window (or run nightly)",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--date", help="a local calendar day YYYY-MM-DD (default: today)")
    what.add_argument("--run", type=int, help="one run, whatever its dates")
    what.add_argument("--since", help="start of a time window (ISO date or date-time; naive = UTC)")
    what.add_argument(
        "--schedule",
        metavar="HH:MM",
        help="run forever: every day at this local time, report the previous day",
    )
    p.add_argument("--until", help="end of the --since window (default: now)")
    p.add_argument("--out", help="PDF file to write (default: <dir>/dqm-report-<day|run N>.pdf)")
    p.add_argument("--dir", help="folder for reports (default: <DQM_DATA_DIR>/reports)")
    p.add_argument(
        "--mot-per-event",
        type=float,
        default=1.0,
        help="muons on target per sampled event, for the cover's MOT figure (default 1)",
    )
    p.add_argument(
        "--catch-up-days",
        type=int,
        default=3,
        help="with --schedule: missing reports of up to this many past days are written on start "
        "(default 3)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _period(args) -> tuple[Period, str]:
    """The period and its default file name."""
    if args.until and not args.since:
        raise ConfigError("--until", args.until, "to be used with --since")
    if args.run is not None:
        return Period.for_run(args.run), f"dqm-report-run-{args.run}.pdf"
    if args.since:
        since = parse_utc(args.since, "--since")
        until = parse_utc(args.until, "--until") if args.until else datetime.now().astimezone()
        return Period.between(
            since, until
        ), f"dqm-report-{since:%Y%m%dT%H%M}-{until:%Y%m%dT%H%M}.pdf"
    try:
        day = date.fromisoformat(args.date) if args.date else datetime.now().astimezone().date()
    except ValueError:
        raise ConfigError("--date", args.date, "a calendar day YYYY-MM-DD") from None
    return Period.day(day, tz=None), report_filename(day)


def write_report(
    settings, period: Period, out: Path, *, mot_per_event: float = 1.0, progress=NullProgress
) -> tuple[int, object]:
    """Gather ``period`` from the store and render it to ``out``; returns (pages, data)."""
    from dqm.report.render import (
        render_report,
    )  # matplotlib: imported only by the command that draws

    specs = load_default_specs(settings)
    with open_store(settings, writer=False) as store:
        with store.sessions() as session:
            data = gather(session, specs, period, mot_per_event=mot_per_event, progress=progress)
    return render_report(data, out, progress=progress), data


def _prune(settings) -> None:
    """The retention of docs/retention.md after each nightly report; a failure is logged."""
    from dqm.commands.prune import prune_ledger_of

    try:
        horizon, n = prune_ledger_of(settings)
        logging.getLogger("dqm.report").info("ledger pruned: %d ids before %s", n, horizon)
    except ConfigError as exc:  # no Redis configured: no stream, nothing to prune against
        logging.getLogger("dqm.report").info("ledger not pruned: %s", exc)
    except Exception:  # noqa: BLE001 - retention must never stop the nightly report
        logging.getLogger("dqm.report").exception("ledger pruning failed")


def _retention_loop(settings, stop: threading.Event) -> None:
    """The histogram retention (docs/retention.md) every ``DQM_RETENTION_INTERVAL_S``, in
    the report service's own thread: one run per transaction, so it never holds up a worker,
    and it stops within one run's work when the service stops. A failure is logged and
    retried at the next interval: retention must never stop the nightly report."""
    from dqm.commands.prune import histogram_retention
    from dqm.store import open_store

    logger = logging.getLogger("dqm.report")
    while not stop.is_set():
        try:
            with open_store(settings) as store:
                done = histogram_retention(settings, store.sessions, should_stop=stop.is_set)
            if done.spills_rolled_up or done.deleted or done.stale_runs:
                logger.info("retention: %s", done.line())
        except Exception:  # noqa: BLE001 - retried at the next interval
            logger.exception(
                "histogram retention failed; retrying in %.0f s", settings.retention_interval_s
            )
        stop.wait(settings.retention_interval_s)


def run(args, settings) -> int:
    folder = Path(args.dir) if args.dir else Path(settings.data_dir) / "reports"
    progress = NullProgress if args.quiet else Progress
    if args.schedule:
        if args.out or args.until:
            raise ConfigError(
                "--schedule",
                args.schedule,
                "no --out/--until: the nightly job names its files by day",
            )
        at = parse_hhmm(args.schedule)
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def nightly(day: date, path: Path) -> None:
            write_report(settings, Period.day(day, tz=None), path, mot_per_event=args.mot_per_event)
            _prune(settings)

        background = None
        if settings.retention_interval_s > 0:
            background = threading.Thread(
                target=_retention_loop, args=(settings, stop), name="retention", daemon=True
            )
            background.start()
        try:
            run_schedule(
                folder,
                at,
                nightly,
                catch_up_days=args.catch_up_days,
                should_stop=stop.is_set,
                sleep=lambda s: stop.wait(s),
            )
        finally:
            stop.set()
            if background is not None:
                background.join(timeout=60)
        return 0
    period, name = _period(args)
    out = Path(args.out) if args.out else folder / name
    pages, data = write_report(
        settings, period, out, mot_per_event=args.mot_per_event, progress=progress
    )
    good = "–" if data.good_fraction is None else f"{100 * data.good_fraction:.1f} % good"
    print(
        f"{out}: {pages} pages; {period.label}: {len(data.spills)} spills in {len(data.runs)} "
        f"runs, {good}, "
        f"{len(data.problem_spills)} flagged",
        file=sys.stdout,
    )
    return 0
