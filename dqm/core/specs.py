"""Declarative histogram specs: one TOML file per subsystem in ``histograms/``.

The same specs drive the worker (what to fill), the checks (what to judge, with
which thresholds), the web apps and the report (what to draw, with which title and
shifter instruction). Adding a histogram means adding an entry, not Python.

Every key is validated at load time. A mistake fails with the file, line, entry and
key, and the closest valid key when the key is unknown, e.g.::

    histograms/momentum.toml:42, histogram 'p_bms', key 'bnis': unknown key (did you mean 'bins'?)

Each histogram names the DAQ sources it needs (``requires = ["BMS", "MS2"]``): events in
which one of them was not read out carry zeros, not measurements, in its columns, so they
are not filled there. Without the key the sources are derived from the variables the
histogram's expressions read; an explicit list may add sources but never leave out one
that is read. ``[[cause]]`` tables (``histograms/causes.toml``) are loaded and validated by
:mod:`dqm.core.causes` once every histogram is known.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from dqm.checks import validate_check_params
from dqm.core._tomlctx import _check_keys, _Ctx, _typed
from dqm.core.conditions import condition_references
from dqm.core.events import DAQ_SOURCES, source_bits
from dqm.core.subsystems import SUBSYSTEMS
from dqm.core.variables import Expression, ExpressionError, compile_expression, sources_read
from dqm.errors import SpecError

__all__ = [
    "AxisSpec",
    "CheckSpec",
    "HistogramSpec",
    "SpecSet",
    "load_specs",
    "SUBSYSTEMS",
    "KINDS",
    "CELLMAP_STATS",
]

KINDS = ("h1", "h2", "channels", "cellmap")
#: What a cellmap sums per cell over the events whose cell value is above ``threshold_gev``
#: (and at most ``max_gev`` when given):
#: hits, energy in integer MeV, or squared energy in integer MeV² (the three together give
#: each cell's mean response and its statistical error, see ``cell_gain``).
CELLMAP_STATS = ("occupancy", "energy", "energy2")

_COMMON_KEYS = {
    "name",
    "title",
    "kind",
    "description",
    "instruction",
    "selection",
    "control_room",
    "check",
    "subsystem",
    "requires",
}
_KIND_KEYS = {
    "h1": {"x"},
    "h2": {"x", "y"},
    "channels": {"values", "y", "channel_label"},
    "cellmap": {"values", "stat", "threshold_gev", "max_gev", "x_label", "y_label"},
}
_AXIS_KEYS = {"expr", "bins", "lo", "hi", "label"}
_CHECK_KEYS = {"type", "instruction", "params", "requires"}
_FILE_KEYS = {"subsystem", "title", "histogram", "cause"}


@dataclass(frozen=True)
class AxisSpec:
    """A regular axis; ``expr`` is what is histogrammed along it (None for a value axis)."""

    bins: int
    lo: float
    hi: float
    label: str
    expr: Expression | None = None


@dataclass(frozen=True)
class CheckSpec:
    """One check attached to a histogram: its registered type, parameters and instruction.

    ``type`` names a :class:`dqm.checks.CheckDefinition` (the registry's record of the
    check function and its declared parameters)."""

    type: str
    params: Mapping[str, Any]
    instruction: str = ""
    #: DAQ sources the check's inputs need beyond the histogram's (p_scale on p_MS2 reads
    #: the passing-muon core, which needs the BMS): without them it judges nothing
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistogramSpec:
    name: str
    title: str
    subsystem: str
    kind: str
    x: AxisSpec | None = None
    y: AxisSpec | None = None
    values: Expression | None = None
    selection: Expression | None = None
    stat: str = "occupancy"
    threshold_gev: float = 0.0
    #: cellmaps: only cell values ≤ this count (a MIP window for the per-cell response)
    max_gev: float = float("inf")
    x_label: str = ""
    y_label: str = ""
    channel_label: str = "channel"
    description: str = ""
    instruction: str = ""
    control_room: bool = False
    checks: tuple[CheckSpec, ...] = ()
    path: str = ""
    line: int | None = None
    #: DAQ sources an event must have to be filled here, in :data:`DAQ_SOURCES` order
    requires: tuple[str, ...] = ()

    @cached_property
    def source_bits(self) -> int:
        """The ``daq_sources`` bits every filled event has (0: no source needed)."""
        return source_bits(self.requires)

    def judged_by(self, check: str) -> HistogramSpec:
        """This spec as the check ``check`` sees it: ``requires`` adds the check's own
        sources (coverage and the cause rules then count them like the histogram's)."""
        extra = {s for c in self.checks if c.type == check for s in c.requires}
        if extra <= set(self.requires):
            return self
        wanted = extra | set(self.requires)
        return replace(self, requires=tuple(s for s in DAQ_SOURCES if s in wanted))


@dataclass(frozen=True)
class SpecSet:
    """All histogram specs, in file order, with a content hash used as the config version."""

    histograms: tuple[HistogramSpec, ...]
    version: str
    files: tuple[str, ...] = field(default=())
    #: cause rules (:class:`dqm.core.causes.CauseRule`), most fundamental first
    causes: tuple[Any, ...] = field(default=())

    def __iter__(self) -> Iterator[HistogramSpec]:
        return iter(self.histograms)

    def __len__(self) -> int:
        return len(self.histograms)

    def __getitem__(self, name: str) -> HistogramSpec:
        for h in self.histograms:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.histograms]

    def by_subsystem(self) -> dict[str, list[HistogramSpec]]:
        out: dict[str, list[HistogramSpec]] = {s: [] for s in SUBSYSTEMS}
        for h in self.histograms:
            out.setdefault(h.subsystem, []).append(h)
        return out


