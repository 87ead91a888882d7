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

import numpy as np
from numpy.typing import NDArray

from dqm.checks._cell_windows import Windows, assess_windows, strongest
from dqm.checks._cellmaps import Method
from dqm.checks._cells import CellAssessment, channel_label, dead_reach, expected_count
from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import register_check
from dqm.checks._util import fmt_judged, grade, no_data

__all__ = [
    "CellAssessment",
    "channel_label",
    "check_dead_channels",
    "check_hot_channels",
    "check_noisy_channels",
]

_SOURCE = {
    "reference": "expected from the reference",
    "separable": "no reference: judged against the map's own smooth fit",
    "neighbours": "no reference: judged against the median of each cell's neighbours",
    "median": "no reference: judged against the median of the cells",
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


def _report(
    assessment: CellAssessment,
    flagged: NDArray[np.bool_],
    suspect: NDArray[np.bool_],
    what: str,
    channel_name: str,
    warning: int,
    bad: int,
    extra: dict[str, float | None],
    sensitivity: str = "",
) -> CheckResult:
    """Build the result: worst channels first, named with observed vs expected."""
    z_global = assessment.global_significance.ravel()
    order = np.argsort(-np.abs(z_global))
    picked = [i for i in order if flagged.ravel()[i]]
    suspects = [i for i in order if suspect.ravel()[i] and not flagged.ravel()[i]]
    source = _SOURCE[assessment.method]
    n_flagged = len(picked)
    quality = grade(n_flagged, warning, bad) if n_flagged else Quality.GOOD
    if suspects and quality is Quality.GOOD:
        quality = Quality.WARNING
    observed, expected = assessment.observed.ravel(), assessment.expected.ravel()
    spills = assessment.spills.ravel()
    m, trials = assessment.n_judged, assessment.n_trials
    after = f"{m} cells" + (f" × {trials // max(m, 1)} windows" if trials > m else "")

    limits = (extra.get("warning_sigma"), extra.get("min_sigma"))

    def line(i: int) -> str:
        over = f" in the last {spills[i]} spills" if spills[i] > 1 else ""
        z = fmt_judged(abs(float(z_global[i])), *limits, decimals=1)
        return (
            f"{channel_name} {channel_label(assessment.ids[i])}: {observed[i]:.0f} hits{over}, "
            f"expected ≈ {expected_count(expected[i])} ({z}σ after {after})"
        )

    parts = []
    if picked:
        more = f" and {n_flagged - 5} more" if n_flagged > 5 else ""
        parts.append(
            f"{n_flagged} {what} {channel_name}(s): " + "; ".join(map(line, picked[:5])) + more
        )
    if suspects:
        parts.append(f"suspect {what}: " + "; ".join(map(line, suspects[:3])))
    if parts:
        explanation = "; ".join(parts) + f" — {source}"
    else:
        explanation = f"no {what} {channel_name} among {m} — {source}{sensitivity}"
    shown = picked + suspects
    details = {
        "channels": [list(assessment.ids[i]) for i in picked],
        "suspects": [list(assessment.ids[i]) for i in suspects],
        "observed": [float(observed[i]) for i in shown],
        "expected": [float(expected[i]) for i in shown],
        "spills": [int(spills[i]) for i in shown],
        "significance": [float(z_global[i]) for i in shown],
        "local_significance": [float(assessment.significance.ravel()[i]) for i in shown],
        "method": assessment.method,
        "cells_judged": m,
        "trials": trials,
        "masked": [
            list(c) for c, mk in zip(assessment.ids, assessment.masked.ravel(), strict=False) if mk
        ],
    }
    threshold = {"warning": float(warning), "bad": float(bad)}
    threshold.update({k: v for k, v in extra.items() if v is not None})
    return CheckResult(quality, float(n_flagged), threshold, explanation, details)


def _tiers(
    cells: CellAssessment,
    candidate: NDArray[np.bool_],
    min_sigma: float,
    warning_sigma: float | None,
    sign: int,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(flagged, suspect): candidates at ≥ min_sigma, and at ≥ warning_sigma below it."""
    z = sign * cells.global_significance
    flagged = candidate & (z >= min_sigma)
    suspect = (
        candidate & (z >= warning_sigma) & ~flagged
        if warning_sigma is not None
        else np.zeros_like(flagged)
    )
    return flagged, suspect


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
    assessed = assess_windows(
        context, spills=spills, use_reference=use_reference, method=method, min_sigma=min_sigma
    )
    expected = np.nan_to_num(assessed.expected, nan=0.0)
    candidate = (
        ~assessed.masked[None]
        & (expected >= min_expected)
        & (assessed.observed < dead_fraction * expected)
    )
    cells, is_candidate = strongest(assessed, _now(candidate), -1)
    if cells.note:
        return no_data(cells.note)
    flagged, suspect = _tiers(cells, is_candidate, min_sigma, warning_sigma, -1)
    reach = dead_reach(cells.n_trials, warning_sigma or min_sigma)
    longest = np.nan_to_num(assessed.expected[-1], nan=0.0)
    blind = int((~assessed.masked & np.isfinite(assessed.expected[-1]) & (longest < reach)).sum())
    over = f" even over {assessed.count} spills" if assessed.count > 1 else ""
    sensitivity = (
        f"; {blind} cell(s) expect fewer than {reach:.0f} hits{over}: too few to call them dead"
        if blind
        else ""
    )
    return _report(
        cells,
        flagged,
        suspect,
        "dead",
        channel_name,
        channels_warning,
        channels_bad,
        {"dead_fraction": dead_fraction, "min_sigma": min_sigma, "warning_sigma": warning_sigma},
        sensitivity,
    )


def _now(candidate: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A cell is judged over earlier spills only while *this* spill shows it too.

    Windows add evidence for a cell that is off now (dead now, hot now); without this, one
    spill with a hot cell would keep it "hot" over the next spills' windows — a trail of
    flags after the fault is gone, exactly what change detection avoids for a glitch.
    """
    return candidate & candidate[:1]


def _excess(assessed: Windows, factor: float, min_share: float = 0.0) -> NDArray[np.bool_]:
    """Candidates for an excess in every window: ``factor`` above expectation (and, without
    a reference, a minimum share of the map: the smooth fit knows nothing of shower tails)."""
    expected = assessed.expected
    valid = np.isfinite(expected)
    above = assessed.observed > factor * np.where(valid, expected, np.inf)
    share = 0.0 if assessed.first.method == "reference" else min_share
    cells_axes = tuple(range(1, assessed.observed.ndim))
    totals = assessed.observed.sum(axis=cells_axes, keepdims=True)
    return ~assessed.masked[None] & valid & above & (assessed.observed >= share * totals)


def _excess_cells(
    context: CheckContext,
    factor: float,
    min_share: float,
    *,
    spills: int,
    use_reference: bool,
    method: Method,
    min_sigma: float,
) -> tuple[CellAssessment, NDArray[np.bool_]]:
    assessed = assess_windows(
        context, spills=spills, use_reference=use_reference, method=method, min_sigma=min_sigma
    )
    return strongest(assessed, _now(_excess(assessed, factor, min_share)), +1)


def _excess_result(
    cells: CellAssessment,
    candidate: NDArray[np.bool_],
    what: str,
    channel_name: str,
    *,
    min_sigma: float,
    warning_sigma: float | None,
    channels_warning: int,
    channels_bad: int,
    extra: dict[str, float | None],
) -> CheckResult:
    if cells.note:
        return no_data(cells.note)
    flagged, suspect = _tiers(cells, candidate, min_sigma, warning_sigma, +1)
    return _report(
        cells, flagged, suspect, what, channel_name, channels_warning, channels_bad, extra
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
    cells, candidate = _excess_cells(
        context,
        hot_factor,
        min_share,
        spills=spills,
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
    )
    return _excess_result(
        cells,
        candidate,
        "hot",
        channel_name,
        min_sigma=min_sigma,
        warning_sigma=warning_sigma,
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
    cells, candidate = _excess_cells(
        context,
        noisy_factor,
        0.0,
        spills=spills,
        use_reference=use_reference,
        method=method,
        min_sigma=min_sigma,
    )
    return _excess_result(
        cells,
        candidate,
        "noisy",
        channel_name,
        min_sigma=min_sigma,
        warning_sigma=warning_sigma,
        channels_warning=channels_warning,
        channels_bad=channels_bad,
        extra={
            "noisy_factor": noisy_factor,
            "min_sigma": min_sigma,
            "warning_sigma": warning_sigma,
        },
    )
