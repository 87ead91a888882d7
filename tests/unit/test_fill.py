"""The Filler against numpy written by hand: every kind of histogram, flows, selections,
the DAQ sources each histogram requires (the spill misses MS2 in 30 % of its events), and
exact additivity (two halves filled apart and added == the whole)."""

from __future__ import annotations

from functools import cache

import boost_histogram as bh
import numpy as np
import pytest

from dqm.core.events import DAQ_SOURCES, decode_batch
from dqm.core.fill import Filler
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, SpillData, simulate_spill

# Rare categories boosted so that selections, tails and flows are all populated.
CFG = SimConfig(
    events_per_spill=5000,
    batch_size=1000,
    pik_fraction=0.05,
    brems_fraction=0.05,
    signal_fraction=0.02,
    beam_sigma_x_mm=25.0,
)


@cache
def spill() -> SpillData:
    return simulate_spill(CFG, 3, [parse_anomaly("missing_source:source=MS2,fraction=0.3")])


_FILLED: dict[str, dict[str, bh.Histogram]] = {}


def filled(specs) -> dict[str, bh.Histogram]:
    """The spill filled batch by batch, as the worker does (computed once per spec version)."""
    if specs.version not in _FILLED:
        filler = Filler(specs)
        hists = filler.book()
        for payload in spill().batches():
            filler.fill(hists, BatchView(decode_batch(payload).columns))
        _FILLED[specs.version] = hists
    return _FILLED[specs.version]


def cols() -> dict[str, np.ndarray]:
    return spill().columns


def has(*sources: str) -> np.ndarray:
    """Events in which every one of ``sources`` was read out (by hand from the bits)."""
    bits = sum(1 << DAQ_SOURCES.index(s) for s in sources)
    return (cols()["daq_sources"] & bits) == bits


def hcal_total() -> np.ndarray:
    return cols()["hcal"].sum(axis=(1, 2, 3), dtype=np.float32)


def ecal_total() -> np.ndarray:
    return cols()["ecal"].sum(axis=(1, 2, 3), dtype=np.float32)


