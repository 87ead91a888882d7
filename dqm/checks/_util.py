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
    "contents",
    "counts_histogram",
    "out_of_range",
    "describe_out_of_range",
    "axis_label",
    "bin_centres",
    "describe_bin",
    "require_same_binning",
    "summary_value",
    "series",
    "grade",
    "no_data",
    "fmt",
    "fmt_judged",
    "fmt_limit",
    "symmetric",
]


def counts(h: bh.Histogram, axis: int | None = None) -> NDArray[np.float64]:
    """In-range bin counts as floats, optionally projected onto one axis.

    Flow bins are left out on purpose: bins are then the ones a shifter sees, and a
    shape change that pushes entries out of range still shows as a deficit inside.
    """
    if axis is not None and h.ndim > 1:
        h = h.project(axis)
    return np.asarray(h.values(flow=False), dtype=float)


def _is_counts(values: NDArray[np.float64]) -> bool:
    return bool(np.all(values >= 0) and np.all(values == np.rint(values)))


def contents(
    h: bh.Histogram, axis: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """In-range contents and, for a weighted histogram, their variances (Σw² per bin).

    Counts (integer storage, or integral contents, or ``Weight`` storage whose
    variances equal the values — unit weights) come back with ``None`` variances:
    they are Poisson. A ``Weight`` histogram (a weighted or normalised reference)
    comes back with its variances. Anything else has no known errors.

    Raises:
        CheckError: non-integer contents without variances (a histogram normalised or
            weighted without ROOT's ``Sumw2``): its statistical errors are unknown, so
            comparing with it would be blind — refused, never guessed.
    """
    if axis is not None and h.ndim > 1:
        h = h.project(axis)
    values: NDArray[np.float64] = np.asarray(h.values(flow=False), dtype=np.float64)
    if h.storage_type is bh.storage.Weight:
        variances: NDArray[np.float64] = np.asarray(h.variances(flow=False), dtype=np.float64)
        if np.array_equal(values, variances) and _is_counts(values):
            return values, None
        return values, variances
    if not _is_counts(values):
        raise CheckError(
            "the reference has non-integer contents and no variances (normalised or weighted "
            "without Sumw2): its statistical errors are unknown, so it cannot be compared; "
            "make the reference from counts, or import it with its errors (ROOT Sumw2)"
        )
    return values, None


def counts_histogram(h: bh.Histogram) -> bh.Histogram:
    """``h`` as counts: itself if it holds counts, else its effective entries per bin.

    Effective entries ``⌊w²/σ² + ½⌋`` (:func:`dqm.checks.stats.effective_counts`, ROOT's
    "NORM" convention) turn a normalised reference back into its counts, so every
    Poisson-based check can use it. Flow bins are converted too.

    Raises:
        CheckError: non-integer contents without variances (see :func:`contents`).
    """
    from dqm.checks.stats import effective_counts

    if h.storage_type in (bh.storage.Int64, bh.storage.AtomicInt64):
        return h
    contents(h)  # refuses contents without errors, with the reason
    values = np.asarray(h.values(flow=True), dtype=np.float64)
    if h.storage_type is bh.storage.Weight:
        variances = np.asarray(h.variances(flow=True), dtype=np.float64)
        if np.any(values != 0) and not np.any(variances > 0):
            raise CheckError(
                "the reference has contents but zero errors in every bin (an exact shape, "
                "not a measurement): only the χ² and KS checks can compare with it"
            )
        values = effective_counts(values, variances)
    out = bh.Histogram(*h.axes, storage=bh.storage.Int64())
    out.view(flow=True)[...] = values.astype(np.int64)
    return out


def out_of_range(h: bh.Histogram, axis: int | None = None) -> tuple[float, float, list[tuple]]:
    """Entries inside and outside the axis range, and where the outside ones are.

    Args:
        h: a histogram.
        axis: look at this axis only (others projected out), as a check that projects.

    Returns:
        ``(total, inside, per_axis)`` with ``per_axis`` a list of
        ``(label, low edge, high edge, below, above)`` for every axis with flow bins.
    """
    if axis is not None and h.ndim > 1:
        h = h.project(axis)
    full = np.asarray(h.values(flow=True), dtype=float)
    total, inside = float(full.sum()), float(np.asarray(h.values(flow=False)).sum())
    per_axis = []
    for i, ax in enumerate(h.axes):
        under, over = bool(ax.traits.underflow), bool(ax.traits.overflow)
        if not (under or over):
            continue
        moved = np.moveaxis(full, i, 0)
        below = float(moved[0].sum()) if under else 0.0
        above = float(moved[-1].sum()) if over else 0.0
        per_axis.append((axis_label(ax, f"axis {i}"), ax.edges[0], ax.edges[-1], below, above))
    return total, inside, per_axis


def _entries(n: float) -> str:
    return f"{n:,.0f}".replace(",", " ")


def _range_phrase(label: str, lo: float, hi: float) -> str:
    """``"the p_BMS range 120–200 GeV"`` from the label ``"p_BMS [GeV]"``."""
    name, unit = label, ""
    if label.endswith("]") and "[" in label:
        name, _, unit = label[:-1].rpartition("[")
        name, unit = name.strip(), f" {unit.strip()}"
    return f"the {name} range {lo:g} to {hi:g}{unit}"


def describe_out_of_range(h: bh.Histogram, axis: int | None = None) -> str:
    """``"all 812 entries below the p_BMS range 120 to 200 GeV"`` and the like.

    Names the side (below/above, per axis) and the range, so the shifter sees that
    the data moved out of the histogram, not that the histogram is empty.
    """
    total, inside, per_axis = out_of_range(h, axis)
    outside = total - inside
    head = f"all {_entries(total)} entries" if inside == 0 else f"{_entries(outside)} entries"
    parts = []
    for label, lo, hi, below, above in per_axis:
        if below == 0 and above == 0:
            continue
        if above == 0:
            side = "below"
        elif below == 0:
            side = "above"
        else:
            side = f"outside ({_entries(below)} below, {_entries(above)} above)"
        parts.append(f"{side} {_range_phrase(label, lo, hi)}")
    if not parts:
        return f"{head} outside the axis range"
    return f"{head} " + "; ".join(parts)


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


def symmetric(*limits: float | None) -> tuple[float, ...]:
    """``±`` each limit, for :func:`fmt_judged` of a signed deviation graded by its size."""
    return tuple(x for t in limits if t is not None for x in (t, -t))


def fmt_limit(limit: float) -> str:
    """A threshold as explanations print it (``%g``: "2", "0.005", "1e-06")."""
    return f"{limit:g}"


def _render(value: float, significant: int, sign: str) -> str:
    magnitude = abs(value)
    if magnitude == 0 or 1e-3 <= magnitude < 1e6:
        # fixed point between 0.001 and a million: "2.0", "0.43", "152.3" (keeps the
        # trailing zero that says how precise the number is)
        exponent = math.floor(math.log10(magnitude)) if magnitude else 0
        decimals = max(0, significant - 1 - exponent)
        return f"{value:{sign}.{decimals}f}"
    return f"{value:{sign}.{significant - 1}e}"


def fmt_judged(
    value: float | None,
    *limits: float | None,
    digits: int = 2,
    decimals: int | None = None,
    signed: bool = False,
) -> str:
    """``value`` printed precisely enough to be seen on its side of every limit.

    Explanations print a value next to the thresholds that graded it. Rounded to a
    fixed precision the two can contradict each other: an offset of 1.996 mm graded
    WARNING against a BAD limit of 2 mm reads "2.0 mm (bad ±2)". Starting from the
    usual precision, this adds digits until the printed number lies on the same side
    of each limit as the value itself (equal only when it is equal), so the words
    never contradict the quality.

    Args:
        value: the number (``None`` → "n/a"; non-finite → "inf"/"nan").
        limits: the thresholds it is compared with, in the unit it is printed in
            (pass ``±w`` for a symmetric window, see :func:`symmetric`); ``None``
            limits are ignored.
        digits: significant digits at least (p-values, quantities of any magnitude).
        decimals: instead, decimals at least (``1`` for "2.0 mm", ``0`` for "45 %").
        signed: print a ``+`` for positive values (offsets, shifts).

    Returns:
        The number as text, e.g. ``"1.996"``, ``"2.0"``, ``"+0.51"``, ``"3.2e-07"``.
    """
    if value is None:
        return "n/a"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    sign = "+" if signed else ""
    bounds = [float(t) for t in limits if t is not None and math.isfinite(float(t))]

    def separated(text: str) -> bool:
        shown = float(text)
        return all((shown > t) == (value > t) and (shown < t) == (value < t) for t in bounds)

    if decimals is not None:
        for places in range(max(0, decimals), 13):
            text = f"{value:{sign}.{places}f}"
            if separated(text):
                return text
    for significant in range(max(1, digits), 18):
        text = _render(value, significant, sign)
        if separated(text):
            return text
    return repr(value)
