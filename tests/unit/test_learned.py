"""The learned detector's pure core: vector, fit, score, calibration, words, the check.

Synthetic spills: a 6×6 cell map and a 1D energy spectrum filled with Poisson counts
around fixed shapes (plus a spill-to-spill beam wander), so each test runs in well under
a second and states what it expects from the statistics.
"""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pytest

from dqm.checks import CheckContext, Quality, run_check
from dqm.core.conditions import RunConditions
from dqm.core.evaluate import judge_check
from dqm.learn import calibrate_threshold, fit_model, layout_of, score_vector, vectorise
from dqm.learn.calibrate import score_summary
from dqm.learn.explain import top_contributions
from dqm.learn.pca import LearnedModel, array_bytes, bytes_array
from dqm.learn.vector import bin_words

CELLS = np.exp(-((np.arange(6)[:, None] - 2.5) ** 2 + (np.arange(6)[None, :] - 2.5) ** 2) / 4.0)
SPECTRUM = np.exp(-np.arange(20) / 5.0)


def spill(rng: np.random.Generator, gain: dict[tuple[int, int], float] | None = None, n=20_000):
    shift = rng.normal(0, 0.1)  # the beam wanders a little from spill to spill
    cells = np.exp(
        -((np.arange(6)[:, None] - 2.5 - shift) ** 2 + (np.arange(6)[None, :] - 2.5) ** 2) / 4.0
    )
    for cell, factor in (gain or {}).items():
        cells[cell] *= factor
    cmap = bh.Histogram(bh.axis.Integer(0, 6), bh.axis.Integer(0, 6), storage=bh.storage.Int64())
    cmap.view()[...] = rng.poisson(n * cells / cells.sum())
    energy = bh.Histogram(bh.axis.Regular(20, 0, 40), storage=bh.storage.Int64())
    energy.view()[...] = rng.poisson(n * SPECTRUM / SPECTRUM.sum())
    return {"ecal_map": cmap, "ecal_total": energy}


@pytest.fixture(scope="module")
def model() -> LearnedModel:
    rng = np.random.default_rng(1)
    spills = [spill(rng) for _ in range(200)]
    layout = [layout_of(n, spills[0][n]) for n in ("ecal_map", "ecal_total")]
    vectors = np.array([vectorise(s, layout) for s in spills])
    fitted = fit_model(vectors[:100], layout, subsystem="calorimeter", beam_config="mu160")
    cal = calibrate_threshold([score_vector(fitted, v)[0] for v in vectors[100:]], 1e-3)
    return LearnedModel(
        **{
            **fitted.__dict__,
            "threshold": cal.threshold,
            "false_alarm": 1e-3,
            "id": 7,
            "version": 2,
        }
    )


def test_vector_is_each_histogram_at_unit_area_and_refuses_other_binning():
    # Given a spill's histograms, when they are vectorised, each part sums to one
    hists = spill(np.random.default_rng(0))
    layout = [layout_of(n, hists[n]) for n in ("ecal_map", "ecal_total")]
    vector = vectorise(hists, layout)
    assert vector.shape == (36 + 20,)
    assert vector[:36].sum() == pytest.approx(1.0) and vector[36:].sum() == pytest.approx(1.0)
    # a histogram missing from the spill is zeros (no shape), not an error
    assert vectorise({"ecal_total": hists["ecal_total"]}, layout)[:36].sum() == 0
    other = {**hists, "ecal_total": bh.Histogram(bh.axis.Regular(10, 0, 40))}
    with pytest.raises(ValueError, match="trained on"):
        vectorise(other, layout)


def test_bin_words_name_cells_and_ranges():
    hists = spill(np.random.default_rng(0))
    assert bin_words(layout_of("m", hists["ecal_map"]), 2 * 6 + 3) == "(2,3)"
    assert bin_words(layout_of("e", hists["ecal_total"]), 5) == "10–12"


def test_good_spills_score_below_the_threshold_at_about_the_stated_rate(model):
    # Given a model calibrated to 0.1 % per spill, when 300 fresh good spills are scored,
    # then at most a few (≤ 3: 0.3 expected) are above the threshold
    rng = np.random.default_rng(99)
    scores = [score_vector(model, vectorise(spill(rng), model.layout))[0] for _ in range(300)]
    assert sum(s > model.threshold for s in scores) <= 3
    assert score_summary(scores)["median"] < model.threshold


