"""Run conditions: what a run was *meant* to be, as the DAQ announces it. Pure: no I/O.

Why: every nominal value a check uses (the beam momentum a momentum scale is judged
against) and the beam configuration that picks the reference come from the run, never
from a constant. A 100 GeV run judged against 160 GeV is a false alarm on every spill.

The conditions travel on the event stream as one small message (``type=conditions``,
``payload=<JSON>``, see ``docs/wire-format-conditions.md``), published before the run's
first batch and again whenever they change. This module holds the value type
:class:`RunConditions`, its encoder, its validating decoder (a malformed message raises
:class:`~dqm.errors.BatchError` with reason ``bad-conditions``, so the worker dead-letters
it like any other malformed input); the ``@name`` references by which check parameters
in the specs take their value from the conditions (``nominal_gev = "@p_beam_gev"``) are in
:mod:`dqm.core.condition_params`, re-exported here.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# spec parameters from the conditions ("@p_beam_gev") live in dqm.core.condition_params
from dqm.core.condition_params import (
    CONDITION_NAMES,
    UnresolvedCondition,
    condition_references,
    parse_reference,
    resolve_params,
)
from dqm.core.numbering import MAX_ID
from dqm.errors import BatchError

__all__ = [
    "CONDITIONS_VERSION",
    "PARTICLES",
    "Particle",
    "RunConditions",
    "beam_config_name",
    "conditions_from_dict",
    "encode_conditions",
    "decode_conditions",
    "CONDITION_NAMES",
    "UnresolvedCondition",
    "parse_reference",
    "condition_references",
    "resolve_params",
]

#: Schema version of the conditions message; a decoder refuses versions it does not know.
CONDITIONS_VERSION = 1
#: Largest accepted payload: conditions are a few hundred bytes, anything big is not them.
MAX_PAYLOAD_BYTES = 16_384
#: Nominal momenta the M2 line (or any SPS line) can deliver, with margin [GeV].
P_BEAM_RANGE_GEV = (1.0, 450.0)
#: Field integral of the MBPL magnets together [T·m]: 0 (off) up to far beyond two magnets.
FIELD_INTEGRAL_RANGE_TM = (0.0, 50.0)
#: Two field integrals this close (relative) are the same magnet setting.
FIELD_INTEGRAL_RTOL = 0.01
_LABEL_MAX = 128
_EXTRA_MAX_ITEMS = 32


@dataclass(frozen=True)
class Particle:
    """A beam particle: wire name, display symbol, charge, and its token in a beam config."""

    name: str
    symbol: str
    charge: int
    token: str


#: Beam particles by wire name. Negative beams (NA64μ's usual μ⁻) carry no sign in the
#: beam-configuration name, so μ⁻ 160 GeV is "mu160" as it always was; positive ones say "+".
PARTICLES: Mapping[str, Particle] = MappingProxyType(
    {
        p.name: p
        for p in (
            Particle("mu-", "μ⁻", -1, "mu"),
            Particle("mu+", "μ⁺", +1, "mu+"),
            Particle("e-", "e⁻", -1, "e"),
            Particle("e+", "e⁺", +1, "e+"),
            Particle("pi-", "π⁻", -1, "pi"),
            Particle("pi+", "π⁺", +1, "pi+"),
            Particle("K-", "K⁻", -1, "K"),
            Particle("K+", "K⁺", +1, "K+"),
            Particle("p", "p", +1, "p"),
            Particle("pbar", "p̄", -1, "pbar"),
            Particle("hadron-", "h⁻", -1, "h"),
            Particle("hadron+", "h⁺", +1, "h+"),
        )
    }
)
#: Other spellings accepted on the wire (case-insensitive), e.g. "μ-", "π⁻", "MU-", "mu−".
_ALIASES = {
    spelling.lower(): p.name
    for p in PARTICLES.values()
    for spelling in (
        p.name,
        p.name.replace("-", "−"),
        p.symbol,
        p.symbol.replace("⁻", "-").replace("⁺", "+"),
    )
}
_POLARITIES = {"+": "+", "-": "-", "−": "-", "positive": "+", "negative": "-"}
_FIELDS = (
    "version",
    "run",
    "beam_particle",
    "p_beam_gev",
    "polarity",
    "mbpl_field_integral_tm",
    "trigger",
    "setup",
    "extra",
)
_REQUIRED = _FIELDS[:-1]


def beam_config_name(particle: str, p_beam_gev: float) -> str:
    """The beam-configuration name that selects a reference: ``mu160``, ``mu100``, ``mu+160``.

    The momentum is rounded to 0.1 GeV (a nominal setting, not a measurement).
    """
    return f"{PARTICLES[particle].token}{round(float(p_beam_gev), 1):g}"


@dataclass(frozen=True)
class RunConditions:
    """The conditions of one run, as announced by the DAQ (or the simulator).

    Attributes:
        run: run number.
        beam_particle: wire name from :data:`PARTICLES` ("mu-", "mu+", "pi-", "e-", …).
        p_beam_gev: nominal beam momentum [GeV].
        polarity: MBPL magnet polarity, "+" or "-". Convention: a particle of charge q
            is bent towards +x at MS2 when q × polarity > 0, so the polarity that
            matches the beam's charge ("-" for μ⁻) bends the beam towards +x.
        mbpl_field_integral_tm: field integral of the MBPL magnet(s), ≥ 0 [T·m].
        trigger: the DAQ's name of the trigger configuration.
        setup: the setup label (e.g. "2025B-2MBPL").
        extra: free key → scalar items, stored and shown, never interpreted.
        version: schema version of the message they came in.
    """

    run: int
    beam_particle: str
    p_beam_gev: float
    polarity: str
    mbpl_field_integral_tm: float
    trigger: str
    setup: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    version: int = CONDITIONS_VERSION

    def __post_init__(self) -> None:
        checked = conditions_from_dict(self.to_dict(), _build=False)
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ derived
    @property
    def particle(self) -> Particle:
        return PARTICLES[self.beam_particle]

    @property
    def beam_config(self) -> str:
        """Name of the beam configuration (reference key): particle and momentum."""
        return beam_config_name(self.beam_particle, self.p_beam_gev)

    @property
    def polarity_sign(self) -> int:
        return 1 if self.polarity == "+" else -1

    def values(self) -> dict[str, float]:
        """The numbers a spec parameter may take with ``"@name"`` (see :data:`CONDITION_NAMES`)."""
        return {
            "p_beam_gev": float(self.p_beam_gev),
            "mbpl_field_integral_tm": float(self.mbpl_field_integral_tm),
            "beam_charge": float(self.particle.charge),
            "polarity": float(self.polarity_sign),
        }

    def describe(self) -> str:
        """One line for people: ``μ⁻ 160 GeV · MBPL 7.2 T·m (polarity −) · trigger … · setup …``."""
        sign = "+" if self.polarity == "+" else "−"
        return (
            f"{self.particle.symbol} {self.p_beam_gev:g} GeV · MBPL "
            f"{self.mbpl_field_integral_tm:g} T·m (polarity {sign}) · trigger {self.trigger} · "
            f"setup {self.setup}"
        )

    def differences(self, other: RunConditions) -> list[str]:
        """What differs from ``other`` (run number and ``extra`` aside), as readable phrases."""
        out = []
        if self.beam_config != other.beam_config:
            out.append(
                f"beam {self.particle.symbol} {self.p_beam_gev:g} GeV vs "
                f"{other.particle.symbol} {other.p_beam_gev:g} GeV"
            )
        if self.polarity != other.polarity:
            out.append(f"MBPL polarity {self.polarity} vs {other.polarity}")
        a, b = self.mbpl_field_integral_tm, other.mbpl_field_integral_tm
        if abs(a - b) > FIELD_INTEGRAL_RTOL * max(abs(a), abs(b), 1e-9):
            out.append(f"MBPL {a:g} vs {b:g} T·m")
        for key in ("trigger", "setup"):
            if getattr(self, key) != getattr(other, key):
                out.append(f"{key} '{getattr(self, key)}' vs '{getattr(other, key)}'")
        return out

    # ------------------------------------------------------------------ encoding
    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the wire format (and of the store's JSON columns)."""
        out = {
            "version": self.version,
            "run": self.run,
            "beam_particle": self.beam_particle,
            "p_beam_gev": self.p_beam_gev,
            "polarity": self.polarity,
            "mbpl_field_integral_tm": self.mbpl_field_integral_tm,
            "trigger": self.trigger,
            "setup": self.setup,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def same_as(self, other: RunConditions | None) -> bool:
        """Equal in every field (a repeated announcement of the same conditions)."""
        return other is not None and self.to_dict() == other.to_dict()


def _bad(detail: str) -> BatchError:
    return BatchError("bad-conditions", detail)


def _number(d: Mapping, key: str, lo: float, hi: float) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"'{key}' = {v!r:.60}: expected a finite number")
    if not lo <= v <= hi:
        raise _bad(f"'{key}' = {v:g} outside [{lo:g}, {hi:g}]")
    return float(v)


