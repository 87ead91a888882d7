"""Detector and beam anomalies the simulator can inject, and their compact CLI syntax.

Why a registry: every anomaly a shifter must be told about (NA64MU.md) has to be
injectable on chosen spills so that the checks and the control-room views can be
tested end to end. Each kind declares its parameters (type, default, meaning) once;
the parser, the error messages and :meth:`Anomaly.describe` are all driven by that
declaration, so adding a kind means adding one entry to :data:`ANOMALY_KINDS`.

Syntax: ``kind[@spills][:param=value,...]`` where spills is ``5`` (only spill 5),
``10-14`` (inclusive) or ``7-`` (open ended); no ``@`` means every spill. Cells are
written with slashes: ``dead_cell@5:detector=ecal,cell=1/2/3`` (ECAL layer/ix/iy, HCAL
module/ix/iy: ``cell_gain@5-:detector=hcal,cell=2/1/0,factor=0.8``). An optional
parameter (default ``auto``) is left out of the compact form while it is not set.

``missing_source`` takes the window of the spill without the source in one of three
ways: ``fraction=0.3`` (the last 30 % of the spill in time, the original syntax),
``start_s=1.2,end_s=2.0`` (seconds since the start of the spill; either end may be
left out), or ``from_fraction=0.25,to_fraction=0.5`` (that share of the spill's events,
in time order). With none of them, the second half of the spill.

Kinds act at one of three stages of :func:`dqm.sim.simulate.simulate_spill`:
``config`` (the spill's :class:`~dqm.sim.simulate.SimConfig` is changed before generation:
beam, intensity, momentum scales, π/K fraction), ``columns`` (the generated columns are
altered: dead/hot cells, per-cell gain, module gain drop, missing DAQ source) and ``skip``
(``stale``: no spill is produced at all).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dqm.core.events import COLUMN_BY_NAME, DAQ_SOURCES, SOURCE_COLUMNS
from dqm.errors import ConfigError

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "Param",
    "ANOMALY_KINDS",
    "DEMO_ANOMALY_CYCLE",
    "DETECTOR_CELLS",
    "SOURCE_COLUMNS",
    "parse_anomaly",
    "parse_anomalies",
    "active_anomalies",
    "is_stale",
    "apply_to_config",
    "apply_to_columns",
]

_SETTING = "--anomaly"

#: Calorimeter-like detectors: per-event cell shape of their column (see ``events.COLUMNS``).
DETECTOR_CELLS: dict[str, tuple[int, ...]] = {
    name: COLUMN_BY_NAME[name].shape for name in ("ecal", "hcal", "veto", "vhcal")
}
#: Default cell per detector when ``cell=`` is omitted: one the beam actually hits.
_DEFAULT_CELL = {"ecal": (1, 2, 2), "hcal": (0, 1, 1), "veto": (0, 0), "vhcal": (0, 0)}


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
        ps = ",".join(f"{k}={_fmt(p.default)}" for k, p in self.params.items())
        return f"{self.name}@SPILLS" + (f":{ps}" if ps else "")


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(str(v) for v in value)
    return "auto" if value is None else str(value)


@dataclass(frozen=True)
class Anomaly:
    """An anomaly of ``kind`` active on spills ``first_spill..last_spill`` (None: open ended).

    ``params`` is normalised on construction: defaults filled in, values converted and
    checked, so an Anomaly built directly is as safe as one from :func:`parse_anomaly`.
    """

    kind: str
    first_spill: int = 0
    last_spill: int | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        text = str(self)
        spec = _kind(self.kind, text)
        last = self.first_spill if self.last_spill is None else self.last_spill
        if self.first_spill < 0 or last < self.first_spill:
            raise ConfigError(_SETTING, text, "a spill range 'N', 'N-M' with M >= N >= 0, or 'N-'")
        unknown = set(self.params) - set(spec.params)
        if unknown:
            key = sorted(unknown)[0]
            raise ConfigError(_SETTING, text, _unknown_param_msg(spec, key))
        values = {k: self.params.get(k, p.default) for k, p in spec.params.items()}
        object.__setattr__(self, "params", _normalise(spec, values, text))

    def __hash__(self) -> int:  # params is a dict: hash the canonical text instead
        return hash(str(self))

    def active(self, spill: int) -> bool:
        """True if this anomaly affects ``spill``."""
        return spill >= self.first_spill and (self.last_spill is None or spill <= self.last_spill)

    def spills_text(self) -> str:
        if self.last_spill is None:
            return f"{self.first_spill}-" if self.first_spill else ""
        if self.last_spill == self.first_spill:
            return str(self.first_spill)
        return f"{self.first_spill}-{self.last_spill}"

    def __str__(self) -> str:
        """The compact form; ``parse_anomaly(str(a)) == a``."""
        spills = self.spills_text()
        out = self.kind + (f"@{spills}" if spills else "")
        ps = ",".join(f"{k}={_fmt(v)}" for k, v in self.params.items() if v is not None)
        return out + (f":{ps}" if ps else "")

    def describe(self) -> str:
        """One human sentence for logs and the control room, e.g. for the shifter's banner."""
        spec = ANOMALY_KINDS[self.kind]
        if self.last_spill is None:
            when = f"from spill {self.first_spill} on" if self.first_spill else "in every spill"
        elif self.last_spill == self.first_spill:
            when = f"in spill {self.first_spill}"
        else:
            when = f"in spills {self.first_spill}-{self.last_spill}"
        ps = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items() if v is not None)
        return f"{self.kind} {when}: {spec.doc}" + (f" ({ps})" if ps else "")


