"""Generic checks: entries, emptiness, stale data, and values inside windows.

These know nothing about the detector: they read a histogram's moments or one
summary quantity and compare it with thresholds given by the spec.
"""

from __future__ import annotations

import numpy as np

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import REQUIRED, register_check
from dqm.checks._util import (
    axis_label,
    bin_centres,
    counts,
    describe_out_of_range,
    fmt,
    fmt_judged,
    no_data,
    series,
    summary_value,
)

__all__ = [
    "check_min_entries",
    "check_empty",
    "check_not_updating",
    "check_mean_in_range",
    "check_rms_in_range",
    "check_value_in_range",
    "window_quality",
]

_WINDOW_PARAMS = {
    "lo": (float, None, "lower edge of the GOOD window (None: no limit)"),
    "hi": (float, None, "upper edge of the GOOD window (None: no limit)"),
    "bad_lo": (float, None, "below this the result is BAD; between bad_lo and lo WARNING"),
    "bad_hi": (float, None, "above this the result is BAD; between hi and bad_hi WARNING"),
}
_WINDOW_ORDER = (("bad_lo", "lo"), ("lo", "hi"), ("hi", "bad_hi"), ("bad_lo", "bad_hi"))


def _interval(lo: float | None, hi: float | None) -> str:
    return f"[{fmt(lo) if lo is not None else '-inf'}, {fmt(hi) if hi is not None else 'inf'}]"


def window_quality(
    value: float, lo: float | None, hi: float | None, bad_lo: float | None, bad_hi: float | None
) -> tuple[Quality, str]:
    """GOOD inside [lo, hi], BAD outside [bad_lo, bad_hi], WARNING in between.

    Returns:
        The quality and a phrase saying which window the value fell in.
    """
    good = _interval(lo, hi)
    if (bad_lo is not None and value < bad_lo) or (bad_hi is not None and value > bad_hi):
        return Quality.BAD, f"outside the BAD limits {_interval(bad_lo, bad_hi)}"
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return Quality.WARNING, f"outside the good window {good}"
    return Quality.GOOD, f"inside the good window {good}"


def _window_threshold(
    lo: float | None, hi: float | None, bad_lo: float | None, bad_hi: float | None
) -> dict[str, float]:
    limits = {"lo": lo, "hi": hi, "bad_lo": bad_lo, "bad_hi": bad_hi}
    return {k: float(v) for k, v in limits.items() if v is not None}


@register_check("min_entries", params={}, needs_histogram=True)
def check_min_entries(context: CheckContext, *, min_entries: int) -> CheckResult:
    """Enough entries to judge this histogram? (below ``min_entries`` → NO_DATA).

    The NO_DATA branch is the common rule applied by :func:`run_check`; reaching the
    body means the threshold is met.
    """
    entries = context.entries() or 0.0
    return CheckResult(
        Quality.GOOD,
        entries,
        {"min_entries": float(min_entries)},
        f"{entries:.0f} entries (≥ {min_entries})",
    )


@register_check("empty", params={}, needs_histogram=True, min_entries=0)
def check_empty(context: CheckContext) -> CheckResult:
    """A histogram that exists but has no entries at all is BAD.

    An empty histogram in a spill that has events means the channel, selection
    or filling is broken — not "not enough data".
    """
    assert context.histogram is not None
    entries = float(context.histogram.values(flow=True).sum())
    if entries == 0:
        n_events = summary_value(context, "n_events")
        also = f" although the spill has {n_events:.0f} events" if n_events else ""
        return CheckResult(Quality.BAD, 0.0, {"bad": 0.0}, f"histogram is empty{also}")
    return CheckResult(Quality.GOOD, entries, {"bad": 0.0}, f"{entries:.0f} entries")


