"""The simulation behind the change-detection limits measures the checks' own code, and
the properties the module docstring of ``dqm.checks.trend`` promises hold."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.checks import CheckContext, run_check
from dqm.sim.trend_limits import CHARTS, SCENARIOS, _path, _runs, _to_normal, paths, study

WINDOW = 60


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.statistic)
def test_study_paths_equal_the_check_called_at_every_spill(chart) -> None:
    # Given three synthetic runs (20 anchor + 90 monitored spills): clean, a glitch, a step
    rng = np.random.default_rng(1)
    mean, scale, monitored = _runs(rng, 3, 20, 90)
    anchor = rng.standard_normal((3, 20))  # the study's anchor, rebuilt from its moments:
    anchor = (anchor - anchor.mean(1, keepdims=True)) / anchor.std(1, ddof=1, keepdims=True)
    anchor = anchor * scale / np.sqrt(1 + 1 / 20) + mean
    monitored[1, 40] += 40.0
    monitored[2, 40:] += 3.0
    z = _to_normal((monitored - mean) / scale, 19)
    expected = paths(z, chart, window=WINDOW)
    name = chart.statistic
    for r in range(3):
        values = np.concatenate([anchor[r], monitored[r]])
        spills = np.arange(1, len(values) + 1, dtype=float)
        for t in range(21, len(values) + 1):
            lo = max(0, t - 1 - WINDOW)
            context = CheckContext(
                summary={"q": float(values[t - 1])},
                history={"q": list(values[lo : t - 1]), "spill": list(spills[lo : t - 1])},
                run_start={"q": list(values[:WINDOW]), "spill": list(spills[:WINDOW])},
            )
            result = run_check(name, context, {"quantity": "q", "min_entries": 0})
            # Then the check's value is the study's statistic on every spill
            assert result.value == pytest.approx(expected[r, t - 21], abs=1e-9), (r, t)


def test_held_path_never_exceeds_the_limit_and_unheld_agrees_below_it() -> None:
    z = np.random.default_rng(2).normal(0.5, 2.0, (50, 80))
    for chart in CHARTS:
        held = _path(z, chart)
        assert held.max() <= chart.bad + 1e-12
        free = _path(z, type(chart)(**{**chart.__dict__, "hold": False}))
        first = np.argmax(free >= chart.bad, axis=1)
        for r in range(len(z)):  # identical up to the first alarm
            stop = first[r] if (free[r] >= chart.bad).any() else z.shape[1]
            np.testing.assert_allclose(
                held[r, : stop + 1], np.minimum(free[r, : stop + 1], chart.bad)
            )


@pytest.fixture(scope="module")
def result():
    return study(1500, seed=7)


@pytest.mark.parametrize("chart", CHARTS, ids=lambda c: c.statistic)
def test_documented_properties_hold(result, chart) -> None:
    rows = result[chart.label]
    labels = {s.label for s in SCENARIOS}
    assert set(rows) == labels
    # in control: ≤ 0.5 % of 100-spill runs ever BAD (documented: 0.07–0.12 %)
    assert rows["in control"]["any_bad"] <= 0.005
    # a glitch adds (almost) nothing to the flags of the 20 spills after it
    assert rows["glitch 40σ"]["trail"] <= rows["in control"]["trail"] + 0.005
    # a persistent 1 % step is found within 4 spills and stays BAD on every later spill
    step = rows["step 40σ"]
    assert step["detected"] == 1.0 and step["median_delay"] <= 4 and step["held"] == 1.0
    # a 0.1 %-per-spill drift within 4 spills
    assert rows["drift 4σ/spill"]["median_delay"] <= 4
    # a 3σ step is found and stays flagged
    assert rows["step 3σ"]["detected"] >= 0.99 and rows["step 3σ"]["flagged"] >= 0.9
    # when a 20-spill step ends, the alarm ends within ~2 spills
    assert rows["step 40σ for 20 spills"]["trail_mean"] <= 2.5