# --------------------------------------------------------------------------- parsing


def _closest(name: str, options: Iterable[str]) -> str:
    """'did you mean ...? ' for the closest option (a prefix match counts), or ''."""
    options = list(options)
    close = [o for o in options if name and o.startswith(name)] or difflib.get_close_matches(
        name, options, n=1, cutoff=0.5
    )
    return f"did you mean '{close[0]}'? " if close else ""


def _kind(name: str, text: str) -> AnomalyKind:
    spec = ANOMALY_KINDS.get(name)
    if spec is None:
        hint = _closest(name, ANOMALY_KINDS)
        valid = ", ".join(ANOMALY_KINDS)
        raise ConfigError(_SETTING, text, f"a known anomaly kind ({hint}valid kinds: {valid})")
    return spec


def _unknown_param_msg(spec: AnomalyKind, key: str) -> str:
    hint = _closest(key, spec.params)
    valid = ", ".join(spec.params) or "none"
    return (
        f"a parameter of {spec.name} ({hint}unknown '{key}'; valid: {valid}; usage: {spec.usage()})"
    )


def _normalise(spec: AnomalyKind, values: dict[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in values.items():
        p = spec.params[key]
        try:
            if p.default is None and p.type != "cell" and raw in (None, "", "auto"):
                out[key] = None  # an optional parameter left unset
            elif p.type == "float":
                out[key] = float(raw)
                if not np.isfinite(out[key]):
                    raise ValueError(raw)
            elif p.type == "int":
                out[key] = int(raw)
            elif p.type == "cell":
                if raw is None or raw == "auto":
                    out[key] = None
                else:
                    parts = raw.split("/") if isinstance(raw, str) else raw
                    out[key] = tuple(int(v) for v in parts)
            else:
                out[key] = str(raw)
        except (TypeError, ValueError):
            raise ConfigError(_SETTING, text, f"{key} of type {p.type} ({p.doc})") from None
    _check(spec.name, out, text)
    return out


def _check(kind: str, ps: dict[str, Any], text: str) -> None:
    """Semantic checks that need more than a type: detector names, cell ranges, factors."""
    if "detector" in ps:
        det = ps["detector"] = ps["detector"].lower()
        if det not in DETECTOR_CELLS:
            raise ConfigError(_SETTING, text, f"detector one of {', '.join(DETECTOR_CELLS)}")
        shape = DETECTOR_CELLS[det]
        cell = ps["cell"] if ps.get("cell") is not None else _DEFAULT_CELL[det]
        if len(cell) != len(shape) or any(
            not 0 <= c < s for c, s in zip(cell, shape, strict=False)
        ):
            dims = "/".join(f"0..{s - 1}" for s in shape)
            raise ConfigError(_SETTING, text, f"cell of {det} as {dims}")
        ps["cell"] = cell
    if "module" in ps and not 0 <= ps["module"] < DETECTOR_CELLS["hcal"][0]:
        raise ConfigError(_SETTING, text, f"module 0..{DETECTOR_CELLS['hcal'][0] - 1}")
    if "axis" in ps:
        ps["axis"] = ps["axis"].lower()
        if ps["axis"] not in ("x", "y"):
            raise ConfigError(_SETTING, text, "axis x or y")
    if "source" in ps:
        src = ps["source"] = ps["source"].upper()
        if src not in DAQ_SOURCES:
            raise ConfigError(_SETTING, text, f"source one of {', '.join(DAQ_SOURCES)}")
    for key in ("fraction", "from_fraction", "to_fraction"):
        if ps.get(key) is not None and not 0.0 <= ps[key] <= 1.0:
            raise ConfigError(_SETTING, text, f"{key} in [0, 1]")
    if kind == "missing_source":
        _check_window(ps, text)
    for key in ("factor", "mean_gev"):
        if key in ps and not ps[key] >= 0.0:
            raise ConfigError(_SETTING, text, f"{key} >= 0")


def _check_window(ps: dict[str, Any], text: str) -> None:
    """``missing_source``: one way of giving the window, and a window that is not empty."""
    ways = {
        "fraction": ps["fraction"] is not None,
        "start_s/end_s": ps["start_s"] is not None or ps["end_s"] is not None,
        "from_fraction/to_fraction": ps["from_fraction"] is not None
        or ps["to_fraction"] is not None,
    }
    if sum(ways.values()) > 1:
        raise ConfigError(
            _SETTING,
            text,
            f"one window: {' or '.join(ways)} (given: {', '.join(k for k in ways if ways[k])})",
        )
    start, end = ps["start_s"], ps["end_s"]
    if (start is not None and start < 0) or (end is not None and end <= (start or 0.0)):
        raise ConfigError(_SETTING, text, "0 <= start_s < end_s (seconds since the spill started)")
    lo, hi = ps["from_fraction"], ps["to_fraction"]
    if lo is not None and hi is not None and not lo < hi:
        raise ConfigError(_SETTING, text, "from_fraction < to_fraction")


def _parse_spills(spec: str, text: str) -> tuple[int, int | None]:
    try:
        if "-" not in spec:
            n = int(spec)
            return n, n
        lo, hi = spec.split("-", 1)
        return int(lo), (int(hi) if hi.strip() else None)
    except ValueError:
        raise ConfigError(_SETTING, text, "a spill range after '@': 'N', 'N-M' or 'N-'") from None


def parse_anomaly(text: str) -> Anomaly:
    """Parse ``kind[@spills][:k=v,...]``; raises :class:`ConfigError` naming what is valid."""
    body = text.strip()
    head, _, ptext = body.partition(":")
    name, at, spills = head.partition("@")
    name = name.strip()
    spec = _kind(name, text)
    first, last = _parse_spills(spills.strip(), text) if at else (0, None)
    params: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in ptext.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ConfigError(_SETTING, text, f"key=value pairs after ':' (usage: {spec.usage()})")
        if key not in spec.params:
            raise ConfigError(_SETTING, text, _unknown_param_msg(spec, key))
        params[key] = value.strip()
    return Anomaly(name, first, last, params)


def parse_anomalies(texts: Iterable[str]) -> list[Anomaly]:
    """Parse several ``--anomaly`` values (a convenience for the CLI)."""
    return [parse_anomaly(t) for t in texts]


# --------------------------------------------------------------------------- applying


def active_anomalies(anomalies: Iterable[Anomaly], spill: int) -> list[Anomaly]:
    return [a for a in anomalies if a.active(spill)]


def is_stale(anomalies: Iterable[Anomaly], spill: int) -> bool:
    """True if a ``stale`` anomaly suppresses ``spill`` entirely."""
    return any(a.kind == "stale" and a.active(spill) for a in anomalies)


def apply_to_config(cfg: Any, anomalies: Iterable[Anomaly], spill: int) -> Any:
    """Return the spill's config with every active ``config``-stage anomaly applied in order."""
    for a in anomalies:
        spec = ANOMALY_KINDS[a.kind]
        if spec.stage == "config" and a.active(spill):
            cfg = dataclasses.replace(cfg, **spec.apply(cfg, a, spill))
    return cfg


def apply_to_columns(
    columns: dict[str, np.ndarray],
    anomalies: Iterable[Anomaly],
    spill: int,
    rng: np.random.Generator,
    cfg: Any,
) -> None:
    """Alter the generated columns in place for every active ``columns``-stage anomaly."""
    for a in anomalies:
        spec = ANOMALY_KINDS[a.kind]
        if spec.stage == "columns" and a.active(spill):
            spec.apply(columns, a.params, rng, cfg)


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


def _hcal_gain_drop(columns, ps, rng, cfg) -> None:
    columns["hcal"][:, ps["module"]] *= np.float32(ps["factor"])


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


def _config(**changes: Callable[[Any, dict, int], Any]) -> Callable[[Any, Anomaly, int], dict]:
    """A config-stage apply: field -> f(cfg, params, spills since first_spill)."""

    def apply(cfg: Any, a: Anomaly, spill: int) -> dict:
        return {k: f(cfg, a.params, spill - a.first_spill) for k, f in changes.items()}

    return apply


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
            _config(
                beam_x_mm=lambda c, p, k: (
                    c.beam_x_mm + (p["rate_mm"] * k if p["axis"] == "x" else 0)
                ),
                beam_y_mm=lambda c, p, k: (
                    c.beam_y_mm + (p["rate_mm"] * k if p["axis"] == "y" else 0)
                ),
            ),
            axis=("str", "x", "x | y"),
            rate_mm=("float", 0.2, "centroid change per spill [mm]"),
        ),
        _kind_of(
            "beam_width",
            "config",
            "the beam gets wider (or narrower)",
            _config(
                beam_sigma_x_mm=lambda c, p, k: c.beam_sigma_x_mm * p["factor"],
                beam_sigma_y_mm=lambda c, p, k: c.beam_sigma_y_mm * p["factor"],
            ),
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
            _config(bms_scale=lambda c, p, k: c.bms_scale * p["factor"]),
            factor=("float", 1.02, "multiplier of the BMS momentum scale"),
        ),
        _kind_of(
            "ms2_scale",
            "config",
            "the MS2 momentum scale is off",
            _config(ms2_scale=lambda c, p, k: c.ms2_scale * p["factor"]),
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
    "stale",
]
