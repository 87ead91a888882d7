"""When the nightly report runs and which days it still owes: pure functions, plus the loop.

The nightly job (``dqm report --schedule 06:00 --dir DIR``) writes, once a day at
that local time, the report of the previous local day to
``DIR/dqm-report-YYYY-MM-DD.pdf``. Deciding *when* and *what* is kept pure — a clock
reading and the files already there in, datetimes and dates out — so it is tested
across midnight and daylight-saving changes without waiting for either:

* :func:`next_run` — the next scheduled instant strictly after ``now``;
* :func:`due_days` — the days whose report should exist by ``now`` and does not
  (a job that was down at 06:00 catches up when it starts; a complete report is
  never rewritten, so a restart loop cannot churn the folder, while one written
  during its own day — ``dqm report`` for today — is replaced by the whole day's);

:func:`run_schedule` is the thin loop around them; its clock, sleep and the report
writer are parameters so a test can drive it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from dqm.errors import ConfigError

__all__ = ["parse_hhmm", "next_run", "due_days", "report_filename", "existing_days", "run_schedule"]

log = logging.getLogger("dqm.report")

_NAME = re.compile(r"^dqm-report-(\d{4}-\d{2}-\d{2})\.pdf$")


def parse_hhmm(text: str) -> time:
    """``"06:00"`` -> ``time(6, 0)``; anything else is a clear configuration error."""
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError("--schedule", text, "a local time of day HH:MM, e.g. 06:00")
    return time(int(m.group(1)), int(m.group(2)))


def _local(day: date, at: time, tz: tzinfo | None) -> datetime:
    """``day`` at ``at`` as an aware datetime in ``tz`` (None: the machine's local zone)."""
    if tz is None:
        return datetime.combine(day, at).astimezone()
    return datetime.combine(day, at, tzinfo=tz)


def next_run(now: datetime, at: time, tz: tzinfo | None = None) -> datetime:
    """The first instant after ``now`` when the local clock in ``tz`` reads ``at``.

    On a day whose ``at`` does not exist (spring forward through it) the instant is
    the one the zone maps it to; on a day it exists twice (fall back) the first.
    """
    today = now.astimezone(tz).date() if tz is not None else now.astimezone().date()
    for offset in range(0, 3):
        candidate = _local(today + timedelta(days=offset), at, tz)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a scheduled time exists every day")  # pragma: no cover


def due_days(
    now: datetime,
    at: time,
    have: Iterable[date],
    *,
    catch_up_days: int = 1,
    tz: tzinfo | None = None,
) -> list[date]:
    """Days (oldest first) whose report is due by ``now`` and not in ``have``.

    The report of day D is due from ``at`` on day D+1. ``catch_up_days`` bounds how far
    back a job that was down looks (1: only the latest due day).
    """
    local_now = now.astimezone(tz) if tz is not None else now.astimezone()
    latest = local_now.date() - timedelta(days=1)
    if now < _local(local_now.date(), at, tz):
        latest -= timedelta(days=1)
    have = set(have)
    days = [latest - timedelta(days=k) for k in range(max(catch_up_days, 0))]
    return sorted(d for d in days if d not in have)


def report_filename(day: date) -> str:
    return f"dqm-report-{day.isoformat()}.pdf"


def existing_days(folder: Path, tz: tzinfo | None = None) -> set[date]:
    """Days that already have a *complete* report in ``folder``.

    Complete means written after the day ended: ``dqm report`` for today writes the
    same file name during the day, and that partial report must not stop the nightly
    job from writing the whole day. Half-written ``.part`` files and empty files do
    not count either.
    """
    out = set()
    if folder.is_dir():
        for p in folder.iterdir():
            m = _NAME.match(p.name)
            if not m:
                continue
            day = date.fromisoformat(m.group(1))
            stat = p.stat()
            written = datetime.fromtimestamp(stat.st_mtime).astimezone()
            if stat.st_size > 0 and written >= _local(day + timedelta(days=1), time(0), tz):
                out.add(day)
    return out


def run_schedule(
    folder: Path,
    at: time,
    write_report: Callable[[date, Path], object],
    *,
    catch_up_days: int = 1,
    retry_s: float = 600.0,
    tz: tzinfo | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], object] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    max_step_s: float = 300.0,
) -> None:
    """Forever (until ``should_stop``): write the due reports, then sleep until the next run.

    Sleeps in steps of at most ``max_step_s`` and re-reads the clock after each, so a
    suspended host or a clock change does not make it miss a day. A report that fails
    (database down) is logged and retried after ``retry_s``.
    """
    import time as _time

    clock = clock or (lambda: datetime.now().astimezone())
    sleep = sleep or _time.sleep
    folder.mkdir(parents=True, exist_ok=True)
    log.info("nightly report at %s local time into %s", at.strftime("%H:%M"), folder)
    while not should_stop():
        failed = False
        for day in due_days(
            clock(), at, existing_days(folder, tz), catch_up_days=catch_up_days, tz=tz
        ):
            path = folder / report_filename(day)
            try:
                write_report(day, path)
                log.info("wrote %s", path)
            except Exception as exc:  # noqa: BLE001 - one bad night must not stop the next ones
                log.error(
                    "report for %s failed (%s: %s); retrying in %.0f s",
                    day,
                    type(exc).__name__,
                    exc,
                    retry_s,
                )
                failed = True
        if should_stop():
            break
        now = clock()
        wake = now + timedelta(seconds=retry_s) if failed else next_run(now, at, tz)
        wake = min(wake, next_run(now, at, tz))
        log.info("next report run at %s", wake.isoformat(timespec="minutes"))
        while not should_stop():
            left = (wake - clock()).total_seconds()
            if left <= 0:
                break
            sleep(min(left, max_step_s))
