"""Beam profile checks cover x and y: centroid and width at every MS1 station against the
reference's profile there, and the profile shape in y as well as in x — on simulated
spills of a beam that wanders within its tolerances."""

from __future__ import annotations

import dataclasses
import re
from functools import cache

import boost_histogram as bh
import numpy as np
import pytest
from scipy import stats

from dqm.checks import CheckContext, CheckResult, Quality, run_check
from dqm.core.fill import Filler
from dqm.core.histio import add_into
from dqm.core.specs import load_specs
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from tests.conftest import ROOT

SPECS = load_specs(ROOT / "histograms")
#: only the beam subsystem's histograms are filled: no check here reads another, and filling
#: all 55 made up most of each spill's cost (the file: 45 s -> 18 s at load 7)
FILLER = Filler(
    dataclasses.replace(SPECS, histograms=tuple(h for h in SPECS if h.subsystem == "beam"))
)
CONFIG = SimConfig(
    run=811,
    events_per_spill=20_000,
    batch_size=20_000,
    beam_wander_x_mm=0.2,
    beam_wander_y_mm=0.15,
    beam_wander_width_rel=0.01,
    intensity_wander_rel=0.03,
)
STATIONS = (0, 1, 2)


@cache
def spill(s: int, anomaly: str | None = None, **cfg: float) -> tuple[dict, dict]:
    config = dataclasses.replace(CONFIG, **cfg)
    data = simulate_spill(config, s, [parse_anomaly(anomaly)] if anomaly else [])
    assert data is not None
    hists, moments = FILLER.book(), {}
    FILLER.fill(hists, BatchView(data.columns))
    accumulate(moments, BatchView(data.columns))
    return hists, finalize(moments)


@cache
def reference(**cfg: float) -> dict[str, bh.Histogram]:
    total: dict[str, bh.Histogram] = {}
    for s in range(10):
        add_into(total, spill(s, None, run=812, **cfg)[0])
    return total


def check(
    histogram: str,
    name: str,
    observed: tuple[dict, dict],
    ref: dict | None = None,
    params: dict | None = None,
) -> CheckResult:
    """``name`` on ``histogram`` with the spec's parameters (or ``params``)."""
    if params is None:
        params = dict(next(c for c in SPECS[histogram].checks if c.type == name).params)
    hists, summary = observed
    refs = reference() if ref is None else ref
    numeric = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    context = CheckContext(hists[histogram], refs.get(histogram), summary=numeric)
    return run_check(name, context, params)


@pytest.mark.parametrize("station", STATIONS)
@pytest.mark.parametrize(
    ("axis", "shift"), [("x", "dx_mm=2.5,dy_mm=0"), ("y", "dx_mm=0,dy_mm=2.5")]
)
def test_centroid_shift_in_x_or_y_is_named_at_every_station(station, axis, shift) -> None:
    result = check(f"beam_xy_ms1_{station}", "beam_centroid", spill(20, f"beam_shift:{shift}"))
    assert result.quality is Quality.BAD
    prefix = f"beam {axis} at MS1 station {station}: +2."
    assert result.explanation.startswith(prefix), result.explanation
    assert "of the reference" in result.explanation


@pytest.mark.parametrize("station", STATIONS)
@pytest.mark.parametrize("axis", ["x", "y"])
def test_width_change_in_x_or_y_is_named_at_every_station(station, axis) -> None:
    wider = {f"beam_sigma_{axis}_mm": 1.3 * getattr(CONFIG, f"beam_sigma_{axis}_mm")}
    result = check(f"beam_xy_ms1_{station}", "beam_width", spill(21, None, **wider))
    assert result.quality is Quality.BAD
    assert result.explanation.startswith(f"beam σ_{axis} at MS1 station {station}: ")
    assert result.details["observed"] / result.details["expected"] == pytest.approx(1.3, abs=0.03)