def hist1d_with_flow(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """[underflow, numpy.histogram of the in-range values..., overflow] ([lo, hi) in range)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    inside = (x >= lo) & (x < hi)
    counts, _ = np.histogram(x[inside], bins=bins, range=(lo, hi))
    return np.concatenate([[np.count_nonzero(x < lo)], counts, [np.count_nonzero(x >= hi)]])


def hist2d_with_flow(x, y, bx, by) -> np.ndarray:
    """numpy.histogram2d of the in-range pairs, surrounded by flow rows/columns counted by hand."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()

    def cls(v, lo, hi):  # 0 = under, 1 = in range, 2 = over
        return np.where(v < lo, 0, np.where(v >= hi, 2, 1))

    cx, cy = cls(x, *bx[1:]), cls(y, *by[1:])
    out = np.zeros((bx[0] + 2, by[0] + 2), dtype=np.int64)
    both = (cx == 1) & (cy == 1)
    out[1:-1, 1:-1], _, _ = np.histogram2d(
        x[both], y[both], bins=[bx[0], by[0]], range=[bx[1:], by[1:]]
    )
    for i, sl_x in ((0, 0), (2, -1)):
        out[sl_x, 1:-1] = hist1d_with_flow(y[(cx == i) & (cy == 1)], *by)[1:-1]
    for j, sl_y in ((0, 0), (2, -1)):
        out[1:-1, sl_y] = hist1d_with_flow(x[(cy == j) & (cx == 1)], *bx)[1:-1]
    for i, sl_x in ((0, 0), (2, -1)):
        for j, sl_y in ((0, 0), (2, -1)):
            out[sl_x, sl_y] = np.count_nonzero((cx == i) & (cy == j))
    return out


def axis(spec_axis) -> tuple[int, float, float]:
    return spec_axis.bins, spec_axis.lo, spec_axis.hi


def assert_counts(h: bh.Histogram, expected: np.ndarray, name: str) -> None:
    got = h.values(flow=True)
    assert got.shape == expected.shape, name
    diff = np.argwhere(got != expected)
    assert diff.size == 0, (
        f"{name}: {len(diff)} bins differ, first at {diff[0].tolist()}: {got[tuple(diff[0])]} vs "
        f"{expected[tuple(diff[0])]}"
    )


# --------------------------------------------------------------------------- named, by hand


def test_h1_equals_numpy_histogram_with_flows(specs):
    # Given the spill's values computed by hand, in the events with the sources they need
    c = cols()
    by_hand = {
        "p_bms": c["p_bms"],
        "p_ms2": c["p_ms2"][has("MS2")],
        "dp": (c["p_bms"] - c["p_ms2"])[has("BMS", "MS2")],
        "beam_x_ms1_0": c["ms1_x"][:, 0],
        "beam_y_ms1_2": c["ms1_y"][:, 2],
        "ecal_total": ecal_total(),
        "hcal_total": hcal_total(),
        "energy_balance": (c["p_bms"] - c["p_ms2"] - (ecal_total() + hcal_total()))[
            has("BMS", "MS2", "ECAL", "HCAL")
        ],
        "time_in_spill": c["time_in_spill_s"],
        "trigger_bits": c["trigger_bits"],
        "hadron_tag": ((hcal_total() > 30) & (ecal_total() > 5)).astype(np.float64),
    }
    hists = filled(specs)
    # When the filler filled them batch by batch, then every bin and flow agrees
    for name, values in by_hand.items():
        expected = hist1d_with_flow(values, *axis(specs[name].x))
        assert_counts(hists[name], expected, name)
        assert hists[name].sum(flow=True) == len(values), name
    # and the flows were actually exercised somewhere
    flows = sum(hists[n].values(flow=True)[0] + hists[n].values(flow=True)[-1] for n in by_hand)
    assert flows > 0


def test_h2_equals_numpy_histogram2d_with_flows(specs):
    c = cols()
    by_hand = {
        "ecal_vs_hcal": (ecal_total(), hcal_total()),
        "p_bms_vs_p_ms2": (c["p_bms"][has("BMS", "MS2")], c["p_ms2"][has("BMS", "MS2")]),
        "beam_xy_ms1_0": (c["ms1_x"][:, 0], c["ms1_y"][:, 0]),
        "beam_xy_ms1_2": (c["ms1_x"][:, 2], c["ms1_y"][:, 2]),
    }
    hists = filled(specs)
    for name, (x, y) in by_hand.items():
        spec = specs[name]
        expected = hist2d_with_flow(x, y, axis(spec.x), axis(spec.y))
        assert_counts(hists[name], expected, name)
    assert hists["beam_xy_ms1_0"].values(flow=True)[[0, -1], :].sum() > 0, "x flows exercised"


def test_selections_apply(specs):
    c = cols()
    # the signal region, relative to the event's p_BMS; filled only with BMS and MS2 read out
    low = (c["p_ms2"] < 0.625 * c["p_bms"]) & has("BMS") & has("MS2")
    hadron = (hcal_total() > 30) & (ecal_total() > 5)  # shower starting in the ECAL
    hists = filled(specs)
    # p_ms2_low_tail: only p_MS2 < 0.625 p_BMS
    assert_counts(
        hists["p_ms2_low_tail"],
        hist1d_with_flow(c["p_ms2"][low], *axis(specs["p_ms2_low_tail"].x)),
        "p_ms2_low_tail",
    )
    # hcal_total_hadron / calo_total_hadron: only hadron-tagged events
    assert_counts(
        hists["hcal_total_hadron"],
        hist1d_with_flow(hcal_total()[hadron], *axis(specs["hcal_total_hadron"].x)),
        "hcal_total_hadron",
    )
    calo = ecal_total() + hcal_total()
    assert_counts(
        hists["calo_total_hadron"],
        hist1d_with_flow(calo[hadron], *axis(specs["calo_total_hadron"].x)),
        "calo_total_hadron",
    )
    # and the selections really cut something away
    assert 0 < hists["p_ms2_low_tail"].sum(flow=True) == low.sum() < len(low)
    # (p_MS2 = 0 of the events without MS2 would have been the bulk of the low tail)
    assert low.sum() < np.count_nonzero(c["p_ms2"] < 100) - np.count_nonzero(~has("MS2")) / 2
    assert 0 < hists["hcal_total_hadron"].sum(flow=True) == hadron.sum() < len(hadron)


def test_cellmap_occupancy_counts_cells_above_threshold(specs):
    c = cols()
    hists = filled(specs)
    cases = {
        "ecal_occupancy": (c["ecal"][:, 1], 0.1),
        "ecal_pre_occupancy": (c["ecal"][:, 0], 0.05),
        **{f"hcal_m{k}_occupancy": (c["hcal"][:, k], 0.5) for k in range(4)},
        "vhcal_occupancy": (c["vhcal"], 0.1),
    }
    for name, (cells, threshold) in cases.items():
        assert specs[name].threshold_gev == threshold
        expected = (cells > threshold).sum(axis=0)
        np.testing.assert_array_equal(hists[name].values(flow=True), expected, err_msg=name)
        assert hists[name].values().shape == cells.shape[1:]


def test_daq_source_presence_counts_events_per_source(specs):
    c = cols()
    expected = [np.count_nonzero(c["daq_sources"] & (1 << i)) for i in range(len(DAQ_SOURCES))]
    got = filled(specs)["daq_source_presence"].values()
    np.testing.assert_array_equal(got, expected)
    n = len(c["event"])
    assert got[DAQ_SOURCES.index("MS2")] < n and got[DAQ_SOURCES.index("BMS")] == n, (
        "anomaly visible"
    )


def test_cellmap_energy_is_integer_mev_per_cell(specs):
    # energy map: sum over events of rint(E * 1000) for every cell in its MIP window
    cells = cols()["ecal"][:, 1]
    spec = specs["ecal_energy_map"]
    assert (spec.threshold_gev, spec.max_gev) == (0.1, 1.0)
    mev = np.rint(cells * np.float32(1000.0)).astype(np.int64)
    in_window = (cells > spec.threshold_gev) & (cells <= spec.max_gev)
    h = filled(specs)["ecal_energy_map"]
    np.testing.assert_array_equal(h.values(), np.where(in_window, mev, 0).sum(axis=0))
    # and it is the energy in MeV within rounding: |sum rint - 1000 sum E| <= n_events / 2 per cell
    total = np.where(in_window, cells, 0).astype(np.float64).sum(axis=0) * 1000
    assert np.all(np.abs(h.values() - total) <= len(cells) / 2)
    # the MIP-hit map counts the same hits; the occupancy map every hit above threshold
    hits = filled(specs)["ecal_mip_hits"].values()
    np.testing.assert_array_equal(hits, in_window.sum(axis=0))
    assert np.all(filled(specs)["ecal_occupancy"].values() >= hits)


@pytest.mark.parametrize(
    ("name", "layer"),
    [("ecal_energy2_map", lambda c: c["ecal"][:, 1])]
    + [(f"hcal_m{k}_energy2", lambda c, k=k: c["hcal"][:, k]) for k in range(4)],
)
def test_cellmap_energy2_is_the_exact_integer_mev_square_sum(specs, name, layer):
    # squared-energy map: Σ rint(E·1000)² over the hits above threshold, exactly; with the
    # occupancy and energy maps of the same threshold it gives each cell's mean and spread
    cells = layer(cols())
    spec = specs[name]
    mev = np.rint(cells * np.float32(1000.0)).astype(np.int64)
    hit = (cells > spec.threshold_gev) & (cells <= spec.max_gev)
    h = filled(specs)[name]
    np.testing.assert_array_equal(h.values(), np.where(hit, mev * mev, 0).sum(axis=0))
    energy = filled(specs)[name.replace("energy2", "energy")]
    np.testing.assert_array_equal(energy.values(), np.where(hit, mev, 0).sum(axis=0))


def test_channels_equal_per_channel_numpy_histograms(specs):
    c = cols()
    cases = {
        "hcal_module_energy": c["hcal"].sum(axis=(2, 3), dtype=np.float32),
        "veto_counters": c["veto"].reshape(len(c["veto"]), -1),
    }
    hists = filled(specs)
    for name, values in cases.items():
        h, spec = hists[name], specs[name]
        assert h.values(flow=True).shape == (values.shape[1], spec.y.bins + 2), name
        for k in range(values.shape[1]):
            expected = hist1d_with_flow(values[:, k], *axis(spec.y))
            np.testing.assert_array_equal(
                h.values(flow=True)[k], expected, err_msg=f"{name} channel {k}"
            )


def test_every_histogram_is_filled_and_labelled(specs):
    hists = filled(specs)
    assert set(hists) == set(specs.names)
    for spec in specs:
        h = hists[spec.name]
        assert h.name == spec.name and h.title == spec.title
        assert h.sum(flow=True) > 0, f"{spec.name} is empty"
        assert h.storage_type is bh.storage.Int64
        if spec.kind in ("h1", "h2"):
            assert h.axes[0].label == spec.x.label


def test_every_h1_and_h2_equals_numpy_of_its_expression(specs):
    # Generic: for every h1/h2 spec, numpy on the expression over the events of the spill
    # with the spec's sources and passing its selection
    view = BatchView(cols())
    hists = filled(specs)
    for spec in specs:
        if spec.kind not in ("h1", "h2"):
            continue
        mask = has(*spec.requires)
        if spec.selection is not None:
            mask = mask & view.evaluate(spec.selection)
        x = view.evaluate(spec.x.expr)
        x = x if mask is None else x[mask]
        if spec.kind == "h1":
            expected = hist1d_with_flow(x, *axis(spec.x))
        else:
            y = view.evaluate(spec.y.expr)
            y = y if mask is None else y[mask]
            expected = hist2d_with_flow(x, y, axis(spec.x), axis(spec.y))
        assert_counts(hists[spec.name], expected, spec.name)


# --------------------------------------------------------------------------- additivity


def test_two_halves_added_equal_the_whole_exactly(specs):
    # Given the spill's batches split into two halves (as two workers would see them)
    filler = Filler(specs)
    payloads = spill().batches()
    half = len(payloads) // 2
    assert 0 < half < len(payloads)

    def fill(parts):
        hists = filler.book()
        for p in parts:
            filler.fill(hists, BatchView(decode_batch(p).columns))
        return hists

    first, second, whole = fill(payloads[:half]), fill(payloads[half:]), fill(payloads)
    # When the halves are added
    # Then every bin of every histogram (flows included) equals the whole, exactly
    for name in whole:
        added = first[name] + second[name]
        np.testing.assert_array_equal(
            added.values(flow=True), whole[name].values(flow=True), err_msg=name
        )
    # (and each half really holds a share of the events)
    assert 0 < first["p_bms"].sum(flow=True) < whole["p_bms"].sum(flow=True)


def test_one_big_batch_equals_many_small_ones(specs):
    filler = Filler(specs)
    one = filler.book()
    filler.fill(one, BatchView(cols()))
    for name, h in filled(specs).items():
        np.testing.assert_array_equal(
            one[name].values(flow=True), h.values(flow=True), err_msg=name
        )


def test_book_gives_fresh_empty_histograms(specs):
    filler = Filler(specs)
    a = filler.book()
    filler.fill(a, BatchView(cols()))
    b = filler.book()
    assert all(h.sum(flow=True) == 0 for h in b.values())


@pytest.mark.parametrize("n", [1, 7])
def test_tiny_batches(specs, n):
    # Edge case: a batch of one or a few events fills every histogram kind without error
    part = {k: v[:n] for k, v in cols().items()}
    filler = Filler(specs)
    hists = filler.book()
    filler.fill(hists, BatchView(part))
    assert hists["p_bms"].sum(flow=True) == n
    assert hists["hcal_module_energy"].sum(flow=True) == 4 * n