def test_a_two_cell_pattern_is_caught_and_named(model):
    # Given two neighbouring beam cells each 15 % low (about 5 σ of Poisson noise each) ...
    rng = np.random.default_rng(5)
    hists = spill(rng, {(2, 3): 0.85, (2, 2): 0.85})
    score, residual = score_vector(model, vectorise(hists, model.layout))
    assert score > model.threshold
    top = top_contributions(model.layout, residual)
    # ... then the cell map leads, with exactly those cells, both low
    assert top[0].histogram == "ecal_map"
    assert set(top[0].bins[:2]) == {"(2,3)", "(2,2)"} and set(top[0].directions[:2]) == {"low"}
    assert top[0].share > 0.5


def test_the_check_judges_like_any_other(model):
    conditions = RunConditions(1, "mu-", 160.0, "-", 1.0, "physics", "2025B-2MBPL")
    hists = spill(np.random.default_rng(6), {(2, 3): 0.6, (3, 3): 0.6})
    ctx = CheckContext(
        histogram=hists["ecal_total"], histograms=hists, subsystem="calorimeter", model=model
    )
    result = run_check("pca_score", ctx)
    assert result.quality == Quality.BAD
    assert result.threshold == {"warning": model.threshold, "bad": 3 * model.threshold}
    assert result.details["model_id"] == 7 and result.details["model_version"] == 2
    assert "ecal_map cells" in result.explanation and "% of the score" in result.explanation
    good = run_check(
        "pca_score",
        CheckContext(
            histogram=hists["ecal_total"],
            model=model,
            histograms=spill(np.random.default_rng(7)),
            subsystem="calorimeter",
        ),
    )
    assert good.quality == Quality.GOOD and good.value < model.threshold
    # without a model: NO_DATA saying how to get one
    none = run_check(
        "pca_score",
        CheckContext(
            histogram=hists["ecal_total"],
            histograms=hists,
            subsystem="calorimeter",
            conditions=conditions,
        ),
    )
    assert none.quality == Quality.NO_DATA and "dqm model train" in none.explanation
    # too few entries: NO_DATA (the common rule)
    few = {**hists, "ecal_total": bh.Histogram(bh.axis.Regular(20, 0, 40))}
    few["ecal_total"].fill([1.0] * 10)
    low = run_check(
        "pca_score", CheckContext(histogram=few["ecal_total"], histograms=few, model=model)
    )
    assert low.quality == Quality.NO_DATA
    # a spill binned otherwise: the judge's CHECK_ERROR, never an exception
    other = {**hists, "ecal_map": bh.Histogram(bh.axis.Integer(0, 5), bh.axis.Integer(0, 6))}
    broken = judge_check(
        "pca_score", CheckContext(histogram=hists["ecal_total"], histograms=other, model=model)
    )
    assert broken.quality == Quality.CHECK_ERROR and "trained on" in broken.explanation


def test_calibration_hits_a_known_quantile_and_states_its_uncertainty():
    # Given scores from a known distribution with an exponential tail, the 0.1 % threshold
    # is near the true quantile, inside the stated 16–84 % band
    rng = np.random.default_rng(3)
    scores = 1.0 + rng.exponential(0.2, 400)
    cal = calibrate_threshold(scores, 1e-3)
    truth = 1.0 + 0.2 * np.log(1e3)
    assert cal.threshold == pytest.approx(truth, rel=0.1)
    assert cal.threshold_low < cal.threshold < cal.threshold_high
    assert cal.rate_low < 1e-3 < cal.rate_high
    assert "false alarms per spill" in cal.words()
    with pytest.raises(ValueError):
        calibrate_threshold(scores[:5])


def test_model_arrays_round_trip_as_float32_bytes(model):
    back = bytes_array(array_bytes(model.components))
    assert back.shape == model.components.shape
    assert np.allclose(back, model.components, rtol=1e-6, atol=1e-7)
