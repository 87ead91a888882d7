"""Change detection along a run: catches a slow momentum drift, stays quiet otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.checks import CheckContext, CheckResult, Quality, run_check

P_NOMINAL_GEV = 160.0
SIGMA_MEAN_GEV = 0.04  # per-spill statistical error of p_ms2_mean (≈ 5.6 GeV / √20 000)
N_BASELINE = 20


def run_on_series(name: str, values: np.ndarray, **params: object) -> CheckResult:
    """The check as the worker runs it at the last spill of ``values``."""
    context = CheckContext(
        summary={"p_ms2_mean": float(values[-1]), "n_events": 20_000.0},
        history={"p_ms2_mean": [float(v) for v in values[:-1]]},
    )
    return run_check(name, context, {"quantity": "p_ms2_mean", **params})


def drifting_run(
    seed: int, drift_per_spill: float = 1e-3, n_stable: int = 30, n_drift: int = 25
) -> np.ndarray:
    """p_ms2_mean per spill: stable, then the scale creeps by ``drift_per_spill`` each spill."""
    rng = np.random.default_rng(seed)
    scale = np.concatenate([np.zeros(n_stable), drift_per_spill * np.arange(1, n_drift + 1)])
    return P_NOMINAL_GEV * (1 + scale) + rng.normal(0, SIGMA_MEAN_GEV, n_stable + n_drift)


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_slow_momentum_drift_is_caught_well_before_two_percent(name: str) -> None:
    for seed in range(20):
        values = drifting_run(seed)
        first_bad = next(
            t
            for t in range(N_BASELINE + 1, len(values) + 1)
            if run_on_series(name, values[:t]).quality is Quality.BAD
        )
        drift_at_alarm = values[first_bad - 1] / P_NOMINAL_GEV - 1
        # BAD after at most 4 drifting spills: ≤ 0.4 %, long before a 2 % scale error
        assert first_bad - 30 <= 4, (seed, first_bad)
        assert drift_at_alarm < 0.005


def test_cusum_explanation_names_direction_and_baseline() -> None:
    result = run_on_series("cusum", drifting_run(1))
    assert result.quality is Quality.BAD
    assert result.explanation.startswith("p_ms2_mean: upward CUSUM")
    assert "vs baseline 160" in result.explanation
    assert result.details["spills_since_change"] >= 20


@pytest.mark.parametrize(("name", "statistic"), [("cusum", "c_plus"), ("ewma", "deviation")])
def test_stationary_runs_do_not_fire_in_99_percent(name: str, statistic: str) -> None:
    # 1000 healthy runs of 120 spills. The statistic at spill t only depends on spills
    # ≤ t (fixed baseline), so the last call's series is every earlier call's value:
    # a run "fires" if any spill would have been WARNING or BAD.
    rng = np.random.default_rng(99)
    fired = 0
    for _ in range(1000):
        values = P_NOMINAL_GEV + rng.normal(0, SIGMA_MEAN_GEV, 120)
        result = run_on_series(name, values)
        path = np.abs(np.asarray(result.details[statistic]))
        if name == "cusum":
            path = np.maximum(path, np.asarray(result.details["c_minus"]))
        fired += bool(np.any(path >= result.threshold["warning"]))
    assert fired <= 10, fired  # ≈ 0.3 % expected (see dqm.checks.trend)


def test_last_call_path_equals_calling_at_each_spill() -> None:
    values = drifting_run(3, drift_per_spill=2e-4)
    last = run_on_series("cusum", values).details
    for t in (N_BASELINE + 3, N_BASELINE + 12, len(values) - 1):
        earlier = run_on_series("cusum", values[:t]).details
        monitored = t - N_BASELINE
        assert earlier["c_plus"] == pytest.approx(last["c_plus"][:monitored])
        assert earlier["c_minus"] == pytest.approx(last["c_minus"][:monitored])


def test_baseline_collection_and_explicit_parameters() -> None:
    short = run_on_series("cusum", P_NOMINAL_GEV + np.zeros(10))
    assert short.quality is Quality.NO_DATA and "collecting the baseline" in short.explanation
    flat = run_on_series("ewma", P_NOMINAL_GEV + np.zeros(30))
    assert flat.quality is Quality.NO_DATA and "give 'sigma'" in flat.explanation
    # with μ0 and σ given, monitoring starts at the first spill
    jump = np.array([160.0, 160.02, 161.0])
    assert run_on_series("cusum", jump, mu0=160.0, sigma=0.04).quality is Quality.BAD
    assert run_on_series("ewma", jump[:2], mu0=160.0, sigma=0.04).quality is Quality.GOOD