def _expr(ctx: _Ctx, source: str, entry: str, key: str) -> Expression:
    try:
        return compile_expression(source)
    except ExpressionError as exc:
        raise ctx.error(str(exc), entry, key) from None


def _axis(ctx: _Ctx, table: Any, entry: str, key: str, *, needs_expr: bool) -> AxisSpec:
    if not isinstance(table, dict):
        raise ctx.error(
            'expected a table like { expr = "p_bms", bins = 100, lo = 0, hi = 200 }', entry, key
        )
    _check_keys(ctx, table, _AXIS_KEYS, entry, f"axis '{key}'")
    bins = _typed(ctx, table, "bins", int, entry)
    lo = float(_typed(ctx, table, "lo", (int, float), entry))
    hi = float(_typed(ctx, table, "hi", (int, float), entry))
    if bins < 1 or bins > 100_000:
        raise ctx.error(f"bins must be 1..100000, got {bins}", entry, "bins")
    if not hi > lo:
        raise ctx.error(f"hi ({hi}) must be greater than lo ({lo})", entry, "hi")
    expr = None
    if needs_expr:
        expr = _expr(ctx, _typed(ctx, table, "expr", str, entry), entry, "expr")
    elif "expr" in table:
        raise ctx.error("a value axis takes no expr (the values come from 'values')", entry, "expr")
    label = _typed(ctx, table, "label", str, entry, default=(expr.source if expr else ""))
    return AxisSpec(bins=bins, lo=lo, hi=hi, label=label, expr=expr)


def _checks(ctx: _Ctx, raw: Any, entry: str) -> tuple[CheckSpec, ...]:
    if not isinstance(raw, list):
        raise ctx.error("expected a list of [[histogram.check]] tables", entry, "check")
    out = []
    for table in raw:
        if not isinstance(table, dict):
            raise ctx.error("expected a table", entry, "check")
        _check_keys(ctx, table, _CHECK_KEYS, entry, "check")
        ctype = _typed(ctx, table, "type", str, entry)
        params = _typed(ctx, table, "params", dict, entry, default={})
        try:
            # a number parameter may be "@p_beam_gev": resolved from the run's conditions
            deferred = condition_references(ctype, params)
            params = validate_check_params(ctype, params, deferred=deferred)
        except SpecError as exc:
            why = str(exc).removeprefix(f"key '{exc.key}': ")  # the key is named once
            raise ctx.error(f"check '{ctype}': {why}", entry, exc.key or "type") from None
        out.append(
            CheckSpec(
                type=ctype,
                params=params,
                instruction=_typed(ctx, table, "instruction", str, entry, default=""),
                requires=_sources(ctx, table, entry) if "requires" in table else (),
            )
        )
    return tuple(out)


