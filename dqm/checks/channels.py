"""Channel checks on cell maps: dead, hot and noisy cells, by Poisson significance.

Each cell's count is compared with what a healthy cell would have seen: the reference
map's share of that cell times this spill's total (``use_reference``, default), else a
model of the map itself (``method``; see :mod:`dqm.checks._cellmaps` for why the
neighbour/median comparisons are only for flat maps). Two passes: cells that are
clearly off in the first pass are kept out of the second pass's expectation, so a dead
central cell does not make its neighbours look hot. Masked channels are never used and
never reported.

The decision is a p-value, not a share of the map: the local p-value of the observed
count (exact two-Poisson test against the reference, which reduces to the Poisson tail
of ``expected`` when the reference is far larger than a spill; the Poisson tail against
the fitted expectation without one) is corrected for having looked at every cell of
the map (Šidák, :func:`dqm.checks.stats.look_elsewhere`) and converted to a one-sided
Gaussian significance. A cell expecting only a few hits per spill is named as soon as
its count is significant — a hot corner cell firing 50 times where 2 are expected — and
a dead one as soon as zero hits is significant, i.e. once it expects more than
``ln(m/p)`` hits (≈ 19 for 36 cells at 5σ, ≈ 14 for 9 cells at 4σ); below that the
explanation says how many cells a single spill cannot judge. A minimum effect size
(``dead_fraction``, ``hot_factor``) keeps a beam that moved by a millimetre from
calling an edge-of-spot cell hot at high statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from dqm.checks._cell_report import cell_report, tiers
from dqm.checks._cell_windows import Windows, assess_windows, strongest
from dqm.checks._cellmaps import Method
from dqm.checks._cells import CellAssessment, channel_label, dead_reach
from dqm.checks._core import CheckContext, CheckResult
from dqm.checks._registry import register_check
from dqm.checks._util import no_data

__all__ = [
    "CellAssessment",
    "channel_label",
    "check_dead_channels",
    "check_hot_channels",
    "check_noisy_channels",
]

_COMMON = {
    "use_reference": (bool, True, "compare with the reference map scaled to this spill if present"),
    "method": (
        str,
        "separable",
        "expectation without reference: 'separable' (beam-spot x×y "
        "profile, for peaked maps), 'neighbours' or 'median' (flat maps only)",
        ("separable", "neighbours", "median"),
    ),
    "min_sigma": (
        float,
        5.0,
        "significance (after the look-elsewhere correction over the map's cells) needed to "
        "call a channel anomalous",
    ),
    "warning_sigma": (
        float,
        None,
        "WARNING for a channel between this significance and min_sigma (a suspect; "
        "none when unset)",
    ),
    "channel_name": (str, "cell", "what a channel is called in explanations, e.g. 'ECAL cell'"),
    "spills": (
        int,
        1,
        "add up to this many spills (this one and the run's last ones) for cells that expect "
        "a few hits per spill; each cell is judged on its strongest window",
    ),
    "channels_warning": (int, 1, "WARNING from this many flagged channels"),
    "channels_bad": (int, 1, "BAD from this many flagged channels"),
}
_ORDER = (("channels_warning", "channels_bad"), ("warning_sigma", "min_sigma"))


def _judge_cells(
    context: CheckContext,
    what: str,
    sign: int,
    candidates: Callable[[Windows], NDArray[np.bool_]],
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    warning_sigma: float | None,
    spills: int,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    extra: dict[str, float | None],
    sensitivity: Callable[[Windows], str] | None = None,
) -> CheckResult:
    """What the dead, hot and noisy checks share: assess the map over its spill windows,
    keep each cell's strongest window in direction ``sign`` (−1 deficit, +1 excess) among
    the cells ``candidates`` proposes, grade by significance and word the result.

    ``sensitivity`` adds what a single spill cannot judge (cells too quiet to call dead).
    """
    assessed = assess_windows(
        context, spills=spills, use_reference=use_reference, method=method, min_sigma=min_sigma
    )
    cells, candidate = strongest(assessed, _now(candidates(assessed)), sign)
    if cells.note:
        return no_data(cells.note)
    flagged, suspect = tiers(cells, candidate, min_sigma, warning_sigma, sign)
    return cell_report(
        cells,
        flagged,
        suspect,
        what,
        channel_name,
        channels_warning,
        channels_bad,
        extra,
        sensitivity(assessed) if sensitivity else "",
    )


def _now(candidate: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A cell is judged over earlier spills only while *this* spill shows it too.

    Windows add evidence for a cell that is off now (dead now, hot now); without this, one
    spill with a hot cell would keep it "hot" over the next spills' windows — a trail of
    flags after the fault is gone, exactly what change detection avoids for a glitch.
    """
    return candidate & candidate[:1]


