"""Detector and beam anomalies the simulator can inject, and their compact CLI syntax.

Why a registry: every anomaly a shifter must be told about (NA64MU.md) has to be
injectable on chosen spills so that the checks and the control-room views can be
tested end to end. Each kind declares its parameters (type, default, meaning) once;
the parser, the error messages and :meth:`Anomaly.describe` are all driven by that
declaration, so adding a kind means adding one entry to :data:`ANOMALY_KINDS` (in
:mod:`dqm.sim.anomaly_kinds`, with what each kind does; this module is the syntax).

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dqm.core.events import DAQ_SOURCES, SOURCE_COLUMNS
from dqm.errors import ConfigError
from dqm.sim.anomaly_kinds import (
    ANOMALY_KINDS,
    DEFAULT_CELL,
    DEMO_ANOMALY_CYCLE,
    DETECTOR_CELLS,
    AnomalyKind,
    Param,
    fmt_param,
)

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
        ps = ",".join(f"{k}={fmt_param(v)}" for k, v in self.params.items() if v is not None)
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
        ps = ", ".join(f"{k}={fmt_param(v)}" for k, v in self.params.items() if v is not None)
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
        cell = ps["cell"] if ps.get("cell") is not None else DEFAULT_CELL[det]
        if len(cell) != len(shape) or any(
            not 0 <= c < s for c, s in zip(cell, shape, strict=False)
        ):
            dims = "/".join(f"0..{s - 1}" for s in shape)
            raise ConfigError(_SETTING, text, f"cell of {det} as {dims}")
        ps["cell"] = cell
    if "module" in ps and not 0 <= ps["module"] < DETECTOR_CELLS["hcal"][0]:
        raise ConfigError(_SETTING, text, f"module 0..{DETECTOR_CELLS['hcal'][0] - 1}")
    if kind == "hv_group":
        layers, columns = DETECTOR_CELLS["ecal"][:2]
        if not 0 <= ps["layer"] < layers or not 0 <= ps["ix"] < columns:
            raise ConfigError(_SETTING, text, f"layer 0..{layers - 1} and ix 0..{columns - 1}")
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
    if "rho" in ps and not -1.0 < ps["rho"] < 1.0:
        raise ConfigError(_SETTING, text, "rho in (-1, 1)")


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
