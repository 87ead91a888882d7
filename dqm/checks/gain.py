"""Per-channel response checks: the mean signal of each module or cell (gain changes).

A calorimeter cell whose gain drops still counts hits — a muon deposits its MIP in it —
so a hit-count map cannot see it; the *mean energy per hit* can.

* ``channel_means``: histograms of channel (Integer axes) × one amplitude axis, e.g.
  HCAL ``Integer(0, 4) × Regular(energy)`` — the mean and its error per channel.
* ``cell_gain``: three cell maps over the same hits — occupancy (n), energy (ΣE) and
  squared energy (ΣE²) — give each cell's mean response ``ΣE/n`` and its error
  ``√((ΣE²/n − mean²)/(n − 1))``, compared with the reference's (the error of the
  spill's mean from the reference's per-hit spread, as the null hypothesis has it). This
  is what names *one* cell with a changed gain as that cell instead of as its module's.
"""

from __future__ import annotations

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm._lazy import lazy_module
from dqm.checks._cellmaps import channel_ids
from dqm.checks._cells import channel_label
from dqm.checks._core import CheckContext, CheckResult, Quality, worst
from dqm.checks._registry import REQUIRED, register_check
from dqm.checks._util import (
    axis_label,
    bin_centres,
    fmt_judged,
    no_data,
    require_same_binning,
    symmetric,
)
from dqm.checks.stats import look_elsewhere, p_to_sigma

_st = lazy_module("scipy.stats")

__all__ = [
    "channel_means",
    "check_channel_means",
    "cell_response",
    "cell_spread",
    "check_cell_gain",
]

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


def common_shift(relative: FloatArray, flagged: float, rel_warning: float) -> bool:
    """Whether the judged cells moved *together*: their median shift is itself beyond the
    warning and in the flagged cell's direction (a global HV or calibration change, not
    one cell)."""
    median = float(np.median(relative))
    return abs(median) >= rel_warning and np.sign(median) == np.sign(flagged)


def cell_spread(relative: FloatArray, rel_error: FloatArray) -> float:
    """The cells' own spread around their median response beyond their statistical errors.

    A robust width (1.4826 × the median absolute deviation, so one changed cell does not
    widen it) of ``relative`` (each cell's response over the median, minus 1), less the
    typical statistical error of a cell in quadrature; 0 with fewer than 3 cells.
    """
    if relative.size < 3:
        return 0.0
    mad = 1.4826 * float(np.median(np.abs(relative - np.median(relative))))
    stat = float(np.median(rel_error))
    return float(np.sqrt(max(mad**2 - stat**2, 0.0)))


