"""The nightly schedule: when it runs, which days it still owes, and the loop around them."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from dqm.errors import ConfigError
from dqm.report.data import Period
from dqm.report.schedule import (
    due_days,
    existing_days,
    next_run,
    parse_hhmm,
    report_filename,
    run_schedule,
)

ZURICH = ZoneInfo("Europe/Zurich")
SIX = time(6, 0)


def test_parse_hhmm_accepts_times_and_names_what_it_expected():
    assert parse_hhmm("06:00") == SIX and parse_hhmm("6:30") == time(6, 30)
    for bad in ("24:00", "6h", "06:60", ""):
        with pytest.raises(ConfigError, match="HH:MM"):
            parse_hhmm(bad)


def test_next_run_is_today_before_the_time_and_tomorrow_after_it():
    # Given 05:59 and 06:00 local time in Zurich
    before = datetime(2025, 6, 1, 5, 59, tzinfo=ZURICH)
    at_six = datetime(2025, 6, 1, 6, 0, tzinfo=ZURICH)
    # Then the next run is 06:00 the same day, and exactly at 06:00 it is the next day's
    assert next_run(before, SIX, ZURICH) == datetime(2025, 6, 1, 6, 0, tzinfo=ZURICH)
    assert next_run(at_six, SIX, ZURICH) == datetime(2025, 6, 2, 6, 0, tzinfo=ZURICH)
    # and a UTC clock reading is converted to local time first (04:30 UTC = 06:30 CEST)
    assert next_run(datetime(2025, 6, 1, 4, 30, tzinfo=UTC), SIX, ZURICH) == datetime(
        2025, 6, 2, 6, 0, tzinfo=ZURICH
    )


def test_next_run_keeps_local_time_across_daylight_saving_changes():
    # Given the evening before the spring and autumn changes in Zurich
    spring = next_run(datetime(2025, 3, 29, 22, 0, tzinfo=ZURICH), SIX, ZURICH)
    autumn = next_run(datetime(2025, 10, 25, 22, 0, tzinfo=ZURICH), SIX, ZURICH)
    # Then the run is still at 06:00 on the local clock, i.e. 04:00 UTC in summer and 05:00 UTC in
    # winter
    assert spring.astimezone(UTC) == datetime(2025, 3, 30, 4, 0, tzinfo=UTC)
    assert autumn.astimezone(UTC) == datetime(2025, 10, 26, 5, 0, tzinfo=UTC)


def test_due_days_owes_yesterday_from_the_scheduled_time_on():
    # Given June 2nd in Zurich
    early = datetime(2025, 6, 2, 5, 0, tzinfo=ZURICH)
    late = datetime(2025, 6, 2, 7, 0, tzinfo=ZURICH)
    # Then before 06:00 only the day before yesterday is due, after 06:00 yesterday is
    assert due_days(early, SIX, [], tz=ZURICH) == [date(2025, 5, 31)]
    assert due_days(late, SIX, [], tz=ZURICH) == [date(2025, 6, 1)]
    # and a day whose file exists is skipped (never rewritten); catch-up reaches back, oldest first
    assert due_days(late, SIX, [date(2025, 6, 1)], tz=ZURICH) == []
    assert due_days(late, SIX, [date(2025, 5, 31)], catch_up_days=3, tz=ZURICH) == [
        date(2025, 5, 30),
        date(2025, 6, 1),
    ]


def test_existing_days_counts_only_complete_reports(tmp_path):
    # Given a complete report, a half-written one, an empty one, another file, and a report of
    # June 4th written at noon that day (``dqm report`` for today)
    (tmp_path / report_filename(date(2025, 6, 1))).write_bytes(b"%PDF-1.4")
    (tmp_path / ".dqm-report-2025-06-02.pdf.abc.part").write_bytes(b"%PDF")
    (tmp_path / report_filename(date(2025, 6, 3))).write_bytes(b"")  # a crashed write
    (tmp_path / "notes.txt").write_text("x")
    partial = tmp_path / report_filename(date(2025, 6, 4))
    partial.write_bytes(b"%PDF-1.4")
    noon = datetime(2025, 6, 4, 12, 0, tzinfo=ZURICH).timestamp()
    os.utime(partial, (noon, noon))
    # Then only the complete one counts: the nightly job will write June 4th in full
    assert existing_days(tmp_path, ZURICH) == {date(2025, 6, 1)}
    assert due_days(
        datetime(2025, 6, 5, 6, 0, tzinfo=ZURICH), SIX, existing_days(tmp_path, ZURICH), tz=ZURICH
    ) == [date(2025, 6, 4)]


def test_local_day_period_is_23_hours_on_the_spring_change():
    period = Period.day(date(2025, 3, 30), tz=ZURICH)
    assert period.end - period.start == timedelta(hours=23)
    assert period.start == datetime(2025, 3, 29, 23, 0, tzinfo=UTC)


class _Clock:
    """A fake wall clock that ``sleep`` advances."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_run_schedule_catches_up_then_writes_one_report_per_night(tmp_path):
    # Given a job started on June 3rd at 12:00 with no reports yet, catching up 2 days
    clock = _Clock(datetime(2025, 6, 3, 12, 0, tzinfo=ZURICH))
    written: list[tuple[date, datetime]] = []

    def write(day: date, path) -> None:
        written.append((day, clock.now))
        path.write_bytes(b"%PDF-1.4 test")

    # When it runs until three reports exist after the start
    run_schedule(
        tmp_path,
        SIX,
        write,
        catch_up_days=2,
        tz=ZURICH,
        clock=clock,
        sleep=clock.sleep,
        should_stop=lambda: len(written) >= 3,
    )
    # Then it wrote June 1st and 2nd at once, then June 3rd at 06:00 on June 4th, each file once
    assert [d for d, _ in written] == [date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)]
    assert written[0][1] == written[1][1] == datetime(2025, 6, 3, 12, 0, tzinfo=ZURICH)
    assert written[2][1] == datetime(2025, 6, 4, 6, 0, tzinfo=ZURICH)
    assert existing_days(tmp_path) == {date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)}
    assert max(clock.slept) <= 300.0  # it re-reads the clock at least every 5 minutes


def test_run_schedule_retries_a_failed_night_and_keeps_going(tmp_path):
    # Given a database that is down for the first attempt
    clock = _Clock(datetime(2025, 6, 2, 6, 0, tzinfo=ZURICH))
    attempts: list[datetime] = []

    def write(day: date, path) -> None:
        attempts.append(clock.now)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")
        path.write_bytes(b"%PDF-1.4 test")

    # When the schedule runs until the report exists
    run_schedule(
        tmp_path,
        SIX,
        write,
        retry_s=600,
        tz=ZURICH,
        clock=clock,
        sleep=clock.sleep,
        should_stop=lambda: bool(existing_days(tmp_path)),
    )
    # Then the failure was retried ten minutes later and the report written
    assert attempts[1] - attempts[0] == timedelta(minutes=10)
    assert existing_days(tmp_path) == {date(2025, 6, 1)}
