"""Shape checks (χ², KS, pulls) against a reference, and the comparison arrays."""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dqm.checks import CheckContext, Quality, compare, run_check
from dqm.checks.stats import poisson_pulls

SHAPE_CHECKS = ("chi2", "ks", "max_pull", "bins_beyond")


def p_bms(n_events: int, seed: int, scale: float = 1.0) -> bh.Histogram:
    """BMS momentum: 160 GeV, 1 % resolution, a 0.5 % low tail (hard radiation)."""
    rng = np.random.default_rng(seed)
    core = rng.normal(160.0, 1.6, n_events)
    tail = rng.random(n_events) < 0.005
    core[tail] -= rng.exponential(4.0, tail.sum())
    h = bh.Histogram(
        bh.axis.Regular(100, 150.0, 170.0, metadata="p_bms [GeV]"), storage=bh.storage.Int64()
    )
    h.fill(core * scale)
    return h


REFERENCE = p_bms(1_000_000, seed=1)


def test_healthy_spills_are_not_bad_and_rarely_warn() -> None:
    qualities = {name: [] for name in SHAPE_CHECKS}
    for seed in range(100):
        context = CheckContext(p_bms(20_000, seed=1000 + seed), REFERENCE)
        for name in SHAPE_CHECKS:
            qualities[name].append(run_check(name, context).quality)
    for name, found in qualities.items():
        assert Quality.BAD not in found, name
        assert found.count(Quality.WARNING) <= 3, name  # p_warning = 1e-3, 4σ pulls …


def test_one_percent_momentum_scale_shift_is_bad_and_explained() -> None:
    context = CheckContext(p_bms(20_000, seed=5, scale=1.01), REFERENCE)
    results = {name: run_check(name, context) for name in SHAPE_CHECKS}
    assert all(r.quality is Quality.BAD for r in results.values()), results
    assert results["chi2"].value < 1e-6 and "χ²/ndf" in results["chi2"].explanation
    assert "largest contributions: p_bms [GeV] ≈" in results["chi2"].explanation
    assert "largest at p_bms [GeV] =" in results["ks"].explanation
    worst_bin = results["max_pull"].details["bins"][0]
    assert 158.0 < float(worst_bin["where"].split("≈ ")[1]) < 166.0
    assert results["bins_beyond"].value > 5


def test_bins_beyond_counts_a_broad_but_shallow_change() -> None:
    # a wider spread: many bins a few σ off, none hugely
    h = bh.Histogram(REFERENCE.axes[0], storage=bh.storage.Int64())
    h.fill(np.random.default_rng(9).normal(160.0, 1.75, 20_000))
    result = run_check("bins_beyond", CheckContext(h, REFERENCE))
    assert result.quality is Quality.BAD
    assert result.explanation.startswith(f"{result.value:.0f} of 100 bins beyond 3σ")


def test_pull_methods_agree_on_a_large_deviation() -> None:
    context = CheckContext(p_bms(20_000, seed=6, scale=1.005), REFERENCE)
    values = [
        run_check("max_pull", context, {"method": m}).value for m in ("exact", "pooled", "observed")
    ]
    assert max(values) / min(values) < 1.3


def test_compare_returns_normalised_overlay_ratio_and_pulls() -> None:
    h = p_bms(20_000, seed=7)
    arrays = compare(h, REFERENCE)
    assert arrays["observed_norm"].sum() == pytest.approx(1.0)
    assert arrays["reference_norm"].sum() == pytest.approx(1.0)
    assert arrays["edges"].shape == (101,) and arrays["centres"].shape == (100,)
    core = arrays["reference_norm"] > 0.01
    assert np.all(np.abs(arrays["ratio"][core] - 1) < 5 * arrays["ratio_err"][core])
    np.testing.assert_allclose(arrays["pulls"], poisson_pulls(h.values(), REFERENCE.values()))
    assert arrays["label"] == "p_bms [GeV]" and arrays["reference_entries"] > 0
    assert "ratio" not in compare(h)


def test_compare_projects_2d_histograms() -> None:
    rng = np.random.default_rng(8)
    axes = (bh.axis.Regular(20, 100.0, 180.0), bh.axis.Regular(20, 100.0, 180.0))
    h, ref = bh.Histogram(*axes), bh.Histogram(*axes)
    h.fill(rng.normal(160, 2, 5000), rng.normal(158, 6, 5000))
    ref.fill(rng.normal(160, 2, 50_000), rng.normal(158, 6, 50_000))
    arrays = compare(h, ref, axis=1)
    assert arrays["observed"].sum() == pytest.approx(h.project(1).values().sum())
    assert arrays["pulls"].shape == (20,)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=3, max_size=80), st.integers(1, 30))
def test_histogram_identical_in_shape_to_reference_is_never_bad(
    counts: list[int], factor: int
) -> None:
    values = np.array(counts)
    if values.sum() == 0:
        values[0] = 1
    axis = bh.axis.Regular(len(values), 0.0, 1.0)
    h = bh.Histogram(axis, storage=bh.storage.Int64())
    ref = bh.Histogram(axis, storage=bh.storage.Int64())
    h[...] = values
    ref[...] = factor * values
    for name in SHAPE_CHECKS:
        result = run_check(name, CheckContext(h, ref), {"min_entries": 0})
        if name == "chi2" and result.quality is Quality.NO_DATA:
            # a single populated bin leaves nothing to compare (ROOT: ndf = 0, p = 0)
            assert result.details["ndf"] == 0, result.explanation
            continue
        assert result.quality is Quality.GOOD, (name, result.explanation)
