"""Arrays for drawing a histogram over its reference: overlay, ratio, pulls.

The apps and the report draw; this module only computes, so the same numbers
appear on the control-room screen and in the nightly PDF.
"""

from __future__ import annotations

from typing import Any

import boost_histogram as bh
import numpy as np

from dqm.checks._util import axis_label, bin_centres, counts, require_same_binning
from dqm.checks.stats import poisson_pulls

__all__ = ["compare"]


def compare(h: bh.Histogram, ref: bh.Histogram | None = None, *, axis: int = 0) -> dict[str, Any]:
    """Normalised overlay, ratio with error and pulls of ``h`` against ``ref``.

    A 2D histogram is projected onto ``axis`` first. Both shapes are normalised to
    unit area (fraction per bin), so a spill can be laid over a whole reference run.

    Args:
        h: this spill's histogram.
        ref: the reference histogram (same binning), or ``None``.
        axis: axis kept when ``h`` has more than one.

    Returns:
        numpy arrays ``edges``, ``centres``, ``observed`` (counts), ``observed_norm``,
        ``observed_err_norm``, and — when a non-empty reference is given —
        ``reference_norm``, ``reference_err_norm``, ``ratio``, ``ratio_err``
        (NaN where the reference is empty) and ``pulls`` (pooled Poisson errors);
        plus ``label``, ``entries`` and ``reference_entries``.
    """
    if ref is not None:
        require_same_binning(h, ref)
    keep = axis if h.ndim > 1 else 0
    observed = counts(h, keep if h.ndim > 1 else None)
    total = observed.sum()
    norm = 1.0 / total if total > 0 else 0.0
    result: dict[str, Any] = {
        "label": axis_label(h.axes[keep], f"axis {keep}"),
        "edges": np.asarray(h.axes[keep].edges, dtype=float),
        "centres": bin_centres(h.axes[keep]),
        "observed": observed,
        "observed_norm": observed * norm,
        "observed_err_norm": np.sqrt(observed) * norm,
        "entries": float(total),
        "reference_entries": None,
    }
    if ref is None:
        return result
    reference = counts(ref, keep if ref.ndim > 1 else None)
    ref_total = reference.sum()
    if ref_total <= 0:
        return result
    obs_norm, ref_norm = result["observed_norm"], reference / ref_total
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref_norm > 0, obs_norm / ref_norm, np.nan)
        # Relative errors of both Poisson counts add in quadrature.
        rel = np.sqrt(
            np.where(observed > 0, 1.0 / observed, 0.0)
            + np.where(reference > 0, 1.0 / reference, 0.0)
        )
    result.update(
        {
            "reference_norm": ref_norm,
            "reference_err_norm": np.sqrt(reference) / ref_total,
            "ratio": ratio,
            "ratio_err": ratio * rel,
            "pulls": poisson_pulls(observed, reference) if total > 0 else np.zeros_like(observed),
            "reference_entries": float(ref_total),
        }
    )
    return result
