"""Cause rules: which judgements follow from which cause, declared in the specs.

Why: one cause often moves several subsystems. A DAQ source missing from events empties
every histogram that needs it; a beam that moves or widens moves the hits on the ECAL and
HCAL cells. Judged check by check, one cause lights two or three tiles and sends the
shifter to two or three experts. What follows from what is detector knowledge, so it is
declared next to the histograms (``histograms/causes.toml``), reviewed like them, and
validated like them (file, line, entry and key, with "did you mean").

A rule::

    [[cause]]
    name = "daq_source_absent"
    subsystem = "daq"                  # the tile (and expert) the incident belongs to
    for_each = "source"                # one cause per DAQ source: daq_source_absent:MS1 ...
    established_by = { histogram = "daq_source_presence", check = "daq_completeness",
                       each = "incomplete" }   # details["incomplete"] lists the sources
    explains = [{ requires = "{source}" }]     # every check of a histogram needing it
    explanation = "{source} absent in {absent:%} of events"
    instruction = "DAQ source {source} missing from events: call the DAQ expert."

A cause is *present* in a spill when a judgement matching ``established_by`` is WARNING or
BAD; it then *explains* the judgements its ``explains`` selectors match. A selector's keys
(``histogram``, ``check``, ``subsystem``, ``kind``: a name or a list of names;
``requires``: sources the histogram must need, ``"{source}"`` standing for the cause's
own) must all match. Templates are Python format strings over the establishing judgement:
``{explanation}``, ``{quality}``, ``{value}``, ``{histogram}``, ``{check}``, the instance
(``{source}``), its scalar details and, for details keyed by the instance, that entry
(``{absent}`` is ``details["absent"]["MS1"]``). ``{x:%}`` prints a fraction as a percent
("50 %"), ``{x:.1%}`` with one decimal. A field missing at run time never fails: the
explanation falls back to the flag's own, the instruction to the flag's instruction.

Layer: pure core, no I/O. The grouping of a spill's judgements into incidents is
:mod:`dqm.core.incidents`.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dqm.checks import CHECKS
from dqm.core._tomlctx import _check_keys, _Ctx, _typed
from dqm.core.events import DAQ_SOURCES
from dqm.core.specs import KINDS, SUBSYSTEMS, HistogramSpec

__all__ = ["FOR_EACH", "Selector", "CauseRule", "load_causes", "percent"]

#: what a rule may be repeated for, and the names an instance may take
FOR_EACH: dict[str, tuple[str, ...]] = {"source": DAQ_SOURCES}

_CAUSE_KEYS = {
    "name",
    "title",
    "description",
    "subsystem",
    "for_each",
    "established_by",
    "explains",
    "explanation",
    "instruction",
}
_SELECT_KEYS = {"histogram", "check", "subsystem", "kind", "requires"}
_ESTABLISH_KEYS = {"histogram", "check", "subsystem", "each"}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def percent(fraction: float, digits: int | None = None) -> str:
    """A fraction as the shifter reads it: ``0.497`` → "50 %", ``0.003`` → "0.3 %".

    Never "100 %" for a fraction below 1 nor "0 %" above 0: "MS1 absent in 100 %" must
    mean every event.
    """
    p = 100.0 * fraction
    if digits is None:
        digits = 0 if p >= 10 else 1 if p >= 1 else 2
    text = f"{p:.{digits}f}"
    if 0 < fraction < 1 and float(text) in (0.0, 100.0):
        text = f"{p:.{digits + 1}f}" if p < 1 else f"{min(p, 99.9):.1f}"
    return f"{text} %"


class _Formatter(string.Formatter):
    """``str.format`` plus the ``%`` spec for fractions, reading only plain field names."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not _FIELD.fullmatch(field_name):
            raise KeyError(field_name)
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.endswith("%") and isinstance(value, (int, float)):
            digits = format_spec[:-1].lstrip(".")
            return percent(float(value), int(digits) if digits else None)
        return super().format_field(value, format_spec)


_FORMAT = _Formatter()


