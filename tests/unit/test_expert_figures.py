"""The expert page's pure parts: significance, bands, words, statistics, highlights, ranges."""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("panel")

from apps.expert_figures import SeriesFigure, threshold_bands  # noqa: E402
from apps.expert_load import parse_spill_range  # noqa: E402
from apps.expert_maps import same_unit  # noqa: E402
from apps.expert_plots import rebinned, statistics  # noqa: E402
from apps.expert_trends import quantity_checks, quantity_words, trend_positions  # noqa: E402
from apps.expert_views import highlighted_bins  # noqa: E402
from dqm.checks.significance import QUIET_SIGMA, poisson_z, significance_vs_reference  # noqa: E402


def test_significance_is_quiet_on_sparse_tails_and_loud_on_real_changes():
    # Given a spill of 3000 events over a reference of 18 000
    ref = np.array([6000.0, 6000.0, 5994.0, 5.0, 1.0, 0.0, 0.0])
    # When one event lands in a bin the reference filled once, and one in an empty bin
    healthy = np.array([1000.0, 1000.0, 997.0, 1.0, 1.0, 1.0, 0.0])
    z = significance_vs_reference(healthy, ref)
    # Then nothing is significant: one event where 0.17-0.33 are expected is normal
    assert np.all(np.abs(z) < QUIET_SIGMA), z
    # And an emptied bin that expects 1000 and a bin with 40 where < 1 is expected are loud
    broken = np.array([0.0, 1000.0, 997.0, 40.0, 1.0, 0.0, 0.0])
    z = significance_vs_reference(broken, ref)
    assert z[0] < -20 and z[3] > 10
    # And a cell expecting 0.3 hits that saw none is as expected, not "dead"
    assert poisson_z(np.array([0.0]), np.array([0.3]))[0] == 0.0
    assert np.all(significance_vs_reference(np.zeros(3), np.ones(3)) == 0)


def test_threshold_bands_follow_the_direction_of_the_thresholds():
    frame = pd.DataFrame({"warning": [1e-4], "bad": [1e-7]})
    low = threshold_bands(frame, signed=False)  # a p-value: low is bad
    assert low["y1"] == [1e-7, 1e-4] and low["y0"][1] == 1e-7
    frame = pd.DataFrame({"warning": [1.0], "bad": [2.0]})
    high = threshold_bands(frame, signed=True)  # an offset either way: mirrored below zero
    assert (1.0, 2.0) in zip(high["y0"], high["y1"], strict=True)
    assert (-2.0, -1.0) in zip(high["y0"], high["y1"], strict=True)
    assert SeriesFigure.wants_log(
        pd.DataFrame({"value": [0.5, 1e-9], "warning": [1e-4, 1e-4], "bad": [1e-7, 1e-7]})
    )


def test_quantities_in_words_with_units_and_their_checks(specs):
    assert quantity_words("beam_x_mean_ms1_0") == "beam position in x at MS1 station 0 [mm]"
    assert quantity_words("beam_sigma_y_ms2_1") == "beam width in y at MS2 station 1 [mm]"
    assert quantity_words("p_bms_mean") == "mean incoming momentum (BMS) [GeV]"
    assert quantity_words("p_bms_mean_err").startswith("statistical error of the mean incoming")
    assert "MS1" in quantity_words("daq_source_completeness_MS1")
    assert "_" not in quantity_words("received_batches")
    # the checks that judge a quantity are the ones whose parameters name it
    assert ("p_bms", "p_scale") in quantity_checks(specs, "p_bms_mean")
    assert {c for _, c in quantity_checks(specs, "dp_mean")} >= {"cusum", "ewma"}
    assert quantity_checks(specs, "no_such_quantity") == []


def test_statistics_box_and_rebinning():
    h = bh.Histogram(bh.axis.Regular(4, 0, 4))
    h.fill([0.5, 1.5, 1.5, 2.5, -1.0, 9.0, 9.0])
    stats = statistics(h)
    assert stats["entries"] == 7 and stats["underflow"] == 1 and stats["overflow"] == 2
    assert stats["mean"] == pytest.approx(1.5) and stats["rms"] == pytest.approx(np.sqrt(0.5))
    merged = rebinned(h, 2)
    assert list(merged.values()) == [3.0, 1.0] and rebinned(h, 3) is h


