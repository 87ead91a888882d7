"""Check library: quality algebra, registry/validation, and the summary-based checks."""

from __future__ import annotations

import json
from dataclasses import replace

import boost_histogram as bh
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dqm.checks import (
    CHECKS,
    CheckContext,
    CheckResult,
    Quality,
    register_check,
    rollup,
    run_check,
    validate_check_params,
    worst,
)
from dqm.checks._registry import _REGISTRY
from dqm.errors import CheckError, SpecError

RNG_SEED = 160


def momentum_histogram(n_events: int, p_mean: float = 160.0, seed: int = RNG_SEED) -> bh.Histogram:
    """BMS momentum of a spill: 160 GeV with 1 % resolution."""
    rng = np.random.default_rng(seed)
    h = bh.Histogram(
        bh.axis.Regular(100, 150.0, 170.0, metadata="p_bms"), storage=bh.storage.Int64()
    )
    h.fill(rng.normal(p_mean, 1.6, n_events))
    return h


def spill_summary(**overrides: float) -> dict[str, float]:
    """A healthy spill's summary quantities."""
    summary = {
        "n_events": 20_000.0,
        "p_bms_mean": 160.01,
        "p_bms_sigma": 1.6,
        "p_ms2_mean": 159.98,
        "p_ms2_sigma": 5.6,
        "dp_mean": 0.03,
        "dp_sigma": 5.9,
        "low_pout_fraction": 2e-3,
        "beam_x_mean_ms1_0": 0.2,
        "beam_y_mean_ms1_0": -0.1,
        "beam_sigma_x_ms1_0": 15.2,
        "beam_sigma_y_ms1_0": 9.9,
        "pik_fraction": 1e-4,
        "pik_fraction_err": 7e-5,
        "daq_completeness": 0.999,
        "daq_source_completeness_ECAL": 1.0,
        "daq_source_completeness_HCAL": 0.999,
    }
    summary.update(overrides)
    return summary


#: The nominal a p_scale check gets from the run conditions in the specs ("@p_beam_gev").
NOMINAL = {"p_scale": {"nominal_gev": 160.0}}


def summary_check(name: str, params: dict | None = None, **overrides: float) -> CheckResult:
    params = {**NOMINAL.get(name, {}), **(params or {})}
    return run_check(name, CheckContext(summary=spill_summary(**overrides)), params)


# --- quality algebra -------------------------------------------------------------------


def test_worst_orders_good_no_data_warning_bad() -> None:
    assert worst([]) is Quality.NO_DATA
    assert worst([Quality.GOOD, Quality.NO_DATA]) is Quality.NO_DATA
    assert worst([Quality.NO_DATA, Quality.BAD, Quality.GOOD]) is Quality.BAD
    assert worst([Quality.WARNING, Quality.NO_DATA]) is Quality.WARNING


qualities = st.lists(st.sampled_from(list(Quality)), min_size=1, max_size=6)


@given(qualities, qualities, qualities)
def test_worst_is_commutative_and_associative(
    a: list[Quality], b: list[Quality], c: list[Quality]
) -> None:
    # Rolling up checks → histograms → subsystems → spill in any grouping gives one answer.
    assert worst(a + b) == worst(b + a)
    assert worst([worst(a + b), worst(c)]) == worst([worst(a), worst(b + c)]) == worst(a + b + c)
    assert worst(a) == max(a)


def test_rollup_is_worst_per_subsystem_and_overall() -> None:
    good = CheckResult(Quality.GOOD, 1.0)
    bad = CheckResult(Quality.BAD, 9.0)
    missing = CheckResult(Quality.NO_DATA, None)
    rolled = rollup([("ECAL", good), ("ECAL", bad), ("BEAM", good), ("DAQ", missing)])
    assert rolled == {
        "ECAL": Quality.BAD,
        "BEAM": Quality.GOOD,
        "DAQ": Quality.NO_DATA,
        "overall": Quality.BAD,
    }
    assert rollup([]) == {"overall": Quality.NO_DATA}
    # a check still waiting (NO_DATA) neither hides nor greys out the verdicts of the others
    waiting = rollup([("BEAM", good), ("BEAM", missing), ("DAQ", missing)])
    assert waiting == {"BEAM": Quality.GOOD, "DAQ": Quality.NO_DATA, "overall": Quality.GOOD}
    assert rollup([("BEAM", missing), ("BEAM", bad)])["BEAM"] == Quality.BAD
    with pytest.raises(ValueError, match="reserved"):
        rollup([("overall", good)])