@register_check(
    "not_updating",
    params={
        "key": (str, "n_events", "summary key whose per-spill series is watched"),
        "spills": (int, 3, "how many most recent spills (this one included) to compare"),
    },
    min_entries=0,
)
def check_not_updating(context: CheckContext, *, key: str, spills: int) -> CheckResult:
    """Stale data: the last ``spills`` values of ``key`` are all zero or all identical.

    Identical event counts in consecutive spills do not happen with a real beam;
    they mean the same spill is being re-delivered or the DAQ stopped updating.
    """
    values = series(context, key)
    if len(values) < spills:
        return no_data(f"only {len(values)} spill(s) of '{key}', need {spills}")
    last = values[-spills:]
    threshold = {"spills": float(spills)}
    details = {"recent": last.tolist(), "quantity": key}
    if np.all(last == 0):
        return CheckResult(
            Quality.BAD,
            0.0,
            threshold,
            f"{key} is 0 in the last {spills} spills: no data arriving",
            details,
        )
    if np.all(last == last[0]):
        return CheckResult(
            Quality.BAD,
            float(last[0]),
            threshold,
            f"{key} = {last[0]:g} identical in the last {spills} spills: stale data",
            details,
        )
    return CheckResult(
        Quality.GOOD, float(last[-1]), threshold, f"{key} changes from spill to spill", details
    )


Window = tuple[float | None, float | None, float | None, float | None]


def _moment_check(context: CheckContext, axis: int, which: str, window: Window) -> CheckResult:
    assert context.histogram is not None
    h = context.histogram
    weights = counts(h, axis)
    centres = bin_centres(h.axes[axis])
    total = weights.sum()
    name = axis_label(h.axes[axis], f"axis {axis}")
    if total <= 0:
        if float(np.sum(h.values(flow=True))) > 0:  # out of range is a finding, not "no data"
            return CheckResult(
                Quality.BAD,
                None,
                _window_threshold(*window),
                f"{which} of {name} not computable: {describe_out_of_range(h, axis)}",
                {"entries_in_range": 0.0},
            )
        return no_data(f"no in-range entries on {name}")
    mean = float(np.sum(weights * centres) / total)
    value = (
        mean if which == "mean" else float(np.sqrt(np.sum(weights * (centres - mean) ** 2) / total))
    )
    quality, where = window_quality(value, *window)
    return CheckResult(
        quality,
        value,
        _window_threshold(*window),
        f"{which} of {name} = {fmt_judged(value, *window, digits=4)}, {where}",
        {"observed": value, "entries": float(total)},
    )


@register_check(
    "mean_in_range",
    params={
        **_WINDOW_PARAMS,
        "axis": (int, 0, "axis whose mean is taken (others projected out)"),
    },
    needs_histogram=True,
    ordered=_WINDOW_ORDER,
)
def check_mean_in_range(
    context: CheckContext,
    *,
    axis: int,
    lo: float | None,
    hi: float | None,
    bad_lo: float | None,
    bad_hi: float | None,
) -> CheckResult:
    """Histogram mean (bin centres, in-range bins) inside the GOOD/BAD windows."""
    return _moment_check(context, axis, "mean", (lo, hi, bad_lo, bad_hi))


@register_check(
    "rms_in_range",
    params={
        **_WINDOW_PARAMS,
        "axis": (int, 0, "axis whose RMS is taken (others projected out)"),
    },
    needs_histogram=True,
    ordered=_WINDOW_ORDER,
)
def check_rms_in_range(
    context: CheckContext,
    *,
    axis: int,
    lo: float | None,
    hi: float | None,
    bad_lo: float | None,
    bad_hi: float | None,
) -> CheckResult:
    """Histogram RMS (standard deviation, as ROOT's GetRMS) inside the windows."""
    return _moment_check(context, axis, "rms", (lo, hi, bad_lo, bad_hi))


@register_check(
    "value_in_range",
    params={
        **_WINDOW_PARAMS,
        "quantity": (str, REQUIRED, "summary key to test, e.g. 'low_pout_fraction'"),
    },
    ordered=_WINDOW_ORDER,
)
def check_value_in_range(
    context: CheckContext,
    *,
    quantity: str,
    lo: float | None,
    hi: float | None,
    bad_lo: float | None,
    bad_hi: float | None,
) -> CheckResult:
    """A spill summary quantity inside the GOOD/BAD windows."""
    value = summary_value(context, quantity)
    if value is None:
        return no_data(f"summary quantity '{quantity}' not available for this spill")
    quality, where = window_quality(value, lo, hi, bad_lo, bad_hi)
    return CheckResult(
        quality,
        value,
        _window_threshold(lo, hi, bad_lo, bad_hi),
        f"{quantity} = {fmt_judged(value, lo, hi, bad_lo, bad_hi, digits=4)}, {where}",
        {"observed": value, "quantity": quantity},
    )
