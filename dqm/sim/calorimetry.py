"""Calorimeter response of the simulator: MIPs of a crossing muon, EM and hadronic showers.

Why apart: the energy a particle leaves in the ECAL, HCAL and VETO is the physics of the
detectors, shared by every event category of :mod:`dqm.sim.simulate` (a muon's MIPs, a
brems or π/K shower, a pile-up muon). Everything is vectorised over the events of a
category; the only Python loops run over the 3x3 cells of a shower and the HCAL modules.
Energies are in GeV, positions in mm at the calorimeter face (the beam axis at 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dqm.core.events import COLUMN_BY_NAME
from dqm.sim.settings import SimConfig

__all__ = ["lognormal", "gauss", "cells", "add_muon_mips", "ecal_shower", "hcal_shower"]

_ECAL_N = COLUMN_BY_NAME["ecal"].shape[1]  # 6 cells per side
_HCAL_MODULES, _HCAL_N = COLUMN_BY_NAME["hcal"].shape[:2]  # 4 modules of 3x3
_VETO_PLANES = COLUMN_BY_NAME["veto"].shape[0]


def lognormal(rng: np.random.Generator, shape: Any, sigma: float) -> np.ndarray:
    """Mean-1 lognormal: a cheap stand-in for a Landau energy-loss fluctuation."""
    g = rng.standard_normal(shape, dtype=np.float32)
    return np.exp(g * np.float32(sigma) - np.float32(0.5 * sigma**2))


def gauss(rng: np.random.Generator, shape: Any, sigma: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _cell(pos_mm: np.ndarray, cell_mm: float, n_cells: int) -> np.ndarray:
    """Cell index of a position on an n_cells-wide calorimeter centred on the beam axis."""
    return np.clip(np.floor(pos_mm / cell_mm + n_cells / 2), 0, n_cells - 1).astype(np.intp)


def cells(x_mm: np.ndarray, y_mm: np.ndarray, cell_mm: float, n_cells: int) -> tuple:
    return _cell(x_mm, cell_mm, n_cells), _cell(y_mm, cell_mm, n_cells)


def add_muon_mips(
    cfg: SimConfig,
    rng: np.random.Generator,
    flat: dict[str, np.ndarray],
    rows: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
) -> None:
    """A minimum-ionising muon crossing ECAL (both layers), VETO and every HCAL module."""
    m, s = len(rows), cfg.mip_fluctuation
    ix, iy = cells(x_mm, y_mm, cfg.ecal_cell_mm, _ECAL_N)
    ecell = ix * _ECAL_N + iy
    e = cfg.ecal_mip_gev * lognormal(rng, (2, m), s) + gauss(rng, (2, m), cfg.ecal_noise_gev)
    flat["ecal"][rows, ecell] += e[0] * np.float32(cfg.ecal_preshower_share)
    flat["ecal"][rows, _ECAL_N**2 + ecell] += e[1] * np.float32(1.0 - cfg.ecal_preshower_share)
    hx, hy = cells(x_mm, y_mm, cfg.hcal_cell_mm, _HCAL_N)
    hcell = np.arange(_HCAL_MODULES) * _HCAL_N**2 + (hx * _HCAL_N + hy)[:, None]
    h = cfg.hcal_mip_gev_per_module * lognormal(rng, (m, _HCAL_MODULES), s)
    flat["hcal"][rows[:, None], hcell] += h + gauss(rng, h.shape, cfg.hcal_noise_gev)
    counter = (x_mm >= 0).astype(np.intp)  # counters split left/right of the beam axis
    v = cfg.veto_mip_gev * lognormal(rng, (m, _VETO_PLANES), s)
    vcell = np.arange(_VETO_PLANES) * 2 + counter[:, None]
    flat["veto"][rows[:, None], vcell] += v + gauss(rng, v.shape, cfg.veto_noise_gev)


def _add_shower(
    rng: np.random.Generator,
    flat: np.ndarray,
    rows: np.ndarray,
    base: int,
    ix: np.ndarray,
    iy: np.ndarray,
    n_cells: int,
    energy: np.ndarray,
    centre_share: float,
) -> None:
    """Spread ``energy`` over the 3x3 cells around (ix, iy); cells beyond the edge fold back."""
    w = rng.uniform(0.5, 1.5, (len(rows), 9)) * ((1.0 - centre_share) / 8)
    w[:, 4] = centre_share
    w *= (energy / w.sum(axis=1))[:, None]
    for k, (dx, dy) in enumerate((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)):
        cx, cy = np.clip(ix + dx, 0, n_cells - 1), np.clip(iy + dy, 0, n_cells - 1)
        flat[rows, base + cx * n_cells + cy] += w[:, k].astype(np.float32)


def hcal_shower(
    cfg: SimConfig,
    rng: np.random.Generator,
    flat: np.ndarray,
    rows: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    energy: np.ndarray,
    alpha: tuple[float, ...],
) -> None:
    """A hadronic shower shared between HCAL modules by Dirichlet(alpha): early modules first."""
    share = rng.dirichlet(alpha, len(rows))
    hx, hy = cells(x_mm, y_mm, cfg.hcal_cell_mm, _HCAL_N)
    for mod in range(_HCAL_MODULES):
        e = energy * share[:, mod]
        _add_shower(rng, flat, rows, mod * _HCAL_N**2, hx, hy, _HCAL_N, e, 0.7)


def ecal_shower(
    cfg: SimConfig,
    rng: np.random.Generator,
    flat: np.ndarray,
    rows: np.ndarray,
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    energy: np.ndarray,
    preshower: np.ndarray,
) -> None:
    """An electromagnetic (or early hadronic) shower; ``preshower`` is the first layer's share."""
    ix, iy = cells(x_mm, y_mm, cfg.ecal_cell_mm, _ECAL_N)
    _add_shower(rng, flat, rows, 0, ix, iy, _ECAL_N, energy * preshower, 0.6)
    _add_shower(rng, flat, rows, _ECAL_N**2, ix, iy, _ECAL_N, energy * (1.0 - preshower), 0.7)