@dataclass(frozen=True)
class Selector:
    """Judgements a rule matches: every given field must match (a set matches any member)."""

    histogram: frozenset[str] | None = None
    check: frozenset[str] | None = None
    subsystem: frozenset[str] | None = None
    kind: frozenset[str] | None = None
    requires: tuple[str, ...] = ()  # sources; "{source}" stands for the cause's instance

    def matches(
        self,
        subsystem: str,
        histogram: str | None,
        check: str,
        spec: HistogramSpec | None,
        instance: str | None = None,
    ) -> bool:
        if self.subsystem is not None and subsystem not in self.subsystem:
            return False
        if self.histogram is not None and histogram not in self.histogram:
            return False
        if self.check is not None and check not in self.check:
            return False
        if self.kind is not None and (spec is None or spec.kind not in self.kind):
            return False
        if self.requires:
            needed = {instance if r.startswith("{") else r for r in self.requires}
            if spec is None or None in needed or not needed <= set(spec.requires):
                return False
        return True


@dataclass(frozen=True)
class CauseRule:
    """One declared cause: when it is present, what it explains, what the shifter is told."""

    name: str
    subsystem: str
    established_by: Selector
    explains: tuple[Selector, ...]
    explanation: str = "{explanation}"
    instruction: str = ""
    for_each: str | None = None
    each: str | None = None  # details key of the establishing judgement listing the instances
    title: str = ""
    description: str = ""
    path: str = ""
    line: int | None = None

    def cause_id(self, instance: str | None) -> str:
        """``daq_source_absent:MS1`` for an instance, the rule's name otherwise."""
        return self.name if instance is None else f"{self.name}:{instance}"

    def instances(self, details: Mapping[str, Any]) -> list[str | None]:
        """The instances a matching judgement establishes (``[None]`` without ``for_each``)."""
        if self.each is None or self.for_each is None:
            return [None]
        listed = details.get(self.each)
        if isinstance(listed, Mapping):
            listed = list(listed)
        if not isinstance(listed, (list, tuple)):
            return []
        domain = FOR_EACH[self.for_each]
        return [str(x) for x in listed if str(x) in domain]

    def render(
        self, template: str, fields: Mapping[str, Any], instance: str | None, fallback: str
    ) -> str:
        """``template`` filled from the establishing judgement's ``fields``; never raises."""
        if not template:
            return fallback
        values: dict[str, Any] = {"title": self.title or self.name}
        details = fields.get("details") or {}
        for key, value in details.items():
            if isinstance(value, Mapping):
                if instance is not None and instance in value:
                    values[str(key)] = value[instance]
            elif not isinstance(value, (list, tuple)):
                values[str(key)] = value
        values.update({k: v for k, v in fields.items() if k != "details"})
        if self.for_each is not None and instance is not None:
            values[self.for_each] = instance
        try:
            return _FORMAT.vformat(template, (), values)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            return fallback


def _names(ctx: _Ctx, raw: Any, entry: str, key: str, valid: Sequence[str]) -> frozenset[str]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ctx.error(f"expected a name or a list of names, got {raw!r}", entry, key)
    for v in values:
        if v not in valid:
            close = difflib.get_close_matches(v, list(valid), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid)}"
            raise ctx.error(f"unknown {key} {v!r} ({hint})", entry, key)
    return frozenset(values)


def _selector(
    ctx: _Ctx,
    table: Any,
    entry: str,
    what: str,
    allowed: set[str],
    valid: Mapping[str, Sequence[str]],
    placeholder: str | None,
) -> Selector:
    if not isinstance(table, dict) or not table:
        raise ctx.error(
            f'{what}: expected a table like {{ histogram = "p_bms", check = "ks" }}',
            entry,
            what.split("[")[0],
        )
    _check_keys(ctx, table, allowed, entry, what)
    kw: dict[str, Any] = {
        k: _names(ctx, table[k], entry, k, valid[k])
        for k in ("histogram", "check", "subsystem", "kind")
        if k in table
    }
    if "requires" in table:
        sources = [*DAQ_SOURCES, *([placeholder] if placeholder else [])]
        kw["requires"] = tuple(sorted(_names(ctx, table["requires"], entry, "requires", sources)))
    return Selector(**kw)


