"""The ``pik_cusum`` check: its false alarms, delays, stay-up and trail against the exact chain.

Every figure the check promises is computed by the Markov chain of its statistic
(:mod:`dqm.checks._sequential_math`) and compared here with the *registered check itself*
judging simulated Poisson runs spill by spill (fixed seeds), the way the worker judges a run:
the history is the run's earlier spills, at most ``HISTORY_SPILLS`` of them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dqm.checks import CheckContext, CheckResult, Quality, run_check
from dqm.checks._held_cusum import HeldCusum, design_count_cusum
from dqm.core.evaluate import HISTORY_SPILLS

EVENTS = 20_000  # events with ECAL and HCAL per spill: λ0 = 2 tagged hadrons
LAMBDA0 = 2.0
SHIPPED = {  # as histograms/pik.toml declares it
    "expected": 1e-4,
    "ratio": 2.0,
    "alarm_rate": 8.44e-4,
    "warning_rate": 2.5e-3,
    "headroom": 3.0,
    "hold": 3.0,
}
FLAGGED = (Quality.WARNING, Quality.BAD)


def judge(counts: list[float], events: list[float] | None = None, **params) -> CheckResult:
    """The check on the last spill of ``counts``, the earlier ones as its history."""
    events = events or [float(EVENTS)] * len(counts)
    history = {"n_hadron": counts[:-1], "pik_n_events": events[:-1]}
    summary = {"n_hadron": counts[-1], "pik_n_events": events[-1]}
    return run_check(
        "pik_cusum", CheckContext(summary=summary, history=history), {**SHIPPED, **params}
    )


def run(counts: np.ndarray, **params) -> list[Quality]:
    """Judge a run spill by spill, as live (history = the previous HISTORY_SPILLS spills)."""
    series = [float(x) for x in counts]
    return [
        judge(series[max(0, t - HISTORY_SPILLS) : t + 1], **params).quality
        for t in range(len(series))
    ]


def design(**params) -> HeldCusum:
    p = {**SHIPPED, **params}
    return design_count_cusum(
        LAMBDA0, p["ratio"], p["alarm_rate"], p["warning_rate"], p["headroom"]
    ).held


def episodes(qualities: list[Quality], levels: tuple[Quality, ...]) -> int:
    up = [q in levels for q in qualities]
    return sum(1 for t in range(1, len(up)) if up[t] and not up[t - 1])


# --------------------------------------------------------------------------- false alarms


def test_in_control_false_alarm_rate_of_the_check_is_the_stated_one():
    # Given a rate high enough to count in 12 000 spills (the shipped 8e-4 is checked below)
    params = {"alarm_rate": 0.02, "warning_rate": 0.05}
    result = judge([2.0], **params)
    exact_bad = result.details["false_alarm_rate"]
    exact_warning = result.details["warning_alarm_rate"]
    # Then the design meets the stated rates, within the lattice's jump from one h to the next
    assert 0.5 * 0.02 <= exact_bad <= 0.02 and 0.5 * 0.05 <= exact_warning <= 0.05
    # When the registered check judges a long in-control Poisson run spill by spill
    n = 12_000
    qualities = run(np.random.default_rng(3).poisson(LAMBDA0, n), **params)
    # Then its BAD (and WARNING-or-worse) episodes per spill are the exact rates, within
    # 4.5 standard errors (episodes cluster a little: the held statistic may re-cross)
    for measured, exact in (
        (episodes(qualities, (Quality.BAD,)), exact_bad),
        (episodes(qualities, FLAGGED), exact_warning),
    ):
        assert abs(measured / n - exact) < 4.5 * math.sqrt(1.5 * exact / n), (measured, exact)


def test_shipped_rate_agrees_with_a_brute_force_run_of_the_held_statistic():
    # Given the shipped design: exact BAD episode rate ≤ the pooled check's 8.44e-4
    held = design()
    exact = held.episode_rate(LAMBDA0)
    assert exact <= SHIPPED["alarm_rate"]
    # When 2 000 runs of 1 500 spills are simulated (vectorised, same lattice, cap, ceiling)
    b, a, h, top = held.test.denominator, held.test.k_steps, held.test.h_steps, held.ceiling_steps
    # (a spill alarming on its own is flagged and counts as an in-control one: λ0 hadrons)
    rng = np.random.default_rng(5)
    state = np.zeros(2_000, dtype=np.int64)
    before = np.zeros(state.size, dtype=bool)
    starts = 0
    for t in range(1_500):
        x = rng.poisson(LAMBDA0, state.size)
        outlier = x >= held.cap
        state = np.clip(state + np.where(outlier, held.imputed_steps, b * x - a), 0, top)
        flagged = outlier | (state >= h)
        starts += int(np.count_nonzero(flagged & ~before)) if t >= 100 else 0
        before = flagged
    spills = state.size * 1_400
    # Then the episodes per spill are the chain's within 4.5 standard errors
    assert abs(starts / spills - exact) < 4.5 * math.sqrt(1.5 * exact / spills)


# --------------------------------------------------------------------------- delays


@pytest.mark.parametrize("excess", [2, 3, 5])
def test_detection_delay_of_the_check_is_the_markov_chain_expectation(excess):
    # Given runs whose π/K rate is excess × λ0 from their first spill (the statistic at 0)
    held = design()
    expected = held.test.arl(excess * LAMBDA0)
    rng = np.random.default_rng(10 + excess)
    delays = []
    for _ in range(300):
        counts: list[float] = []
        while True:
            counts.append(float(rng.poisson(excess * LAMBDA0)))
            if judge(counts[-HISTORY_SPILLS:]).quality == Quality.BAD:
                delays.append(len(counts))
                break
    # Then the mean delay is the chain's ARL from S = 0 within 4 standard errors
    se = np.std(delays, ddof=1) / math.sqrt(len(delays))
    assert abs(np.mean(delays) - expected) < 4 * se + 1e-9, (np.mean(delays), expected)


# --------------------------------------------------------------------------- stays up, resets


# ×5: 42 % of its spills alarm on their own (BAD there, and left out of the statistic so that
# a one-spill glitch leaves no trail); early in the excess a spill under the cap may then
# find the statistic still low: ≈ 0.5 % of the spills after the first BAD one
# ×2: its statistic climbs only ≈ 1.1 counts per spill and scatters by ± 2: without the
# hold (hysteresis) after its first BAD it fell under the WARNING threshold on ≈ 5 % of the
# spills; held until 3 counts under h, on < 1 %
@pytest.mark.parametrize(("excess", "min_up"), [(2, 0.98), (3, 0.99), (5, 0.99)])
def test_flag_stays_up_through_a_60_spill_excess_and_goes_down_after_it(excess, min_up):
    rng = np.random.default_rng(20 + excess)
    up, watched, down_after = 0, 0, []
    for _ in range(12):
        # Given 30 clean spills, 60 spills of the excess, then 15 clean spills again
        counts = np.concatenate(
            [
                rng.poisson(LAMBDA0, 30),
                rng.poisson(excess * LAMBDA0, 60),
                rng.poisson(LAMBDA0, 15),
            ]
        )
        q = run(counts)
        first = next(t for t in range(30, 90) if q[t] == Quality.BAD)
        # Then after its first BAD spill the tile stays flagged while the excess lasts
        up += sum(q[t] in FLAGGED for t in range(first + 1, 90))
        watched += 89 - first
        # and is no longer flagged within a few spills of its end (held: from the ceiling
        # to 3 counts under h is 6 counts, ≈ 7 spills at k − λ0 = 0.88 a spill)
        down_after.append(next(t - 89 for t in range(90, 105) if q[t] not in FLAGGED))
    assert up / watched >= min_up, up / watched
    # by the chain: from the ceiling, BAD 6 spills after the end in < 20 % of runs, flagged
    # at all 10 spills after it in < 12 %
    shipped = design_count_cusum(LAMBDA0, 2.0, 8.44e-4, 2.5e-3, 3.0)
    held = shipped.held
    assert held.flagged_after(held.ceiling_steps, LAMBDA0, 6, shipped.h_steps)[-1] < 0.2
    assert held.flagged_after(held.ceiling_steps, LAMBDA0, 10, shipped.h_warning_steps)[-1] < 0.12
    assert np.mean(down_after) <= 10 and max(down_after) <= 15, down_after


def test_an_alarm_is_held_until_the_statistic_falls_hold_counts_under_h():
    # k = 2.88, WARNING 6.38, BAD 7.86 at λ0 = 2; held until under 7.86 − 3 = 4.86
    clean = [2.0] * 10
    # Given an excess that made the tile BAD (S = 9.36), then two quiet spills
    rise = clean + [6.0, 6.0, 6.0]
    assert judge(rise).quality == Quality.BAD
    assert judge([*rise, 1.0]).quality == Quality.WARNING  # S = 7.48: WARNING by itself
    # Then at S = 5.60 (under the WARNING threshold) the alarm is still held, and says so
    held = judge([*rise, 1.0, 1.0])
    assert held.quality == Quality.WARNING and held.details["held"]
    assert "alarm held" in held.explanation and "falls below 4.86" in held.explanation
    assert held.value == pytest.approx(5.60)
    # without the hold it would be GOOD there (what made a ×2 excess flicker)
    assert judge([*rise, 1.0, 1.0], hold=0.0).quality == Quality.GOOD
    # and at S = 3.72 the alarm is over
    assert judge([*rise, 1.0, 1.0, 1.0]).quality == Quality.GOOD


def test_a_spill_that_alarms_on_its_own_raises_no_hold():
    # Given S = 5.24 (in the hold band, never BAD), then a ×10 glitch spill, BAD by itself
    before = [2.0] * 10 + [6.0, 5.0]
    assert judge(before).quality == Quality.GOOD
    assert judge([*before, 20.0]).quality == Quality.BAD
    # Then the next spill, at S = 5.24 − 0.88 + 1.12 = 5.48, is not held: no trail
    after = judge([*before, 20.0, 4.0])
    assert after.quality == Quality.GOOD and not after.details["held"], after.explanation


def test_a_one_spill_x10_glitch_leaves_no_trail_as_the_chain_says():
    held = design()
    shipped = design_count_cusum(LAMBDA0, 2.0, 8.44e-4, 2.5e-3, 3.0)
    # By the math: a count ≥ cap alarms on the glitch spill whatever S was, and is left out
    # of S for the spills after it; a ×10 spill below the cap (P ≈ 1 %) accumulates as usual
    law = held.transitions(10 * LAMBDA0).T @ held.stationary(LAMBDA0)
    trail = held.flagged_after(law, LAMBDA0, 12, shipped.h_warning_steps)
    bad_trail = held.flagged_after(law, LAMBDA0, 12, shipped.h_steps)
    in_control = held.flagged_after(held.stationary(LAMBDA0), LAMBDA0, 1, shipped.h_warning_steps)
    assert trail.sum() < 0.25 and bad_trail.sum() < 0.1  # expected flagged spills after it
    assert trail[0] < 0.05 and trail[9] < 2 * in_control[0] + 1e-3  # +10: as any clean spill
    # When the check judges 600 runs with one ×10 spill after 40 clean ones
    rng = np.random.default_rng(30)
    flagged_after = np.zeros(12)
    for _ in range(600):
        counts = np.concatenate(
            [rng.poisson(LAMBDA0, 40), rng.poisson(10 * LAMBDA0, 1), rng.poisson(LAMBDA0, 12)]
        )
        q = run(counts)
        assert q[40] == Quality.BAD or counts[40] < held.cap
        flagged_after += [q[41 + t] in FLAGGED for t in range(12)]
    # Then the share flagged at each later spill is the chain's, within 4 standard errors
    share = flagged_after / 600
    se = np.sqrt(trail * (1 - trail) / 600) + 1e-3
    assert np.all(np.abs(share - trail) < 4 * se), (share.round(3), trail.round(3))


# --------------------------------------------------------------------------- the rules


def test_first_spill_of_a_run_starts_from_zero():
    k = judge([2.0]).details["k"]
    assert judge([2.0]).value == 0.0 and judge([2.0]).quality == Quality.GOOD
    assert judge([6.0]).value == pytest.approx(6.0 - k)
    # a count that alarms from 0 alone (the cap) is BAD on the run's first spill
    assert judge([float(design().cap)]).quality == Quality.BAD


def test_spills_missing_from_the_history_are_skipped():
    nan = float("nan")
    with_gaps = judge([3.0, nan, 6.0, 7.0, nan, 6.0], [EVENTS, EVENTS, nan, EVENTS, 0, EVENTS])
    without = judge([3.0, 7.0, 6.0])
    assert with_gaps.value == without.value and with_gaps.quality == without.quality
    assert with_gaps.details["spills_since_rise"] == without.details["spills_since_rise"]


def test_a_spill_with_fewer_events_expects_fewer_hadrons():
    full, half = judge([4.0]), judge([4.0], [EVENTS / 2])
    assert half.value == pytest.approx(full.value + full.details["k"] / 2, abs=0.02)


def test_no_count_or_no_events_is_no_data():
    assert judge([2.0], [0.0]).quality == Quality.NO_DATA
    # a run of spills expecting almost no hadron cannot be followed (k under the lattice)
    tiny = judge([0.0, 1.0], [100.0, 100.0])
    assert tiny.quality == Quality.NO_DATA and "too few events" in tiny.explanation
    context = CheckContext(summary={"pik_n_events": EVENTS})
    assert run_check("pik_cusum", context, SHIPPED).quality == Quality.NO_DATA


def test_explanation_names_the_excess_and_separates_warning_from_bad():
    bad = judge([2.0, 9.0, 8.0, 9.0])
    assert bad.quality == Quality.BAD
    d = bad.details
    assert bad.explanation == (
        f"π/K: {d['hadrons_since_rise']} hadrons in the last {d['spills_since_rise']} spills "
        f"where {d['expected_since_rise']:.1f} were expected (×{d['ratio']:.1f}); "
        f"CUSUM {bad.value:.2f} ≥ {d['h']:.2f} (BAD)"
    )
    assert d["hadrons_since_rise"] == 26 and d["spills_since_rise"] == 3
    # a WARNING prints both thresholds to the lattice's precision (1/50 count)
    warning = next(
        r for x in range(4, 12) if (r := judge([float(x), 5.0])).quality == Quality.WARNING
    )
    assert f"(WARNING; BAD at {warning.details['h']:.2f})" in warning.explanation
    assert f"CUSUM {warning.value:.2f} ≥ {warning.details['h_warning']:.2f}" in (
        warning.explanation
    )
