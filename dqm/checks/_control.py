"""Control-chart statistics (CUSUM, EWMA) on per-spill series; re-exported by ``stats``.

Pure functions over arrays; the checks that use them live in :mod:`dqm.checks.trend`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["cusum", "ewma", "ewma_half_width"]

FloatArray = NDArray[np.float64]


def cusum(z: ArrayLike, k: float) -> tuple[FloatArray, FloatArray]:
    """Two-sided tabular CUSUM of a standardised series.

    ``C⁺ₜ = max(0, C⁺ₜ₋₁ + zₜ − k)``, ``C⁻ₜ = max(0, C⁻ₜ₋₁ − zₜ − k)``, starting at 0;
    an alarm is ``C > h``. ``k`` (allowance, in σ) is half the shift to detect fastest.

    Args:
        z: series standardised with the in-control mean and σ, ``(x − μ₀)/σ``.
        k: allowance in σ units (0.5 is the textbook choice for a 1σ shift).

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
        up = max(0.0, up + value - k)
        down = max(0.0, down - value - k)
        c_plus[i], c_minus[i] = up, down
    return c_plus, c_minus


def ewma(x: ArrayLike, lam: float, mu0: float) -> FloatArray:
    """Exponentially weighted moving average ``wₜ = λ·xₜ + (1 − λ)·wₜ₋₁``, ``w₀ = μ₀``.

    References:
        S. W. Roberts, Technometrics 1 (1959) 239; Lucas & Saccucci,
        Technometrics 32 (1990) 1.
    """
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"EWMA lambda must be in (0, 1], got {lam}")
    series = np.asarray(x, dtype=float)
    out = np.empty_like(series)
    level = mu0
    for i, value in enumerate(series):
        level = lam * value + (1.0 - lam) * level
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
