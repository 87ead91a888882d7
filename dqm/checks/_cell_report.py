"""The words of a dead/hot/noisy cell result: which cells, observed vs expected, how sure.

Private to :mod:`dqm.checks.channels`. Cells are named worst first with their hits, the
hits a healthy cell would have had, and the significance after the look-elsewhere
correction, printed with the precision that separates a suspect (WARNING) from a flagged
cell (BAD).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dqm.checks._cells import CellAssessment, channel_label, expected_count
from dqm.checks._core import CheckResult, Quality
from dqm.checks._util import fmt_judged, grade

__all__ = ["cell_report", "tiers"]

_SOURCE = {
    "reference": "expected from the reference",
    "separable": "no reference: judged against the map's own smooth fit",
    "neighbours": "no reference: judged against the median of each cell's neighbours",
    "median": "no reference: judged against the median of the cells",
}


def cell_report(
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


def tiers(
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