def test_nominal_is_the_reference_s_profile_not_a_constant() -> None:
    # Given a reference taken with the beam 1.5 mm off axis in y and 20 % wider in x (this
    # setup's nominal), a run with that same beam is GOOD — and judged against constants
    # (no reference) it would not be
    setup = {"beam_y_mm": 1.5, "beam_sigma_x_mm": 18.0}
    ref = reference(**setup)
    run = spill(22, None, **setup)
    for name in ("beam_centroid", "beam_width"):
        assert check("beam_xy_ms1_0", name, run, ref).quality is Quality.GOOD
        assert check("beam_xy_ms1_0", name, run, {}).quality is not Quality.GOOD
    centroid = check("beam_xy_ms1_0", "beam_centroid", run, ref)
    assert centroid.details["expected_y"] == pytest.approx(1.5, abs=0.1)
    width = check("beam_xy_ms1_0", "beam_width", run, ref)
    assert width.details["expected_x"] == pytest.approx(18.0, rel=0.02)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_profile_shape_is_checked_in_x_and_in_y(axis) -> None:
    # a second, narrow beam component 8 mm off-axis in one coordinate only (15 % of the
    # muons): a shape change that neither a move nor a stretch of the reference explains
    other = "y" if axis == "x" else "x"
    main = spill(23)
    halo = spill(
        23,
        None,
        events_per_spill=3_000,
        **{
            f"beam_{axis}_mm": 8.0,
            f"beam_sigma_{axis}_mm": 0.3 * getattr(CONFIG, f"beam_sigma_{axis}_mm"),
        },
    )
    run = ({name: main[0][name] + halo[0][name] for name in main[0]}, main[1])
    result = check(f"beam_{axis}_ms1_2", "beam_profile", run)
    assert result.quality is Quality.BAD, result.explanation
    assert result.explanation.startswith("profile shape against the reference moved by")
    assert check(f"beam_{other}_ms1_2", "beam_profile", run).quality is Quality.GOOD


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("factor", [0.75, 0.94, 1.06, 1.25])
def test_a_width_change_is_the_width_checks_to_judge(axis, factor) -> None:
    # Given a beam wider or narrower in one coordinate (its shape Gaussian as before)
    sigma = f"beam_sigma_{axis}_mm"
    run = spill(25, None, **{sigma: factor * getattr(CONFIG, sigma)})
    # Then the profile shape is GOOD (the reference stretched to the spill's width) ...
    result = check(f"beam_{axis}_ms1_2", "beam_profile", run)
    assert result.quality is Quality.GOOD, result.explanation
    assert result.details["stretch"] == pytest.approx(factor, rel=0.04)
    # ... and the width check judges it with its tolerance (±10 % WARNING, ±20 % BAD)
    width = check("beam_xy_ms1_2", "beam_width", run).quality
    assert width is (Quality.GOOD if abs(factor - 1) < 0.1 else Quality.BAD)


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("shift_mm", [0.5, 1.5, 3.0])
def test_a_move_of_the_beam_is_not_a_change_of_shape(axis, shift_mm) -> None:
    # Given the beam moved (its shape unchanged): the centroid check's finding, not the
    # profile shape's — which a bin-by-bin comparison with the unmoved reference reports
    moved = spill(
        24,
        f"beam_shift:dx_mm={shift_mm if axis == 'x' else 0},dy_mm={shift_mm if axis == 'y' else 0}",
    )
    result = check(f"beam_{axis}_ms1_2", "beam_profile", moved)
    assert result.quality is Quality.GOOD, result.explanation
    assert result.details["shift"] == pytest.approx(shift_mm, abs=0.5)  # plus the wander
    if shift_mm >= 1.5:
        assert check(f"beam_{axis}_ms1_2", "max_pull", moved, params={}).quality > Quality.GOOD


def test_recentred_reference_keeps_its_total_and_moves_its_mean() -> None:
    from dqm.checks.profile import recentred

    edges = np.arange(-60.0, 61.0)
    centres = (edges[1:] + edges[:-1]) / 2
    counts = np.diff(stats.norm.cdf(edges, 0.0, 10.0)) * 1e5
    moved = recentred(counts, edges, 2.3)
    assert moved.sum() == pytest.approx(counts.sum(), rel=1e-3)
    assert moved @ centres / moved.sum() == pytest.approx(2.3, abs=0.02)
    expected = np.diff(stats.norm.cdf(edges, 2.3, 10.0)) * 1e5
    assert np.max(np.abs(moved - expected) / np.sqrt(expected + 1)) < 0.5  # below 0.5σ per bin


@pytest.mark.parametrize("axis", ["x", "y"])
def test_slow_ramp_of_the_position_is_flagged_and_stays_flagged(axis) -> None:
    # Given the centroid moving 0.25 mm per spill in one coordinate from spill 30
    ramp = f"beam_ramp@30-:axis={axis},rate_mm=0.25"
    qualities = [
        check("beam_xy_ms1_2", "beam_centroid", spill(s, ramp)).quality for s in range(30, 46)
    ]
    # Then it is WARNING past 1 mm, BAD past 2 mm, and stays BAD
    first_bad = qualities.index(Quality.BAD)
    assert 7 <= first_bad <= 10
    assert all(q is Quality.BAD for q in qualities[first_bad:])
    assert Quality.WARNING in qualities[:first_bad]


def test_a_wandering_clean_beam_is_not_flagged() -> None:
    for s in range(40, 52):
        run = spill(s)
        for spec in SPECS:
            if spec.subsystem != "beam":
                continue
            for c in spec.checks:
                if c.type in ("beam_centroid", "beam_width", "beam_profile"):
                    result = check(spec.name, c.type, run)
                    assert result.quality is Quality.GOOD, (s, spec.name, result.explanation)


def test_profile_explanation_prints_units_and_every_limit_it_applied() -> None:
    # Read by a shifter: "moved by -0.63 (…)" had no unit, and the largest pull was printed
    # without the limits it is graded by (the thresholds column showed 5 and 7, the text 3
    # and 8: those were the bin-count limits)
    run = spill(25, "beam_shift:dx_mm=1.0")
    result = check("beam_x_ms1_2", "beam_profile", run)
    text = result.explanation
    moved = r"moved by [+-]\d+\.\d\d mm and stretched ×\d\.\d{3} onto this spill's centroid"
    assert re.search(moved, text), text
    assert "(warning ≥ 5, bad ≥ 7) at x ≈ " in text and text.endswith(" mm"), text
    assert "(warning > 3, bad > 8)" in text
    assert result.threshold == {
        "warning": 5.0,
        "bad": 7.0,
        "nsigma": 3.0,
        "max_bins_warning": 3,
        "max_bins_bad": 8,
    }