def cell_response(
    hits: bh.Histogram, energy: bh.Histogram, energy2: bh.Histogram, unit: float = 1e-3
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean response per cell, its standard error and the hits, from three cell maps.

    Args:
        hits, energy, energy2: maps of n, ΣE and ΣE² per cell over the same hits (the
            energies in integer MeV and MeV², as the ``cellmap`` fills them).
        unit: factor from the maps' energy unit to the reported one (MeV → GeV).

    Returns:
        ``(mean, error, hits)`` per cell; NaN mean/error where a cell has < 2 hits.
    """
    n = np.asarray(hits.values(), dtype=float)
    total = np.asarray(energy.values(), dtype=float) * unit
    squares = np.asarray(energy2.values(), dtype=float) * unit**2
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n >= 2, total / n, np.nan)
        variance = np.maximum(squares / n - mean**2, 0.0) * n / (n - 1)
        error = np.where(n >= 2, np.sqrt(variance / n), np.nan)
    return mean, error, n


def _maps(
    context: CheckContext, hits: str, energy2: str, reference: bool
) -> tuple[bh.Histogram, bh.Histogram, bh.Histogram] | str:
    source = context.references if reference else context.histograms
    energy = context.reference if reference else context.histogram
    found = (source.get(hits), energy, source.get(energy2))
    missing = [name for name, h in zip((hits, "energy", energy2), found, strict=True) if h is None]
    if missing:
        return f"no {'reference ' if reference else ''}histogram {', '.join(missing)}"
    n_map, energy_map, squares = found
    assert n_map is not None and energy_map is not None and squares is not None
    shape = energy_map.values().shape
    if any(h.values().shape != shape for h in (n_map, squares)):
        return f"the maps {hits}, {energy2} and this one differ in shape"
    return n_map, energy_map, squares


@register_check(
    "cell_gain",
    params={
        "hits": (str, REQUIRED, "the occupancy map over the same hits (same threshold)"),
        "energy2": (str, REQUIRED, "the squared-energy map over the same hits"),
        "use_reference": (
            bool,
            True,
            "compare each cell with its reference mean if present, else with the median "
            "of the cells",
        ),
        "rel_warning": (float, 0.05, "WARNING when a cell's mean response is off by this fraction"),
        "rel_bad": (float, 0.10, "BAD when a cell's mean response is off by this fraction"),
        "min_sigma": (
            float,
            5.0,
            "significance needed, after the look-elsewhere correction over the judged cells",
        ),
        "min_hits": (
            int,
            50,
            "cells with fewer hits (in the spill or the reference) are not judged: the mean "
            "of a few hits of a MIP/shower mixture is far from normal",
        ),
        "channel_name": (str, "cell", "what a cell is called, e.g. 'HCAL module 2 cell'"),
    },
    needs_histogram=True,
    ordered=(("rel_warning", "rel_bad"),),
)
def check_cell_gain(
    context: CheckContext,
    *,
    hits: str,
    energy2: str,
    use_reference: bool,
    rel_warning: float,
    rel_bad: float,
    min_sigma: float,
    min_hits: int,
    channel_name: str,
) -> CheckResult:
    """Mean response (energy per hit) of each cell against the reference: a gain change.

    The check sits on the energy map; ``hits`` and ``energy2`` name its companions.
    Cells shifted together are reported as a common change of the map (HV, calibration),
    a lone cell as that cell.
    """
    maps = _maps(context, hits, energy2, reference=False)
    if isinstance(maps, str):
        return no_data(maps)
    mean, error, n = cell_response(*maps)
    assert context.histogram is not None
    ids = channel_ids(list(context.histogram.axes))
    masked = np.array([c in context.masked for c in ids]).reshape(mean.shape)
    usable = ~masked & (n >= min_hits) & np.isfinite(mean)
    ref_maps = (
        _maps(context, hits, energy2, reference=True)
        if use_reference and context.reference is not None
        else "no reference"
    )
    if not isinstance(ref_maps, str) and float(ref_maps[0].values().sum()) > 0:
        for spill_map, ref_map in zip(maps, ref_maps, strict=True):
            require_same_binning(spill_map, ref_map)
        expected, expected_err, ref_n = cell_response(*ref_maps)
        usable &= (ref_n >= min_hits) & np.isfinite(expected) & (expected > 0)
        # under "same response as the reference" the spill's hits are drawn from the
        # reference's distribution: its per-hit spread gives the error of the spill's mean.
        # The spill's own spread would shrink exactly when it happens to lack the rare tail
        # hits of a MIP/shower mixture — and make that deficit look significant
        with np.errstate(divide="ignore", invalid="ignore"):
            error = expected_err * np.sqrt(ref_n / n)
        source = "reference"
    else:
        if not usable.any():
            return no_data(f"no {channel_name} has {min_hits} hits")
        centre = float(np.median(mean[usable]))
        spread = cell_spread(mean[usable] / centre - 1.0, error[usable] / centre)
        expected = np.full_like(mean, centre)
        # the median of the cells predicts one cell's response only up to the cells' own
        # spread: their hit populations differ (beam spot or periphery, MIPs or shower
        # tails), so that spread is the prediction's error, as a reference's would be
        expected_err = np.full_like(mean, spread * centre)
        source = "no reference: the median of the cells"
        if spread > 0:
            source += (
                f", which spread ± {100 * spread:.1f} % among themselves beyond statistics "
                "(counted in each cell's error)"
            )
    against = "the reference" if source == "reference" else "the median of the cells"
    m = int(usable.sum())
    if m == 0:
        return no_data(f"no {channel_name} has {min_hits} hits here and in the {source}")
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = mean / expected - 1.0
        z_local = (mean - expected) / np.hypot(error, expected_err)
    p_local = 2.0 * _st.norm.sf(np.abs(np.nan_to_num(z_local)))
    z_global = np.where(usable, p_to_sigma(look_elsewhere(p_local, m)), 0.0)
    significant = usable & (z_global >= min_sigma)
    size = np.abs(np.nan_to_num(relative))
    flagged = [
        int(i) for i in np.flatnonzero(significant.ravel()) if size.ravel()[i] >= rel_warning
    ]
    flagged.sort(key=lambda i: -size.ravel()[i])
    quality = (
        worst(Quality.BAD if size.ravel()[i] >= rel_bad else Quality.WARNING for i in flagged)
        if flagged
        else Quality.GOOD
    )
    flat = [a.ravel() for a in (mean, expected, relative, z_global)]

    shift_limits = symmetric(100 * rel_warning, 100 * rel_bad)

    def line(i: int) -> str:
        shift = fmt_judged(100 * flat[2][i], *shift_limits, decimals=1, signed=True)
        z = fmt_judged(float(flat[3][i]), min_sigma, decimals=1)
        return (
            f"{channel_name} {channel_label(ids[i])}: mean {flat[0][i]:.3g} GeV per hit vs "
            f"{flat[1][i]:.3g} from {against} ({shift} %, {z}σ after {m} cells)"
        )

    judged = f"{m} of {mean.size} cells with ≥ {min_hits} hits judged"
    if not flagged:
        explanation = f"all {channel_name}s within ±{100 * rel_warning:g} % of {against} ({judged})"
    elif m >= 2 and common_shift(relative[usable], flat[2][flagged[0]], rel_warning):
        average = 100 * float(np.median(relative[usable]))
        explanation = (
            f"every judged {channel_name} shifted together ({average:+.1f} % median): a "
            f"common cause (HV, calibration) rather than one cell; "
            + "; ".join(map(line, flagged[:3]))
        )
    else:
        explanation = "; ".join(map(line, flagged[:5]))
        if m == 1:
            explanation += (
                f" (the only {channel_name} with ≥ {min_hits} hits: a change of "
                "all its cells would look the same)"
            )
    if against != "the reference":
        explanation += f" ({source})"
    return CheckResult(
        quality,
        float(np.max(size.ravel()[usable.ravel()])),
        {"warning": rel_warning, "bad": rel_bad, "min_sigma": min_sigma},
        explanation,
        {
            "channels": [list(ids[i]) for i in flagged],
            "observed": [float(flat[0][i]) for i in flagged],
            "expected": [float(flat[1][i]) for i in flagged],
            "relative": [float(flat[2][i]) for i in flagged],
            "significance": [float(flat[3][i]) for i in flagged],
            "cells_judged": m,
            "source": source,
        },
    )
