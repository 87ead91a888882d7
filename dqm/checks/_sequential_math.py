"""Page's Poisson CUSUM as an exact Markov chain: what a count check needs at judge time.

Why in the check layer: the ``pik_cusum`` check (:mod:`dqm.checks.sequential`) chooses its
threshold from a stated false-alarm rate, which takes the same chain as the study's bound
(:mod:`dqm.sim.sequential`, which imports the solver from here: checks may not import the
simulator package).

For Poisson counts the log-likelihood ratio of one observation is ``x·ln r − (λ1 − λ0)``,
so Page's CUSUM is ``S_t = max(0, S_{t−1} + x_t − k)`` with the reference value
``k = (λ1 − λ0) / ln r`` counts, alarming when ``S_t ≥ h`` (Page 1954; Lucas 1985,
"Counted data CUSUM's", Technometrics 27:129). With k on a lattice of step ``1/b`` the
statistic lives on the integers ``b·S``, the test is a finite Markov chain, and its average
run length (ARL) from any start is the solution of one linear system (Brook & Evans 1972,
Biometrika 59:539) — exact, no simulation noise.

Two chains live here:

* :class:`PoissonCusum` — the textbook test, *restarted* after an alarm: its ARL0 is what
  the optimality theorem (Lorden 1971, Moustakides 1986) is about.
* :class:`~dqm.checks._held_cusum.HeldCusum` (in its own module) — the same statistic as a
  DQM check runs it: **not** restarted (the
  flag must stay up while an excess persists), and a spill whose count alarms on its own
  (at least the smallest count that alarms from ``S = 0``, the *cap*) is an outlier: BAD on
  that spill by itself, and **left out of the accumulation** for the spills after it (flagged
  spills excluded, as the anchored baselines do): in its place ``S`` moves as an ordinary
  in-control spill moves it on average (count λ0, increment λ0 − k < 0), so it neither
  lifts ``S`` nor lets it fall faster than the clean spill it replaced. This changes
  nothing before the first alarm (such a count alarms whatever ``S`` was), so delays are
  those of Page's test; but a one-spill glitch no longer lifts ``S`` for the spills after
  it, so it leaves no trail of flags, while an excess that persists keeps alarming, on its
  own spills or through the spills that stay under the cap and still accumulate. The
  statistic is also
  clipped at a ceiling a few counts above ``h``, so that after a long excess it falls back
  within a few spills instead of paying back everything it gathered. Its false alarms are
  counted as *episodes* (spills that turn BAD after a spill that was not), from its exact
  stationary law; a held statistic that falls just below ``h`` may cross again soon, so
  the episode rate is a little above 1/ARL0 of the restarted test.

Layer: pure numbers (numpy, scipy); no specs, no simulator, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from dqm._lazy import lazy_module

if TYPE_CHECKING:
    from scipy import sparse

_sparse = lazy_module("scipy.sparse")
_st = lazy_module("scipy.stats")
_sparse_linalg = lazy_module("scipy.sparse.linalg")

__all__ = [
    "DEFAULT_DENOMINATOR",
    "PoissonCusum",
    "reference_value",
    "cusum_for_arl0",
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
        return _sparse.csc_matrix(
            (np.concatenate(probs), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def _fundamental(self, rate: float) -> sparse.csc_matrix:
        return _sparse.identity(self.h_steps, format="csc") - self.transitions(rate)

    def run_lengths(self, rate: float) -> NDArray[np.float64]:
        """ARL from every state: ``L = (I − Q)⁻¹ 1`` (Brook & Evans 1972)."""
        lengths = np.atleast_1d(
            _sparse_linalg.spsolve(self._fundamental(rate), np.ones(self.h_steps))
        )
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
        visits = np.atleast_1d(_sparse_linalg.spsolve(self._fundamental(lambda0).T.tocsc(), start))
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
