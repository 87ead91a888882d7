"""Physics variables computed from a batch's columns, and a small safe expression language.

Specs name what to histogram as expressions such as ``"p_bms - p_ms2"`` or
``"hcal_total > 30"``. An expression is parsed once (Python's ``ast`` with a whitelist:
names, numbers, arithmetic, comparisons, ``& | ~``, subscripts and a few numpy
functions) into a closure; evaluating it on a batch is a handful of numpy calls.

Named derived variables (``ecal_total``, ``hcal_module`` …) live in :data:`DERIVED`,
each computed at most once per batch through :class:`BatchView`'s cache, so thirty
histograms that all use ``hcal_total`` pay for one sum.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from dqm.core.events import COLUMN_BY_NAME, COLUMN_SOURCE, DAQ_SOURCES, empty_columns

__all__ = [
    "DERIVED",
    "BatchView",
    "Expression",
    "compile_expression",
    "known_names",
    "columns_read",
    "sources_read",
]

#: A hadron (π/K) shower deposits far more than a muon's ≈4×2.5 GeV MIP chain in the HCAL.
HADRON_HCAL_THRESHOLD_GEV = 30.0
#: ... and it starts in the ECAL (≈1.5 λ_I): a muon's nuclear interaction in the HCAL
#: leaves only a MIP (≈0.4 GeV) there. Without this cut muon interactions outnumber the
#: π/K five to one and a ×5 π/K excess drowns in them.
HADRON_ECAL_THRESHOLD_GEV = 5.0
#: The signal region: an outgoing muon that kept less than this fraction of its incoming
#: momentum (seed: below 80–100 GeV out of a 160 GeV beam; 100/160 = 0.625). Relative to the
#: event's own p_BMS, so the tag needs no run conditions and holds at any beam momentum.
LOW_POUT_FRACTION = 0.625
_ALL_SOURCES = (1 << len(DAQ_SOURCES)) - 1


def _sum_cells(name: str, axes: tuple[int, ...]) -> Callable[[BatchView], np.ndarray]:
    """Sum the trailing ``axes`` of a cell column as one matrix-vector product.

    ``(n, k) @ ones(k)`` runs in BLAS and is ~10x faster than numpy's multi-axis
    ``sum``. It accumulates in float64 and rounds once to float32: the float32 result
    then no longer depends on the order in which a BLAS kernel adds the cells, so
    every worker (and numpy's own ``sum``) gives the same value for an event.
    """
    keep = COLUMN_BY_NAME[name].shape[: axes[0] - 1]
    k = int(np.prod(COLUMN_BY_NAME[name].shape[axes[0] - 1 :]))
    ones = np.ones(k, dtype=np.float64)

    def summed(v: BatchView) -> np.ndarray:
        cells = v[name].reshape(-1, k).astype(np.float64)
        return (cells @ ones).astype(np.float32).reshape(v.n_events, *keep)

    return summed


#: name -> (function of the batch view, documentation)
DERIVED: dict[str, tuple[Callable[[BatchView], np.ndarray], str]] = {
    "ecal_pre": (lambda v: v["ecal"][:, 0], "ECAL preshower 6x6 cell energies [GeV]"),
    "ecal_main": (lambda v: v["ecal"][:, 1], "ECAL main 6x6 cell energies [GeV]"),
    "ecal_total": (_sum_cells("ecal", (1, 2, 3)), "total ECAL energy [GeV]"),
    "hcal_module": (_sum_cells("hcal", (2, 3)), "energy per HCAL module, shape (n, 4) [GeV]"),
    "hcal_total": (_sum_cells("hcal", (1, 2, 3)), "total HCAL energy [GeV]"),
    "hcal_last_module": (
        lambda v: v["hcal_module"][:, 3],
        "energy in the last HCAL module (leakage) [GeV]",
    ),
    "veto_total": (_sum_cells("veto", (1, 2)), "total VETO energy [GeV]"),
    "veto_counter": (
        lambda v: v["veto"].reshape(v.n_events, -1),
        "VETO counters, shape (n, 6) [GeV]",
    ),
    "vhcal_total": (_sum_cells("vhcal", (1, 2)), "total VHCAL energy [GeV]"),
    "vhcal_cell": (lambda v: v["vhcal"].reshape(v.n_events, -1), "VHCAL cells, shape (n, 4) [GeV]"),
    "calo_total": (lambda v: v["ecal_total"] + v["hcal_total"], "E_ECAL + E_HCAL [GeV]"),
    "dp": (lambda v: v["p_bms"] - v["p_ms2"], "Δp = p_BMS − p_MS2 [GeV]"),
    "energy_balance": (
        lambda v: v["p_bms"] - v["p_ms2"] - v["calo_total"],
        "p_in − p_out − E_ECAL − E_HCAL: missing energy [GeV]",
    ),
    "is_hadron": (
        lambda v: (
            (v["hcal_total"] > HADRON_HCAL_THRESHOLD_GEV)
            & (v["ecal_total"] > HADRON_ECAL_THRESHOLD_GEV)
        ),
        "π/K tag: a shower starting in the ECAL and continuing in the HCAL",
    ),
    "is_low_pout": (
        lambda v: v["p_ms2"] < LOW_POUT_FRACTION * v["p_bms"],
        "outgoing momentum in the signal region: p_MS2 < 0.625 p_BMS",
    ),
    "daq_complete": (lambda v: v["daq_sources"] == _ALL_SOURCES, "every DAQ source read out"),
    "daq_source_bit": (
        lambda v: ((v["daq_sources"][:, None] >> np.arange(len(DAQ_SOURCES))) & 1).astype(bool),
        "per-source presence, shape (n, 8)",
    ),
}


def known_names() -> list[str]:
    return sorted([*COLUMN_BY_NAME, *DERIVED])


class BatchView:
    """Columns of one batch plus lazily computed, cached derived variables."""

    __slots__ = ("columns", "n_events", "_cache", "_with_sources")
    columns: Mapping[str, np.ndarray]
    n_events: int
    _cache: dict[str, np.ndarray]
    _with_sources: dict[int, Any]

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.columns = columns
        self.n_events = int(columns["event"].shape[0])
        self._cache = {}
        self._with_sources = {}  # source mask -> events (-1: complete?)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            pass
        cached = self._cache.get(name)
        if cached is None:
            cached = self._cache[name] = DERIVED[name][0](self)
        return cached

    def evaluate(self, expr: Expression) -> np.ndarray:
        cached = self._cache.get(expr.source)
        if cached is None:
            cached = self._cache[expr.source] = np.asarray(expr.fn(self))
        return cached

    def memo(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """An intermediate array of this batch, computed once under ``key``.

        Fill steps that share work (the hit mask and the MeV energies of one calorimeter
        layer feed four cell maps) use it; keys start with a character no expression can
        contain (``"|"``), so they never collide with variables.
        """
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = compute()
        return cached

    @property
    def complete(self) -> bool:
        """Every event has every DAQ source (one reduction per batch, then cached)."""
        done = self._with_sources.get(-1)
        if done is None:
            done = self._with_sources[-1] = bool(self.columns["daq_sources"].min() == _ALL_SOURCES)
        return done

    def with_sources(self, bits: int) -> np.ndarray | None:
        """Events in which every DAQ source of the mask ``bits`` was read out.

        ``None`` when that is every event (the usual case: nothing to select, nothing to
        copy). One vectorised AND per distinct mask and batch, cached: thirty histograms
        that need the same sources pay for one.
        """
        if bits == 0 or self.complete:
            return None
        try:
            return self._with_sources[bits]
        except KeyError:
            pass
        has = (self.columns["daq_sources"] & bits) == bits
        mask = None if has.all() else has
        self._with_sources[bits] = mask
        return mask


class _Recorder(BatchView):
    """A one-event view that notes every column an expression reads, through derived ones."""

    __slots__ = ("read",)

    def __init__(self) -> None:
        super().__init__(empty_columns(1))
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.columns:
            self.read.add(name)
            return self.columns[name]
        return DERIVED[name][0](self)  # not cached: every path through it is recorded


def columns_read(expr: Expression) -> frozenset[str]:
    """The event columns ``expr`` reads, following derived variables down to the columns.

    Found by evaluating it once on a one-event dummy batch that records each access, so a
    new derived variable needs no hand-written list of inputs that could drift from its code.
    """
    recorder = _Recorder()
    with np.errstate(all="ignore"):
        expr.fn(recorder)
    return frozenset(recorder.read)


def sources_read(expr: Expression) -> frozenset[str]:
    """The DAQ sources whose columns ``expr`` reads (:data:`dqm.core.events.SOURCE_COLUMNS`)."""
    return frozenset(COLUMN_SOURCE[c] for c in columns_read(expr) if c in COLUMN_SOURCE)


_BINOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
    ast.Mod: np.mod,
}
_CMPOPS: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_FUNCS: dict[str, Callable[..., np.ndarray]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "hypot": np.hypot,
    "log10": np.log10,
    "minimum": np.minimum,
    "maximum": np.maximum,
}


class Expression:
    """A compiled expression: ``fn(batch_view) -> ndarray``; ``source`` is the cache key."""

    __slots__ = ("source", "fn", "names")

    def __init__(self, source: str, fn: Callable[[BatchView], np.ndarray], names: frozenset[str]):
        self.source, self.fn, self.names = source, fn, names

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


class ExpressionError(ValueError):
    """Raised by :func:`compile_expression`; the spec loader wraps it in a SpecError."""


def compile_expression(source: str) -> Expression:
    """Parse ``source`` into an :class:`Expression`; unknown names suggest the closest one."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse expression {source!r}: {exc.msg}") from None
    names: set[str] = set()
    fn = _compile(tree.body, source, names)
    return Expression(source.strip(), fn, frozenset(names))


