"""Cells, not only modules: dead, hot and gain-shifted cells of the ECAL (both layers) and of
every HCAL module are found and named as that cell, on simulated spills at the nominal
20 000 events against a reference of 10 clean spills — including cells that expect only a
few hits per spill (added up over spills)."""

from __future__ import annotations

import dataclasses
from functools import cache

import boost_histogram as bh
import numpy as np
import pytest

from dqm.checks import CheckContext, CheckResult, Quality, run_check
from dqm.core.fill import Filler
from dqm.core.histio import add_into
from dqm.core.specs import load_specs
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from tests.conftest import ROOT

SPECS = load_specs(ROOT / "histograms")
FILLER = Filler(SPECS)
# a realistic clean beam: it wanders within its tolerances from spill to spill
CONFIG = SimConfig(
    run=801,
    events_per_spill=20_000,
    batch_size=20_000,
    beam_wander_x_mm=0.3,
    beam_wander_y_mm=0.2,
    beam_wander_width_rel=0.01,
    intensity_wander_rel=0.03,
    beam_wander_correlation=0.5,
)
HCAL_MODULES = range(4)


@cache
def spill(s: int, anomaly: str | None = None, run: int = 801) -> dict[str, bh.Histogram]:
    """One filled spill (cached: the same spill is asked for by several tests)."""
    cfg = dataclasses.replace(CONFIG, run=run)
    data = simulate_spill(cfg, s, [parse_anomaly(anomaly)] if anomaly else [])
    assert data is not None
    hists = FILLER.book()
    FILLER.fill(hists, BatchView(data.columns))
    return hists


@cache
def reference() -> dict[str, bh.Histogram]:
    """A reference run of 40 clean spills (its edge HCAL cells: ~30–400 hits each)."""
    total: dict[str, bh.Histogram] = {}
    for s in range(40):
        add_into(total, spill(s, run=802))
    return total


def check(
    histogram: str,
    name: str,
    hists: dict[str, bh.Histogram],
    *,
    recent: tuple[dict[str, bh.Histogram], ...] = (),
    with_reference: bool = True,
    **overrides: object,
) -> CheckResult:
    """``name`` on ``histogram`` with the spec's parameters, as the worker runs it."""
    spec = next(c for c in SPECS[histogram].checks if c.type == name)
    refs = reference() if with_reference else {}
    context = CheckContext(
        histogram=hists[histogram],
        reference=refs.get(histogram),
        histograms=hists,
        references=refs,
        subsystem="calorimeter",
        recent=tuple(r.get(histogram) for r in recent),
    )
    return run_check(name, context, {**spec.params, **overrides})


CELL_CASES = [
    ("ecal", "1/2/2", "ecal", "ECAL cell (2,2)"),
    ("ecal", "1/3/2", "ecal", "ECAL cell (3,2)"),
    ("ecal", "0/2/3", "ecal_pre", "ECAL preshower cell (2,3)"),
    *[("hcal", f"{k}/1/1", f"hcal_m{k}", f"HCAL module {k} cell (1,1)") for k in HCAL_MODULES],
]


def _maps(prefix: str) -> tuple[str, str]:
    """(occupancy map, energy map) of an ECAL layer or HCAL module."""
    if prefix.startswith("hcal"):
        return f"{prefix}_occupancy", f"{prefix}_energy"
    return f"{prefix}_occupancy", f"{prefix}_energy_map"


@pytest.mark.parametrize(("detector", "cell", "prefix", "named"), CELL_CASES)
def test_dead_cell_is_named_as_that_cell(detector, cell, prefix, named) -> None:
    hists = spill(20, f"dead_cell:detector={detector},cell={cell}")
    result = check(_maps(prefix)[0], "dead_channels", hists)
    assert result.quality is Quality.BAD
    assert result.explanation.startswith(f"1 dead {named.rsplit(' ', 1)[0]}(s): {named}: 0 hits")
    assert "expected from the reference" in result.explanation


@pytest.mark.parametrize(("detector", "cell", "prefix", "named"), CELL_CASES)
def test_gain_shifted_cell_is_named_as_that_cell_not_its_module(
    detector, cell, prefix, named
) -> None:
    # Given one cell whose energies read 20 % low
    hists = spill(21, f"cell_gain:detector={detector},cell={cell},factor=0.8")
    result = check(_maps(prefix)[1], "cell_gain", hists)
    # Then that cell is BAD, named, about −20 %
    assert result.quality is Quality.BAD, result.explanation
    assert result.explanation.startswith(f"{named}: mean ")
    assert result.details["channels"] == [[int(c) for c in cell.split("/")[1:]]]
    assert result.details["relative"][0] == pytest.approx(-0.2, abs=0.03)
    # … its hits are still there (no dead or hot cell), and no other map's gain moved
    assert check(_maps(prefix)[0], "dead_channels", hists).quality is Quality.GOOD
    others = [p for _, _, p, _ in CELL_CASES if p != prefix]
    for other in dict.fromkeys(others):
        assert check(_maps(other)[1], "cell_gain", hists).quality is Quality.GOOD, other
    # and the module-level mean (which a single cell's gain used to be reported as) is not
    # judged any more
    assert SPECS["hcal_module_energy"].checks == ()


