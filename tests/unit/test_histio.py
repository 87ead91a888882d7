"""Histogram persistence: an exact, versioned round trip of everything the Filler books,
loud failures for foreign or corrupt blobs, and the ≲100 KB per spill storage budget."""

from __future__ import annotations

import struct
import zlib

import boost_histogram as bh
import numpy as np
import pytest

from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.histio import FORMAT_VERSION, add_into, decode_histograms, encode_histograms
from dqm.core.summary import accumulate
from dqm.core.variables import BatchView
from dqm.errors import StorageError
from dqm.sim.simulate import SimConfig, simulate_spill

BUDGET_BYTES = 100 * 1024


def fill_spill(specs, cfg: SimConfig, spill: int = 1):
    data = simulate_spill(cfg, spill)
    filler = Filler(specs)
    hists = filler.book()
    moments: dict[str, float] = {}
    for payload in data.batches():
        view = BatchView(decode_batch(payload).columns)
        filler.fill(hists, view)
        accumulate(moments, view)
    return hists, moments


def assert_same_histogram(a: bh.Histogram, b: bh.Histogram, name: str) -> None:
    assert type(a.storage_type) is type(b.storage_type) or a.storage_type is b.storage_type, name
    assert a.storage_type == b.storage_type, name
    assert a.ndim == b.ndim, name
    for ax_a, ax_b in zip(a.axes, b.axes, strict=False):
        assert type(ax_a) is type(ax_b), name
        np.testing.assert_array_equal(ax_a.edges, ax_b.edges, err_msg=name)
        assert getattr(ax_a, "label", None) == getattr(ax_b, "label", None), name
        assert ax_a.traits == ax_b.traits, name
    assert (a.name, a.title) == (b.name, b.title), name
    va, vb = a.view(flow=True), b.view(flow=True)
    assert va.dtype == vb.dtype, name
    np.testing.assert_array_equal(va, vb, err_msg=name)
    assert a == b, name


def test_round_trip_of_every_booked_histogram_filled(specs):
    # Given every histogram of the shipped specs, filled with a spill, and its moments
    hists, moments = fill_spill(
        specs, SimConfig(events_per_spill=4000, batch_size=1000, pik_fraction=0.05)
    )
    assert set(hists) == set(specs.names)
    # When encoded and decoded
    blob = encode_histograms(hists, moments)
    got, got_moments = decode_histograms(blob)
    # Then names, order, axes, labels, titles and every bin (flows included) are identical
    assert list(got) == list(hists)
    for name, h in hists.items():
        assert h.sum(flow=True) > 0, name
        assert_same_histogram(h, got[name], name)
    # and the moments too, bit for bit
    assert got_moments == moments
    assert all(type(v) is float for v in got_moments.values())


def test_decoded_histograms_are_usable(specs):
    # A decoded histogram is a real, writable boost-histogram: it can be filled and added
    hists, _ = fill_spill(specs, SimConfig(events_per_spill=2000, batch_size=1000))
    got, _ = decode_histograms(encode_histograms(hists))
    got["p_bms"].fill([160.0])
    assert got["p_bms"].sum(flow=True) == hists["p_bms"].sum(flow=True) + 1
    total = add_into({}, got)
    add_into(total, hists)
    np.testing.assert_array_equal(total["dp"].values(flow=True), 2 * hists["dp"].values(flow=True))


def test_empty_histograms_and_no_moments_round_trip(specs):
    hists = Filler(specs).book()
    got, moments = decode_histograms(encode_histograms(hists))
    assert moments == {}
    for name, h in hists.items():
        assert_same_histogram(h, got[name], name)


@pytest.mark.parametrize(
    "values",
    [
        {
            "a:n": 3.0,
            "a:s1": 0.1 + 0.2,
            "a:s2": 1e-300,
            "big": 1.7976931348623157e308,
            "neg": -2.5e-17,
        }
    ],
)
def test_moments_are_preserved_exactly(values):
    _, got = decode_histograms(encode_histograms({}, values))
    assert got == values
    assert all(got[k].hex() == v.hex() for k, v in values.items())


