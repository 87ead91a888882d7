"""Spill-to-spill wander of the beam within its nominal tolerances.

Why: a perfectly static simulated beam is not a clean sample. A real M2 beam moves by a
fraction of a millimetre and breathes by a percent or two from one extraction to the
next, and its intensity changes; a check whose false-alarm rate was measured on a static
beam promises more than it keeps. The wander is the *in-control* variation — anomalies
(``beam_shift``, ``beam_ramp`` …) act on top of it.

Model: each wandering quantity is ``nominal + σ·u_s`` with ``u_s`` a stationary
Gaussian AR(1) series of unit variance across spills, ``u_s = ρ·u_{s−1} + √(1−ρ²)·ε_s``
(ρ = ``SimConfig.beam_wander_correlation``; 0 gives independent spills). To stay
deterministic per ``(seed, run, spill)`` — a spill's content must not depend on which
other spills were generated — ``u_s`` is computed as the (normalised, truncated) moving
sum ``Σ_j ρ^j ε_{s−j}`` with every innovation ``ε_k`` drawn from its own generator
``default_rng([seed, run, WANDER_STREAM, k + _OFFSET])``. Truncation stops where
``ρ^j < 10⁻³``, and the weights are renormalised so that the variance is exactly σ².
The spill's main generator is not touched: with every wander at 0 (the default) a spill
is bit-identical to one simulated before wander existed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["WANDER_STREAM", "WANDER_FIELDS", "wander_offsets", "apply_wander"]

#: Extra seed word that keeps the wander innovations apart from the spill's own draws.
WANDER_STREAM = 0x57414E44  # "WAND"
#: Spill numbers are shifted by this so that the innovations of "spills" before 0 exist.
_OFFSET = 1024
#: Largest AR(1) coefficient accepted (ρ^j < 1e-3 within ~135 spills).
MAX_CORRELATION = 0.95
#: The quantities that wander, in the order of the innovation vector.
WANDER_FIELDS = ("beam_x_mm", "beam_y_mm", "beam_sigma_x_mm", "beam_sigma_y_mm", "intensity")


def _innovation(seed: int, run: int, k: int) -> np.ndarray:
    rng = np.random.default_rng([seed, run, WANDER_STREAM, k + _OFFSET])
    return rng.standard_normal(len(WANDER_FIELDS))


def wander_offsets(seed: int, run: int, spill: int, correlation: float) -> np.ndarray:
    """Unit-variance AR(1) values ``u_s`` of every wandering quantity for one spill.

    Args:
        seed, run, spill: the spill's identity (as for the spill's main generator).
        correlation: AR(1) coefficient ρ in ``[0, MAX_CORRELATION]``.

    Returns:
        One standard-normal value per :data:`WANDER_FIELDS` entry; consecutive spills
        are correlated with coefficient ρ.
    """
    if not 0.0 <= correlation <= MAX_CORRELATION:
        raise ValueError(f"wander correlation must be in [0, {MAX_CORRELATION}], got {correlation}")
    depth = 0 if correlation == 0 else math.ceil(math.log(1e-3) / math.log(correlation))
    weights = correlation ** np.arange(depth + 1)
    weights /= math.sqrt(float(np.sum(weights**2)))
    total = np.zeros(len(WANDER_FIELDS))
    for j, w in enumerate(weights):
        total += w * _innovation(seed, run, spill - j)
    return total


def apply_wander(cfg: Any, spill: int) -> Any:
    """The spill's :class:`~dqm.sim.simulate.SimConfig` with the in-control wander applied.

    Centroids move by ``beam_wander_{x,y}_mm·u``, each width is multiplied by
    ``1 + beam_wander_width_rel·u`` (x and y independently) and the mean number of
    events by ``1 + intensity_wander_rel·u``; both are kept positive.
    """
    sizes = (
        cfg.beam_wander_x_mm,
        cfg.beam_wander_y_mm,
        cfg.beam_wander_width_rel,
        cfg.beam_wander_width_rel,
        cfg.intensity_wander_rel,
    )
    if not any(sizes):
        return cfg
    u = wander_offsets(cfg.seed, cfg.run, spill, cfg.beam_wander_correlation)
    dx, dy, wx, wy, di = (s * v for s, v in zip(sizes, u, strict=True))
    return dataclasses.replace(
        cfg,
        beam_x_mm=cfg.beam_x_mm + dx,
        beam_y_mm=cfg.beam_y_mm + dy,
        beam_sigma_x_mm=cfg.beam_sigma_x_mm * max(1.0 + wx, 0.05),
        beam_sigma_y_mm=cfg.beam_sigma_y_mm * max(1.0 + wy, 0.05),
        events_per_spill=max(1, round(cfg.events_per_spill * max(1.0 + di, 0.0))),
    )
