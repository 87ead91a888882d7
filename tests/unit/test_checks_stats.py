"""The statistics behind the checks agree with scipy on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dqm.checks.stats import (
    MAX_SIGMA,
    binomial_error,
    chi2_unweighted,
    clopper_pearson_interval,
    cusum,
    ewma,
    ewma_half_width,
    kolmogorov_prob,
    ks_binned,
    merge_sparse_bins,
    p_to_sigma,
    poisson_pulls,
    poisson_significance,
    poisson_tail_sigma,
    wilson_interval,
)

RNG_SEED = 20250611


def test_chi2_unweighted_equals_pearson_on_the_2xk_contingency_table() -> None:
    # Given a spill (20 000 entries) and a reference run (1 000 000) with a few empty bins
    rng = np.random.default_rng(RNG_SEED)
    shape = np.exp(-0.5 * np.linspace(-4, 4, 60) ** 2)
    n = rng.multinomial(20_000, shape / shape.sum()).astype(float)
    r = rng.multinomial(1_000_000, shape / shape.sum()).astype(float)
    n[:3] = r[:3] = 0.0  # both empty: skipped, ndf reduced, as ROOT does
    # When compared with the Gagunashvili test and with scipy's contingency table
    chi2, ndf, p = chi2_unweighted(n, r)
    used = (n + r) > 0
    expected = stats.chi2_contingency(np.vstack([n[used], r[used]]), correction=False)
    # Then statistic, degrees of freedom and p-value agree to rounding
    assert chi2 == pytest.approx(expected.statistic, rel=1e-10)
    assert ndf == expected.dof == 56
    assert p == pytest.approx(expected.pvalue, rel=1e-8)


def test_chi2_p_values_are_uniform_under_the_null() -> None:
    rng = np.random.default_rng(RNG_SEED)
    shape = np.exp(-0.5 * np.linspace(-2.5, 2.5, 40) ** 2)
    shape /= shape.sum()
    ps = np.array(
        [
            chi2_unweighted(rng.multinomial(20_000, shape), rng.multinomial(500_000, shape))[2]
            for _ in range(1000)
        ]
    )
    # 5 % of p-values below 0.05 (binomial σ ≈ 0.7 %), none below 1e-4 expected
    assert 0.03 < np.mean(ps < 0.05) < 0.07
    assert np.mean(ps < 1e-3) < 0.005


def test_ks_binned_equals_ks_2samp_distance_and_roots_asymptotic_probability() -> None:
    # Unit bins on integer data lose nothing: the ECDFs only step at integers, so the
    # binned D is the unbinned D. The p-value is ROOT's: KolmogorovProb(D·√(NM/(N+M))),
    # the asymptotic Kolmogorov distribution (scipy's kstwobign), not ks_2samp's exact one.
    rng = np.random.default_rng(RNG_SEED)
    spill, reference = rng.poisson(20.0, 3000), rng.poisson(20.4, 50_000)
    edges = np.arange(-0.5, 60.5)
    d, p = ks_binned(np.histogram(spill, edges)[0], np.histogram(reference, edges)[0])
    expected = stats.ks_2samp(spill, reference, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    z = d * np.sqrt(len(spill) * len(reference) / (len(spill) + len(reference)))
    assert p == pytest.approx(stats.kstwobign.sf(z), rel=1e-8)
    assert p == kolmogorov_prob(z)


@pytest.mark.parametrize("z", [0.1, 0.2, 0.5, 0.754, 0.755, 1.0, 1.5, 2.5, 3.96, 5.0, 6.81])
def test_roots_kolmogorov_prob_is_the_asymptotic_kolmogorov_distribution(z: float) -> None:
    # TMath::KolmogorovProb is a truncated series; within its range it agrees with the
    # exact asymptotic distribution to 1e-8 relative (ROOT's own numbers: test_root_conventions)
    assert kolmogorov_prob(z) == pytest.approx(min(1.0, stats.kstwobign.sf(z)), rel=1e-8, abs=1e-9)


def test_ks_binned_on_finely_binned_continuous_data_is_within_the_bin_content() -> None:
    # Within one bin each ECDF rises by at most that bin's fraction, so the sup over
    # bin edges differs from the unbinned sup by at most the largest bin fraction.
    rng = np.random.default_rng(RNG_SEED)
    spill = rng.normal(160.0, 1.6, 5000)
    reference = rng.normal(160.05, 1.6, 100_000)
    edges = np.linspace(150.0, 170.0, 2001)
    n, r = np.histogram(spill, edges)[0], np.histogram(reference, edges)[0]
    tolerance = max(n.max() / n.sum(), r.max() / r.sum())
    d, p = ks_binned(n, r)
    expected = stats.ks_2samp(spill, reference, method="asymp")
    assert abs(d - expected.statistic) <= tolerance
    assert d <= expected.statistic + 1e-12  # binning can only hide differences
    n_eff = len(spill) * len(reference) / (len(spill) + len(reference))
    p_low = stats.kstwobign.sf((expected.statistic + tolerance) * np.sqrt(n_eff))
    p_high = stats.kstwobign.sf((expected.statistic - tolerance) * np.sqrt(n_eff))
    assert p_low - 1e-8 <= p <= p_high + 1e-8


def test_pooled_pulls_square_to_the_chi2_and_observed_pulls_follow_their_formula() -> None:
    rng = np.random.default_rng(RNG_SEED)
    n = rng.poisson(200.0, 50).astype(float)
    r = rng.poisson(4000.0, 50).astype(float)
    chi2, _, _ = chi2_unweighted(n, r)
    assert np.sum(poisson_pulls(n, r) ** 2) == pytest.approx(chi2, rel=1e-10)
    # bin by bin: a pooled pull² is the column's share of scipy's Pearson χ²
    table = np.vstack([n, r])
    expected_freq = stats.chi2_contingency(table, correction=False).expected_freq
    per_column = ((table - expected_freq) ** 2 / expected_freq).sum(axis=0)
    np.testing.assert_allclose(poisson_pulls(n, r) ** 2, per_column, rtol=1e-9)
    s = n.sum() / r.sum()
    by_hand = (n - s * r) / np.sqrt(n + s**2 * r)
    np.testing.assert_allclose(poisson_pulls(n, r, variance="observed"), by_hand, rtol=1e-12)


def test_pulls_are_standard_normal_under_the_null() -> None:
    rng = np.random.default_rng(RNG_SEED)
    pulls = np.concatenate(
        [poisson_pulls(rng.poisson(500.0, 100), rng.poisson(25_000.0, 100)) for _ in range(50)]
    )
    assert abs(pulls.mean()) < 0.05
    assert pulls.std() == pytest.approx(1.0, abs=0.05)


def test_empty_data_bin_against_a_big_reference_is_no_alarm_for_pooled_or_exact() -> None:
    # 0 observed where 0.5 are expected (reference 100× larger has 50)
    n = np.array([0.0, 1000.0])
    r = np.array([50.0, 100_000.0])
    assert poisson_pulls(n, r, variance="observed")[0] < -6  # the known failure
    assert abs(poisson_pulls(n, r)[0]) < 1
    assert abs(poisson_significance(n, r)[0]) < 1


def test_exact_significance_matches_scipy_binomtest_and_pooled_pulls_at_large_counts() -> None:
    n = np.array([130.0, 80.0, 3.0, 100.0])
    r = np.array([1000.0, 1000.0, 0.0, 1000.0])
    z = poisson_significance(n, r, scale=0.1)
    fraction = 0.1 / 1.1
    for i in range(2):
        alternative = "greater" if n[i] > fraction * (n[i] + r[i]) else "less"
        p = stats.binomtest(int(n[i]), int(n[i] + r[i]), fraction, alternative=alternative).pvalue
        assert abs(z[i]) == pytest.approx(stats.norm.isf(p), rel=1e-6)
    assert z[0] > 2 and z[1] < -1.5 and z[3] == 0.0
    # three events where the reference has none: a few σ, not 10σ
    assert 2 < z[2] < 4.5
    rng = np.random.default_rng(RNG_SEED)
    big_n, big_r = rng.poisson(5e4, 20).astype(float), rng.poisson(5e5, 20).astype(float)
    np.testing.assert_allclose(
        poisson_significance(big_n, big_r), poisson_pulls(big_n, big_r), atol=0.05
    )


def test_poisson_tail_sigma_and_p_to_sigma() -> None:
    z = poisson_tail_sigma(10, 2.0, upper=True)
    assert float(z) == pytest.approx(stats.norm.isf(stats.poisson.sf(9, 2.0)))
    assert float(poisson_tail_sigma(0, 1500.0, upper=False)) == MAX_SIGMA
    assert float(p_to_sigma(0.5)) == 0.0 and float(p_to_sigma(0.9)) == 0.0
    assert float(p_to_sigma(2.866515719e-7)) == pytest.approx(5.0, abs=1e-6)


def test_binomial_errors_and_intervals_match_scipy() -> None:
    assert binomial_error(2, 20_000) == pytest.approx(np.sqrt(1e-4 * (1 - 1e-4) / 20_000))
    result = stats.binomtest(7, 20_000)
    wilson = result.proportion_ci(confidence_level=0.6827, method="wilson")
    exact = result.proportion_ci(confidence_level=0.6827, method="exact")
    assert wilson_interval(7, 20_000) == pytest.approx((wilson.low, wilson.high), rel=1e-6)
    assert clopper_pearson_interval(7, 20_000) == pytest.approx((exact.low, exact.high), rel=1e-6)
    assert clopper_pearson_interval(0, 100)[0] == 0.0
    with pytest.raises(ValueError):
        binomial_error(0, 0)


def test_cusum_and_ewma_on_hand_computed_series() -> None:
    c_plus, c_minus = cusum([0.0, 2.0, 2.0, -1.0, -3.0], k=0.5)
    np.testing.assert_allclose(c_plus, [0.0, 1.5, 3.0, 1.5, 0.0])
    np.testing.assert_allclose(c_minus, [0.0, 0.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(ewma([1.0, 1.0, 1.0], 0.5, 0.0), [0.5, 0.75, 0.875])
    np.testing.assert_allclose(ewma([3.0, 4.0], 1.0, 0.0), [3.0, 4.0])
    width = ewma_half_width(2.0, 0.2, 3.0, 500)
    assert width[0] == pytest.approx(3.0 * 2.0 * 0.2)  # first point: L·σ·λ
    assert width[-1] == pytest.approx(3.0 * 2.0 * np.sqrt(0.2 / 1.8))
    with pytest.raises(ValueError):
        ewma([1.0], 0.0, 0.0)


counts_lists = st.lists(st.integers(0, 10_000), min_size=2, max_size=40)


@settings(max_examples=200, deadline=None)
@given(counts_lists, st.integers(1, 50))
def test_chi2_and_ks_are_symmetric_and_zero_for_proportional_histograms(
    values: list[int], factor: int
) -> None:
    n = np.array(values, dtype=float)
    if n.sum() == 0:
        n[0] = 1.0
    chi2, ndf, p = chi2_unweighted(n, factor * n)
    # ROOT's TMath::Prob(0, ndf) is 1, but 0 when ndf = 0 (one populated bin: nothing compared)
    assert chi2 == pytest.approx(0.0, abs=1e-9) and p == pytest.approx(1.0 if ndf > 0 else 0.0)
    d, p_ks = ks_binned(n, factor * n)
    assert d == pytest.approx(0.0, abs=1e-12) and p_ks == pytest.approx(1.0)
    shifted = np.roll(n, 1) + 1
    assert chi2_unweighted(n, shifted)[0] == pytest.approx(chi2_unweighted(shifted, n)[0])
    assert ks_binned(n, shifted)[0] == pytest.approx(ks_binned(shifted, n)[0])


def test_merge_sparse_bins_keeps_totals_and_reaches_the_minimum() -> None:
    n = np.array([0, 1, 0, 50, 400, 900, 420, 60, 2, 0, 1], dtype=float)
    r = 10 * np.array([0, 0, 1, 48, 410, 890, 400, 55, 3, 1, 0], dtype=float)
    merged_n, merged_r = merge_sparse_bins(n, r, 5.0)
    assert merged_n.sum() == n.sum() and merged_r.sum() == r.sum()
    scale = n.sum() / r.sum()
    assert np.all(merged_r * scale >= 5.0)
    assert len(merged_n) == 5  # [0..3], 4, 5, 6, [7..10]
    assert merged_n[0] == 51 and merged_n[-1] == 63


def test_max_sigma_literal_is_scipys_value():
    """MAX_SIGMA is a literal (no SciPy at import); it must be SciPy's norm.isf(1e-300)."""
    from scipy import stats

    assert MAX_SIGMA == pytest.approx(float(stats.norm.isf(1e-300)), rel=1e-14)
