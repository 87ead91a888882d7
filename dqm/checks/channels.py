"""Channel checks on cell maps: dead, hot and noisy cells; per-channel gain.

Each cell is compared with what a healthy cell would have seen: the reference map
scaled to this spill when a reference exists (``use_reference``, default), else a
model of the map itself (``method``; see :mod:`dqm.checks._cellmaps` for why the
neighbour/median comparisons are only for flat maps). Two passes: cells that are
clearly off in the first pass are kept out of the second pass's expectation, so a
dead central cell does not make its neighbours look hot. Masked channels are never
used and never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm.checks._cellmaps import Method, channel_ids, channel_map, expected_counts
from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import register_check
from dqm.checks._util import fmt_judged, grade, require_same_binning
from dqm.checks.stats import poisson_significance, poisson_tail_sigma

__all__ = [
    "CellAssessment",
    "assess_cells",
    "check_dead_channels",
    "check_hot_channels",
    "check_noisy_channels",
]

_SOURCE = {
    "reference": "reference",
    "separable": "beam-spot profile",
    "neighbours": "neighbours",
    "median": "median of cells",
}

_COMMON = {
    "use_reference": (bool, True, "compare with the reference map scaled to this spill if present"),
    "method": (
        str,
        "separable",
        "expectation without reference: 'separable' (beam-spot x×y "
        "profile, for peaked maps), 'neighbours' or 'median' (flat maps only)",
        ("separable", "neighbours", "median"),
    ),
    "min_sigma": (float, 5.0, "Poisson significance needed to call a channel anomalous"),
    "channel_name": (str, "cell", "what a channel is called in explanations, e.g. 'ECAL cell'"),
    "channels_warning": (int, 1, "WARNING from this many flagged channels"),
    "channels_bad": (int, 1, "BAD from this many flagged channels"),
}
_ORDER = (("channels_warning", "channels_bad"),)


@dataclass(frozen=True)
class CellAssessment:
    """Observed vs expected counts per channel, with the signed significance."""

    ids: list[tuple[int, ...]]
    observed: NDArray[np.float64]
    expected: NDArray[np.float64]
    significance: NDArray[np.float64]
    masked: NDArray[np.bool_]
    method: Method


def _significance(
    observed: NDArray[np.float64],
    expected: NDArray[np.float64],
    reference: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Signed Z: exact two-Poisson test against a reference, else Poisson tails.

    Without a reference the expectation is taken as exact, floored at one count so
    a few hits where "nothing" is expected are not infinitely significant.
    """
    valid = np.isfinite(expected)
    expected = np.where(valid, expected, 0.0)
    if reference is not None and reference.sum() > 0 and observed.sum() > 0:
        usable = reference > 0
        scale = expected[usable].sum() / reference[usable].sum() if usable.any() else 1.0
        z = poisson_significance(observed, reference, scale=scale)
    else:
        z_up = poisson_tail_sigma(observed, np.maximum(expected, 1.0), upper=True)
        z_down = poisson_tail_sigma(observed, expected, upper=False)
        z = np.where(observed >= expected, z_up, -z_down)
    return np.where(valid, z, 0.0)


