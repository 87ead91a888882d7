"""Per-bin and per-cell significance of observed counts against a reference, honest at low counts.

Why not the Gaussian pull: a spill of 3000 events laid over a reference run of 20 000
expects 0.15 counts in a tail bin the reference filled once; one event there is a
(1 − 0.15)/√0.15 ≈ 2.2σ "pull", three are 7σ, and an ECAL cell that expects 0.3 hits and
sees none reads as "dead" on a ratio map. The expert's ratio, pull panels and cell
maps must stay quiet on healthy spills and light up on real changes, so the
significance here is the exact Poisson tail probability turned into a one-sided
normal z-score, signed by the direction of the change:

* an excess (``n > e``) is judged against the upper expectation ``s·(r + 1)``
  (the reference's own count uncertainty: an empty reference bin is not "expects 0");
* a deficit (``n < e``) against ``s·r``,

with ``s = N/M`` the ratio of the observed to the reference total. A bin both empty
and expected empty is 0.

Layer: pure (numpy/scipy arrays in, arrays out); no plotting, no I/O.
Reference: Cousins, Linnemann & Tucker, NIM A 595 (2008) 480, "Evaluation of three
methods for calculating statistical significance when incorporating a systematic
uncertainty into a test of the background-only hypothesis" (the Poisson z-value).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

__all__ = ["poisson_z", "significance_vs_reference", "QUIET_SIGMA"]

#: |z| below which a bin is "as expected": drawn grey, never red
QUIET_SIGMA = 3.0
#: z is capped here (a tail probability below ~1e-300 has no meaning left)
_Z_MAX = 37.0


def poisson_z(observed: ArrayLike, low: ArrayLike, high: ArrayLike | None = None) -> NDArray:
    """Signed z-score of Poisson counts against an expectation known to lie in [low, high].

    Args:
        observed: counts ``n``.
        low: expectation used for a deficit (``n < low``): z from P(N ≤ n | low).
        high: expectation used for an excess (``n > high``): z from P(N ≥ n | high);
            ``low`` when not given.

    Returns:
        z with the shape of ``observed``: negative for a deficit, positive for an
        excess, 0 where ``low ≤ n ≤ high``; capped at ±37.
    """
    n = np.asarray(observed, dtype=float)
    lo = np.broadcast_to(np.asarray(low, dtype=float), n.shape)
    hi = lo if high is None else np.broadcast_to(np.asarray(high, dtype=float), n.shape)
    z = np.zeros(n.shape)
    deficit = n < lo
    excess = n > hi
    if deficit.any():
        p = stats.poisson.cdf(n[deficit], lo[deficit])
        z[deficit] = -np.minimum(stats.norm.isf(np.clip(p, 1e-300, 0.5)), _Z_MAX)
    if excess.any():
        p = stats.poisson.sf(n[excess] - 1, hi[excess])  # P(N >= n)
        z[excess] = np.minimum(stats.norm.isf(np.clip(p, 1e-300, 0.5)), _Z_MAX)
    return z


def significance_vs_reference(observed: ArrayLike, reference: ArrayLike) -> NDArray:
    """Signed Poisson z of each bin/cell of ``observed`` against ``reference`` scaled to it.

    Args:
        observed: counts of this spill (range), any shape.
        reference: reference counts, same shape.

    Returns:
        z per bin (0 everywhere when either total is 0).
    """
    n = np.asarray(observed, dtype=float)
    r = np.clip(np.asarray(reference, dtype=float), 0.0, None)
    total, ref_total = float(n.sum()), float(r.sum())
    if total <= 0 or ref_total <= 0:
        return np.zeros(n.shape)
    s = total / ref_total
    return poisson_z(n, s * r, s * (r + 1.0))