def _deficit(dead_fraction: float, min_expected: float) -> Callable[[Windows], NDArray[np.bool_]]:
    """Candidates for a dead cell in every window: below ``dead_fraction`` of expectation."""

    def candidates(assessed: Windows) -> NDArray[np.bool_]:
        expected = np.nan_to_num(assessed.expected, nan=0.0)
        return (
            ~assessed.masked[None]
            & (expected >= min_expected)
            & (assessed.observed < dead_fraction * expected)
        )

    return candidates


def _too_quiet(min_sigma: float) -> Callable[[Windows], str]:
    """What a dead-cell result adds: how many cells expect too few hits to be called dead."""

    def sensitivity(assessed: Windows) -> str:
        trials = assessed.first.n_judged * assessed.count
        reach = dead_reach(trials, min_sigma)
        longest = np.nan_to_num(assessed.expected[-1], nan=0.0)
        valid = np.isfinite(assessed.expected[-1])
        blind = int((~assessed.masked & valid & (longest < reach)).sum())
        over = f" even over {assessed.count} spills" if assessed.count > 1 else ""
        return (
            f"; {blind} cell(s) expect fewer than {reach:.0f} hits{over}: too few to call them dead"
            if blind
            else ""
        )

    return sensitivity


def _excess(factor: float, min_share: float = 0.0) -> Callable[[Windows], NDArray[np.bool_]]:
    """Candidates for an excess in every window: ``factor`` above expectation (and, without
    a reference, a minimum share of the map: the smooth fit knows nothing of shower tails)."""

    def candidates(assessed: Windows) -> NDArray[np.bool_]:
        expected = assessed.expected
        valid = np.isfinite(expected)
        above = assessed.observed > factor * np.where(valid, expected, np.inf)
        share = 0.0 if assessed.first.method == "reference" else min_share
        cells_axes = tuple(range(1, assessed.observed.ndim))
        totals = assessed.observed.sum(axis=cells_axes, keepdims=True)
        return ~assessed.masked[None] & valid & above & (assessed.observed >= share * totals)

    return candidates


@register_check(
    "dead_channels",
    params={
        **_COMMON,
        "dead_fraction": (float, 0.1, "dead if below this fraction of the expected count"),
        "min_expected": (
            float,
            0.0,
            "only channels expecting at least this many hits are judged (the significance "
            "already requires enough: see the module docstring)",
        ),
    },
    needs_histogram=True,
    # a dead central cell empties its map: the map's own total must not make that NO_DATA
    # (the significance decides whether there is enough to judge; an empty map is NO_DATA)
    min_entries=0,
    ordered=_ORDER,
)
def check_dead_channels(
    context: CheckContext,
    *,
    use_reference: bool,
    method: Method,
    min_sigma: float,
    warning_sigma: float | None,
    spills: int,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    dead_fraction: float,
    min_expected: float,
) -> CheckResult:
    """Cells with (almost) no hits where a healthy cell would have significantly more."""
    assert context.histogram is not None
    if float(context.histogram.values().sum()) <= 0:
        return no_data("no hit in any cell of the map: nothing to compare the cells with")
    return _judge_cells(
        context,
        "dead",
        -1,
        _deficit(dead_fraction, min_expected),
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
        warning_sigma=warning_sigma,
        spills=spills,
        channel_name=channel_name,
        channels_warning=channels_warning,
        channels_bad=channels_bad,
        extra={
            "dead_fraction": dead_fraction,
            "min_sigma": min_sigma,
            "warning_sigma": warning_sigma,
        },
        sensitivity=_too_quiet(warning_sigma or min_sigma),
    )


@register_check(
    "hot_channels",
    params={
        **_COMMON,
        "hot_factor": (float, 3.0, "hot if above this multiple of the expected count"),
        "min_share": (
            float,
            0.0,
            "without a reference only: hot only if holding at least this fraction of the "
            "map's hits (the smooth fit does not model shower tails in the corners)",
        ),
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
    warning_sigma: float | None,
    spills: int,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    hot_factor: float,
    min_share: float,
) -> CheckResult:
    """Cells firing significantly more often than expected (noise, a stuck discriminator)."""
    return _judge_cells(
        context,
        "hot",
        +1,
        _excess(hot_factor, min_share),
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
        warning_sigma=warning_sigma,
        spills=spills,
        channel_name=channel_name,
        channels_warning=channels_warning,
        channels_bad=channels_bad,
        extra={
            "hot_factor": hot_factor,
            "min_sigma": min_sigma,
            "warning_sigma": warning_sigma,
            "min_share": min_share,
        },
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
    warning_sigma: float | None,
    spills: int,
    channel_name: str,
    channels_warning: int,
    channels_bad: int,
    noisy_factor: float,
) -> CheckResult:
    """Cells with a moderate but significant excess (hot cells are included)."""
    return _judge_cells(
        context,
        "noisy",
        +1,
        _excess(noisy_factor),
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
        warning_sigma=warning_sigma,
        spills=spills,
        channel_name=channel_name,
        channels_warning=channels_warning,
        channels_bad=channels_bad,
        extra={
            "noisy_factor": noisy_factor,
            "min_sigma": min_sigma,
            "warning_sigma": warning_sigma,
        },
    )
