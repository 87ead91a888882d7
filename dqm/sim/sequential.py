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

Layer: pure numbers (numpy, scipy); no simulator, no checks, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy import stats as _st
from scipy.sparse.linalg import spsolve

__all__ = [
    "PoissonCusum",
    "SequentialBound",
    "best_delay",
    "reference_value",
    "cusum_for_arl0",
    "simulate_run_lengths",
    "DEFAULT_DENOMINATOR",
]

#: Lattice of the CUSUM statistic: k and h are multiples of 1/DEFAULT_DENOMINATOR counts.
DEFAULT_DENOMINATOR = 50
#: ARLs beyond this are reported as this (a chain that practically never alarms).
_ARL_CAP = 1e12


def reference_value(lambda0: float, lambda1: float) -> float:
    """Page's reference value ``k = (λ1 − λ0) / ln(λ1/λ0)`` for a Poisson rate change.

    Args:
        lambda0: in-control mean count per observation (> 0).
        lambda1: out-of-control mean count, ≠ lambda0 (> lambda0 for an upward CUSUM).

    Returns:
        k in counts: the count per observation at which the LLR increment is zero.
    """
    if not (lambda0 > 0 and lambda1 > lambda0):
        raise ValueError(f"need 0 < lambda0 < lambda1, got {lambda0}, {lambda1}")
    return (lambda1 - lambda0) / math.log(lambda1 / lambda0)


@dataclass(frozen=True)
class PoissonCusum:
    """An upward Poisson CUSUM on the lattice of step ``1/denominator`` counts.

    Attributes:
        k_steps: reference value in lattice steps (k = k_steps / denominator counts).
        h_steps: alarm threshold in lattice steps (alarm when b·S ≥ h_steps).
        denominator: lattice steps per count (b).
        lambda0, lambda1: the rates the test was designed for (for reporting).
    """

    k_steps: int
    h_steps: int
    denominator: int = DEFAULT_DENOMINATOR
    lambda0: float = float("nan")
    lambda1: float = float("nan")

    @property
    def k(self) -> float:
        return self.k_steps / self.denominator

    @property
    def h(self) -> float:
        return self.h_steps / self.denominator

    @classmethod
    def design(
        cls, lambda0: float, lambda1: float, h: float, denominator: int = DEFAULT_DENOMINATOR
    ) -> PoissonCusum:
        """The CUSUM optimal for λ0 → λ1 with threshold ``h`` counts (both put on the lattice)."""
        k_steps = round(reference_value(lambda0, lambda1) * denominator)
        return cls(k_steps, max(1, round(h * denominator)), denominator, lambda0, lambda1)

    def with_h_steps(self, h_steps: int) -> PoissonCusum:
        return PoissonCusum(self.k_steps, h_steps, self.denominator, self.lambda0, self.lambda1)

    def transitions(self, rate: float) -> sparse.csc_matrix:
        """``Q[i, j]``: probability to go from state i to state j without alarming.

        States are ``b·S = 0 .. h_steps − 1``; probability mass not in Q is the alarm. Each
        row holds one entry per possible count, so Q is sparse (and solved as such: a
        dense solver would call a threaded BLAS for a few hundred states).
        """
        n, b, a = self.h_steps, self.denominator, self.k_steps
        x_max = (n + a) // b  # any larger count takes every state to the alarm
        pmf = _st.poisson.pmf(np.arange(x_max + 1), rate)
        states = np.arange(n)
        rows, cols, probs = [], [], []
        for x, p in enumerate(pmf):
            nxt = np.maximum(states + b * x - a, 0)
            ok = nxt < n
            rows.append(states[ok])
            cols.append(nxt[ok])
            probs.append(np.full(int(ok.sum()), p))
        return sparse.csc_matrix(
            (np.concatenate(probs), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def _fundamental(self, rate: float) -> sparse.csc_matrix:
        return sparse.identity(self.h_steps, format="csc") - self.transitions(rate)

    def run_lengths(self, rate: float) -> NDArray[np.float64]:
        """ARL from every state: ``L = (I − Q)⁻¹ 1`` (Brook & Evans 1972)."""
        lengths = np.atleast_1d(spsolve(self._fundamental(rate), np.ones(self.h_steps)))
        return np.where(np.isfinite(lengths) & (lengths > 0), lengths, _ARL_CAP)

    def arl(self, rate: float, start_steps: int = 0) -> float:
        """Average run length (observations up to and including the alarm) at ``rate``.

        Exact by the Markov chain. From the start ``S = 0`` this is Lorden's worst-case
        conditional delay of the CUSUM when ``rate`` is the out-of-control rate, and its
        ARL0 when ``rate`` is λ0.
        """
        return float(min(self.run_lengths(rate)[start_steps], _ARL_CAP))

    def stationary_delay(self, lambda0: float, lambda1: float) -> float:
        """Expected delay when the change hits a long monitored run at a random spill.

        The run is monitored as a control room does: after a (false) alarm the test starts
        again from 0. The statistic then follows the stationary law of that renewal chain,
        proportional to the expected visits to each state in one cycle from 0,
        ``v = (I − Q0)⁻ᵀ e₀``; the delay is ``v·L / Σv`` with ``L`` the ARLs at λ1.
        """
        start = np.zeros(self.h_steps)
        start[0] = 1.0
        visits = np.atleast_1d(spsolve(self._fundamental(lambda0).T.tocsc(), start))
        return float(visits @ self.run_lengths(lambda1) / visits.sum())

    def alarm_rate(self) -> float:
        """In-control alarms per observation, 1/ARL0 (the per-spill false-alarm rate)."""
        return 1.0 / self.arl(self.lambda0)


def cusum_for_arl0(
    lambda0: float, lambda1: float, arl0: float, denominator: int = DEFAULT_DENOMINATOR
) -> PoissonCusum:
    """The Poisson CUSUM for λ0 → λ1 with the smallest threshold whose ARL0 ≥ ``arl0``.

    ARL0 grows monotonically with h (a higher threshold can only alarm later), so the
    threshold is found by doubling then bisecting over lattice values.

    Args:
        lambda0, lambda1: in-control and out-of-control mean counts per observation.
        arl0: required in-control average run length (1 / per-observation false-alarm rate).
        denominator: lattice steps per count.

    Returns:
        The designed :class:`PoissonCusum` (its ``arl(lambda0)`` ≥ ``arl0``).
    """
    if not arl0 >= 1.0:
        raise ValueError(f"arl0 must be ≥ 1 observation, got {arl0}")
    base = PoissonCusum.design(lambda0, lambda1, 1.0, denominator)
    lo, hi = 0, max(1, denominator // 2)
    while base.with_h_steps(hi).arl(lambda0) < arl0:
        lo, hi = hi, 2 * hi
        if hi > 10_000 * denominator:
            raise ValueError(f"no threshold reaches ARL0 = {arl0:g}")
    while hi - lo > 1:  # invariant: ARL0(lo) < arl0 <= ARL0(hi) (lo = 0 alarms at once)
        mid = (lo + hi) // 2
        if base.with_h_steps(mid).arl(lambda0) >= arl0:
            hi = mid
        else:
            lo = mid
    return base.with_h_steps(hi)


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
