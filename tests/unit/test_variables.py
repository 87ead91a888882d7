"""The spec expression language: same numbers as the numpy written by hand, a closed
whitelist (anything else is an ExpressionError), and derived variables computed once."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from dqm.core.events import DAQ_SOURCES
from dqm.core.variables import DERIVED, BatchView, ExpressionError, compile_expression, known_names
from dqm.sim.simulate import SimConfig, simulate_spill


@cache
def columns() -> dict[str, np.ndarray]:
    """A small spill with enough hadrons and brems to populate every selection."""
    cfg = SimConfig(
        events_per_spill=2000, pik_fraction=0.05, brems_fraction=0.05, signal_fraction=0.01
    )
    cols = simulate_spill(cfg, 1).columns
    for arr in cols.values():
        arr.flags.writeable = False  # an expression must never write into the batch
    return cols


def evaluate(source: str) -> np.ndarray:
    return np.asarray(BatchView(columns()).evaluate(compile_expression(source)))


def hand(name: str) -> np.ndarray:
    return columns()[name]


def cell_sum(name: str, axis: tuple[int, ...]) -> np.ndarray:
    """Energy sums as the detector defines them: accumulated in float64, stored as float32."""
    return hand(name).sum(axis=axis, dtype=np.float64).astype(np.float32)


def hcal_total() -> np.ndarray:
    return cell_sum("hcal", (1, 2, 3))


def ecal_total() -> np.ndarray:
    return cell_sum("ecal", (1, 2, 3))


CASES = {
    # arithmetic
    "p_bms - p_ms2": lambda: hand("p_bms") - hand("p_ms2"),
    "p_bms + 2 * p_ms2 / 3": lambda: hand("p_bms") + 2 * hand("p_ms2") / 3,
    "(p_bms - 160) ** 2": lambda: (hand("p_bms") - 160) ** 2,
    "-p_ms2": lambda: -hand("p_ms2"),
    "event % 7": lambda: hand("event") % 7,
    # comparisons and logic
    "p_ms2 < 100": lambda: hand("p_ms2") < 100,
    "p_bms >= 160": lambda: hand("p_bms") >= 160,
    "trigger_bits == 2": lambda: hand("trigger_bits") == 2,
    "trigger_bits != 1": lambda: hand("trigger_bits") != 1,
    "(p_ms2 < 100) & (hcal_total > 30)": lambda: (hand("p_ms2") < 100) & (hcal_total() > 30),
    "(p_ms2 < 100) | (ecal_total > 5)": lambda: (hand("p_ms2") < 100) | (ecal_total() > 5),
    "~(p_ms2 < 100)": lambda: ~(hand("p_ms2") < 100),
    "~is_hadron & (p_ms2 > 100)": lambda: (
        ~((hcal_total() > 30) & (ecal_total() > 5)) & (hand("p_ms2") > 100)
    ),
    # per-event indexing
    "ms1_x[0]": lambda: hand("ms1_x")[:, 0],
    "ms2_y[1] - ms1_y[2]": lambda: hand("ms2_y")[:, 1] - hand("ms1_y")[:, 2],
    "ecal[1]": lambda: hand("ecal")[:, 1],
    "ecal[1, 2, 3]": lambda: hand("ecal")[:, 1, 2, 3],
    "hcal[:, 1]": lambda: hand("hcal")[:, :, 1],
    # functions
    "sqrt(p_bms)": lambda: np.sqrt(hand("p_bms")),
    "abs(ms1_x[2])": lambda: np.abs(hand("ms1_x")[:, 2]),
    "hypot(ms1_x[0], ms1_y[0])": lambda: np.hypot(hand("ms1_x")[:, 0], hand("ms1_y")[:, 0]),
    "log10(p_bms + 1)": lambda: np.log10(hand("p_bms") + 1),
    "minimum(p_bms, p_ms2)": lambda: np.minimum(hand("p_bms"), hand("p_ms2")),
    "maximum(ecal_total, 1)": lambda: np.maximum(ecal_total(), 1),
    # derived variables
    "dp": lambda: hand("p_bms") - hand("p_ms2"),
    "hcal_total": hcal_total,
    "hcal_module": lambda: cell_sum("hcal", (2, 3)),
    "hcal_last_module": lambda: cell_sum("hcal", (2, 3))[:, 3],
    "ecal_main": lambda: hand("ecal")[:, 1],
    "calo_total": lambda: ecal_total() + hcal_total(),
    "energy_balance": lambda: hand("p_bms") - hand("p_ms2") - (ecal_total() + hcal_total()),
    "is_hadron": lambda: (hcal_total() > 30) & (ecal_total() > 5),
    "daq_complete": lambda: hand("daq_sources") == 0xFF,
    "daq_source_bit": lambda: np.stack(
        [(hand("daq_sources") >> i) & 1 for i in range(len(DAQ_SOURCES))], axis=1
    ).astype(bool),
    "veto_counter": lambda: hand("veto").reshape(-1, 6),
}


@pytest.mark.parametrize("source", list(CASES))
def test_expression_equals_numpy_by_hand(source):
    # Given an expression and the same quantity written directly in numpy
    expected = np.asarray(CASES[source]())
    # When evaluated on a batch
    got = evaluate(source)
    # Then values, shape and dtype kind agree exactly
    assert got.shape == expected.shape
    assert got.dtype.kind == expected.dtype.kind
    np.testing.assert_array_equal(got, expected)


def test_selections_are_not_trivial():
    # Guard: the cases above must exercise both outcomes of each boolean expression
    for source in ("is_hadron", "p_ms2 < 100", "(p_ms2 < 100) & (hcal_total > 30)"):
        mask = evaluate(source)
        assert 0 < mask.sum() < mask.size, source


def test_expression_records_the_names_it_uses():
    expr = compile_expression(" hypot(ms1_x[0], ms1_y[0]) + dp ")
    assert expr.names == frozenset({"ms1_x", "ms1_y", "dp"})
    assert expr.source == "hypot(ms1_x[0], ms1_y[0]) + dp"


@pytest.mark.parametrize(
    "source",
    [
        "p_bms.real",  # attribute access
        "p_bms.__class__",
        "lambda: 1",  # lambda
        "__import__('os')",  # builtins are not functions of the language
        "open('/etc/passwd')",
        "eval('1')",
        "np.sqrt(p_bms)",
        "sum(p_bms)",  # a call to a non-whitelisted function
        "p_bms if p_ms2 else 0",  # conditional expression
        "[p_bms]",  # containers
        "{'a': p_bms}",
        "'p_bms'",  # strings
        "p_bms and p_ms2",  # boolean operators (use & |)
        "1 < p_bms < 2",  # chained comparison
        "p_bms in p_ms2",
        "ms1_x[event]",  # a non-constant index
        "ms1_x[0:2]",  # a slice other than ':'
        "(x := p_bms)",  # assignment expression
        "p_bms @ p_ms2",
        "p_bms[",  # not even Python
        "",
    ],
)
def test_unsupported_syntax_raises_expression_error(source):
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_unknown_variable_suggests_the_closest():
    with pytest.raises(
        ExpressionError, match=r"unknown variable 'hcal_totl'.*did you mean 'hcal_total'\?"
    ):
        compile_expression("hcal_totl > 30")


def test_known_names_cover_columns_and_derived():
    names = known_names()
    assert "p_bms" in names and "ecal" in names and "hcal_total" in names and "dp" in names
    assert set(DERIVED) <= set(names)


def test_derived_variable_is_computed_once_per_batch(monkeypatch):
    # Given a counting hcal_total
    calls = []
    fn, doc = DERIVED["hcal_total"]

    def counting(view):
        calls.append(view)
        return fn(view)

    monkeypatch.setitem(DERIVED, "hcal_total", (counting, doc))
    exprs = [
        compile_expression(s)
        for s in ("hcal_total", "hcal_total > 30", "is_hadron", "calo_total", "energy_balance")
    ]
    # When five expressions that all need it are evaluated on one batch (twice each)
    view = BatchView(columns())
    for _ in range(2):
        for e in exprs:
            view.evaluate(e)
    # Then it was computed once; a new batch computes it once more
    assert len(calls) == 1
    BatchView(columns()).evaluate(exprs[1])
    assert len(calls) == 2


def test_expression_result_is_cached_per_batch():
    view = BatchView(columns())
    expr = compile_expression("hypot(ms1_x[0], ms1_y[0])")
    assert view.evaluate(expr) is view.evaluate(compile_expression("hypot(ms1_x[0], ms1_y[0])"))
    assert BatchView(columns()).evaluate(expr) is not view.evaluate(expr)
