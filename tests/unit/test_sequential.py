"""The π/K bound: Page's Poisson CUSUM by exact Markov chain, and the check's false-alarm rate.

Each exact number is checked against something computed another way: a closed form, a
chain solved by hand, or a brute-force simulation with a fixed seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dqm.checks import CheckContext, Quality, run_check
from dqm.checks.sequential import PIK_FRACTION_ALARM_RATE
from dqm.sim.count_bound import episode_rate, rule_threshold
from dqm.sim.sequential import (
    PoissonCusum,
    best_delay,
    cusum_for_arl0,
    reference_value,
    simulate_run_lengths,
)


@pytest.mark.parametrize("rate", [0.5, 2.0, 5.0])
def test_one_state_chain_is_geometric(rate):
    # Given k = 1 and h = 1 count: from S = 0 the test alarms at the first count ≥ 2
    test = PoissonCusum(k_steps=1, h_steps=1, denominator=1)
    # Then its run length is geometric with success probability P(X ≥ 2)
    assert test.arl(rate) == pytest.approx(1.0 / stats.poisson.sf(1, rate), rel=1e-12)


def test_two_state_chain_matches_the_hand_solution():
    # Given k = 1, h = 2 counts: states S = 0 and S = 1
    rate = 1.7
    p0, p1, p2 = stats.poisson.pmf([0, 1, 2], rate)
    # L0 = 1 + (p0 + p1) L0 + p2 L1 and L1 = 1 + p0 L0 + p1 L1, solved by hand
    l0 = (1 + p2 / (1 - p1)) / ((1 - p0 - p1) - p2 * p0 / (1 - p1))
    l1 = (1 + p0 * l0) / (1 - p1)
    test = PoissonCusum(k_steps=1, h_steps=2, denominator=1)
    assert test.arl(rate, start_steps=0) == pytest.approx(l0, rel=1e-12)
    assert test.arl(rate, start_steps=1) == pytest.approx(l1, rel=1e-12)


@pytest.mark.parametrize("rate", [2.0, 6.0])
def test_markov_chain_arl_agrees_with_brute_force(rate):
    # Given a CUSUM designed for 2 → 6 counts per spill with ARL0 ≈ 200
    test = cusum_for_arl0(2.0, 6.0, 200.0)
    # When 20 000 runs are simulated with a fixed seed
    lengths = simulate_run_lengths(test, rate, 20_000, np.random.default_rng(7))
    # Then their mean agrees with the exact ARL within 4 standard errors
    se = lengths.std(ddof=1) / math.sqrt(len(lengths))
    assert abs(lengths.mean() - test.arl(rate)) < 4 * se


def test_stationary_delay_agrees_with_a_change_in_a_long_run():
    # Given the same CUSUM, a change after 200 in-control spills (restarting after alarms)
    test = cusum_for_arl0(2.0, 6.0, 300.0)
    rng = np.random.default_rng(11)
    b, a, h = test.denominator, test.k_steps, test.h_steps
    state = np.zeros(6000, dtype=np.int64)
    for _ in range(200):
        state = np.maximum(state + b * rng.poisson(2.0, state.size) - a, 0)
        state[state >= h] = 0
    delays = np.zeros(state.size, dtype=np.int64)
    alive = np.ones(state.size, dtype=bool)
    t = 0
    while alive.any():
        t += 1
        state[alive] = np.maximum(state[alive] + b * rng.poisson(6.0, alive.sum()) - a, 0)
        fired = alive & (state >= h)
        delays[fired], alive[fired] = t, False
    # Then the mean delay is the quasi-stationary one, below the worst case (start at 0)
    se = delays.std(ddof=1) / math.sqrt(delays.size)
    assert abs(delays.mean() - test.stationary_delay(2.0, 6.0)) < 4 * se
    assert test.stationary_delay(2.0, 6.0) <= test.arl(6.0)


def test_threshold_is_the_smallest_reaching_the_target_arl0():
    test = cusum_for_arl0(2.0, 10.0, 1000.0)
    assert test.arl(2.0) >= 1000.0
    assert test.with_h_steps(test.h_steps - 1).arl(2.0) < 1000.0
    assert test.k == pytest.approx(reference_value(2.0, 10.0), abs=0.5 / test.denominator)


def test_best_delay_meets_the_false_alarm_rate_exactly_and_orders_the_changes():
    bounds = [best_delay(2.0, 2.0 * r, 1e-3) for r in (2, 3, 5)]
    for b in bounds:
        # the randomised threshold makes ARL0 exactly 1/α
        assert b.achieved_arl0 == pytest.approx(1000.0, rel=1e-9)
        assert 1.0 <= b.delay <= b.worst_case_delay
    # a bigger excess is found sooner
    assert bounds[0].delay > bounds[1].delay > bounds[2].delay


def test_reference_value_is_pages_and_rejects_a_decrease():
    assert reference_value(2.0, 4.0) == pytest.approx(2.0 / math.log(2.0))
    with pytest.raises(ValueError):
        reference_value(4.0, 2.0)
    with pytest.raises(ValueError):
        best_delay(2.0, 4.0, 0.0)


#: The pooled-count π/K check as the specs declared it before ``pik_cusum`` replaced it.
PIK_FRACTION_PARAMS = {
    "n_key": "pik_n_events",
    "expected": 1e-4,
    "sigma_warning": 3.0,
    "sigma_bad": 5.0,
    "ratio_bad": 3.0,
    "window": 2,
}


def test_rule_threshold_is_the_pik_check_poisson_tail():
    # Given the pooled π/K check as the specs declared it, at 20 000 events per spill
    params = dict(PIK_FRACTION_PARAMS)
    k_star, window = rule_threshold("hadron_tag", "pik_fraction", params, 20_000)
    # Then k* is the smallest pooled count that its documented rule calls BAD,
    # derived here from the rule itself: p = P(X ≥ k | mean), σ = Φ⁻¹(1 − p)
    mean = window * 20_000 * params["expected"]

    def bad(k: int) -> bool:
        sigma = stats.norm.isf(stats.poisson.sf(k - 1, mean))
        ratio_rule = params.get("ratio_bad") is not None and k / mean >= params["ratio_bad"]
        return sigma >= params["sigma_bad"] or (ratio_rule and sigma >= params["sigma_warning"])

    assert bad(k_star) and not bad(k_star - 1)
    # and the check agrees at that count when given it in one spill
    context = CheckContext(
        summary={"pik_fraction": k_star / 20_000, "n_events": 20_000, "pik_n_events": 20_000},
        history={
            "pik_fraction": [0.0] * (window - 1),
            "n_events": [20_000] * (window - 1),
            "pik_n_events": [20_000] * (window - 1),
        },
    )
    assert run_check("pik_fraction", context, params).quality == Quality.BAD


@pytest.mark.parametrize("window", [1, 2, 3])
def test_episode_rate_agrees_with_a_simulated_count_series(window):
    # Given Poisson(2) counts and the rule "pooled count over `window` spills ≥ k"
    threshold = 3 * window + 1
    x = np.random.default_rng(window).poisson(2.0, 400_000)
    pooled = np.convolve(x, np.ones(window, dtype=np.int64), mode="valid")
    alarm = pooled >= threshold
    starts = np.count_nonzero(alarm[1:] & ~alarm[:-1]) / (alarm.size - 1)
    # Then alarm starts per spill match the exact rate within 4 standard errors
    exact = episode_rate(threshold, window, 2.0)
    assert abs(starts - exact) < 4 * math.sqrt(exact / (alarm.size - 1))


def test_pik_cusum_default_rate_is_the_pooled_checks_exact_rate():
    # Given the pooled check it replaces, its exact false-alarm episode rate at λ0 = 2
    k_star, window = rule_threshold("hadron_tag", "pik_fraction", PIK_FRACTION_PARAMS, 20_000)
    rate = episode_rate(k_star, window, 2.0)
    # Then the CUSUM's default rate is that number (to the 3 digits it is stated with)
    assert PIK_FRACTION_ALARM_RATE == pytest.approx(rate, rel=5e-3)
