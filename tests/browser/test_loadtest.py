"""``dqm loadtest`` measures what it says: sessions that follow live spills, and the server's
numbers."""

from __future__ import annotations

import pytest

from benchmarks.loadtest import run_load

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_a_short_load_follows_spills_and_samples_the_server():
    # Given 2 browser sessions on a private stack publishing a spill every 2 s
    # When the load runs for 20 s
    result = run_load(
        sessions=2,
        minutes=20 / 60,
        period_s=2.0,
        events_per_spill=2000,
        sample_s=5.0,
        log=lambda *_: None,
    )
    # Then it sampled the server several times, every session saw spills change without a reload,
    assert len(result.samples) >= 4
    assert all(n >= 3 for n in result.page_updates), result.page_updates
    assert result.samples[-1].spills_closed > result.samples[0].spills_closed
    # and the figures are physical: memory of a Panel server, CPU fractions within one core
    assert 50 < result.rss_last_mb < 4000
    assert (
        0 < result.loop_fraction() <= result.cpu_fraction() + 0.05 and result.cpu_fraction() < 1.5
    )
    assert len(result.lines()) == 4 and "event loop busy" in result.lines()[2]
