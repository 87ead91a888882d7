"""The best sequential test for a Poisson rate change, and its exact delays.

Why: a π/K excess shows as a higher count of hadron-tagged events per spill, λ0 → λ1 = r·λ0.
To say whether the ``pik_fraction`` check finds it fast *enough*, compare it with the best
any test could do at the same false-alarm rate. For a change from a known law f0 to a known
law f1, Page's CUSUM (Page 1954) is that test: it minimises Lorden's worst-case expected
detection delay among all stopping rules whose in-control average run length (ARL0) is at
least the same (Lorden 1971; exact optimality: Moustakides 1986, Ann. Statist. 14:1379).

For Poisson counts the log-likelihood ratio of one spill is ``x·ln r − (λ1 − λ0)``, so the
CUSUM is ``S_t = max(0, S_{t−1} + x_t − k)`` with the reference value
``k = (λ1 − λ0) / ln r`` counts, alarming when ``S_t ≥ h`` (Lucas 1985, "Counted data
CUSUM's", Technometrics 27:129). With k on a lattice of step ``1/b`` the statistic lives on
the integers ``b·S``, the test is a finite Markov chain, and its ARL from any start is the
solution of one linear system (Brook & Evans 1972, Biometrika 59:539) — **exact**, no
simulation noise. :func:`simulate_run_lengths` is the brute-force cross-check.

Rounding k to the lattice (``b = 50`` by default: |Δk| ≤ 0.01 counts) makes the test the
optimal one for a λ1' within a fraction of a percent of λ1. With ~2 counts per spill the
achievable ARL0 jumps (by up to ×2) from one threshold to the next, so "the same false-alarm
rate" is met exactly by :func:`best_delay` with Page's test randomised between the two
neighbouring thresholds (a legitimate stopping rule: the coin is tossed once, before the
first spill), whose ARL0 and delay are the same mixture of the two.

The chain itself (:class:`PoissonCusum`, :func:`cusum_for_arl0`) lives in
:mod:`dqm.checks._sequential_math`, because the ``pik_cusum`` check needs it at judge time
and checks may not import the simulator package; it is re-exported here.

Layer: pure numbers (numpy, scipy); no simulator, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dqm.checks._sequential_math import (
    DEFAULT_DENOMINATOR,
    PoissonCusum,
    cusum_for_arl0,
    reference_value,
)

__all__ = [
    "PoissonCusum",
    "SequentialBound",
    "best_delay",
    "reference_value",
    "cusum_for_arl0",
    "simulate_run_lengths",
    "DEFAULT_DENOMINATOR",
]


def simulate_run_lengths(
    test: PoissonCusum,
    rate: float,
    runs: int,
    rng: np.random.Generator,
    max_length: int = 100_000,
) -> NDArray[np.int64]:
    """Brute force: run lengths of ``test`` on ``runs`` independent Poisson(rate) sequences.

    The cross-check of :meth:`PoissonCusum.arl` (same lattice, same rule), vectorised over
    runs; a run still going after ``max_length`` observations is reported as max_length.
    """
    b, a, h = test.denominator, test.k_steps, test.h_steps
    state = np.zeros(runs, dtype=np.int64)
    length = np.full(runs, max_length, dtype=np.int64)
    alive = np.ones(runs, dtype=bool)
    for t in range(1, max_length + 1):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        counts = rng.poisson(rate, idx.size)
        state[idx] = np.maximum(state[idx] + b * counts - a, 0)
        fired = idx[state[idx] >= h]
        length[fired] = t
        alive[fired] = False
    return length


@dataclass(frozen=True)
class SequentialBound:
    """Expected delays of Page's test at a given false-alarm rate (see the module doc).

    ``lower`` and ``upper`` are the CUSUMs with the neighbouring thresholds (ARL0 below, and
    at or above the target); ``weight`` is the probability of using ``lower`` in the
    randomised test whose ARL0 equals ``arl0`` exactly. Two delays, each counted in
    observations from the first changed one (1 = alarm on the first changed spill):

    * ``worst_case_delay`` — from S = 0: Lorden's worst case, the quantity of the optimality
      theorem;
    * ``delay`` — from S drawn from its in-control stationary law (the test restarting after
      each false alarm): the change comes at a random spill of a long monitored run, as in
      the detection study, so this is the figure to compare a measured mean delay with.
    """

    lambda0: float
    lambda1: float
    arl0: float
    lower: PoissonCusum
    upper: PoissonCusum
    weight: float

    def _mix(self, lower: float, upper: float) -> float:
        return self.weight * lower + (1.0 - self.weight) * upper

    @property
    def worst_case_delay(self) -> float:
        return self._mix(_zero_start(self.lower, self.lambda1), self.upper.arl(self.lambda1))

    @property
    def delay(self) -> float:
        return self._mix(
            _stationary(self.lower, self.lambda0, self.lambda1),
            self.upper.stationary_delay(self.lambda0, self.lambda1),
        )

    @property
    def achieved_arl0(self) -> float:
        return self._mix(_zero_start(self.lower, self.lambda0), self.upper.arl(self.lambda0))


def _zero_start(test: PoissonCusum, rate: float) -> float:
    return test.arl(rate) if test.h_steps > 0 else 1.0


def _stationary(test: PoissonCusum, lambda0: float, lambda1: float) -> float:
    return test.stationary_delay(lambda0, lambda1) if test.h_steps > 0 else 1.0


def best_delay(
    lambda0: float, lambda1: float, alarm_rate: float, denominator: int = DEFAULT_DENOMINATOR
) -> SequentialBound:
    """Page's test for λ0 → λ1 at exactly ``alarm_rate`` false alarms per observation.

    Args:
        lambda0: in-control mean count per spill.
        lambda1: mean count per spill after the change.
        alarm_rate: false-alarm episodes per spill to match (ARL0 = 1 / alarm_rate), in (0, 1].
        denominator: lattice steps per count.

    Returns:
        A :class:`SequentialBound` (its ``delay`` and ``worst_case_delay``).
    """
    if not 0.0 < alarm_rate <= 1.0:
        raise ValueError(f"alarm_rate must be in (0, 1], got {alarm_rate}")
    target = 1.0 / alarm_rate
    upper = cusum_for_arl0(lambda0, lambda1, target, denominator)
    lower = upper.with_h_steps(upper.h_steps - 1)
    a_up, a_lo = upper.arl(lambda0), _zero_start(lower, lambda0)
    weight = 0.0 if a_up <= target or a_up == a_lo else (a_up - target) / (a_up - a_lo)
    return SequentialBound(lambda0, lambda1, target, lower, upper, min(max(weight, 0.0), 1.0))
