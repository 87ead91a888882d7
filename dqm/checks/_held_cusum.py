"""The count CUSUM as the ``pik_cusum`` check runs it: held, capped, designed from rates.

Why apart from :mod:`dqm.checks._sequential_math`: that module holds Page's textbook test
(restarted after an alarm, what the optimality theorems and the study's bound are about);
this one holds what the DQM check runs instead — never restarted so the flag stays up while
an excess persists, one-spill outliers left out of the accumulation, clipped at a ceiling —
and the design that picks its thresholds from stated false-alarm rates on that exact chain.
See the first module's docstring for the mathematics.

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
from dqm.checks._sequential_math import (
    DEFAULT_DENOMINATOR,
    PoissonCusum,
)

if TYPE_CHECKING:
    from scipy import sparse

_sparse = lazy_module("scipy.sparse")
_st = lazy_module("scipy.stats")
_sparse_linalg = lazy_module("scipy.sparse.linalg")

__all__ = ["HeldCusum", "CountCusumDesign", "alarm_count", "design_count_cusum"]


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
