"""Report page plan (pure) and the ROOT file round trip (files only, no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import boost_histogram as bh
import numpy as np
import pytest
import uproot

from dqm.core.fill import Filler
from dqm.errors import ConfigError
from dqm.report.data import FlagRow, Period, ReportData, SpillRow
from dqm.report.layout import DITTO, TRENDS, plan_pages
from dqm.report.rootio import (
    read_root_histograms,
    to_root_histogram,
    unknown_errors,
    write_root,
)
from dqm.report.sample import fill_spill
from dqm.sim.simulate import SimConfig, simulate_spill

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def _flag(
    spill: int, check: str = "dead_channels", quality: int = 3, explanation: str = "1 dead cell(s)"
) -> FlagRow:
    return FlagRow(
        7,
        spill,
        "calorimeter",
        "ecal_occupancy",
        check,
        quality,
        1.0,
        explanation,
        "call the ECAL expert",
        3,
        T0,
    )


def _data(specs, flags: list[FlagRow]) -> ReportData:
    spills = [
        SpillRow(i, 7, i, "complete", T0 + timedelta(minutes=i), 1000, 0, {"n_events": 1000})
        for i in range(1, 31)
    ]
    return ReportData(Period("test", T0, T0 + timedelta(days=1)), specs, T0, spills, flags, [], {})


def test_plan_has_cover_table_one_page_per_four_histograms_of_a_subsystem_and_trends(specs):
    # Given a period with one BAD spill (a check flag and its subsystem roll-up)
    pages = plan_pages(_data(specs, [_flag(5), _flag(5, check="rollup")]))
    # Then the roll-up does not repeat in the table, and the page count follows the specs
    kinds = [p.kind for p in pages]
    assert kinds[0] == "cover" and kinds.count("flags") == 1 and len(pages[1].items) == 1
    expected = sum(math.ceil(len(v) / 4) for v in specs.by_subsystem().values() if v)
    assert kinds.count("histograms") == expected
    assert kinds.count("trends") == math.ceil(len(TRENDS) / 6)
    drawn = [s.name for p in pages if p.kind == "histograms" for s in p.items]
    assert drawn == [s.name for sub in specs.by_subsystem().values() for s in sub]  # each spec once


def test_long_flag_tables_paginate_and_ditto_repeated_text_within_a_page(specs):
    # Given 120 spills flagged by the same check with the same instruction
    pages = plan_pages(_data(specs, [_flag(s) for s in range(1, 121)]))
    tables = [p for p in pages if p.kind == "flags"]
    # Then the table spans pages; each page's first row is spelled out, later rows repeat with a
    # ditto mark
    assert len(tables) > 1
    for page in tables:
        first, *rest = page.items
        assert first.cells[5] == ("call the ECAL expert",)
        assert rest and all(r.cells[5] == DITTO and r.cells[0] != first.cells[0] for r in rest)
    assert sum(len(p.items) for p in tables) == 120
    # and a night that flags everything stops the table at the page limit, saying how many it left
    # out
    capped = [
        p
        for p in plan_pages(_data(specs, [_flag(s) for s in range(1, 121)]), max_table_pages=1)
        if p.kind == "flags"
    ]
    assert len(capped) == 1 and capped[0].title.endswith(
        f"; {120 - len(capped[0].items)} more not listed"
    )


def test_root_round_trip_is_bin_by_bin_identical_with_titles_and_labels(specs, tmp_path):
    # Given one simulated spill filled with every spec histogram
    hists, _, _ = fill_spill(
        Filler(specs), simulate_spill(SimConfig(events_per_spill=2000, batch_size=1000), 1)
    )
    path = tmp_path / "spill.root"
    # When it is written as ROOT histograms and read back onto the specs
    assert write_root(path, hists, specs, info="test") == len(specs)
    back = read_root_histograms(path, specs)
    # Then every histogram comes back identical (same storage, same bins including flow)
    assert set(back) == set(hists)
    for name, h in hists.items():
        assert back[name].storage_type is bh.storage.Int64
        assert np.array_equal(back[name].view(flow=True), h.view(flow=True)), name
    with uproot.open(path) as f:
        assert f["p_bms"].title == specs["p_bms"].title
        assert f["p_bms"].member("fXaxis").member("fTitle") == "p_BMS [GeV]"
        assert f["ecal_occupancy"].values().shape == (6, 6)


def test_weighted_histograms_keep_their_weights_and_bad_binning_is_refused(specs, tmp_path):
    # Given a p_bms made elsewhere with non-integer contents, and one with the wrong binning
    h = to_root_histogram(Filler(specs).book()["p_bms"])
    n = specs["p_bms"].x.bins
    h.view(flow=True).value[1:-1] = np.linspace(0.5, 1.5, n)
    path = tmp_path / "weighted.root"
    with uproot.recreate(path) as f:
        f["p_bms"] = h
        f["unrelated"] = (np.ones(3), np.arange(4.0))
    back = read_root_histograms(path, specs)
    # with Sumw2 in the file: the contents and their errors (here zero) are kept
    assert list(back) == ["p_bms"] and back["p_bms"].storage_type is bh.storage.Weight
    assert np.allclose(back["p_bms"].values(), np.linspace(0.5, 1.5, n))
    assert unknown_errors(back) == []
    # a normalised histogram with Sumw2 keeps its variances (the χ²/KS use them)
    h.view(flow=True).variance[1:-1] = np.linspace(0.5, 1.5, n) / 1e4
    with uproot.recreate(path) as f:
        f["p_bms"] = h
    back = read_root_histograms(path, specs)
    assert np.allclose(back["p_bms"].variances(), np.linspace(0.5, 1.5, n) / 1e4)
    # without Sumw2 (a plain numpy histogram): Double storage, named as unusable by the checks
    with uproot.recreate(path) as f:
        f["p_bms"] = (np.linspace(0.5, 1.5, n), np.linspace(0, 320, n + 1))
    back = read_root_histograms(path, specs)
    assert back["p_bms"].storage_type is bh.storage.Double and unknown_errors(back) == ["p_bms"]
    with uproot.recreate(path) as f:
        f["p_bms"] = (np.ones(50), np.linspace(120, 200, 51))
    with pytest.raises(ConfigError, match=f"50 bins 120..200.*{n} bins 0..320"):
        read_root_histograms(path, specs)
