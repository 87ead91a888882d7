"""What each anomaly kind does to a spill: the registry behind ``--anomaly``.

Why apart from the syntax (:mod:`dqm.sim.anomalies`): a kind is physics — a dead or hot
calorimeter cell, a cell's or a module's gain, a DAQ source lost for part of a spill, a beam
that moves, widens or thins out, a momentum scale that is off or drifts, more π/K — and
adding one is adding one entry to :data:`ANOMALY_KINDS` (its stage, its parameters with
type, default and meaning, and the function that applies it). Parsing, checking and
describing are driven by that declaration.

Stages: ``config`` kinds return the changed :class:`~dqm.sim.settings.SimConfig` fields
before the spill is generated; ``columns`` kinds alter the generated columns in place
(drawing from the spill's own generator after the physics); ``skip`` (``stale``) suppresses
the spill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqm.core.events import COLUMN_BY_NAME, DAQ_SOURCES, SOURCE_COLUMNS

__all__ = [
    "AnomalyKind",
    "Param",
    "ANOMALY_KINDS",
    "DEMO_ANOMALY_CYCLE",
    "DETECTOR_CELLS",
    "DEFAULT_CELL",
    "fmt_param",
]

#: Calorimeter-like detectors: per-event cell shape of their column (see ``events.COLUMNS``).
DETECTOR_CELLS: dict[str, tuple[int, ...]] = {
    name: COLUMN_BY_NAME[name].shape for name in ("ecal", "hcal", "veto", "vhcal")
}
#: Default cell per detector when ``cell=`` is omitted: one the beam actually hits.
DEFAULT_CELL = {"ecal": (1, 2, 2), "hcal": (0, 1, 1), "veto": (0, 0), "vhcal": (0, 0)}


@dataclass(frozen=True)
class Param:
    """One anomaly parameter: type name (float|int|str|cell), default, one-line meaning."""

    type: str
    default: Any
    doc: str


@dataclass(frozen=True)
class AnomalyKind:
    """A registered anomaly: its stage, parameters and the function applying it."""

    name: str
    stage: str  # "config" | "columns" | "skip"
    doc: str
    params: Mapping[str, Param]
    apply: Callable[..., Any] | None = None

    def usage(self) -> str:
        ps = ",".join(f"{k}={fmt_param(p.default)}" for k, p in self.params.items())
        return f"{self.name}@SPILLS" + (f":{ps}" if ps else "")


def fmt_param(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    return "auto" if value is None else str(value)


# --------------------------------------------------------------------------- applying


def _cell_view(columns: dict[str, np.ndarray], ps: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    return columns[ps["detector"]], (slice(None), *ps["cell"])


def _dead_cell(columns, ps, rng, cfg) -> None:
    arr, idx = _cell_view(columns, ps)
    arr[idx] = 0.0


def _hot_cell(columns, ps, rng, cfg) -> None:
    arr, idx = _cell_view(columns, ps)
    n = arr.shape[0]
    fires = rng.random(n) < ps["fraction"]
    extra = rng.exponential(ps["mean_gev"], int(fires.sum())).astype(np.float32)
    arr[idx][fires] = np.minimum(arr[idx][fires] + extra, COLUMN_BY_NAME[ps["detector"]].hi)


def _cell_gain(columns, ps, rng, cfg) -> None:
    arr, idx = _cell_view(columns, ps)
    arr[idx] = np.minimum(arr[idx] * np.float32(ps["factor"]), COLUMN_BY_NAME[ps["detector"]].hi)


def _hv_group(columns, ps, rng, cfg) -> None:
    """Every ECAL cell of column ``ix`` of one layer loses the same few % of gain: the cells
    that share one high-voltage supply (an HV group) when its voltage sags. Each cell stays
    under the per-cell gain check's 5 % and the ECAL total moves by a fraction of its bin
    width; only the pattern — one whole column low against its neighbours — shows it."""
    columns["ecal"][:, ps["layer"], ps["ix"], :] *= np.float32(ps["factor"])


def _hcal_gain_drop(columns, ps, rng, cfg) -> None:
    columns["hcal"][:, ps["module"]] *= np.float32(ps["factor"])


def _beam_tilt(columns, ps, rng, cfg) -> None:
    """x–y coupling at every MS1 station with the marginals kept: y becomes
    ``ρ·x̃ + √(1−ρ²)·ỹ`` in standardised units (a rotated beam ellipse, e.g. a skew
    quadrupole). Centroids and widths stay as they were; only the x–y maps show it."""
    x, y = columns["ms1_x"], columns["ms1_y"]
    rho = float(ps["rho"])
    for station in range(x.shape[1]):
        xs, ys = x[:, station].astype(float), y[:, station].astype(float)
        mx, sx, my, sy = np.nanmean(xs), np.nanstd(xs), np.nanmean(ys), np.nanstd(ys)
        if not (sx > 0 and sy > 0):
            continue
        coupled = my + sy * (rho * (xs - mx) / sx + np.sqrt(1 - rho * rho) * (ys - my) / sy)
        y[:, station] = coupled.astype(y.dtype)


def _calo_desync(columns, ps, rng, cfg) -> None:
    """The HCAL (and VHCAL) data of each event come from ``shift`` events later: an event
    builder off by a few events between the ECAL and HCAL front-ends. Every detector's own
    spectra stay the same; what pairs them (the ECAL–HCAL energy correlation) is lost."""
    n = columns["hcal"].shape[0]
    first = int(n * float(ps["from_fraction"]))
    for name in ("hcal", "vhcal"):
        columns[name][first:] = np.roll(columns[name][first:], int(ps["shift"]), axis=0)


def _without_source(time_s: np.ndarray, ps: dict[str, Any], spill_length_s: float) -> np.ndarray:
    """Events inside the ``missing_source`` window (see the module docstring)."""
    if ps["start_s"] is not None or ps["end_s"] is not None:
        start = ps["start_s"] or 0.0
        end = np.inf if ps["end_s"] is None else ps["end_s"]
        return (time_s >= start) & (time_s < end)
    if ps["from_fraction"] is not None or ps["to_fraction"] is not None:
        n = len(time_s)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(time_s, kind="stable")] = np.arange(n)
        lo = ps["from_fraction"] or 0.0
        hi = 1.0 if ps["to_fraction"] is None else ps["to_fraction"]
        return (rank >= lo * n) & (rank < hi * n)
    fraction = 0.5 if ps["fraction"] is None else ps["fraction"]
    return time_s >= (1.0 - fraction) * spill_length_s


def _missing_source(columns, ps, rng, cfg) -> None:
    bit = DAQ_SOURCES.index(ps["source"])
    lost = _without_source(columns["time_in_spill_s"], ps, cfg.spill_length_s)
    columns["daq_sources"][lost] &= np.uint16(~(1 << bit) & 0xFFFF)
    for name in SOURCE_COLUMNS[ps["source"]]:
        columns[name][lost] = 0


def _config(**changes: Callable[[Any, dict, int], Any]) -> Callable[[Any, Any, int], dict]:
    """A config-stage apply: field -> f(cfg, params, spills since first_spill)."""

    def apply(cfg: Any, a: Any, spill: int) -> dict:
        return {k: f(cfg, a.params, spill - a.first_spill) for k, f in changes.items()}

    return apply


def _scaled(*settings: str) -> Callable[[Any, Any, int], dict]:
    """A config-stage apply multiplying each of ``settings`` by the anomaly's ``factor``."""
    return _config(
        **{name: (lambda c, p, k, name=name: getattr(c, name) * p["factor"]) for name in settings}
    )


