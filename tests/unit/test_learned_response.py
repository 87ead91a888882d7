"""Response maps and the per-histogram excess of the learned model (issue 14).

A cell's gain is energy per hit; a normalised energy map follows the hit counts, whose
Poisson noise hides a few-% gain change. Synthetic spills: a 6×6 hit map (Poisson around a
beam spot), its energy map (hits × gain × a MIP of 0.3 with a 30 % spread per hit) and a
2000-bin spectrum that dilutes any one histogram in the whole-subsystem score. Given a
model trained on 60 such spills, when a column of beam cells loses 4 % of gain (inside a
per-cell rule's ±5 %), then the whole score stays under its threshold but the response
map's own excess does not, and the check names that map and those cells, low.
"""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pytest

from dqm.checks import CheckContext, Quality, run_check
from dqm.learn.pca import histogram_excess, score_vector
from dqm.learn.train import MIN_RESPONSE_HITS, train_model
from dqm.learn.vector import HistogramLayout, bin_words, layout_of, response_of, vectorise

SPOT = np.exp(-((np.arange(6)[:, None] - 2.5) ** 2 + (np.arange(6)[None, :] - 2.5) ** 2) / 1.5)
SPECTRUM = np.exp(-np.arange(2000) / 400.0)


def spill(rng: np.random.Generator, gain_column: float = 1.0, n: int = 20_000) -> dict:
    cell_map = (bh.axis.Integer(0, 6), bh.axis.Integer(0, 6))
    hits = rng.poisson(n * SPOT / SPOT.sum()).astype(float)
    gain = np.ones((6, 6))
    gain[3, :] = gain_column
    # the sum of `hits` MIPs of mean 0.3 GeV and 30 % spread each (a normal approximation)
    energy = 0.3 * gain * (hits + 0.3 * np.sqrt(hits) * rng.standard_normal((6, 6)))
    h_hits = bh.Histogram(*cell_map, storage=bh.storage.Double())
    h_hits.view()[...] = hits
    h_energy = bh.Histogram(*cell_map, storage=bh.storage.Double())
    h_energy.view()[...] = np.maximum(energy, 0.0)
    spectrum = bh.Histogram(bh.axis.Regular(2000, 0, 100), storage=bh.storage.Int64())
    spectrum.view()[...] = rng.poisson(n * SPECTRUM / SPECTRUM.sum())
    return {"mip_hits": h_hits, "energy_map": h_energy, "spectrum": spectrum}


@pytest.fixture(scope="module")
def training():
    rng = np.random.default_rng(11)
    spills = [spill(rng) for _ in range(60)]
    first = spills[0]
    layout = (
        layout_of("mip_hits", first["mip_hits"]),
        layout_of("energy_map", first["energy_map"]),
        layout_of("spectrum", first["spectrum"]),
        response_of("energy_map", "mip_hits", first["energy_map"]),
    )
    return spills, train_model(spills, layout, subsystem="calorimeter", beam_config="mu160")


def test_the_response_map_keeps_the_cells_with_enough_hits_and_round_trips(training):
    spills, result = training
    response = result.model.layout[-1]
    # Then only the cells with enough hits in every training spill are kept ...
    hits = np.array([s["mip_hits"].values().ravel() for s in spills])
    assert response.per == "mip_hits" and response.title == "energy_map per mip_hits"
    assert list(response.cells) == list(np.flatnonzero(hits.min(axis=0) >= MIN_RESPONSE_HITS))
    assert 0 < response.size < 36
    # ... its value is each kept cell's energy per hit, and a stored layout reads back the same
    vector = vectorise(spills[0], [response])
    energy, n = (
        spills[0][k].values().ravel()[list(response.cells)] for k in ("energy_map", "mip_hits")
    )
    assert vector == pytest.approx(energy / n)
    assert HistogramLayout.from_dict(response.to_dict()) == response
    assert bin_words(response, 0) == "({},{})".format(*divmod(response.cells[0], 6))


def test_the_two_statistics_share_the_false_alarm_rate(training):
    _, result = training
    model, per_histogram = result.model, result.histogram_calibration
    assert per_histogram is not None and model.false_alarm == 1e-3
    assert result.calibration.false_alarm == per_histogram.false_alarm == 5e-4
    assert model.histogram_threshold == per_histogram.threshold > 0
    assert len(model.info["histogram_tails"]) == len(model.layout)


def test_a_column_four_percent_low_is_caught_by_its_response_map_not_by_the_whole(training):
    _, result = training
    model = result.model
    rng = np.random.default_rng(12)
    # Given clean spills, when scored, then neither statistic flags them
    for _ in range(10):
        score, residual = score_vector(model, vectorise(spill(rng), model.layout))
        assert score <= model.threshold
        assert histogram_excess(model, residual)[0] <= model.histogram_threshold
    # Given a spill whose column x = 3 lost 4 % of gain
    hists = spill(rng, gain_column=0.96)
    score, residual = score_vector(model, vectorise(hists, model.layout))
    excess, index = histogram_excess(model, residual)
    # Then the whole score does not see it (diluted among 2000 + 72 bins) ...
    assert score <= model.threshold
    # ... the response map's own score does
    assert index == len(model.layout) - 1 and excess > model.histogram_threshold
    # and the check says WARNING or worse, naming the map and column-3 cells, low
    result_ = run_check(
        "pca_score",
        CheckContext(
            histogram=hists["spectrum"], histograms=hists, subsystem="calorimeter", model=model
        ),
    )
    assert result_.quality >= Quality.WARNING
    assert "energy_map per mip_hits cells (3," in result_.explanation
    assert "low" in result_.explanation and "spreads above its usual score >" in result_.explanation
    assert result_.details["histogram"] == "energy_map per mip_hits"
    assert result_.details["contributions"][0]["histogram"] == "energy_map"