def assess_cells(
    context: CheckContext, *, use_reference: bool, method: Method, min_sigma: float
) -> CellAssessment:
    """Expected counts and significance for every channel of ``context.histogram``."""
    assert context.histogram is not None
    observed, axes = channel_map(context.histogram)
    ids = channel_ids(axes)
    masked = np.array([cid in context.masked for cid in ids]).reshape(observed.shape)
    reference = None
    ref_hist: bh.Histogram | None = context.reference
    if use_reference and ref_hist is not None and float(ref_hist.values().sum()) > 0:
        require_same_binning(context.histogram, ref_hist)
        reference, _ = channel_map(ref_hist)
        method = "reference"
    expected = expected_counts(observed, masked, method, reference)
    z = _significance(observed, expected, reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = observed / expected
    clearly_off = ~masked & (np.abs(z) >= min_sigma) & ((ratio < 0.5) | (ratio > 2.0))
    if clearly_off.any():
        expected = expected_counts(observed, masked | clearly_off, method, reference)
        z = _significance(observed, expected, reference)
    return CellAssessment(ids, observed, expected, z, masked, method)


def _name(channel: tuple[int, ...]) -> str:
    return f"({','.join(map(str, channel))})" if len(channel) > 1 else str(channel[0])


def _report(
    assessment: CellAssessment,
    flagged: NDArray[np.bool_],
    what: str,
    channel_name: str,
    warning: int,
    bad: int,
    extra: dict[str, float],
) -> CheckResult:
    """Build the result: worst channels first, named with observed vs expected."""
    order = np.argsort(-np.abs(assessment.significance.ravel()))
    picked = [i for i in order if flagged.ravel()[i]]
    source = _SOURCE[assessment.method]
    n_flagged = len(picked)
    quality = grade(n_flagged, warning, bad) if n_flagged else Quality.GOOD
    observed, expected = assessment.observed.ravel(), assessment.expected.ravel()
    z = assessment.significance.ravel()
    min_sigma = extra.get("min_sigma")
    lines = [
        f"{channel_name} {_name(assessment.ids[i])}: {observed[i]:.0f} hits, expected ≈ "
        f"{expected[i]:.0f} from {source} ({fmt_judged(abs(float(z[i])), min_sigma, decimals=1)}σ)"
        for i in picked[:5]
    ]
    if picked:
        more = f" and {n_flagged - 5} more" if n_flagged > 5 else ""
        explanation = f"{n_flagged} {what} {channel_name}(s): " + "; ".join(lines) + more
    else:
        n_used = int((~assessment.masked).sum())
        explanation = f"no {what} {channel_name} among {n_used} (expected from {source})"
    details = {
        "channels": [list(assessment.ids[i]) for i in picked],
        "observed": [float(observed[i]) for i in picked],
        "expected": [float(expected[i]) for i in picked],
        "significance": [float(z[i]) for i in picked],
        "method": assessment.method,
        "masked": [
            list(c) for c, m in zip(assessment.ids, assessment.masked.ravel(), strict=False) if m
        ],
    }
    threshold = {"warning": float(warning), "bad": float(bad), **extra}
    return CheckResult(quality, float(n_flagged), threshold, explanation, details)


@register_check(
    "dead_channels",
    params={
        **_COMMON,
        "dead_fraction": (float, 0.1, "dead if below this fraction of the expected count"),
        "min_expected": (float, 10.0, "only channels expecting at least this many hits are judged"),
    },
    needs_histogram=True,
    ordered=_ORDER,
)
def check_dead_channels(
    context: CheckContext,
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    dead_fraction: float,
    min_expected: float,
) -> CheckResult:
    """Cells with (almost) no hits where a healthy cell would have many."""
    cells = assess_cells(context, use_reference=use_reference, method=method, min_sigma=min_sigma)
    expected = np.nan_to_num(cells.expected, nan=0.0)
    flagged = (
        ~cells.masked
        & (expected >= min_expected)
        & (cells.observed < dead_fraction * expected)
        & (cells.significance <= -min_sigma)
    )
    return _report(
        cells,
        flagged,
        "dead",
        channel_name,
        channels_warning,
        channels_bad,
        {"dead_fraction": dead_fraction, "min_sigma": min_sigma},
    )


def _excess(
    cells: CellAssessment, factor: float, min_sigma: float, min_share: float = 0.0
) -> NDArray[np.bool_]:
    expected = cells.expected
    valid = np.isfinite(expected)
    above = cells.observed > factor * np.where(valid, expected, np.inf)
    # a channel holding a negligible share of the map's hits is not operationally hot, whatever
    # its significance against a near-zero expectation (shower tails in the map's corners)
    big_enough = cells.observed >= min_share * float(cells.observed.sum())
    return ~cells.masked & valid & above & big_enough & (cells.significance >= min_sigma)


@register_check(
    "hot_channels",
    params={
        **_COMMON,
        "hot_factor": (float, 3.0, "hot if above this multiple of the expected count"),
        "min_share": (float, 0.0, "hot only if holding at least this fraction of the map's hits"),
    },
    needs_histogram=True,
    ordered=_ORDER,
)
def check_hot_channels(
    context: CheckContext,
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    hot_factor: float,
    min_share: float,
) -> CheckResult:
    """Cells firing far more often than expected (electronics noise, a stuck trigger)."""
    cells = assess_cells(context, use_reference=use_reference, method=method, min_sigma=min_sigma)
    return _report(
        cells,
        _excess(cells, hot_factor, min_sigma, min_share),
        "hot",
        channel_name,
        channels_warning,
        channels_bad,
        {"hot_factor": hot_factor, "min_sigma": min_sigma, "min_share": min_share},
    )


@register_check(
    "noisy_channels",
    params={
        **_COMMON,
        "noisy_factor": (float, 1.5, "noisy if above this multiple of the expected count"),
        "channels_bad": (int, 3, "BAD from this many noisy channels"),
    },
    needs_histogram=True,
    ordered=_ORDER,
)
def check_noisy_channels(
    context: CheckContext,
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    noisy_factor: float,
) -> CheckResult:
    """Cells with a moderate but significant excess (hot cells are included)."""
    cells = assess_cells(context, use_reference=use_reference, method=method, min_sigma=min_sigma)
    return _report(
        cells,
        _excess(cells, noisy_factor, min_sigma),
        "noisy",
        channel_name,
        channels_warning,
        channels_bad,
        {"noisy_factor": noisy_factor, "min_sigma": min_sigma},
    )
