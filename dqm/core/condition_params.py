"""Check parameters that take their value from the run conditions: ``"@p_beam_gev"``. Pure.

A spec writes a number parameter as ``"@name"`` or ``"@name * factor"``
(``nominal_gev = "@p_beam_gev"``, ``dp_mean_bad_gev = "@p_beam_gev * 0.0125"``). The spec
loader validates the reference (an unknown name fails with the closest one) and defers the
parameter; :func:`dqm.core.evaluate.evaluate_spill` resolves it from the run's
:class:`~dqm.core.conditions.RunConditions` before the check runs, and a run without
conditions gives that check NO_DATA, never an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dqm.errors import SpecError

if TYPE_CHECKING:
    from dqm.core.conditions import RunConditions

__all__ = [
    "CONDITION_NAMES",
    "UnresolvedCondition",
    "parse_reference",
    "resolve_params",
    "condition_references",
]

#: Names a check parameter may refer to as ``"@name"`` (optionally ``"@name * factor"``).
CONDITION_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "p_beam_gev": "nominal beam momentum [GeV]",
        "mbpl_field_integral_tm": "MBPL field integral [T·m]",
        "beam_charge": "charge of the beam particle (−1 or +1)",
        "polarity": "MBPL polarity (−1 or +1)",
    }
)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_REFERENCE = re.compile(
    rf"^\s*(?:(?P<pre>{_NUM})\s*\*\s*)?@(?P<name>\w+)(?:\s*\*\s*(?P<post>{_NUM}))?\s*$"
)


class UnresolvedCondition(LookupError):
    """A parameter refers to the run conditions, and the run has none."""


def parse_reference(value: Any) -> tuple[str, float] | None:
    """``"@p_beam_gev * 0.01"`` → ``("p_beam_gev", 0.01)``; None if ``value`` is no reference.

    Raises:
        ValueError: a string starting with ``@`` (or ``k * @``) that is malformed or names
            no known condition; the message suggests the closest name.
    """
    if not isinstance(value, str) or "@" not in value:
        return None
    m = _REFERENCE.match(value)
    if m is None:
        raise ValueError(
            f'{value!r} is not a run-condition reference: write "@name" or '
            f'"@name * factor" (names: {", ".join("@" + n for n in CONDITION_NAMES)})'
        )
    name = m["name"]
    if name not in CONDITION_NAMES:
        close = difflib.get_close_matches(name, list(CONDITION_NAMES), n=1)
        hint = f"did you mean '@{close[0]}'? " if close else ""
        raise ValueError(
            f"unknown run condition '@{name}'; {hint}run conditions: "
            f"{', '.join('@' + n for n in CONDITION_NAMES)}"
        )
    factor = float(m["pre"] or 1.0) * float(m["post"] or 1.0)
    return name, factor


def resolve_params(params: Mapping[str, Any], conditions: RunConditions | None) -> dict[str, Any]:
    """Replace every ``"@name"`` parameter by the run's value (times its factor).

    Raises:
        UnresolvedCondition: a parameter refers to the conditions and ``conditions`` is None.
    """
    out = dict(params)
    values = conditions.values() if conditions is not None else None
    for key, value in params.items():
        ref = parse_reference(value)
        if ref is None:
            continue
        if values is None:
            raise UnresolvedCondition(f"parameter '{key}' = {value!r} needs the run conditions")
        out[key] = values[ref[0]] * ref[1]
    return out


def condition_references(check: str, params: Mapping[str, Any]) -> frozenset[str]:
    """Keys of ``params`` that refer to the run conditions, each reference validated.

    Pass the result as ``deferred`` to :func:`dqm.checks.validate_check_params`.

    Raises:
        SpecError: a malformed reference or an unknown condition name, with the key.
    """
    keys = set()
    for key, value in params.items():
        try:
            ref = parse_reference(value)
        except ValueError as exc:
            raise SpecError(str(exc), key=key) from None
        if ref is not None:
            keys.add(key)
    return frozenset(keys)