@pytest.mark.parametrize(
    "storage",
    [
        bh.storage.Int64(),
        bh.storage.Double(),
        bh.storage.Weight(),
        bh.storage.Mean(),
        bh.storage.WeightedMean(),
    ],
    ids=lambda s: type(s).__name__,
)
def test_round_trip_per_storage_type(storage):
    # Given a 2D histogram with flows filled with weights/samples where the storage takes them
    h = bh.Histogram(bh.axis.Regular(10, -1, 1), bh.axis.Integer(0, 3), storage=storage)
    h.axes[0].label = "x [a.u.]"
    h.name, h.title = "probe", "A probe"
    rng = np.random.default_rng(5)
    x, y = rng.normal(0, 0.8, 500), rng.integers(-1, 5, 500)
    kw = {}
    if isinstance(storage, (bh.storage.Weight, bh.storage.WeightedMean)):
        kw["weight"] = rng.uniform(0.5, 2, 500)
    if isinstance(storage, (bh.storage.Mean, bh.storage.WeightedMean)):
        kw["sample"] = rng.normal(3, 1, 500)
    h.fill(x, y, **kw)
    # When round-tripped
    got = decode_histograms(encode_histograms({"probe": h}))[0]["probe"]
    # Then nothing changes; mean storages are stored as (value, variance) by UHI, so their
    # internal sum of squared deltas comes back to within rounding only
    if isinstance(storage, (bh.storage.Mean, bh.storage.WeightedMean)):
        a, b = h.view(flow=True), got.view(flow=True)
        for field in a.dtype.names:
            if field.endswith("deltas_squared"):
                np.testing.assert_allclose(b[field], a[field], rtol=1e-12, atol=1e-12)
            else:
                np.testing.assert_array_equal(b[field], a[field], err_msg=field)
        assert (got.name, got.title, got.axes[0].label) == ("probe", "A probe", "x [a.u.]")
    else:
        assert_same_histogram(h, got, type(storage).__name__)


def test_bad_magic_raises_storage_error():
    blob = encode_histograms({})
    with pytest.raises(StorageError, match="expected"):
        decode_histograms(b"ROOT" + blob[4:])
    with pytest.raises(StorageError):
        decode_histograms(b"")


def test_unknown_version_raises_storage_error():
    blob = encode_histograms({})
    future = blob[:4] + struct.pack("<H", FORMAT_VERSION + 1) + blob[6:]
    with pytest.raises(StorageError, match=f"version {FORMAT_VERSION + 1}"):
        decode_histograms(future)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda b: b[:4],  # magic only
        lambda b: b[:5],  # half a version
        lambda b: b[:6],  # no body
        lambda b: b[: len(b) // 2],  # truncated zlib stream
        lambda b: b[:6] + b"garbage" * 10,  # not zlib
        lambda b: b[:6] + zlib.compress(b"\x05\x00\x00\x00{not json"),  # not JSON
    ],
)
def test_corrupt_blob_raises_storage_error(corrupt):
    blob = encode_histograms({"h": bh.Histogram(bh.axis.Regular(4, 0, 1))}, {"m": 1.0})
    with pytest.raises(StorageError):
        decode_histograms(corrupt(blob))


def test_full_spill_blob_fits_the_storage_budget(specs):
    # Given a 20 000-event spill filled into every shipped histogram, with its moments
    cfg = SimConfig()
    assert cfg.events_per_spill == 20_000
    hists, moments = fill_spill(specs, cfg)
    assert sum(h.sum(flow=True) for h in hists.values()) > 0
    # When encoded
    blob = encode_histograms(hists, moments)
    print(
        f"\nfilled 20k-event spill, {len(hists)} histograms: blob {len(blob)} bytes "
        f"({len(blob) / 1024:.1f} KB, budget {BUDGET_BYTES // 1024} KB)"
    )
    # Then it is within the ~100 KB per spill budget
    assert len(blob) <= BUDGET_BYTES


def test_booked_copies_add_and_encode_as_independent_histograms(specs):
    # Given two spills filled into booked sets (copies of one template: shared axis objects)
    cfg = SimConfig(n_spills=2, events_per_spill=3000, batch_size=1000, seed=9)
    a, _ = fill_spill(specs, cfg, 1)
    b, _ = fill_spill(specs, cfg, 2)
    # and the same histograms as deep copies, which own their axes
    a_own = {name: h.copy() for name, h in a.items()}
    b_own = {name: h.copy() for name, h in b.items()}
    # When each pair is summed (the fast C++ add for the booked ones, += for the others)
    add_into(a, b)
    add_into(a_own, b_own)
    # Then the sums are equal bin by bin, b is untouched, and both encode to the same blob
    for name, h in a_own.items():
        assert np.array_equal(a[name].view(flow=True), h.view(flow=True)), name
        assert a[name].sum(flow=True) > b[name].sum(flow=True) or h.sum(flow=True) == 0, name
    assert encode_histograms(a) == encode_histograms(a_own)
    # and filling a booked set never leaks into its template: the next booking is empty
    filler = Filler(specs)
    filled = filler.book()
    filler.fill(filled, BatchView(decode_batch(simulate_spill(cfg, 1).batches()[0]).columns))
    assert sum(h.sum(flow=True) for h in filled.values()) > 0
    assert all(h.sum(flow=True) == 0 for h in filler.book().values())
