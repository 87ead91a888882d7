"""Control-chart statistics (CUSUM, EWMA) on per-spill series; re-exported by ``stats``.

Pure functions over arrays; the checks that use them live in :mod:`dqm.checks.trend`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["cusum", "ewma", "ewma_half_width"]

FloatArray = NDArray[np.float64]


def cusum(z: ArrayLike, k: float, *, ceiling: float = math.inf) -> tuple[FloatArray, FloatArray]:
    """Two-sided tabular CUSUM of a standardised series.

    ``C⁺ₜ = min(H, max(0, C⁺ₜ₋₁ + zₜ − k))``, ``C⁻ₜ = min(H, max(0, C⁻ₜ₋₁ − zₜ − k))``,
    starting at 0; an alarm is ``C ≥ h``. ``k`` (allowance, in σ) is half the shift to
    detect fastest. The ceiling ``H`` (default: none) holds the statistic at the decision
    limit while the evidence lasts: the time to the first alarm is unchanged for any
    ``H ≥ h``, but once the change is over the alarm ends after ``(H − h)/k`` spills
    instead of after all the excess evidence has drained away.

    Args:
        z: series standardised with the in-control mean and σ, ``(x − μ₀)/σ``.
        k: allowance in σ units (0.5 is the textbook choice for a 1σ shift).
        ceiling: largest value the statistic may take.

    Returns:
        ``(c_plus, c_minus)`` arrays, one value per point.

    References:
        E. S. Page, Biometrika 41 (1954) 100; D. C. Montgomery, Introduction to
        Statistical Quality Control, ch. 9.1.
    """
    series = np.asarray(z, dtype=float)
    c_plus = np.zeros_like(series)
    c_minus = np.zeros_like(series)
    up = down = 0.0
    for i, value in enumerate(series):
        up = min(ceiling, max(0.0, up + value - k))
        down = min(ceiling, max(0.0, down - value - k))
        c_plus[i], c_minus[i] = up, down
    return c_plus, c_minus


def ewma(x: ArrayLike, lam: float, mu0: float, *, bound: ArrayLike | None = None) -> FloatArray:
    """Exponentially weighted moving average ``wₜ = λ·xₜ + (1 − λ)·wₜ₋₁``, ``w₀ = μ₀``.

    Args:
        x: the series.
        lam: smoothing constant λ in (0, 1].
        mu0: starting value (the in-control mean).
        bound: optional half-widths ``bₜ``: the average is held within ``μ₀ ± bₜ``
            (at the control limit, for the same reason as the CUSUM's ceiling).

    References:
        S. W. Roberts, Technometrics 1 (1959) 239; Lucas & Saccucci,
        Technometrics 32 (1990) 1.
    """
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"EWMA lambda must be in (0, 1], got {lam}")
    series = np.asarray(x, dtype=float)
    limits = np.full(series.shape, np.inf) if bound is None else np.asarray(bound, dtype=float)
    out = np.empty_like(series)
    level = mu0
    for i, value in enumerate(series):
        level = lam * value + (1.0 - lam) * level
        level = min(max(level, mu0 - limits[i]), mu0 + limits[i])
        out[i] = level
    return out


def ewma_half_width(sigma: float, lam: float, limit: float, n_points: int) -> FloatArray:
    """Exact time-varying EWMA control-limit half-widths ``L·σ·√(λ/(2−λ)·(1−(1−λ)^{2t}))``.

    Args:
        sigma: in-control σ of one point.
        lam: smoothing constant λ.
        limit: width L of the limits in units of the EWMA's σ.
        n_points: number of points (t = 1 … n_points).
    """
    t = np.arange(1, n_points + 1, dtype=float)
    return limit * sigma * np.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * t)))
