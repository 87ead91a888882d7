"""Channel checks on realistic, peaked calorimeter cell maps."""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dqm.checks import CheckContext, Quality, run_check

CHANNEL_CHECKS = ("dead_channels", "hot_channels", "noisy_channels")


def beam_spot_probabilities(x0: float = 3.0, y0: float = 3.0, sigma: float = 1.0) -> np.ndarray:
    """Hit probability per ECAL cell for a Gaussian beam spot (cell units), 6×6."""
    edges = np.arange(7.0)
    px = np.diff(stats.norm.cdf(edges, x0, sigma))
    py = np.diff(stats.norm.cdf(edges, y0, sigma))
    cells = np.outer(px, py)
    return cells / cells.sum()


def ecal_map(
    n_events: int,
    seed: int,
    *,
    dead: tuple[int, int] | None = None,
    hot: tuple[int, int] | None = None,
    hot_factor: float = 5.0,
    x0: float = 3.0,
    y0: float = 3.0,
) -> bh.Histogram:
    """ECAL 6×6 hit map of one spill (each muon hits one cell)."""
    rng = np.random.default_rng(seed)
    probabilities = beam_spot_probabilities(x0, y0)
    if hot is not None:
        probabilities[hot] *= hot_factor
    counts = rng.multinomial(n_events, (probabilities / probabilities.sum()).ravel())
    counts = counts.reshape(6, 6)
    if dead is not None:
        counts[dead] = 0
    h = bh.Histogram(bh.axis.Integer(0, 6), bh.axis.Integer(0, 6), storage=bh.storage.Int64())
    h[...] = counts
    return h


# Reference run: 100 spills; its beam spot sits 0.02 cell (≈ 1 mm) off this run's.
REFERENCE = ecal_map(2_000_000, seed=1, x0=3.02, y0=2.98)


def run_all(
    h: bh.Histogram, reference: bh.Histogram | None, **params: object
) -> dict[str, Quality]:
    context = CheckContext(h, reference)
    return {name: run_check(name, context, dict(params)).quality for name in CHANNEL_CHECKS}


@pytest.mark.parametrize("use_reference", [True, False])
def test_healthy_peaked_map_is_not_flagged(use_reference: bool) -> None:
    # Given 60 healthy spills whose beam spot wanders by ≈ 1 mm (0.03 cell) — the
    # centroid check's own window is ±1.5 mm; a 6 mm move does change edge cells by 1.6×
    rng = np.random.default_rng(7)
    for seed in range(60):
        x0, y0 = 3.0 + rng.normal(0, 0.03, 2)
        h = ecal_map(20_000, seed=100 + seed, x0=x0, y0=y0)
        # Then neither the reference nor the beam-spot model sees a bad cell
        qualities = run_all(h, REFERENCE if use_reference else None)
        assert set(qualities.values()) == {Quality.GOOD}, (seed, qualities)


def test_neighbour_and_median_comparisons_misfire_on_a_peaked_map() -> None:
    # Why the default is reference → beam-spot model: the central cells see 2.5× their
    # neighbours' median and the corners 1/6, on a perfectly healthy spill.
    h = ecal_map(20_000, seed=3)
    for method in ("neighbours", "median"):
        result = run_check("noisy_channels", CheckContext(h), {"method": method})
        assert result.quality is Quality.BAD, method


@pytest.mark.parametrize("use_reference", [True, False])
@pytest.mark.parametrize("cell", [(2, 3), (1, 1), (0, 3)])
def test_dead_cell_is_found_and_named(use_reference: bool, cell: tuple[int, int]) -> None:
    h = ecal_map(20_000, seed=11, dead=cell)
    result = run_check(
        "dead_channels",
        CheckContext(h, REFERENCE if use_reference else None),
        {"channel_name": "ECAL cell"},
    )
    assert result.quality is Quality.BAD
    assert result.details["channels"] == [list(cell)]
    source = (
        "expected from the reference"
        if use_reference
        else "no reference: judged against the map's own smooth fit"
    )
    assert f"ECAL cell ({cell[0]},{cell[1]}): 0 hits, expected ≈" in result.explanation
    assert result.explanation.endswith(f"— {source}")
    # the neighbours of a dead cell are not made "noisy" by it (second pass)
    noisy = run_check("noisy_channels", CheckContext(h, REFERENCE if use_reference else None))
    assert noisy.quality is Quality.GOOD, noisy.explanation


@pytest.mark.parametrize("use_reference", [True, False])
def test_hot_cell_is_found(use_reference: bool) -> None:
    h = ecal_map(20_000, seed=12, hot=(4, 1), hot_factor=5.0)
    context = CheckContext(h, REFERENCE if use_reference else None)
    hot = run_check("hot_channels", context)
    assert hot.quality is Quality.BAD and hot.details["channels"] == [[4, 1]]
    assert hot.details["significance"][0] >= 5.0
    assert run_check("dead_channels", context).quality is Quality.GOOD


def test_masked_channel_is_ignored() -> None:
    h = ecal_map(20_000, seed=13, dead=(2, 2))
    result = run_check("dead_channels", CheckContext(h, REFERENCE, masked=frozenset({(2, 2)})))
    assert result.quality is Quality.GOOD
    assert result.details["masked"] == [[2, 2]]
    # as the store hands it over (JSON lists) the mask works the same
    from_json = CheckContext(h, REFERENCE, masked=[[2, 2]])  # type: ignore[arg-type]
    assert run_check("dead_channels", from_json).quality is Quality.GOOD