def _ramped_centroid() -> Callable[[Any, Any, int], dict]:
    """``beam_ramp``: the centroid along ``axis`` moves by ``rate_mm`` per spill since the first."""
    return _config(
        **{
            f"beam_{axis}_mm": (
                lambda c, p, k, axis=axis: (
                    getattr(c, f"beam_{axis}_mm") + (p["rate_mm"] * k if p["axis"] == axis else 0.0)
                )
            )
            for axis in ("x", "y")
        }
    )


def _scaled_events(cfg: Any, factor: float) -> int:
    return max(1, round(cfg.events_per_spill * factor))


def _kind_of(name: str, stage: str, doc: str, apply: Any = None, **params: tuple) -> AnomalyKind:
    return AnomalyKind(name, stage, doc, {k: Param(*v) for k, v in params.items()}, apply)


_CELL = {
    "detector": ("str", "ecal", "ecal | hcal | veto | vhcal"),
    "cell": ("cell", None, "cell with slashes, e.g. ecal layer/ix/iy = 1/2/3 (auto: a beam cell)"),
}

#: Every anomaly kind, in the order the help text lists them.
ANOMALY_KINDS: dict[str, AnomalyKind] = {
    k.name: k
    for k in (
        _kind_of("dead_cell", "columns", "a calorimeter cell reads 0", _dead_cell, **_CELL),
        _kind_of(
            "hot_cell",
            "columns",
            "a calorimeter cell fires with large random energy",
            _hot_cell,
            **_CELL,
            fraction=("float", 0.3, "fraction of events in which the cell fires"),
            mean_gev=("float", 5.0, "mean of the exponential extra energy"),
        ),
        _kind_of(
            "cell_gain",
            "columns",
            "one calorimeter cell's gain changes (its energies are scaled; its module's other "
            "cells are not)",
            _cell_gain,
            **_CELL,
            factor=("float", 0.8, "energy multiplier of that cell"),
        ),
        _kind_of(
            "hv_group",
            "columns",
            "the ECAL cells of one column of one layer (one HV group) lose the same few % of "
            "gain, each under the per-cell gain check's tolerance",
            _hv_group,
            layer=("int", 0, "ECAL layer: 0 preshower, 1 main"),
            ix=("int", 3, "the column of cells (x index 0..5) on the sagging HV supply"),
            factor=("float", 0.96, "energy multiplier of every cell of the column"),
        ),
        _kind_of(
            "hcal_gain_drop",
            "columns",
            "an HCAL module's gain drops",
            _hcal_gain_drop,
            module=("int", 0, "HCAL module 0..3"),
            factor=("float", 0.8, "energy multiplier"),
        ),
        _kind_of(
            "beam_shift",
            "config",
            "the beam centroid moves",
            _config(
                beam_x_mm=lambda c, p, k: c.beam_x_mm + p["dx_mm"],
                beam_y_mm=lambda c, p, k: c.beam_y_mm + p["dy_mm"],
            ),
            dx_mm=("float", 3.0, "x shift"),
            dy_mm=("float", 0.0, "y shift"),
        ),
        _kind_of(
            "beam_ramp",
            "config",
            "the beam centroid moves steadily, spill after spill, from the first spill on "
            "(by rate_mm per spill since the first, like momentum_drift)",
            _ramped_centroid(),
            axis=("str", "x", "x | y"),
            rate_mm=("float", 0.2, "centroid change per spill [mm]"),
        ),
        _kind_of(
            "beam_width",
            "config",
            "the beam gets wider (or narrower)",
            _scaled("beam_sigma_x_mm", "beam_sigma_y_mm"),
            factor=("float", 1.3, "multiplier of both beam sigmas"),
        ),
        _kind_of(
            "intensity_drop",
            "config",
            "far fewer events in the spill",
            _config(events_per_spill=lambda c, p, k: _scaled_events(c, p["factor"])),
            factor=("float", 0.5, "multiplier of events per spill"),
        ),
        _kind_of(
            "bms_scale",
            "config",
            "the BMS momentum scale is off",
            _scaled("bms_scale"),
            factor=("float", 1.02, "multiplier of the BMS momentum scale"),
        ),
        _kind_of(
            "ms2_scale",
            "config",
            "the MS2 momentum scale is off",
            _scaled("ms2_scale"),
            factor=("float", 1.02, "multiplier of the MS2 momentum scale"),
        ),
        _kind_of(
            "momentum_drift",
            "config",
            "the MS2 momentum scale drifts slowly, spill after spill",
            _config(ms2_scale=lambda c, p, k: c.ms2_scale * (1.0 + p["per_spill"] * k)),
            per_spill=("float", 0.001, "relative scale change per spill since the first"),
        ),
        _kind_of(
            "pik_boost",
            "config",
            "more pi/K in the beam",
            _config(pik_fraction=lambda c, p, k: min(1.0, c.pik_fraction * p["factor"])),
            factor=("float", 5.0, "multiplier of the pi/K fraction"),
        ),
        _kind_of(
            "missing_source",
            "columns",
            "a DAQ source drops out of the events for a window of the spill",
            _missing_source,
            source=("str", "ECAL", "one of " + "|".join(DAQ_SOURCES)),
            fraction=(
                "float",
                None,
                "last fraction of the spill (in time) without the source (no window: 0.5)",
            ),
            start_s=("float", None, "window start [s since the spill started] (auto: 0)"),
            end_s=("float", None, "window end [s] (auto: the end of the spill)"),
            from_fraction=("float", None, "window start as a share of the events, in time order"),
            to_fraction=("float", None, "window end as a share of the events (auto: 1)"),
        ),
        _kind_of(
            "beam_tilt",
            "columns",
            "the beam's x and y become correlated at MS1 (a rotated beam ellipse), centroids "
            "and widths unchanged",
            _beam_tilt,
            rho=("float", 0.3, "x–y correlation coefficient"),
        ),
        _kind_of(
            "calo_desync",
            "columns",
            "the HCAL data of each event come from another event (event builder out of step "
            "between ECAL and HCAL): each spectrum unchanged, their correlation lost",
            _calo_desync,
            shift=("int", 1, "events by which the HCAL data are displaced"),
            from_fraction=("float", 0.0, "first share of the spill's events still in step"),
        ),
        _kind_of("stale", "skip", "no spill data arrives at all"),
    )
}

#: Anomalies the demo rotates through, one per "bad" spill, covering every shifter alarm.
DEMO_ANOMALY_CYCLE: list[str] = [
    "dead_cell:detector=ecal,cell=1/2/2",
    "hot_cell:detector=ecal,cell=1/4/1",
    "hcal_gain_drop:module=1,factor=0.8",
    "cell_gain:detector=ecal,cell=1/3/2,factor=0.8",
    "beam_shift:dx_mm=3",
    "beam_width:factor=1.3",
    "intensity_drop:factor=0.5",
    "bms_scale:factor=1.02",
    "ms2_scale:factor=0.98",
    "pik_boost:factor=5",
    "momentum_drift:per_spill=0.005",  # a drift shows only over a multi-spill range
    "beam_ramp:axis=y,rate_mm=0.6",  # also multi-spill: 2.4 mm off by its fifth spill
    "missing_source:source=MS2,fraction=0.5",
    "beam_tilt:rho=0.3",  # no rule sees it; the learned beam model does (docs/learned.md)
    "calo_desync:shift=1",
    "hv_group:layer=0,ix=3,factor=0.96",  # every cell inside the rules' ±5 %; the model sees it
    "stale",
]