@pytest.mark.parametrize(
    ("detector", "cell", "prefix", "named"),
    [
        ("ecal", "1/4/1", "ecal", "ECAL cell (4,1)"),
        ("ecal", "0/0/5", "ecal_pre", "ECAL preshower cell (0,5)"),
        *[("hcal", f"{k}/2/0", f"hcal_m{k}", f"HCAL module {k} cell (2,0)") for k in HCAL_MODULES],
    ],
)
def test_hot_cell_with_few_expected_hits_is_named(detector, cell, prefix, named) -> None:
    # Given a cell that expects a handful of hits per spill and fires in 0.3 % of events
    hists = spill(22, f"hot_cell:detector={detector},cell={cell},fraction=0.003")
    result = check(_maps(prefix)[0], "hot_channels", hists)
    # Then it is BAD on that spill, though it holds well under 1 % of the map's hits
    assert result.quality is Quality.BAD, result.explanation
    assert f"{named}: " in result.explanation
    observed, expected = result.details["observed"][0], result.details["expected"][0]
    assert expected < 20 and observed < 0.01 * hists[_maps(prefix)[0]].values().sum()


@pytest.mark.parametrize(("module", "within"), [(0, 4), (1, 4), (2, 14)])
def test_dead_cell_with_few_expected_hits_is_found_by_adding_up_spills(module, within) -> None:
    # Given an HCAL edge cell (shower hits only: ~10 per spill in modules 0–1, ~2.5 in
    # module 2) dead from spill 30 on
    anomaly = f"dead_cell@30-:detector=hcal,cell={module}/0/1"
    occupancy = _maps(f"hcal_m{module}")[0]
    runs = [spill(s, anomaly) for s in range(10, 30 + within)]
    qualities, result = [], None
    for t in range(20, len(runs)):  # spills 30, 31, …, each judged with its earlier spills
        result = check(occupancy, "dead_channels", runs[t], recent=tuple(runs[:t]))
        qualities.append(result.quality)
        if result.quality is Quality.BAD:
            break
    # Then one spill alone is not enough; added up, the cell is BAD within a few spills,
    # named with the number of spills it was judged over
    assert qualities[0] is Quality.GOOD
    assert result is not None and qualities[-1] is Quality.BAD, qualities
    named = f"HCAL module {module} cell (0,1): 0 hits in the last {len(qualities)} spills"
    assert named in result.explanation


def test_clean_spills_flag_no_cell() -> None:
    # Given 12 clean spills of a wandering beam, each judged with its earlier spills
    runs = [spill(s) for s in range(40, 52)]
    for t in range(len(runs)):
        for spec in SPECS:
            for c in spec.checks:
                if c.type in ("dead_channels", "hot_channels", "cell_gain"):
                    result = check(spec.name, c.type, runs[t], recent=tuple(runs[:t]))
                    # Then no cell is flagged, not even as a suspect (a sparse map — the
                    # VHCAL's few hadron-leak hits — may hold no hit at all: nothing to judge)
                    empty = float(runs[t][spec.name].values().sum()) == 0
                    expected = (Quality.GOOD, Quality.NO_DATA) if empty else (Quality.GOOD,)
                    assert result.quality in expected, (t, spec.name, result.explanation)


def test_a_whole_map_shifted_together_is_a_common_cause() -> None:
    # Given an ECAL whose every cell reads 15 % high (a global HV or calibration change)
    cfg = dataclasses.replace(CONFIG, ecal_mip_gev=1.15 * CONFIG.ecal_mip_gev)
    data = simulate_spill(cfg, 23)
    assert data is not None
    hists = FILLER.book()
    FILLER.fill(hists, BatchView(data.columns))
    result = check("ecal_energy_map", "cell_gain", hists)
    assert result.quality is Quality.BAD
    assert result.explanation.startswith("every judged ECAL cell shifted together (+1")
    assert "% median)" in result.explanation
    assert "a common cause (HV, calibration) rather than one cell" in result.explanation


def test_without_reference_the_fallback_says_so() -> None:
    hists = spill(24, "dead_cell:detector=ecal,cell=1/2/3")
    dead = check("ecal_occupancy", "dead_channels", hists, with_reference=False)
    assert dead.quality is Quality.BAD and "ECAL cell (2,3): 0 hits" in dead.explanation
    assert dead.explanation.endswith("no reference: judged against the map's own smooth fit")
    gain = check("ecal_energy_map", "cell_gain", spill(25), with_reference=False)
    assert gain.quality is Quality.GOOD and "no reference: the median of the cells" in (
        gain.explanation
    )


def test_good_result_states_what_one_spill_cannot_see() -> None:
    # module 3's edge cells see about one shower hit per spill
    result = check("hcal_m3_occupancy", "dead_channels", spill(26))
    assert result.quality is Quality.GOOD
    assert "cell(s) expect fewer than" in result.explanation
    assert "too few to call them dead" in result.explanation