def _check_template(ctx: _Ctx, template: str, entry: str, key: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ctx.error(f"not a valid template: {exc}", entry, key) from None
    for _, field_name, _, _ in parsed:
        if field_name is not None and not _FIELD.fullmatch(field_name):
            raise ctx.error(
                f"template field {{{field_name}}}: use plain names such as {{source}} or "
                "{explanation}",
                entry,
                key,
            )


def _selects_something(
    selector: Selector, histograms: Sequence[HistogramSpec], instances: Sequence[str | None]
) -> bool:
    return any(
        selector.matches(h.subsystem, h.name, c.type, h, inst)
        for h in histograms
        for c in h.checks
        for inst in instances
    )


def _rule(
    ctx: _Ctx, table: Any, histograms: Sequence[HistogramSpec], valid: Mapping[str, Sequence[str]]
) -> CauseRule:
    if not isinstance(table, dict):
        raise ctx.error("each [[cause]] must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ctx.error(f"'name' must be a lower_snake_case string, got {name!r}", None, "name")
    _check_keys(ctx, table, _CAUSE_KEYS, name, "a cause")
    subsystem = _typed(ctx, table, "subsystem", str, name)
    if subsystem not in SUBSYSTEMS:
        raise ctx.error(
            f"subsystem must be one of {', '.join(SUBSYSTEMS)}, got {subsystem!r}",
            name,
            "subsystem",
        )
    for_each = _typed(ctx, table, "for_each", str, name, default=None)
    if for_each is not None and for_each not in FOR_EACH:
        raise ctx.error(f"for_each must be one of {', '.join(FOR_EACH)}", name, "for_each")
    placeholder = "{" + for_each + "}" if for_each else None
    instances: Sequence[str | None] = FOR_EACH[for_each] if for_each else (None,)

    established = _typed(ctx, table, "established_by", dict, name)
    est = _selector(ctx, established, name, "established_by", _ESTABLISH_KEYS, valid, None)
    if "check" not in established:
        raise ctx.error("established_by needs the check that establishes the cause", name, "check")
    each = _typed(ctx, established, "each", str, name, default=None)
    if (each is None) != (for_each is None):
        raise ctx.error(
            "a rule with for_each names the details key listing its instances in "
            'established_by (each = "…"), and only such a rule',
            name,
            "each" if each is not None else "for_each",
        )
    if not _selects_something(est, histograms, (None,)):
        raise ctx.error("established_by matches no check of any histogram", name, "established_by")

    raw = _typed(ctx, table, "explains", list, name)
    explains = []
    for i, sel_table in enumerate(raw):
        sel = _selector(ctx, sel_table, name, f"explains[{i}]", _SELECT_KEYS, valid, placeholder)
        if not _selects_something(sel, histograms, instances):
            raise ctx.error(f"explains[{i}] matches no check of any histogram", name, "explains")
        explains.append(sel)

    templates = {}
    for key, default in (("explanation", "{explanation}"), ("instruction", "")):
        templates[key] = _typed(ctx, table, key, str, name, default=default)
        _check_template(ctx, templates[key], name, key)
    return CauseRule(
        name=name,
        subsystem=subsystem,
        established_by=est,
        explains=tuple(explains),
        for_each=for_each,
        each=each,
        title=_typed(ctx, table, "title", str, name, default=name),
        description=_typed(ctx, table, "description", str, name, default=""),
        path=ctx.path,
        line=ctx.line_of(name, None),
        **templates,
    )


def load_causes(
    tables: Sequence[tuple[_Ctx, Any]], histograms: Sequence[HistogramSpec]
) -> tuple[CauseRule, ...]:
    """Validate every ``[[cause]]`` table against the loaded histograms, in file order.

    File order is precedence: a cause whose every establishing flag an earlier cause
    explains is that earlier cause's consequence, so list the most fundamental first.
    """
    valid = {
        "histogram": [h.name for h in histograms],
        "check": sorted(CHECKS),
        "subsystem": list(SUBSYSTEMS),
        "kind": list(KINDS),
    }
    rules: list[CauseRule] = []
    for ctx, table in tables:
        rule = _rule(ctx, table, histograms, valid)
        if any(r.name == rule.name for r in rules):
            raise ctx.error("duplicate cause name", rule.name, "name")
        rules.append(rule)
    return tuple(rules)
