"""Small helpers shared by the checks: reading histograms and summaries, grading.

Private: the public surface is :mod:`dqm.checks`. These helpers read; they never
decide a quality on their own except :func:`grade`, the one threshold rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import boost_histogram as bh
import numpy as np
from numpy.typing import NDArray

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.errors import CheckError

__all__ = [
    "counts",
    "axis_label",
    "bin_centres",
    "describe_bin",
    "require_same_binning",
    "summary_value",
    "series",
    "grade",
    "no_data",
    "fmt",
]


def counts(h: bh.Histogram, axis: int | None = None) -> NDArray[np.float64]:
    """In-range bin counts as floats, optionally projected onto one axis.

    Flow bins are left out on purpose: bins are then the ones a shifter sees, and a
    shape change that pushes entries out of range still shows as a deficit inside.
    """
    if axis is not None and h.ndim > 1:
        h = h.project(axis)
    return np.asarray(h.values(flow=False), dtype=float)


def axis_label(axis: bh.axis.Axis, fallback: str = "") -> str:
    """The axis' label (``hist`` sets ``.label``), else a string metadata, else fallback."""
    label = getattr(axis, "label", None)
    if not label and isinstance(axis.metadata, str):
        label = axis.metadata
    return str(label) if label else fallback


def bin_centres(axis: bh.axis.Axis) -> NDArray[np.float64]:
    """Bin centres; for Integer axes the integer value itself (cell index, module)."""
    if isinstance(axis, bh.axis.Integer):
        return np.asarray(axis.edges[:-1], dtype=float)
    return np.asarray(axis.centers, dtype=float)


def describe_bin(axes: Sequence[bh.axis.Axis], index: Sequence[int]) -> str:
    """Human name of a bin, e.g. ``"p_bms ≈ 152.5"`` or ``"(x ≈ -12.5, y ≈ 3.0)"``."""
    parts = []
    for i, (axis, j) in enumerate(zip(axes, index, strict=False)):
        name = axis_label(axis, f"axis {i}")
        value = bin_centres(axis)[j]
        parts.append(
            f"{name} = {value:g}" if isinstance(axis, bh.axis.Integer) else f"{name} ≈ {value:.4g}"
        )
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def require_same_binning(h: bh.Histogram, ref: bh.Histogram) -> None:
    """Raise :class:`CheckError` unless both histograms have the same axes and edges."""
    if h.ndim != ref.ndim or any(
        type(a) is not type(b) or a.size != b.size or not np.allclose(a.edges, b.edges)
        for a, b in zip(h.axes, ref.axes, strict=False)
    ):
        raise CheckError(
            f"reference binning {[str(a) for a in ref.axes]} differs from the "
            f"histogram's {[str(a) for a in h.axes]}: the reference must be re-made"
        )


def summary_value(context: CheckContext, key: str) -> float | None:
    """A finite summary quantity, or ``None`` when missing or non-finite."""
    if context.summary is None or key not in context.summary:
        return None
    value = float(context.summary[key])
    return value if math.isfinite(value) else None


def series(context: CheckContext, key: str) -> NDArray[np.float64]:
    """Per-spill series of ``key``: the history (oldest first) then this spill."""
    past = [] if context.history is None else list(context.history.get(key, ()))
    current = summary_value(context, key)
    values = past + ([] if current is None else [current])
    return np.asarray(values, dtype=float)


def grade(value: float, warning: float | None, bad: float | None) -> Quality:
    """Quality of a "higher is worse" value: BAD at ≥ bad, WARNING at ≥ warning."""
    if bad is not None and value >= bad:
        return Quality.BAD
    if warning is not None and value >= warning:
        return Quality.WARNING
    return Quality.GOOD


def no_data(explanation: str, **details: object) -> CheckResult:
    """A NO_DATA result with an explanation of what was missing."""
    return CheckResult(Quality.NO_DATA, None, {}, explanation, dict(details))


def fmt(value: float | None, digits: int = 4) -> str:
    """Compact number for explanations (``None`` → "n/a")."""
    return "n/a" if value is None else f"{value:.{digits}g}"