def _compile(node: ast.AST, source: str, names: set[str]) -> Callable[[BatchView], np.ndarray]:
    if isinstance(node, ast.Name):
        name = node.id
        if name not in COLUMN_BY_NAME and name not in DERIVED:
            close = difflib.get_close_matches(name, known_names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ExpressionError(f"unknown variable '{name}' in {source!r}{hint}")
        names.add(name)
        return lambda v: v[name]
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        constant = node.value  # stays a Python number: numpy keeps the column's dtype
        return lambda v: constant  # type: ignore[return-value]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        op, left, right = (
            _BINOPS[type(node.op)],
            _compile(node.left, source, names),
            _compile(node.right, source, names),
        )
        return lambda v: op(left(v), right(v))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert, ast.Not)):
        operand = _compile(node.operand, source, names)
        if isinstance(node.op, ast.USub):
            return lambda v: np.negative(operand(v))
        return lambda v: np.logical_not(operand(v))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        op = _CMPOPS[type(node.ops[0])]
        left, right = (
            _compile(node.left, source, names),
            _compile(node.comparators[0], source, names),
        )
        return lambda v: op(left(v), right(v))
    if isinstance(node, ast.Subscript):
        value = _compile(node.value, source, names)
        index = _static_index(node.slice, source)
        return lambda v: value(v)[(slice(None), *index)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        func = _FUNCS[node.func.id]
        args = [_compile(a, source, names) for a in node.args]
        return lambda v: func(*(a(v) for a in args))
    raise ExpressionError(
        f"unsupported syntax {ast.unparse(node)!r} in {source!r}: use variables, numbers, "
        f"+ - * / **, comparisons, & | ~, [index] and {sorted(_FUNCS)}"
    )


def _static_index(node: ast.AST, source: str) -> tuple[int | slice, ...]:
    """Indices apply per event: ``ms1_x[0]`` is station 0 of every event."""
    elts = node.elts if isinstance(node, ast.Tuple) else [node]
    out: list[int | slice] = []
    for e in elts:
        if isinstance(e, ast.Constant) and isinstance(e.value, int):
            out.append(e.value)
        elif isinstance(e, ast.Slice) and e.lower is None and e.upper is None and e.step is None:
            out.append(slice(None))
        else:
            raise ExpressionError(
                f"index {ast.unparse(e)!r} in {source!r} must be an integer or ':'"
            )
    return tuple(out)
