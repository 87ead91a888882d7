"""The run conditions as people read them: wall header, report cover (no server, no database).

Given the last spill's run with conditions, then the wall prints them under its header and
names the configuration a missing reference is for; given a run without any, then a
WARNING banner says so. The report's cover groups the period's runs by their conditions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boost_histogram as bh
import numpy as np
import pytest

pn = pytest.importorskip("panel")

from apps.control_room import render_header  # noqa: E402
from apps.plots import drawn_bins, trimmed  # noqa: E402
from apps.snapshot import Snapshot  # noqa: E402
from dqm.checks import compare  # noqa: E402
from dqm.report.cover import _conditions_lines  # noqa: E402
from dqm.sim.simulate import SimConfig  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
MU100 = SimConfig(run=7, p_beam_gev=100.0, magnet_bl_tm=7.2, setup="2025B").conditions()


def snap(**kw) -> Snapshot:
    return Snapshot(run=7, spill=3, closed_at=NOW - timedelta(seconds=5), quality="GOOD", **kw)


def test_the_wall_shows_the_runs_conditions_and_the_configuration_without_reference():
    html = render_header(snap(beam_config="mu100", conditions=MU100.describe()), 60, NOW)
    assert "μ⁻ 100 GeV · MBPL 7.2 T·m (polarity −) · trigger physics(" in html
    assert "setup 2025B" in html and 'class="dqm-conditions"' in html
    assert "reference run none for mu100" in html
    with_ref = render_header(
        snap(beam_config="mu100", conditions=MU100.describe(), reference_run=5), 60, NOW
    )
    assert "reference run 5" in with_ref and "none for" not in with_ref


def test_the_wall_warns_when_no_conditions_were_received():
    html = render_header(snap(), 60, NOW)
    assert 'class="dqm-banner q-WARNING" data-conditions=""' in html
    assert "run 7: no run conditions received from the DAQ" in html
    assert "data-conditions" not in render_header(Snapshot(), 60, NOW)  # no run yet: nothing


def test_setup_labels_are_escaped_on_the_wall():
    evil = SimConfig(run=7, setup="<b>x</b>").conditions().describe()
    assert "<b>x</b>" not in render_header(snap(conditions=evil), 60, NOW)


class Cover:
    def __init__(self, conditions: dict[int, str]) -> None:
        self.run_conditions = conditions
        self.runs = sorted(conditions)


def test_the_report_cover_groups_runs_by_their_conditions_without_any_first():
    text = MU100.describe()
    lines = _conditions_lines(Cover({5: text, 6: text, 7: "", 8: text}))
    assert lines[0] == ("Run conditions", "run 7: none received from the DAQ")
    assert lines[1][1].startswith("runs 5–6, 8: μ⁻ 100 GeV · MBPL 7.2 T·m")
    assert " ".join(v for _, v in lines[1:]) == f"runs 5–6, 8: {text}"  # wrapped, not cut
    assert all(len(v) <= 100 and not k for k, v in lines[1:])
    many = _conditions_lines(Cover({r: f"setup {r}" for r in range(1, 6)}), most=3)
    assert len(many) == 4 and many[-1] == ("", "… and 2 more sets of conditions")


def test_momentum_plots_are_drawn_over_the_filled_range_of_their_wide_axis():
    counts = np.zeros(800)
    counts[390:410] = 50  # a 160 GeV peak on a 0-320 GeV axis of 0.4 GeV bins
    keep = drawn_bins(counts)
    assert keep.start <= 390 and keep.stop >= 410 and keep.stop - keep.start <= 100  # 40 GeV
    assert keep.start % 25 == 0 and keep.stop % 25 == 0  # rounded: no jitter spill to spill
    assert drawn_bins(np.zeros(10)) == slice(None)
    h = bh.Histogram(bh.axis.Regular(800, 0, 320), storage=bh.storage.Int64())
    h.fill(np.random.default_rng(1).normal(160, 1.6, 5000))
    c = trimmed(compare(h, h))
    assert len(c["edges"]) == len(c["observed"]) + 1 == len(c["ratio"]) + 1
    assert 130 <= c["edges"][0] < 160 < c["edges"][-1] <= 190
    assert c["observed"].sum() == 5000  # nothing drawn is lost
