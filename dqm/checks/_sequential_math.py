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
* :class:`HeldCusum` — the same statistic as a DQM check runs it: **not** restarted (the
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

import functools
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
    "HeldCusum",
    "CountCusumDesign",
    "reference_value",
    "cusum_for_arl0",
    "design_count_cusum",
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


@dataclass(frozen=True)
class HeldCusum:
    """Page's CUSUM as the ``pik_cusum`` check runs it: never restarted, capped, bounded.

    Attributes:
        test: the lattice CUSUM (its ``k_steps``, ``h_steps`` and ``denominator``).
        ceiling_steps: the statistic is clipped at this (≥ h): while an excess persists it
            sits near the ceiling, and after it ends it falls below ``h`` in about
            ``(ceiling − h)/(k − λ0)`` spills instead of paying back everything it gathered.
    """

    test: PoissonCusum
    ceiling_steps: int

    @property
    def cap(self) -> int:
        """Smallest count that alarms from ``S = 0`` on its own (``⌈(h + k)/b⌉``): a spill
        with at least this many is an outlier, BAD by itself and left out of ``S``."""
        return alarm_count(self.test.h_steps, self.test.k_steps, self.test.denominator)

    def outlier_probability(self, rate: float) -> float:
        """``P(x ≥ cap)``: a spill alarms on its own (and leaves ``S`` where it was)."""
        return float(_st.poisson.sf(self.cap - 1, rate))

    def accumulating(self, rate: float) -> sparse.csc_matrix:
        """``Q[i, j]``: the spill is no outlier (``x < cap``) and moves ``b·S`` from i to j."""
        n = self.ceiling_steps + 1
        b, a, cap = self.test.denominator, self.test.k_steps, self.cap
        pmf = _st.poisson.pmf(np.arange(cap), rate)
        states = np.arange(n)
        rows, cols, probs = [], [], []
        for x, p in enumerate(pmf):
            rows.append(states)
            cols.append(np.clip(states + b * x - a, 0, n - 1))
            probs.append(np.full(n, p))
        return _sparse.csc_matrix(
            (np.concatenate(probs), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    @property
    def imputed_steps(self) -> int:
        """What an outlier spill adds to ``b·S`` instead of its count: the in-control
        expectation ``b·λ0 − b·k`` (< 0), as if an ordinary spill had come."""
        lambda0 = self.test.lambda0
        b, a = self.test.denominator, self.test.k_steps
        return (round(b * lambda0) if math.isfinite(lambda0) else a) - a

    def transitions(self, rate: float) -> sparse.csc_matrix:
        """Transition matrix of ``b·S = 0 .. ceiling`` (exact: no state is truncated): the
        accumulating spills move it by their count, an outlier spill by the imputed
        in-control expectation (:attr:`imputed_steps`)."""
        n = self.ceiling_steps + 1
        states = np.arange(n)
        outlier = _sparse.csc_matrix(
            (
                np.full(n, self.outlier_probability(rate)),
                (states, np.clip(states + self.imputed_steps, 0, n - 1)),
            ),
            shape=(n, n),
        )
        return (self.accumulating(rate) + outlier).tocsc()

    def flag_probability(self, rate: float, threshold_steps: int) -> NDArray[np.float64]:
        """From each state ``b·S`` before a spill: P(that spill is flagged at ``threshold``)
        — it is an outlier (flagged by itself) or it takes ``S`` to the threshold."""
        q = self.accumulating(rate).tocsr()[:, threshold_steps:]
        return self.outlier_probability(rate) + np.asarray(q.sum(axis=1)).ravel()

    def stationary(self, rate: float) -> NDArray[np.float64]:
        """Long-run law of ``b·S`` at a constant ``rate`` (``π = πP``, ``Σπ = 1``)."""
        p = self.transitions(rate)
        n = p.shape[0]
        balance = (_sparse.identity(n, format="csr") - p.T.tocsr())[1:]  # one is redundant
        system = _sparse.vstack([_sparse.csr_matrix(np.ones((1, n))), balance], format="csc")
        rhs = np.zeros(n)
        rhs[0] = 1.0
        law = np.atleast_1d(_sparse_linalg.spsolve(system, rhs))
        return np.clip(law, 0.0, None) / np.clip(law, 0.0, None).sum()

    def episode_rate(self, rate: float, threshold_steps: int | None = None) -> float:
        """Alarm episodes per observation at ``rate``: spill t−1 not flagged, spill t flagged.

        Spill t−1 is not flagged when it was no outlier and left ``S`` below the threshold,
        so the law of ``S`` after it is the stationary law moved by an accumulating spill,
        restricted to the states below; spill t is then flagged with
        :meth:`flag_probability`. ``threshold_steps`` defaults to ``h``; a lower one gives
        the WARNING episodes.
        """
        thr = self.test.h_steps if threshold_steps is None else threshold_steps
        quiet = self.accumulating(rate).T @ self.stationary(rate)
        return float(quiet[:thr] @ self.flag_probability(rate, thr)[:thr])

    def flagged_after(
        self, start: int | NDArray[np.float64], rate: float, spills: int, threshold_steps: int
    ) -> NDArray[np.float64]:
        """P(spill t flagged at ``threshold``) for ``t = 1 .. spills`` at ``rate``.

        ``start`` is the state ``b·S_0`` or a law over the states (e.g. the stationary law
        moved by one glitch spill: ``transitions(rate_glitch).T @ stationary(rate)``).
        """
        p = self.transitions(rate).tocsr()
        flag = self.flag_probability(rate, threshold_steps)
        if isinstance(start, np.ndarray):
            law = np.asarray(start, dtype=float)
        else:
            law = np.zeros(p.shape[0])
            law[min(int(start), p.shape[0] - 1)] = 1.0
        out = np.empty(spills)
        for t in range(spills):
            out[t] = float(law @ flag)
            law = p.T @ law
        return out


def alarm_count(h_steps: int, k_steps: int, denominator: int) -> int:
    """Smallest count x with ``b·x − k_steps ≥ h_steps``: it alarms from ``S = 0`` alone."""
    return -(-(h_steps + k_steps) // denominator)


@dataclass(frozen=True)
class CountCusumDesign:
    """Thresholds of a held count CUSUM chosen from stated false-alarm rates.

    Attributes:
        lambda0: in-control mean count per spill the design was solved at.
        ratio: design ratio r (Page's test for λ0 → r·λ0).
        k_steps, h_steps, h_warning_steps, ceiling_steps: reference value, the BAD / WARNING
            thresholds and the ceiling in lattice steps of ``1/denominator`` counts.
        alarm_rate, warning_rate: the exact BAD / WARNING episode rates per spill achieved
            (at most the stated ones: the lattice makes the rate jump from one h to the next).
    """

    lambda0: float
    ratio: float
    k_steps: int
    h_steps: int
    h_warning_steps: int
    ceiling_steps: int
    denominator: int
    alarm_rate: float
    warning_rate: float

    @property
    def held(self) -> HeldCusum:
        test = PoissonCusum(
            self.k_steps, self.h_steps, self.denominator, self.lambda0, self.ratio * self.lambda0
        )
        return HeldCusum(test, self.ceiling_steps)


def _smallest_threshold(
    base: PoissonCusum, rate: float, alarm_rate: float, headroom_steps: int
) -> tuple[int, float]:
    """``(h_steps, episode rate)``: the smallest h whose held episode rate ≤ ``alarm_rate``.

    The rate falls as h grows (a higher threshold is crossed less often), so doubling then
    bisecting finds it; the returned h always meets the rate.
    """

    def episodes(h_steps: int) -> float:
        return HeldCusum(base.with_h_steps(h_steps), h_steps + headroom_steps).episode_rate(rate)

    lo, hi = 0, max(1, base.denominator // 2)
    hi_rate = episodes(hi)
    while hi_rate > alarm_rate:
        lo, hi = hi, 2 * hi
        if hi > 1000 * base.denominator:
            raise ValueError(f"no threshold reaches {alarm_rate:g} false alarms per spill")
        hi_rate = episodes(hi)
    while hi - lo > 1:  # invariant: rate(lo) > alarm_rate ≥ rate(hi) (lo = 0 alarms always)
        mid = (lo + hi) // 2
        mid_rate = episodes(mid)
        if mid_rate <= alarm_rate:
            hi, hi_rate = mid, mid_rate
        else:
            lo = mid
    return hi, hi_rate


@functools.lru_cache(maxsize=256)
def design_count_cusum(
    lambda0: float,
    ratio: float,
    alarm_rate: float,
    warning_rate: float,
    headroom: float = 3.0,
    denominator: int = DEFAULT_DENOMINATOR,
) -> CountCusumDesign:
    """Page's held CUSUM for λ0 → r·λ0 with BAD and WARNING thresholds from episode rates.

    Cached: a run's spills share one design (the check rounds λ0 before asking).

    Args:
        lambda0: in-control mean count per spill (> 0).
        ratio: design ratio r > 1.
        alarm_rate: BAD episodes per in-control spill allowed, in (0, 1).
        warning_rate: WARNING episodes per in-control spill allowed, ≥ alarm_rate.
        headroom: counts the statistic may climb above ``h`` (the ceiling, see
            :class:`HeldCusum`).
        denominator: lattice steps per count.

    Returns:
        The :class:`CountCusumDesign`.
    """
    if not (lambda0 > 0 and ratio > 1):
        raise ValueError(f"need λ0 > 0 and ratio > 1, got {lambda0}, {ratio}")
    if not 0 < alarm_rate <= warning_rate < 1:
        raise ValueError(
            f"need 0 < alarm_rate ≤ warning_rate < 1, got {alarm_rate}, {warning_rate}"
        )
    if not headroom >= 0:
        raise ValueError(f"headroom must be ≥ 0 counts, got {headroom}")
    base = PoissonCusum.design(lambda0, ratio * lambda0, 1.0, denominator)
    if base.k_steps < 1:
        raise ValueError(
            f"λ0 = {lambda0:g} per spill puts k below the lattice step 1/{denominator}"
        )
    headroom_steps = round(headroom * denominator)
    h_steps, rate = _smallest_threshold(base, lambda0, alarm_rate, headroom_steps)
    held = HeldCusum(base.with_h_steps(h_steps), h_steps + headroom_steps)
    # WARNING: the lowest threshold whose episodes (of the same statistic) stay within theirs
    lo, hi = 0, h_steps  # rate(hi) ≤ alarm_rate ≤ warning_rate
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if held.episode_rate(lambda0, mid) <= warning_rate:
            hi = mid
        else:
            lo = mid
    return CountCusumDesign(
        lambda0,
        ratio,
        base.k_steps,
        h_steps,
        hi,
        h_steps + headroom_steps,
        denominator,
        rate,
        held.episode_rate(lambda0, hi),
    )
