"""Spill and run numbers as the shifter reads them, and the gaps that mean a spill never arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dqm.core.numbering import missing_numbers, ranges_text, settled_gaps


def test_runs_are_written_as_ranges():
    assert ranges_text([1, 2, 3, 7, 9, 10]) == "1–3, 7, 9–10"
    assert ranges_text([10, 9, 9, 1]) == "1, 9–10"
    assert ranges_text([]) == "none"


def test_spills_missing_between_the_first_and_the_last_of_a_run():
    assert missing_numbers([1, 2, 5, 6, 9]) == [3, 4, 7, 8]
    assert missing_numbers([4, 3, 5]) == [] and missing_numbers([]) == []


def test_a_gap_counts_as_lost_only_once_the_next_spill_is_older_than_the_timeout():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    ago = lambda s: now - timedelta(seconds=s)  # noqa: E731
    # spills 1, 2, 5 and 9 arrived; 5 opened 60 s ago, 9 just now (6–8 may still be on their way)
    opened = {1: ago(200), 2: ago(180), 5: ago(60), 9: ago(2)}
    assert settled_gaps(opened, now, 30.0) == [3, 4]
    assert settled_gaps(opened, now + timedelta(seconds=40), 30.0) == [3, 4, 6, 7, 8]
    assert settled_gaps({1: ago(5)}, now, 30.0) == [] and settled_gaps({}, now, 30.0) == []