def test_masked_cell_is_never_reported() -> None:
    hists = spill(27, "dead_cell:detector=hcal,cell=2/1/1")
    spec = next(c for c in SPECS["hcal_m2_occupancy"].checks if c.type == "dead_channels")
    context = CheckContext(
        hists["hcal_m2_occupancy"],
        reference()["hcal_m2_occupancy"],
        masked=frozenset({(1, 1)}),
    )
    result = run_check("dead_channels", context, dict(spec.params))
    assert result.quality is Quality.GOOD and result.details["masked"] == [[1, 1]]


def test_cell_response_gives_each_cell_s_mean_and_its_error() -> None:
    # the error of a cell's mean response is √(var/n) from its n, ΣE, ΣE² maps
    from dqm.checks.gain import cell_response

    hists = spill(28)
    mean, error, hits = cell_response(
        hists["hcal_m1_mip_hits"], hists["hcal_m1_energy"], hists["hcal_m1_energy2"]
    )
    assert hits[1, 1] > 15_000 and mean[1, 1] == pytest.approx(2.5, rel=0.05)
    # the MIP is lognormal with σ = 0.3: the error of the mean is ≈ 0.3·2.5/√n
    assert error[1, 1] == pytest.approx(0.3 * 2.5 / np.sqrt(hits[1, 1]), rel=0.25)


@pytest.mark.parametrize("name", ["dead_channels", "hot_channels"])
def test_without_reference_a_one_cell_beam_spot_is_not_judged(name) -> None:
    # the HCAL beam cell holds ~99 % of its module's hits: a smooth beam-spot fit has
    # nothing to say about any cell of such a map, so it must not call them dead or hot
    result = check("hcal_m1_occupancy", name, spill(29), with_reference=False)
    assert result.quality is Quality.NO_DATA
    assert "% of the hits are in cell (1,1)" in result.explanation
    assert result.explanation.endswith("set a reference run")


def test_a_hot_cell_for_one_spill_leaves_no_trail_in_the_windows() -> None:
    # Given an HCAL edge cell hot in spill 30 only, then healthy again
    anomaly = "hot_cell@30:detector=hcal,cell=1/2/0,fraction=0.003"
    runs = [spill(s, anomaly) for s in range(25, 36)]
    results = [
        check("hcal_m1_occupancy", "hot_channels", runs[t], recent=tuple(runs[:t]))
        for t in range(5, len(runs))
    ]
    # Then it is BAD on its spill, and GOOD on every later one (its excess stays in the
    # 2-, 3-… spill windows, but the cell is not hot any more)
    assert [r.quality for r in results] == [Quality.BAD] + [Quality.GOOD] * 5


def _gain_maps(means: np.ndarray, hits: float = 2000.0, rms: float = 0.02):
    """Occupancy, energy (MeV) and energy² (MeV²) maps of a 6×6 map whose cells respond
    with ``means`` [GeV] per hit (spread ``rms`` per hit), ``hits`` hits each."""
    book = FILLER.book()
    n_map, e_map, e2_map = (
        book["ecal_pre_mip_hits"],
        book["ecal_pre_energy_map"],
        book["ecal_pre_energy2_map"],
    )
    n = np.full(means.shape, hits)
    n_map.view()[...] = n
    e_map.view()[...] = n * means * 1e3
    e2_map.view()[...] = n * (means**2 + rms**2) * 1e6
    return {
        "ecal_pre_mip_hits": n_map,
        "ecal_pre_energy_map": e_map,
        "ecal_pre_energy2_map": e2_map,
    }


def _gain_without_reference(maps) -> CheckResult:
    params = {"hits": "ecal_pre_mip_hits", "energy2": "ecal_pre_energy2_map"}
    params["channel_name"] = "ECAL preshower cell"
    ctx = CheckContext(histogram=maps["ecal_pre_energy_map"], histograms=maps)
    return run_check("cell_gain", ctx, params)


def test_without_reference_the_cells_own_spread_is_the_medians_error() -> None:
    # Given cells whose responses differ by ± 15 % among themselves (their hit populations
    # differ: beam spot or periphery, as for a μ⁺ run with no μ⁺ reference), each measured
    # to ± 0.01 %: one cell at +25 % is within their spread (before: 5σ after look-elsewhere
    # from statistics alone, BAD on a clean spill)
    rng = np.random.default_rng(5)
    means = 0.1 * (1 + 0.15 * rng.standard_normal((6, 6)))
    means[2, 3] = 0.125 + 0.0 * means[2, 3]
    result = _gain_without_reference(_gain_maps(means))
    assert result.quality is Quality.GOOD, result.explanation
    assert "no reference: the median of the cells, which spread ±" in result.explanation
    assert "beyond statistics" in result.explanation
    # Then a cell far beyond that spread (−80 %: a dying channel) is still named
    means[4, 1] = 0.02
    result = _gain_without_reference(_gain_maps(means))
    assert result.quality is Quality.BAD and "ECAL preshower cell (4,1)" in result.explanation
    # and cells that agree (statistics only) are judged on their statistics, as before
    flat = np.full((6, 6), 0.1)
    flat[2, 3] = 0.115
    result = _gain_without_reference(_gain_maps(flat))
    assert result.quality is Quality.BAD and "(2,3)" in result.explanation