def _requires(ctx: _Ctx, table: Mapping[str, Any], name: str, kw: Mapping[str, Any]) -> tuple:
    """The histogram's DAQ sources: declared, or derived from what its expressions read."""
    exprs = [kw.get("values"), kw.get("selection")]
    exprs += [axis.expr for axis in (kw.get("x"), kw.get("y")) if axis is not None]
    read: dict[str, str] = {}  # source -> an expression reading it, for the error message
    for expr in filter(None, exprs):
        for source in sorted(sources_read(expr)):
            read.setdefault(source, expr.source)
    if "requires" not in table:
        return tuple(s for s in DAQ_SOURCES if s in read)
    raw = _sources(ctx, table, name)
    for source, expr in read.items():
        if source not in raw:
            raise ctx.error(
                f"'{expr}' reads {source}, which 'requires' leaves out: events without {source} "
                f'would be filled here with zeros (add "{source}")',
                name,
                "requires",
            )
    return raw


def _sources(ctx: _Ctx, table: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A ``requires`` list of known DAQ sources, each once, in :data:`DAQ_SOURCES` order."""
    raw = table["requires"]
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ctx.error(
            f'expected a list of DAQ sources like ["BMS", "MS2"], got {raw!r}', name, "requires"
        )
    for source in raw:
        if source not in DAQ_SOURCES:
            close = difflib.get_close_matches(source.upper(), DAQ_SOURCES, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(DAQ_SOURCES)}"
            raise ctx.error(f"unknown DAQ source {source!r} ({hint})", name, "requires")
    if len(set(raw)) != len(raw):
        raise ctx.error(f"a source is listed twice in {raw!r}", name, "requires")
    return tuple(s for s in DAQ_SOURCES if s in raw)


def _histogram(ctx: _Ctx, table: Any, file_subsystem: str | None) -> HistogramSpec:
    if not isinstance(table, dict):
        raise ctx.error("each [[histogram]] must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ctx.error(f"'name' must be a lower_snake_case string, got {name!r}", None, "name")
    kind = _typed(ctx, table, "kind", str, name)
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        raise ctx.error(
            f"unknown kind {kind!r}"
            + (f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(KINDS)})"),
            name,
            "kind",
        )
    _check_keys(ctx, table, _COMMON_KEYS | _KIND_KEYS[kind], name, f"a '{kind}' histogram")
    subsystem = _typed(ctx, table, "subsystem", str, name, default=file_subsystem)
    if subsystem not in SUBSYSTEMS:
        raise ctx.error(
            f"subsystem must be one of {', '.join(SUBSYSTEMS)}, got {subsystem!r}",
            name,
            "subsystem",
        )
    kw: dict[str, Any] = {}
    if kind in ("h1", "h2"):
        kw["x"] = _axis(ctx, _typed(ctx, table, "x", dict, name), name, "x", needs_expr=True)
    if kind == "h2":
        kw["y"] = _axis(ctx, _typed(ctx, table, "y", dict, name), name, "y", needs_expr=True)
    if kind in ("channels", "cellmap"):
        kw["values"] = _expr(ctx, _typed(ctx, table, "values", str, name), name, "values")
    if kind == "channels":
        kw["y"] = _axis(ctx, _typed(ctx, table, "y", dict, name), name, "y", needs_expr=False)
        kw["channel_label"] = _typed(ctx, table, "channel_label", str, name, default="channel")
    if kind == "cellmap":
        stat = _typed(ctx, table, "stat", str, name, default="occupancy")
        if stat not in CELLMAP_STATS:
            raise ctx.error(
                f"stat must be one of {', '.join(map(repr, CELLMAP_STATS))}, got {stat!r}",
                name,
                "stat",
            )
        kw["stat"] = stat
        kw["threshold_gev"] = float(
            _typed(ctx, table, "threshold_gev", (int, float), name, default=0.0)
        )
        if "max_gev" in table:
            kw["max_gev"] = float(_typed(ctx, table, "max_gev", (int, float), name))
            if not kw["max_gev"] > kw["threshold_gev"]:
                raise ctx.error(
                    f"max_gev ({kw['max_gev']:g}) must be above threshold_gev "
                    f"({kw['threshold_gev']:g})",
                    name,
                    "max_gev",
                )
        kw["x_label"] = _typed(ctx, table, "x_label", str, name, default="cell x")
        kw["y_label"] = _typed(ctx, table, "y_label", str, name, default="cell y")
    if "selection" in table:
        kw["selection"] = _expr(ctx, _typed(ctx, table, "selection", str, name), name, "selection")
    return HistogramSpec(
        name=name,
        title=_typed(ctx, table, "title", str, name, default=name),
        subsystem=subsystem,
        kind=kind,
        description=_typed(ctx, table, "description", str, name, default=""),
        instruction=_typed(ctx, table, "instruction", str, name, default=""),
        control_room=_typed(ctx, table, "control_room", bool, name, default=False),
        checks=_checks(ctx, table.get("check", []), name),
        path=ctx.path,
        line=ctx.line_of(name, None),
        requires=_requires(ctx, table, name, kw),
        **kw,
    )


def load_spec_file(path: Path) -> list[HistogramSpec]:
    """Load one TOML file's histograms; raises :class:`SpecError` on any problem."""
    return _load_file(path)[0]


def _load_file(path: Path) -> tuple[list[HistogramSpec], list[Any], _Ctx]:
    """The file's histograms, its raw ``[[cause]]`` tables and its context for errors."""
    text = path.read_text(encoding="utf-8")
    ctx = _Ctx(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise SpecError(
            f"invalid TOML: {exc}", path=str(path), line=int(m.group(1)) if m else None
        ) from None
    _check_keys(ctx, doc, _FILE_KEYS, None, "the file's top level")
    subsystem = doc.get("subsystem")
    entries = doc.get("histogram", [])
    if not isinstance(entries, list):
        raise ctx.error("expected [[histogram]] entries", None, "histogram")
    causes = doc.get("cause", [])
    if not isinstance(causes, list):
        raise ctx.error("expected [[cause]] entries", None, "cause")
    return [_histogram(ctx, t, subsystem) for t in entries], causes, ctx


def load_specs(directory: Path | str, files: Iterable[Path] | None = None) -> SpecSet:
    """Load every ``*.toml`` in ``directory`` (sorted); names must be unique across files."""
    directory = Path(directory)
    paths = sorted(files) if files is not None else sorted(directory.glob("*.toml"))
    if not paths:
        raise SpecError(f"no *.toml histogram specs found in {directory}")
    digest = hashlib.sha256()
    histograms: list[HistogramSpec] = []
    cause_tables: list[tuple[_Ctx, Any]] = []
    seen: dict[str, str] = {}
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        file_histograms, file_causes, ctx = _load_file(path)
        cause_tables += [(ctx, table) for table in file_causes]
        for h in file_histograms:
            if h.name in seen:
                raise SpecError(
                    f"duplicate histogram name (first defined in {seen[h.name]})",
                    path=str(path),
                    line=h.line,
                    entry=h.name,
                    key="name",
                )
            seen[h.name] = str(path)
            histograms.append(h)
    from dqm.core.causes import load_causes  # imports this module: import when used

    return SpecSet(
        histograms=tuple(histograms),
        version=digest.hexdigest()[:12],
        files=tuple(str(p) for p in paths),
        causes=load_causes(cause_tables, histograms),
    )
