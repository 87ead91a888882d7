"""The report's integrator sums stored spills exactly like boost-histogram does.

Counts that fit in int32 are stored as int32 (:mod:`dqm.core.histio`); a day of spills
adds up past 2**31. Given blobs of Int64 histograms with 1.5e9 counts in a bin, when the
integrator sums them (several layouts in one chunk, one blob alone, many blobs batched),
then every bin equals boost-histogram's own sum of the decoded histograms (weights up to
the order of the floating-point additions).
"""

from __future__ import annotations

import boost_histogram as bh
import numpy as np

from dqm.core.histio import add_into, decode_histograms, encode_histograms
from dqm.report.integrate import Integrator


def _spill(seed: int, big: int) -> bytes:
    rng = np.random.default_rng(seed)
    h = bh.Histogram(bh.axis.Regular(10, 0, 1), storage=bh.storage.Int64())
    h.fill(rng.random(1000))
    h[3] = big  # a heavily hit bin: fits in int32 alone, not once summed
    g = bh.Histogram(bh.axis.Regular(4, 0, 1), bh.axis.Integer(0, 3), storage=bh.storage.Double())
    g.fill(rng.random(50), rng.integers(0, 3, 50), weight=rng.random(50))
    return encode_histograms({"energy": h, "map": g})


def test_sums_equal_boost_histograms_past_int32():
    blobs = [_spill(k, 1_500_000_000) for k in range(70)] + [_spill(99, 7)]
    acc = Integrator()
    acc.add(blobs[0])
    acc.add_many(blobs[1:], chunk=32)
    total: dict[str, bh.Histogram] = {}
    for blob in blobs:
        add_into(total, decode_histograms(blob)[0])
    got = acc.histograms()
    assert acc.n_blobs == len(blobs)
    # integer counts exactly; weights up to the order of floating-point additions
    assert np.array_equal(got["energy"].values(flow=True), total["energy"].values(flow=True))
    np.testing.assert_allclose(got["map"].values(flow=True), total["map"].values(flow=True), 1e-12)
    assert got["energy"].values()[3] == 70 * 1_500_000_000 + 7