def test_sparse_edge_cell_with_zero_hits_is_not_called_dead() -> None:
    # A corner expects ≈ 2 hits in a 5 000-event spill: zero is not evidence.
    h = ecal_map(5_000, seed=14, dead=(0, 0))
    assert run_check("dead_channels", CheckContext(h, REFERENCE)).quality is Quality.GOOD


def veto_map(n_events: int, seed: int, dead: int | None = None) -> bh.Histogram:
    """Flat map: VETO 3 planes × 2 counters, each seeing every muon's halo equally."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(n_events / 6, (3, 2))
    if dead is not None:
        counts[dead // 2, dead % 2] = 0
    h = bh.Histogram(bh.axis.Integer(0, 3), bh.axis.Integer(0, 2), storage=bh.storage.Int64())
    h[...] = counts
    return h


@pytest.mark.parametrize("method", ["neighbours", "median", "separable"])
def test_flat_map_without_reference(method: str) -> None:
    healthy = run_check("dead_channels", CheckContext(veto_map(6000, 5)), {"method": method})
    assert healthy.quality is Quality.GOOD
    dead = run_check("dead_channels", CheckContext(veto_map(6000, 5, dead=3)), {"method": method})
    assert dead.quality is Quality.BAD and dead.details["channels"] == [[1, 1]]


def hcal_modules(
    n_events: int, seed: int, gain: tuple[float, ...] = (1, 1, 1, 1), missing: int | None = None
) -> bh.Histogram:
    """HCAL energy per module (Integer(0,4) × Regular energy): a muon leaves ≈2.5 GeV each."""
    rng = np.random.default_rng(seed)
    h = bh.Histogram(
        bh.axis.Integer(0, 4),
        bh.axis.Regular(60, 0.0, 6.0, metadata="E [GeV]"),
        storage=bh.storage.Int64(),
    )
    for module in range(4):
        if module == missing:
            continue
        energy = gain[module] * rng.gamma(9.0, 2.5 / 9.0, n_events)
        h.fill(np.full(n_events, module), energy)
    return h


def test_missing_hcal_module_is_a_dead_channel_of_the_projection() -> None:
    reference = hcal_modules(200_000, 1)
    result = run_check(
        "dead_channels",
        CheckContext(hcal_modules(20_000, 2, missing=2), reference),
        {"channel_name": "HCAL module"},
    )
    assert result.quality is Quality.BAD and result.details["channels"] == [[2]]
    assert result.explanation.startswith("1 dead HCAL module(s): HCAL module 2: 0 hits")


@pytest.mark.parametrize("use_reference", [True, False])
def test_hcal_module_gain_drop(use_reference: bool) -> None:
    reference = hcal_modules(200_000, 1) if use_reference else None
    healthy = run_check("channel_means", CheckContext(hcal_modules(20_000, 3), reference))
    assert healthy.quality is Quality.GOOD, healthy.explanation
    dropped = run_check(
        "channel_means",
        CheckContext(hcal_modules(20_000, 3, gain=(1, 1, 0.7, 1)), reference),
        {"channel_name": "HCAL module"},
    )
    assert dropped.quality is Quality.BAD
    assert dropped.details["channels"] == [[2]]
    assert "HCAL module 2: mean E [GeV]" in dropped.explanation and "-30 %" in dropped.explanation


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=36, max_size=36), st.integers(1, 20))
def test_map_identical_in_shape_to_its_reference_is_never_flagged(
    cells: list[int], factor: int
) -> None:
    h = bh.Histogram(bh.axis.Integer(0, 6), bh.axis.Integer(0, 6), storage=bh.storage.Int64())
    h[...] = np.array(cells).reshape(6, 6)
    reference = h.copy()
    reference[...] = factor * np.array(cells).reshape(6, 6)
    qualities = run_all(h, reference, min_entries=0)
    assert Quality.BAD not in qualities.values() and Quality.WARNING not in qualities.values()


def test_min_share_ignores_a_significant_but_negligible_corner_cell() -> None:
    # Given a healthy map plus 40 stray hits (a shower tail) in a corner the beam hardly reaches
    h = ecal_map(20_000, seed=5)
    corner = h.values()[5, 5]
    h[5, 5] = corner + 40
    context = CheckContext(h, None)
    # When it is judged without a reference, with and without a minimum share of the map's hits
    bare = run_check("hot_channels", context, {"hot_factor": 1.5, "min_sigma": 6.0})
    shared = run_check(
        "hot_channels", context, {"hot_factor": 1.5, "min_sigma": 6.0, "min_share": 0.005}
    )
    # Then only the bare check calls the corner hot; a real hot cell is hot either way
    assert bare.quality is Quality.BAD and [5, 5] in bare.details["channels"]
    assert shared.quality is Quality.GOOD and shared.threshold["min_share"] == 0.005
    hot = ecal_map(20_000, seed=5, hot=(4, 1), hot_factor=50.0)
    assert (
        run_check(
            "hot_channels",
            CheckContext(hot, None),
            {"hot_factor": 1.5, "min_sigma": 6.0, "min_share": 0.005},
        ).quality
        is Quality.BAD
    )
