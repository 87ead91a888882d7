"""Per-channel response check: the mean signal of each module/cell (gain drops).

A calorimeter module whose gain drops still counts hits — a muon deposits its MIP
in every module — so a hit-count map cannot see it; the *mean energy* per module
can. Histograms are channel (Integer axes) × one amplitude axis, e.g. HCAL
``Integer(0, 4) × Regular(energy)``.
"""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm.checks._cellmaps import channel_ids
from dqm.checks._core import CheckContext, CheckResult, Quality, worst
from dqm.checks._registry import register_check
from dqm.checks._util import (
    axis_label,
    bin_centres,
    fmt_judged,
    require_same_binning,
    symmetric,
)

__all__ = ["channel_means", "check_channel_means"]

FloatArray = NDArray[np.float64]


def channel_means(
    h: bh.Histogram,
) -> tuple[FloatArray, FloatArray, FloatArray, list[tuple[int, ...]]]:
    """Mean amplitude, its standard error and entries per channel.

    Returns:
        ``(mean, error, entries, channel_ids)``, arrays with one value per channel
        (C order); NaN mean/error for channels without entries.

    Raises:
        ValueError: unless the histogram is Integer axes × exactly one other axis.
    """
    amplitude = [i for i, a in enumerate(h.axes) if not isinstance(a, bh.axis.Integer)]
    channels = [i for i in range(h.ndim) if i not in amplitude]
    if len(amplitude) != 1 or not channels:
        raise ValueError("channel_means needs Integer channel axes × one amplitude axis")
    values = np.moveaxis(np.asarray(h.values(), dtype=float), amplitude[0], -1)
    values = values.reshape(-1, values.shape[-1])
    centres = bin_centres(h.axes[amplitude[0]])
    entries = values.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = values @ centres / entries
        variance = values @ centres**2 / entries - mean**2
        error = np.sqrt(np.maximum(variance, 0.0) / entries)
    return mean, error, entries, channel_ids([h.axes[i] for i in channels])


@register_check(
    "channel_means",
    params={
        "use_reference": (
            bool,
            True,
            "compare each channel with its reference mean if present, "
            "else with the median of the channel means",
        ),
        "rel_warning": (float, 0.05, "WARNING when a channel mean is off by this fraction"),
        "rel_bad": (float, 0.15, "BAD when a channel mean is off by this fraction"),
        "min_sigma": (float, 5.0, "shifts below this significance are not flagged"),
        "min_channel_entries": (int, 50, "channels with fewer entries are not judged"),
        "channel_name": (str, "module", "what a channel is called, e.g. 'HCAL module'"),
    },
    needs_histogram=True,
    ordered=(("rel_warning", "rel_bad"),),
)
def check_channel_means(
    context: CheckContext,
    *,
    use_reference: bool,
    rel_warning: float,
    rel_bad: float,
    min_sigma: float,
    min_channel_entries: int,
    channel_name: str,
) -> CheckResult:
    """Mean amplitude per channel against expectation: gain drops or rises."""
    assert context.histogram is not None
    h = context.histogram
    mean, error, entries, ids = channel_means(h)
    usable = ~np.array([c in context.masked for c in ids]) & (entries >= min_channel_entries)
    if use_reference and context.reference is not None and context.reference.values().sum() > 0:
        require_same_binning(h, context.reference)
        expected, expected_err, _, _ = channel_means(context.reference)
        source = "reference"
    else:
        if not usable.any():
            return CheckResult(Quality.NO_DATA, None, {}, "no channel has enough entries")
        expected = np.full_like(mean, float(np.median(mean[usable])))
        expected_err = np.zeros_like(mean)
        source = "median of channels"
    usable &= np.isfinite(expected) & (expected != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = mean / expected - 1.0
        significance = np.abs(mean - expected) / np.hypot(error, expected_err)
    significant = usable & (significance >= min_sigma)
    qualities = [
        Quality.BAD
        if abs(relative[i]) >= rel_bad
        else Quality.WARNING
        if abs(relative[i]) >= rel_warning
        else Quality.GOOD
        for i in np.flatnonzero(significant)
    ]
    quality = worst(qualities) if qualities else Quality.GOOD
    flagged = [i for i in np.flatnonzero(significant) if abs(relative[i]) >= rel_warning]
    flagged.sort(key=lambda i: -abs(relative[i]))
    unit = axis_label(next(a for a in h.axes if not isinstance(a, bh.axis.Integer)), "amplitude")
    names = [",".join(map(str, ids[i])) for i in flagged]
    pct = symmetric(100 * rel_warning, 100 * rel_bad)
    lines = [
        f"{channel_name} {name}: mean {unit} {mean[i]:.3g} vs {expected[i]:.3g} from "
        f"{source} ({fmt_judged(100 * relative[i], *pct, decimals=0, signed=True)} %, "
        f"{fmt_judged(float(significance[i]), min_sigma, decimals=0)}σ)"
        for name, i in zip(names, flagged, strict=False)
    ]
    explanation = (
        "; ".join(lines[:5])
        if lines
        else f"all {int(usable.sum())} {channel_name}s within ±{100 * rel_warning:g} % "
        f"of the {source}"
    )
    value = float(np.max(np.abs(relative[usable]))) if usable.any() else None
    return CheckResult(
        quality,
        value,
        {"warning": rel_warning, "bad": rel_bad},
        explanation,
        {
            "channels": [list(ids[i]) for i in flagged],
            "observed": [float(mean[i]) for i in flagged],
            "expected": [float(expected[i]) for i in flagged],
            "significance": [float(significance[i]) for i in flagged],
        },
    )
