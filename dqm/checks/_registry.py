"""Registry of checks: declared parameters, validation with suggestions, dispatch.

A check is registered with its parameters *as data* (type, default, doc), so a
TOML spec can be validated at load time — an unknown key fails with "did you mean
…" — and the apps can list every check and its knobs without running anything.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._util import counts_histogram
from dqm.errors import CheckError, DQMError, SpecError

__all__ = [
    "REQUIRED",
    "ParamSpec",
    "CheckSpec",
    "CHECKS",
    "register_check",
    "validate_check_params",
    "run_check",
]

CheckFunction = Callable[..., CheckResult]


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: its type, default, meaning and allowed values.

    ``default=None`` makes the parameter optional (``None`` means "not used");
    ``default=REQUIRED`` makes the spec supply it (e.g. the summary key to watch).
    """

    type: type
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: the function and its parameter declarations."""

    name: str
    function: CheckFunction
    params: Mapping[str, ParamSpec]
    needs_reference: bool
    needs_histogram: bool
    ordered: tuple[tuple[str, str], ...]
    wants_min_entries: bool
    weighted_reference: bool = False

    @property
    def doc(self) -> str:
        """First paragraph of the check function's docstring."""
        return (inspect.getdoc(self.function) or "").split("\n\n")[0]


REQUIRED: Any = ...
"""Default marking a parameter the spec must give."""

_REGISTRY: dict[str, CheckSpec] = {}
CHECKS: Mapping[str, CheckSpec] = MappingProxyType(_REGISTRY)

_MIN_ENTRIES_DOC = "below this many entries (histogram total, else n_events) the result is NO_DATA"


def register_check(
    name: str,
    *,
    params: Mapping[str, tuple[Any, ...]],
    needs_reference: bool = False,
    needs_histogram: bool = False,
    min_entries: int = 100,
    ordered: tuple[tuple[str, str], ...] = (),
    weighted_reference: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Decorator registering ``function(context, **params) -> CheckResult`` as ``name``.

    Args:
        name: the name used in TOML specs.
        params: ``{param: (type, default, doc)}`` or ``(type, default, doc, choices)``.
        needs_reference: without a reference (or with an empty one) → NO_DATA.
        needs_histogram: without a histogram → NO_DATA.
        min_entries: this check's default for the common ``min_entries`` parameter
            (checks that must fire on *few* events, like ``empty``, use 0).
        ordered: pairs ``(a, b)`` of parameters that must satisfy ``a <= b`` when
            both are set, e.g. ``("p_bad", "p_warning")``.
        weighted_reference: the check reads a weighted reference's variances itself
            (χ², KS). Every other check gets a weighted or normalised reference as
            counts (its effective entries, :func:`dqm.checks._util.counts_histogram`),
            so no Poisson-based check is blind to one.
    """
    declared = {key: ParamSpec(*spec) for key, spec in params.items()}
    declared.setdefault("min_entries", ParamSpec(int, min_entries, _MIN_ENTRIES_DOC))

    def decorator(function: CheckFunction) -> CheckFunction:
        if name in _REGISTRY:
            raise CheckError(f"check '{name}' is registered twice")
        # The declaration and the signature must agree, or a spec key would be
        # accepted by validation and then crash the call (or be silently ignored).
        accepted = set(inspect.signature(function).parameters) - {"context"}
        wants_min_entries = "min_entries" in accepted
        if accepted != set(declared) - ({"min_entries"} - accepted):
            raise CheckError(
                f"check '{name}': declared params {sorted(declared)} do not match "
                f"the function's keyword arguments {sorted(accepted)}"
            )
        _REGISTRY[name] = CheckSpec(
            name,
            function,
            MappingProxyType(declared),
            needs_reference,
            needs_histogram,
            tuple(ordered),
            wants_min_entries,
            weighted_reference,
        )
        return function

    return decorator


def _suggest(word: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'? " if close else ""


def _coerce(check: str, key: str, spec: ParamSpec, value: Any) -> Any:
    """Check one parameter's type; ints are accepted where floats are expected."""
    if value is None and spec.default is None:
        return None
    if spec.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if math.isnan(value):
            raise SpecError(f"check '{check}': parameter must not be NaN", key=key)
    elif spec.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)  # TOML writers like "1e3"
    elif not isinstance(value, spec.type) or (spec.type is not bool and isinstance(value, bool)):
        raise SpecError(
            f"check '{check}': expected {spec.type.__name__}, got {type(value).__name__} {value!r}",
            key=key,
        )
    if spec.choices is not None and value not in spec.choices:
        raise SpecError(
            f"check '{check}': {value!r} is not one of {list(spec.choices)}; "
            f"{_suggest(str(value), [str(c) for c in spec.choices])}",
            key=key,
        )
    return value


