"""The numpy baseline of ``dqm bench`` fills every spec histogram without a warning.

Given the shipped specs (some select on boolean trigger bits), when the fill-stage benchmark
runs under pytest's ``filterwarnings = error``, then neither the Filler nor the
numpy.histogram/histogram2d baseline warns, and both count the same events.
"""

from __future__ import annotations

from benchmarks.worker import bench_fill


def test_fill_benchmark_baseline_does_not_warn(specs):
    # Given / When: one batch of 500 events, filled twice by each side
    filler, numpy_fill = bench_fill(specs, batch_size=500, repeat=2)
    # Then both measured the same number of events (a RuntimeWarning would have failed the test)
    assert filler.events == numpy_fill.events == 1000
    assert filler.cpu_s >= 0 and numpy_fill.cpu_s >= 0
