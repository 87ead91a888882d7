"""NA64mu spill generator: plausible detector columns, fast enough to feed a live demo.

Why a simulator at all: the DQM must be developed and tested without beam, so it needs
spills whose histograms look like NA64mu's (NA64MU.md) and whose anomalies are known.
Every number below is a *default*, never a detector constant: each one is a
:class:`SimConfig` field with its unit in the name.

Why it is vectorised: a spill of 20 000 events must be generated in a few tens of
milliseconds so that a demo can stream many spills per minute; there is no Python loop
over events, only over a handful of stations, modules and shower cells.

Determinism: spill ``s`` of run ``r`` always uses ``default_rng([seed, r, s])``, so its
content does not depend on which other spills were generated, nor in which order. The
spill-to-spill beam wander (``beam_wander_*``, ``intensity_wander_rel``; off by default)
draws from generators of its own, see :mod:`dqm.sim.wander`.
Column-stage anomalies draw from the same generator *after* the physics, so an anomaly
that only alters columns leaves every other value identical to the clean spill.

Physics per event (categories are exclusive; pile-up is overlaid on any of them):

* ordinary muon: momentum measured by BMS (in) and MS2 (out), tracks at the MS1 and MS2
  stations (MS2 x bent by the MBPL magnet by q·P·0.2998·BL·lever/p, q the charge and P the
  magnet polarity: towards +x when they match), a MIP in ECAL (both
  layers), VETO and every HCAL module, Landau-like (lognormal) fluctuations;
* π/K: a hadron shower holding 60–95 % of p in ECAL + HCAL (mostly modules 0–1), a
  decay/punch-through muon of U(p_soft, 0.9 p) in MS2 or no MS2 track at all;
* hard brems (ECAL) or nuclear interaction (HCAL): a fraction U(0.05, 0.6) of p is
  deposited and missing from p_out, so p_in ≈ p_out + E_ECAL + E_HCAL (+ MIPs);
* signal-like: p_out ~ U(p_soft, 0.5 p_beam) and nothing but the muon's MIPs in the
  calorimeters.

Every momentum-like quantity scales with the run's beam momentum ``p_beam_gev`` (the softest
outgoing muon p_soft = ``soft_muon_min_rel``·p_beam, 10 GeV at 160 GeV; the trigger
thresholds; the deposits as fractions of p), so any beam the M2 line delivers (≈ 10–300 GeV,
either charge) is simulated with the same shapes in p/p_beam. (Before, a fixed 10 GeV floor
under U(10, 0.9 p) made the simulator fail below ≈ 11 GeV.)

Calorimeter readout is zero-suppressed: hit cells get Gaussian noise (clipped at 0) and
a small fraction ``noise_occupancy`` of the empty cells carry half-normal noise. (Dense
Gaussian noise on all 118 channels alone would cost ~20 ms per spill.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dqm.core.conditions import RunConditions
from dqm.core.events import (
    COLUMN_BY_NAME,
    DAQ_SOURCES,
    TRIGGER_BITS,
    empty_columns,
    encode_batch,
)
from dqm.errors import ConfigError
from dqm.sim.anomalies import Anomaly, active_anomalies, apply_to_columns, apply_to_config, is_stale
from dqm.sim.calorimetry import add_muon_mips, ecal_shower, gauss, hcal_shower
from dqm.sim.settings import SimConfig
from dqm.sim.wander import apply_wander

__all__ = ["SimConfig", "SpillData", "simulate_spill", "simulate_run", "CATEGORIES"]

#: Truth categories stored in ``SpillData.truth["category"]``.
CATEGORIES: tuple[str, ...] = ("muon", "pik", "brems", "signal")
_MUON, _PIK, _BREMS, _SIGNAL = range(4)
_C_GEV = 0.2998  # p [GeV] = 0.2998 * B [T] * r [m]
_VETO_PLANES = COLUMN_BY_NAME["veto"].shape[0]
_XY_LIMIT_MM = 0.998 * COLUMN_BY_NAME["ms1_x"].hi  # tracks leaving the acceptance sit at its edge


@dataclass
class SpillData:
    """One generated spill: columns as ``events.empty_columns`` gives them, plus truth.

    ``truth`` is not part of the wire format; it lets tests and demos know which events
    were π/K, brems or signal-like (``CATEGORIES``) and which carry pile-up.
    """

    run: int
    spill: int
    n_events: int
    columns: dict[str, np.ndarray]
    anomalies: list[str] = field(default_factory=list)
    active: list[Anomaly] = field(default_factory=list)
    start_offset_s: float = 0.0
    batch_size: int = 2_000
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    #: the run's conditions (not the anomalies': an anomaly is what the run was not meant to be)
    conditions: RunConditions | None = None

    @property
    def n_batches(self) -> int:
        return -(-self.n_events // self.batch_size)

    def batches(self) -> list[bytes]:
        """The spill as consecutive encoded batches of ``batch_size`` events (last one shorter)."""
        out = []
        for b in range(self.n_batches):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            part = {k: v[sl] for k, v in self.columns.items()}
            out.append(encode_batch(self.run, self.spill, b, part))
        return out


@dataclass
class _Event:
    """Per-event truth shared by the generation steps (float64 until written to columns)."""

    category: np.ndarray
    pileup: np.ndarray
    p_true: np.ndarray
    p_out: np.ndarray
    has_track: np.ndarray
    x0: np.ndarray
    y0: np.ndarray


def _interactions(
    cfg: SimConfig, rng: np.random.Generator, flat: dict[str, np.ndarray], ev: _Event
) -> None:
    """Brems/nuclear, signal-like, π/K and pile-up: calorimeter energy and outgoing momentum."""
    rows = np.flatnonzero(ev.category == _BREMS)
    if rows.size:
        dep = rng.uniform(0.05, 0.6, rows.size) * ev.p_true[rows]
        ev.p_out[rows] -= dep
        in_ecal = rng.random(rows.size) < cfg.brems_ecal_share
        r, d = rows[in_ecal], dep[in_ecal]
        pre = rng.uniform(0.05, 0.3, r.size)  # EM shower starts in the preshower
        ecal_shower(cfg, rng, flat["ecal"], r, ev.x0[r], ev.y0[r], d, pre)
        r, d = rows[~in_ecal], dep[~in_ecal]
        hcal_shower(cfg, rng, flat["hcal"], r, ev.x0[r], ev.y0[r], d, (3.0, 2.0, 1.0, 0.5))
    rows = np.flatnonzero(ev.category == _SIGNAL)
    p_lo = cfg.soft_muon_min_rel * cfg.p_beam_gev
    ev.p_out[rows] = rng.uniform(p_lo, cfg.signal_p_out_max_rel * cfg.p_beam_gev, rows.size)
    rows = np.flatnonzero(ev.category == _PIK)
    if rows.size:
        p, x, y = ev.p_true[rows], ev.x0[rows], ev.y0[rows]
        dep = rng.uniform(0.6, 0.95, rows.size) * p
        e_ecal = dep * rng.uniform(0.1, 0.4, rows.size)
        ecal_shower(cfg, rng, flat["ecal"], rows, x, y, e_ecal, np.full(rows.size, 0.1))
        e_hcal = dep - e_ecal
        hcal_shower(cfg, rng, flat["hcal"], rows, x, y, e_hcal, (4.0, 2.5, 1.0, 0.4))
        leak = e_hcal * rng.uniform(0.0, 0.005, rows.size)  # a little into the VHCAL
        flat["vhcal"][rows] += leak[:, None].astype(np.float32)
        splash = rng.uniform(0.0, 5.0, (rows.size, 2 * _VETO_PLANES))  # back-splash, in MIPs
        flat["veto"][rows] += (cfg.veto_mip_gev * splash).astype(np.float32)
        # decay or punch-through muon (a π/K far below the beam momentum still has one) ...
        ev.p_out[rows] = rng.uniform(p_lo, np.maximum(0.9 * p, p_lo))
        ev.has_track[rows] = rng.random(rows.size) >= cfg.pik_no_track_fraction
        ev.p_out[rows[~ev.has_track[rows]]] = 0.0  # ... or nothing reaches MS2
    rows = np.flatnonzero(ev.pileup)
    if rows.size:
        x2 = cfg.beam_x_mm + cfg.beam_sigma_x_mm * rng.standard_normal(rows.size)
        y2 = cfg.beam_y_mm + cfg.beam_sigma_y_mm * rng.standard_normal(rows.size)
        add_muon_mips(cfg, rng, flat, rows, x2, y2)


def _tracks(
    cfg: SimConfig,
    rng: np.random.Generator,
    cols: dict[str, np.ndarray],
    ev: _Event,
    sx: np.ndarray,
    sy: np.ndarray,
) -> None:
    """Positions at every station: centroid + slope*z + resolution; MS2 x bent by the MBPL."""
    n = len(ev.x0)
    z1, z2 = np.asarray(cfg.ms1_z_m), np.asarray(cfg.ms2_z_m)
    # deflection 0.2998*BL/p rad over the lever arm behind the magnet (m -> mm)
    bend = cfg.bend_sign * _C_GEV * cfg.magnet_bl_tm * 1e3 * (z2 - cfg.magnet_z_m)[None, :]
    bend = bend / np.maximum(ev.p_out, 1.0)[:, None]
    plan = (
        ("ms1_x", z1, ev.x0, sx),
        ("ms1_y", z1, ev.y0, sy),
        ("ms2_x", z2, ev.x0, sx),
        ("ms2_y", z2, ev.y0, sy),
    )
    for name, z, c0, slope in plan:
        pos = c0[:, None] + slope[:, None] * z[None, :]
        pos += cfg.ms_resolution_mm * rng.standard_normal((n, z.size))
        if name == "ms2_x":
            pos += bend
        if name.startswith("ms2"):
            pos[~ev.has_track] = 0.0
        cols[name][:] = np.clip(pos, -_XY_LIMIT_MM, _XY_LIMIT_MM)


def _readout_noise(cfg: SimConfig, rng: np.random.Generator, cols: dict[str, np.ndarray]) -> None:
    """Zero-suppressed readout: a few empty channels carry half-normal noise; clip to range."""
    noise = {
        "ecal": cfg.ecal_noise_gev,
        "hcal": cfg.hcal_noise_gev,
        "veto": cfg.veto_noise_gev,
        "vhcal": cfg.vhcal_noise_gev,
    }
    for name, sigma in noise.items():
        arr = cols[name].reshape(-1)
        k = rng.binomial(arr.size, cfg.noise_occupancy)
        arr[rng.integers(0, arr.size, k)] += np.abs(gauss(rng, k, sigma))
        np.clip(arr, 0.0, COLUMN_BY_NAME[name].hi, out=arr)


def _generate(cfg: SimConfig, rng: np.random.Generator) -> tuple[dict, dict]:
    """All columns of one clean spill, and the truth arrays. Draw order is fixed (determinism)."""
    jitter = cfg.intensity_jitter * rng.uniform(-1.0, 1.0)
    n = max(1, round(cfg.events_per_spill * (1.0 + jitter)))
    cols = empty_columns(n)
    flat = {k: cols[k].reshape(n, -1) for k in ("ecal", "hcal", "veto", "vhcal")}
    cols["event"][:] = np.arange(n, dtype=np.uint32)
    length = np.float32(cfg.spill_length_s)
    t = np.sort(rng.random(n, dtype=np.float32)) * length
    cols["time_in_spill_s"][:] = np.minimum(t, np.nextafter(length, np.float32(0)))

    cuts = np.cumsum([cfg.pik_fraction, cfg.brems_fraction, cfg.signal_fraction])
    order = np.array([_PIK, _BREMS, _SIGNAL, _MUON], dtype=np.uint8)
    category = order[np.searchsorted(cuts, rng.random(n), side="right")]
    pileup = rng.random(n) < cfg.pileup_fraction
    random_trig = rng.random(n) < cfg.random_trigger_fraction

    p_true = cfg.p_beam_gev * (1.0 + cfg.beam_momentum_spread * rng.standard_normal(n))
    p_bms = p_true * cfg.bms_scale * (1.0 + cfg.bms_resolution * rng.standard_normal(n))
    ms2_smear = cfg.ms2_scale * (1.0 + cfg.ms2_resolution * rng.standard_normal(n))
    x0 = cfg.beam_x_mm + cfg.beam_sigma_x_mm * rng.standard_normal(n)
    y0 = cfg.beam_y_mm + cfg.beam_sigma_y_mm * rng.standard_normal(n)
    sx = cfg.beam_slope_x_mrad + cfg.beam_divergence_x_mrad * rng.standard_normal(n)
    sy = cfg.beam_slope_y_mrad + cfg.beam_divergence_y_mrad * rng.standard_normal(n)
    ev = _Event(category, pileup, p_true, p_true.copy(), np.ones(n, dtype=bool), x0, y0)

    add_muon_mips(cfg, rng, flat, np.arange(n), x0, y0)
    _interactions(cfg, rng, flat, ev)
    p_hi = COLUMN_BY_NAME["p_bms"].hi
    cols["p_bms"][:] = np.clip(p_bms, 0.0, p_hi)
    cols["p_ms2"][:] = np.clip(ev.p_out * ms2_smear, 0.0, p_hi)
    _tracks(cfg, rng, cols, ev, sx, sy)

    # Physics trigger on the true signature (low p_out, or hadron-like HCAL); beam otherwise.
    hcal_sum = flat["hcal"].sum(axis=1)
    physics = (ev.p_out < cfg.trigger_p_out_max_gev) | (hcal_sum > cfg.trigger_hcal_min_gev)
    bits = np.where(physics, 1 << TRIGGER_BITS.index("physics"), 1 << TRIGGER_BITS.index("beam"))
    cols["trigger_bits"][:] = bits | (random_trig * (1 << TRIGGER_BITS.index("random")))
    cols["daq_sources"][:] = (1 << len(DAQ_SOURCES)) - 1
    _readout_noise(cfg, rng, cols)
    truth = {"category": category, "pileup": pileup, "p_true": p_true, "p_out_true": ev.p_out}
    return cols, truth


def simulate_spill(
    cfg: SimConfig, spill: int, anomalies: Iterable[Anomaly] = (), *, start_offset_s: float = 0.0
) -> SpillData | None:
    """Generate one spill (None when a ``stale`` anomaly suppresses it).

    ``start_offset_s`` is when the spill starts relative to the run (for replay pacing);
    :func:`simulate_run` sets it to ``(spill - first_spill) * spill_period_s``.
    """
    if spill < 0:
        raise ConfigError("spill", spill, ">= 0")
    active = active_anomalies(anomalies, spill)
    if is_stale(active, spill):
        return None
    # in-control wander first: anomalies (beam_shift, beam_ramp …) act on top of it
    spill_cfg = apply_to_config(apply_wander(cfg, spill), active, spill)
    rng = np.random.default_rng([cfg.seed, cfg.run, spill])
    cols, truth = _generate(spill_cfg, rng)
    apply_to_columns(cols, active, spill, rng, spill_cfg)
    return SpillData(
        run=cfg.run,
        spill=spill,
        n_events=int(cols["event"].shape[0]),
        columns=cols,
        anomalies=[a.kind for a in active],
        active=active,
        start_offset_s=start_offset_s,
        batch_size=cfg.batch_size,
        truth=truth,
        conditions=cfg.conditions(),
    )


def simulate_run(
    cfg: SimConfig, anomalies: Iterable[Anomaly] = (), first_spill: int = 1
) -> Iterator[SpillData]:
    """Spills ``first_spill .. first_spill + n_spills - 1``; stale ones are skipped (a gap)."""
    anomalies = list(anomalies)
    for spill in range(first_spill, first_spill + cfg.n_spills):
        start = (spill - first_spill) * cfg.spill_period_s
        data = simulate_spill(cfg, spill, anomalies, start_offset_s=start)
        if data is not None:
            yield data