def validate_check_params(
    name: str, params: Mapping[str, Any] | None = None, *, deferred: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Validate a spec's parameters for check ``name`` and fill in the defaults.

    ``deferred`` names number parameters whose value is only known when a spill is judged
    (``"@p_beam_gev"``, from the run conditions): they are kept as given and left out of
    the ordering checks here; :func:`run_check` validates them once resolved.

    Raises:
        SpecError: unknown check name or parameter (with the closest valid name),
            wrong type, value outside its choices, or violated ordering.
    """
    if name not in _REGISTRY:
        raise SpecError(
            f"unknown check '{name}'; {_suggest(name, sorted(_REGISTRY))}"
            f"known checks: {', '.join(sorted(_REGISTRY))}",
            key=name,
        )
    spec = _REGISTRY[name]
    given = dict(params or {})
    unknown = sorted(set(given) - set(spec.params))
    if unknown:
        key = unknown[0]
        raise SpecError(
            f"check '{name}' has no parameter '{key}'; {_suggest(key, sorted(spec.params))}"
            f"valid: {', '.join(sorted(spec.params))}",
            key=key,
        )
    for key in deferred & set(given):
        if spec.params[key].type not in (float, int):
            raise SpecError(
                f"check '{name}': parameter '{key}' is a {spec.params[key].type.__name__}; only "
                "number parameters can take their value from the run conditions",
                key=key,
            )
    missing = [k for k, p in spec.params.items() if p.default is REQUIRED and k not in given]
    if missing:
        raise SpecError(f"check '{name}' needs parameter '{missing[0]}'", key=missing[0])
    resolved = {
        key: given[key]
        if key in deferred and key in given
        else _coerce(name, key, pspec, given.get(key, pspec.default))
        for key, pspec in spec.params.items()
    }
    for low, high in spec.ordered:
        if {low, high} & deferred:
            continue
        if resolved[low] is not None and resolved[high] is not None:
            if resolved[low] > resolved[high]:
                raise SpecError(
                    f"check '{name}': {low}={resolved[low]} must be <= {high}={resolved[high]}",
                    key=low,
                )
    return resolved


def _no_data(name: str, why: str, value: float | None = None, **threshold: float) -> CheckResult:
    return CheckResult(Quality.NO_DATA, value, dict(threshold), why, {}, name)


def run_check(
    name: str, context: CheckContext, params: Mapping[str, Any] | None = None
) -> CheckResult:
    """Validate ``params``, apply the common rules, then run check ``name``.

    Common rules, so no check re-implements them: a missing histogram (for
    histogram checks) or reference (for reference checks) gives NO_DATA, and fewer
    than ``min_entries`` entries gives NO_DATA — never GOOD, never BAD.

    Raises:
        SpecError: invalid parameters (see :func:`validate_check_params`).
        CheckError: the check itself failed; the message names the check and the
            original exception is chained. The judge (:func:`dqm.core.evaluate.judge_check`)
            turns either into a ``CHECK_ERROR`` result, so callers that judge spills
            never see them.
    """
    resolved = validate_check_params(name, params)
    spec = _REGISTRY[name]
    if spec.needs_histogram and context.histogram is None:
        return _no_data(name, "no histogram for this spill")
    if spec.needs_reference:
        if context.reference is None:
            return _no_data(name, "no reference histogram available")
        if float(context.reference.values(flow=True).sum()) <= 0:
            return _no_data(name, "the reference histogram is empty")
    entries = context.entries()
    min_entries = resolved["min_entries"]
    if entries is not None and entries < min_entries:
        return _no_data(
            name,
            f"only {entries:.0f} entries, fewer than min_entries={min_entries}",
            entries,
            min_entries=float(min_entries),
        )
    if not spec.wants_min_entries:
        del resolved["min_entries"]
    try:
        if context.reference is not None and not spec.weighted_reference:
            context = replace(context, reference=counts_histogram(context.reference))
        result = spec.function(context, **resolved)
    except DQMError:
        raise
    except Exception as error:  # noqa: BLE001 — re-raised as CheckError, never swallowed
        raise CheckError(f"check '{name}' failed: {type(error).__name__}: {error}") from error
    if not isinstance(result, CheckResult):
        raise CheckError(f"check '{name}' returned {type(result).__name__}, not CheckResult")
    return result if result.check == name else replace(result, check=name)