def test_highlights_ranges_positions_and_aspect():
    edges = np.linspace(0, 10, 11)
    details = {
        "bins": [
            {"index": [2], "significance": -5.0},
            {"index": [7], "significance": 1.0},
        ],
        "location": 8.5,
    }
    assert highlighted_bins(details, edges) == [(2.0, 3.0), (8.0, 9.0)]
    assert highlighted_bins({}, edges) == []
    assert parse_spill_range("5-40") == (5, 40) and parse_spill_range("7") == (7, 7)
    assert parse_spill_range("") is None and parse_spill_range("x") is None
    frame = pd.DataFrame({"run": [1, 1, 2, 2], "spill": [1, 2, 1, 2]})
    x, starts = trend_positions(frame)
    assert list(x) == [1, 2, 8, 9] and starts == [(1.0, 1), (8.0, 2)]
    assert same_unit("x [mm]", "y [mm]") and not same_unit("x [mm]", "E [GeV]")


def _beam_map(shift_mm: float, entries: int = 5000) -> bh.Histogram:
    h = bh.Histogram(
        bh.axis.Regular(20, -10, 10, metadata=None), bh.axis.Regular(20, -10, 10, metadata=None)
    )
    h.axes[0].label, h.axes[1].label = "x [mm]", "y [mm]"
    rng = np.random.default_rng(7)
    h.fill(rng.normal(shift_mm, 2, entries), rng.normal(0, 2, entries))
    return h


def test_a_2d_map_and_a_cell_map_are_refilled_not_rebuilt():
    from apps.expert_maps import CellMap, MapTriple, map_size, usable_reference

    # Given the explorer's 2D triple drawn for one histogram against its reference
    ref, first, shifted = _beam_map(0, 20_000), _beam_map(0), _beam_map(4)
    assert usable_reference(first, ref) is not None
    maps = MapTriple(map_size(first), with_reference=True, log_z=False)
    maps.update(first, ref, "beam at MS1", "reference run 1")
    figures, sources = maps.figures, [src for _, src in maps.parts]
    before = np.array(sources[2].data["image"][0])
    # When another histogram of the same size is shown
    maps.update(shifted, ref, "beam at MS1 (shifted)", "reference run 1")
    # Then the same figures show new images: the significance moved, the title says which
    assert maps.figures == figures and len(figures) == 3
    assert not np.allclose(before, sources[2].data["image"][0])
    assert figures[0].title.text == "beam at MS1 (shifted): selected spills"
    assert maps.mapper.high == float(np.nanmax(sources[0].data["image"][0]))
    # And a cell map keeps its source (and one tap selection at most), with the flag's cells
    cells = CellMap((4, 3), with_reference=True)
    counts = bh.Histogram(bh.axis.Integer(0, 4), bh.axis.Integer(0, 3))
    counts.fill([0, 1, 2, 3] * 30, [0, 1, 2, 0] * 30)
    src = cells.update(counts, counts, "ECAL", x_label="x", y_label="y", n_events=120.0)
    src.selected.indices = [2]
    again = cells.update(
        counts, None, "ECAL", x_label="x", y_label="y", n_events=120.0, highlight=[(1, 1)]
    )
    assert again is src and src.selected.indices == []
    assert [c for c in src.data["line"] if c] == ["#ff7f0e"]  # the one cell the flag names


def test_an_area_switches_between_the_layouts_it_built():
    import panel as pn

    from apps.expert_views import _switch

    area = pn.Column()
    made = []

    def layout(name):
        def make():
            made.append(name)
            return [pn.pane.Markdown(name)]

        return make

    # Given an area that showed a 1D view, then a 2D map
    _switch(area, "h1", layout("h1"))
    _switch(area, "h2", layout("h2"))
    # When the 1D view is shown again
    _switch(area, "h1", layout("h1"))
    # Then it was not built again: only which one is visible changed
    assert made == ["h1", "h2"] and len(area.objects) == 2
    assert [o.visible for o in area.objects] == [True, False]
    # And something shown once replaces them all; a layout after it starts anew
    _switch(area, None, lambda: [pn.pane.Markdown("no data")])
    assert len(area.objects) == 1
    _switch(area, "h2", layout("h2"))
    assert made == ["h1", "h2", "h2"] and len(area.objects) == 1 and area.objects[0].visible