def test_check_result_round_trips_through_json_without_numpy_types() -> None:
    result = CheckResult(
        np.int64(int(Quality.BAD)),
        np.float64(4.5),
        {"warning": 4.0, "bad": np.float64(6.0), "lo": -np.inf},
        "ECAL cell (2,3): 0 hits",
        {"channels": [(2, 3)], "observed": np.array([0, 1]), "significance": np.float64(np.inf)},
        "dead_channels",
    )
    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["quality"] == "BAD" and data["threshold"] == {"warning": 4.0, "bad": 6.0}
    assert data["details"] == {"channels": [[2, 3]], "observed": [0, 1], "significance": None}
    again = CheckResult.from_dict(json.loads(text))
    assert again.quality is Quality.BAD and again.value == 4.5
    assert again.to_dict() == data


# --- registry and validation -----------------------------------------------------------


def test_validation_fills_defaults_and_accepts_ints_for_floats() -> None:
    params = validate_check_params("max_pull", {"pull_bad": 7})
    assert params == {"pull_warning": 4.0, "pull_bad": 7.0, "method": "exact", "min_entries": 100}
    assert isinstance(params["pull_bad"], float)
    assert validate_check_params("chi2", {"min_entries": 1e3})["min_entries"] == 1000


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("dead_channel", {}, "unknown check 'dead_channel'; did you mean 'dead_channels'?"),
        ("max_pull", {"pull_warn": 3}, "no parameter 'pull_warn'; did you mean 'pull_warning'?"),
        ("chi2", {"p_bad": "small"}, "expected float, got str 'small'"),
        ("chi2", {"min_entries": True}, "expected int, got bool"),
        ("dead_channels", {"method": "neighbors"}, "did you mean 'neighbours'?"),
        ("chi2", {"p_bad": 0.01, "p_warning": 0.001}, "p_bad=0.01 must be <= p_warning=0.001"),
        ("value_in_range", {"lo": 1.0}, "needs parameter 'quantity'"),
    ],
)
def test_invalid_specs_fail_with_a_clear_message(name: str, params: dict, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        validate_check_params(name, params)
    assert fragment in str(caught.value)


def test_run_check_validates_before_running() -> None:
    with pytest.raises(SpecError, match="did you mean 'window_mm'"):
        run_check("beam_centroid", CheckContext(summary=spill_summary()), {"windw_mm": 2.0})


def test_every_registered_check_documents_every_parameter() -> None:
    assert len(CHECKS) >= 20
    for name, spec in CHECKS.items():
        assert spec.doc, name
        assert "min_entries" in spec.params, name
        for key, param in spec.params.items():
            assert param.doc, f"{name}.{key}"


def test_registration_rejects_duplicates_and_signature_mismatches() -> None:
    with pytest.raises(CheckError, match="registered twice"):
        register_check("chi2", params={})(lambda context: CheckResult(Quality.GOOD, None))
    with pytest.raises(CheckError, match="do not match"):
        register_check("_mismatch", params={"a": (int, 1, "a")})(
            lambda context, b: CheckResult(Quality.GOOD, None)
        )
    assert "_mismatch" not in CHECKS


def test_unexpected_failure_inside_a_check_becomes_check_error_naming_it(monkeypatch) -> None:
    # Given a check whose function fails in a way nobody foresaw
    def broken(context, **params):
        raise IndexError("tuple index out of range")

    spec = CHECKS["ks"]
    monkeypatch.setitem(_REGISTRY, "ks", replace(spec, function=broken))
    context = CheckContext(momentum_histogram(5000), momentum_histogram(50_000, seed=2))
    # Then run_check names the check and chains the original error
    with pytest.raises(CheckError, match="check 'ks' failed: IndexError") as caught:
        run_check("ks", context)
    assert isinstance(caught.value.__cause__, IndexError)


def test_reference_with_other_binning_is_a_check_error() -> None:
    other = bh.Histogram(bh.axis.Regular(50, 150.0, 170.0), storage=bh.storage.Int64())
    other.fill([160.0] * 1000)
    with pytest.raises(CheckError, match="binning"):
        run_check("chi2", CheckContext(momentum_histogram(5000), other))


@pytest.mark.parametrize(
    "name",
    [
        "chi2",
        "ks",
        "max_pull",
        "bins_beyond",
        "mean_in_range",
        "min_entries",
        "p_scale",
    ],
)
def test_below_min_entries_is_no_data_never_good_or_bad(name: str) -> None:
    h = momentum_histogram(60)
    context = CheckContext(
        h,
        momentum_histogram(100_000, p_mean=165.0, seed=3),
        summary=spill_summary(n_events=60, p_bms_mean=170.0),
    )
    if name == "p_scale":
        context = CheckContext(summary=spill_summary(n_events=60, p_bms_mean=170.0))
    result = run_check(name, context, NOMINAL.get(name))
    assert result.quality is Quality.NO_DATA
    assert "min_entries=100" in result.explanation and result.check == name


def test_dead_cells_are_judged_on_expected_hits_not_on_the_map_s_entries() -> None:
    # A dead cell check needs hits *expected*, not entries: a dead dominant cell empties its
    # map, so the common min_entries rule does not apply; too few expected hits is GOOD with
    # the cells it cannot judge named, never BAD
    def cells(counts: dict[tuple[int, int], int]) -> bh.Histogram:
        h = bh.Histogram(bh.axis.Integer(0, 6), bh.axis.Integer(0, 6), storage=bh.storage.Int64())
        for (x, y), n in counts.items():
            h[x, y] = n
        return h

    spot = {(x, y): 2 for x in range(6) for y in range(6)} | {(2, 3): 100_000}
    reference = cells(spot)
    sparse = run_check("dead_channels", CheckContext(cells({(2, 3): 60}), reference))
    assert sparse.quality is Quality.GOOD and "too few to call them dead" in sparse.explanation
    dead_spot = cells({k: 1 for k in spot} | {(2, 3): 0})
    dead = run_check("dead_channels", CheckContext(dead_spot, reference))
    assert dead.quality is Quality.BAD and dead.details["channels"] == [[2, 3]]
    empty = run_check("dead_channels", CheckContext(cells({}), reference))
    assert empty.quality is Quality.NO_DATA


def test_missing_histogram_or_reference_is_no_data() -> None:
    assert run_check("chi2", CheckContext(None)).quality is Quality.NO_DATA
    result = run_check("chi2", CheckContext(momentum_histogram(5000)))
    assert result.quality is Quality.NO_DATA and "reference" in result.explanation


# --- generic checks ----------------------------------------------------------------------


def test_empty_histogram_is_bad_and_filled_one_good() -> None:
    empty = bh.Histogram(bh.axis.Regular(10, 0, 1), storage=bh.storage.Int64())
    result = run_check("empty", CheckContext(empty, summary=spill_summary()))
    assert result.quality is Quality.BAD and "20000 events" in result.explanation
    assert run_check("empty", CheckContext(momentum_histogram(10))).quality is Quality.GOOD
    assert run_check("min_entries", CheckContext(momentum_histogram(500))).quality is Quality.GOOD


@pytest.mark.parametrize(
    ("p_mean", "quality"), [(160.0, Quality.GOOD), (161.5, Quality.WARNING), (164.0, Quality.BAD)]
)
def test_mean_in_range_windows(p_mean: float, quality: Quality) -> None:
    params = {"lo": 159.0, "hi": 161.0, "bad_lo": 157.0, "bad_hi": 163.0}
    result = run_check("mean_in_range", CheckContext(momentum_histogram(20_000, p_mean)), params)
    assert result.quality is quality
    assert result.value == pytest.approx(p_mean, abs=0.05)
    assert result.explanation.startswith("mean of p_bms =")


def test_rms_and_value_in_range() -> None:
    result = run_check(
        "rms_in_range", CheckContext(momentum_histogram(20_000)), {"lo": 1.4, "hi": 1.8}
    )
    assert result.quality is Quality.GOOD and result.value == pytest.approx(1.6, rel=0.03)
    params = {"quantity": "low_pout_fraction", "hi": 5e-3, "bad_hi": 1e-2}
    assert summary_check("value_in_range", params).quality is Quality.GOOD
    warning = summary_check("value_in_range", params, low_pout_fraction=7e-3)
    assert warning.quality is Quality.WARNING
    assert summary_check("value_in_range", params, low_pout_fraction=0.05).quality is Quality.BAD
    missing = run_check("value_in_range", CheckContext(summary={"n_events": 1e4}), params)
    assert missing.quality is Quality.NO_DATA


@pytest.mark.parametrize(
    ("recent", "quality"),
    [
        ([20_113, 19_870, 20_051], Quality.GOOD),
        ([19_870, 19_870, 19_870], Quality.BAD),
        ([0, 0, 0], Quality.BAD),
        ([20_113], Quality.NO_DATA),
    ],
)
def test_not_updating(recent: list[int], quality: Quality) -> None:
    context = CheckContext(
        summary={"n_events": recent[-1]},
        history={"n_events": [20_500, *recent[:-1]][-len(recent) :]},
    )
    if len(recent) == 1:
        context = CheckContext(summary={"n_events": recent[0]}, history={})
    assert run_check("not_updating", context).quality is quality


# --- beam, intensity, DAQ ------------------------------------------------------------------


def test_beam_centroid_shift_is_named_with_station_and_window() -> None:
    assert summary_check("beam_centroid").quality is Quality.GOOD
    assert summary_check("beam_centroid", beam_y_mean_ms1_0=-2.0).quality is Quality.WARNING
    result = summary_check("beam_centroid", beam_x_mean_ms1_0=3.2)
    assert result.quality is Quality.BAD
    assert (
        "beam x at MS1 station 0: +3.20 mm from nominal +0.00 mm of the spec (no usable "
        "reference) (warning ±1.5, bad ±3 mm); y -0.10 mm" in result.explanation
    )


def test_beam_width_relative_tolerance_both_ways() -> None:
    assert summary_check("beam_width").quality is Quality.GOOD
    assert summary_check("beam_width", beam_sigma_x_ms1_0=18.0).quality is Quality.WARNING
    result = summary_check("beam_width", beam_sigma_y_ms1_0=6.0)
    assert result.quality is Quality.BAD and "σ_y" in result.explanation
    # the limits in the words every other check uses (it said "tolerance ±15 %")
    assert "warning ±15 %, bad ±30 %)" in result.explanation


@pytest.mark.parametrize(
    ("n_events", "quality"),
    [(19_000, Quality.GOOD), (13_000, Quality.WARNING), (10_000, Quality.BAD), (40, Quality.BAD)],
)
def test_intensity_drop_against_recent_median(n_events: int, quality: Quality) -> None:
    history = {"n_events": [20_400, 19_800, 3_000, 20_100, 20_000, 19_900]}
    result = run_check("intensity", CheckContext(summary={"n_events": n_events}, history=history))
    assert result.quality is quality
    assert "median 19900" in result.explanation  # the 3 000-event spill does not drag it


def test_intensity_without_history_is_no_data() -> None:
    result = run_check("intensity", CheckContext(summary={"n_events": 20_000}))
    assert result.quality is Quality.NO_DATA and "previous spill" in result.explanation


def test_daq_completeness_names_the_missing_source() -> None:
    assert summary_check("daq_completeness").quality is Quality.GOOD
    result = summary_check(
        "daq_completeness", daq_completeness=0.6, daq_source_completeness_HCAL=0.6
    )
    assert result.quality is Quality.BAD
    assert "HCAL present in 60.0 % of events" in result.explanation
    assert "ECAL" not in result.explanation and result.details["incomplete"] == ["HCAL"]
    assert summary_check("daq_completeness", daq_completeness=0.98).quality is Quality.WARNING


# --- physics quantities ----------------------------------------------------------------------


def test_pik_fraction_excess_significance() -> None:
    # Healthy spills: Poisson(2) tagged hadrons in 20 000 events; false WARNINGs ≈ 0.1 %
    rng = np.random.default_rng(RNG_SEED)
    healthy = [
        summary_check("pik_fraction", pik_fraction=k / 20_000).quality
        for k in rng.poisson(2.0, 300)
    ]
    assert healthy.count(Quality.GOOD) >= 297 and Quality.BAD not in healthy
    # π/K × 5: ten tagged where two are expected is 3.9σ — a WARNING on its own …
    five_times = summary_check("pik_fraction", pik_fraction=10 / 20_000)
    assert five_times.quality is Quality.WARNING
    assert "10 tagged in 20000 events" in five_times.explanation
    assert "5.0× expected" in five_times.explanation
    # … and BAD with the ratio rule, or with more events
    assert (
        summary_check("pik_fraction", {"ratio_bad": 3.0}, pik_fraction=10 / 20_000).quality
        is Quality.BAD
    )
    assert summary_check("pik_fraction", pik_fraction=5e-4, n_events=100_000).quality is Quality.BAD


def test_pik_fraction_window_pools_the_previous_spills_from_the_history() -> None:
    # Given a spill with 10 hadron-tagged events in 20 000 after one with 9 in 20 000
    history = {"pik_fraction": [2 / 20_000, 9 / 20_000], "n_events": [20_000.0, 20_000.0]}
    context = CheckContext(summary=spill_summary(pik_fraction=10 / 20_000), history=history)
    # When the check pools two spills
    pooled = run_check("pik_fraction", context, {"window": 2})
    alone = run_check("pik_fraction", context, {"window": 1})
    # Then 19 tagged where 4 are expected is BAD, while this spill alone is only a WARNING
    assert alone.quality is Quality.WARNING
    assert pooled.quality is Quality.BAD
    assert pooled.details["tagged"] == 19 and pooled.details["spills_pooled"] == 2
    assert "19 tagged in 40000 events over the last 2 spills" in pooled.explanation


@pytest.mark.parametrize(
    ("dp_mean", "quality"),
    [(0.03, Quality.GOOD), (1.6, Quality.WARNING), (3.2, Quality.BAD), (-3.2, Quality.BAD)],
)
def test_momentum_scale_shift_between_bms_and_ms2(dp_mean: float, quality: Quality) -> None:
    result = summary_check("momentum_scale", dp_mean=dp_mean)
    assert result.quality is quality
    assert "p_BMS − p_MS2" in result.explanation


def test_momentum_scale_ignores_insignificant_shift_and_flags_resolution() -> None:
    # 150 events: σ(mean Δp) ≈ 0.48 GeV, so a 1.2 GeV offset is only 2.5σ
    assert summary_check("momentum_scale", dp_mean=1.2, n_events=150).quality is Quality.GOOD
    assert summary_check("momentum_scale", dp_sigma=12.0).quality is Quality.BAD


@pytest.mark.parametrize(
    ("p_mean", "quality"),
    [(160.1, Quality.GOOD), (161.6, Quality.WARNING), (163.2, Quality.BAD), (156.8, Quality.BAD)],
)
def test_p_scale_two_percent_bms_shift_is_bad(p_mean: float, quality: Quality) -> None:
    result = summary_check("p_scale", p_bms_mean=p_mean)
    assert result.quality is quality
    assert result.details["expected"] == 160.0