def _label(d: Mapping, key: str) -> str:
    v = d[key]
    if not isinstance(v, str) or not v.strip():
        raise _bad(f"'{key}' = {v!r:.60}: expected a non-empty string")
    if len(v) > _LABEL_MAX or not v.isprintable():
        raise _bad(f"'{key}': at most {_LABEL_MAX} printable characters")
    return v.strip()


def _extra(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > _EXTRA_MAX_ITEMS:
        raise _bad(f"'extra' must be an object of at most {_EXTRA_MAX_ITEMS} items")
    for k, v in value.items():
        scalar = isinstance(v, (str, bool)) or (isinstance(v, (int, float)) and math.isfinite(v))
        if len(k) > 64 or not scalar or (isinstance(v, str) and len(v) > 256):
            raise _bad(
                f"'extra' item {k[:64]!r}: keys of ≤ 64 characters, values strings of ≤ 256 "
                "characters, finite numbers or booleans"
            )
    return dict(value)


def conditions_from_dict(d: Any, *, _build: bool = True) -> Any:
    """Validate a decoded conditions object; returns :class:`RunConditions`.

    Raises:
        BatchError: reason ``bad-conditions``, the detail naming the field and what is wrong
            (unknown keys come with the closest valid one).
    """
    if not isinstance(d, dict):
        raise _bad(f"expected a JSON object, got {type(d).__name__}")
    version = d.get("version")
    if version != CONDITIONS_VERSION or isinstance(version, bool):
        raise _bad(
            f"conditions schema version {version!r:.20}; this DQM reads version "
            f"{CONDITIONS_VERSION}"
        )
    for key in d:
        if key not in _FIELDS:
            close = difflib.get_close_matches(str(key), _FIELDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(_FIELDS)}"
            raise _bad(f"unknown field {str(key)[:40]!r} ({hint})")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise _bad(f"missing field(s): {', '.join(missing)}")
    run = d["run"]
    if isinstance(run, bool) or not isinstance(run, int) or not 0 <= run <= MAX_ID:
        raise _bad(f"'run' = {run!r:.40}: expected an integer in [0, {MAX_ID}]")
    raw_particle = d["beam_particle"]
    particle = None
    if isinstance(raw_particle, str):
        name = raw_particle.strip()
        particle = name if name in PARTICLES else _ALIASES.get(name.lower())
    if particle is None:
        close = difflib.get_close_matches(str(raw_particle), list(PARTICLES), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise _bad(f"'beam_particle' = {raw_particle!r:.40}: {hint}known: {', '.join(PARTICLES)}")
    polarity = (
        _POLARITIES.get(d["polarity"].strip().lower()) if isinstance(d["polarity"], str) else None
    )
    if polarity is None:
        raise _bad(f"'polarity' = {d['polarity']!r:.40}: expected '+' or '-'")
    out: dict[str, Any] = {
        "version": CONDITIONS_VERSION,
        "run": run,
        "beam_particle": particle,
        "p_beam_gev": _number(d, "p_beam_gev", *P_BEAM_RANGE_GEV),
        "polarity": polarity,
        "mbpl_field_integral_tm": _number(d, "mbpl_field_integral_tm", *FIELD_INTEGRAL_RANGE_TM),
        "trigger": _label(d, "trigger"),
        "setup": _label(d, "setup"),
        "extra": _extra(d.get("extra", {})),
    }
    return RunConditions(**out) if _build else out


def encode_conditions(conditions: RunConditions) -> bytes:
    """The message payload: compact UTF-8 JSON with sorted keys (same conditions, same bytes)."""
    return json.dumps(
        conditions.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not a number JSON allows")


def decode_conditions(payload: bytes | str | None) -> RunConditions:
    """Parse and validate a conditions payload; :class:`BatchError` (``bad-conditions``) if bad."""
    if payload is None:
        raise _bad("conditions message has no 'payload' field")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _bad(f"payload of {len(payload)} bytes (at most {MAX_PAYLOAD_BYTES})")
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        obj = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(f"payload is not UTF-8 JSON: {exc}"[:300]) from None
    return conditions_from_dict(obj)
