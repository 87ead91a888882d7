"""Beam and DAQ checks on spill summary quantities: centroid, width, intensity, DAQ.

Inputs are the spill summary (and, for intensity, the run's history); thresholds
are in physical units named in the parameters (``window_mm``).
"""

from __future__ import annotations

import re

import numpy as np

from dqm.checks._core import CheckContext, CheckResult, Quality, worst
from dqm.checks._registry import register_check
from dqm.checks._util import fmt_judged, grade, no_data, summary_value, symmetric

__all__ = [
    "check_beam_centroid",
    "check_beam_width",
    "check_intensity",
    "check_daq_completeness",
    "station_name",
]


def station_name(key: str) -> str:
    """``"beam_x_mean_ms1_0"`` → ``"MS1 station 0"``; other keys are returned as they are."""
    match = re.search(r"_([a-z]+\d*)_(\d+)$", key)
    return f"{match[1].upper()} station {match[2]}" if match else key


def _coordinates(context: CheckContext, x_key: str, y_key: str) -> list[tuple[str, str, float]]:
    """(coordinate, key, value) for each configured key present in the summary."""
    found = []
    for coordinate, key in (("x", x_key), ("y", y_key)):
        value = summary_value(context, key) if key else None
        if value is not None:
            found.append((coordinate, key, value))
    return found


@register_check(
    "beam_centroid",
    params={
        "x_key": (str, "beam_x_mean_ms1_0", "summary key of the beam x centroid [mm] ('' = skip)"),
        "y_key": (str, "beam_y_mean_ms1_0", "summary key of the beam y centroid [mm] ('' = skip)"),
        "x0": (float, 0.0, "nominal x centroid [mm]"),
        "y0": (float, 0.0, "nominal y centroid [mm]"),
        "window_mm": (float, 1.5, "WARNING when a centroid is further than this from nominal"),
        "bad_window_mm": (float, 3.0, "BAD when a centroid is further than this from nominal"),
    },
    ordered=(("window_mm", "bad_window_mm"),),
)
def check_beam_centroid(
    context: CheckContext,
    *,
    x_key: str,
    y_key: str,
    x0: float,
    y0: float,
    window_mm: float,
    bad_window_mm: float,
) -> CheckResult:
    """Beam centroid within a window around nominal, per coordinate.

    The statistical error of a centroid (σ/√N ≈ 0.1 mm for 20 000 muons) is far
    below any sensible window, so the offset itself is compared.
    """
    found = _coordinates(context, x_key, y_key)
    if not found:
        return no_data(f"no beam centroid ({x_key}, {y_key}) in the summary")
    nominal = {"x": x0, "y": y0}
    offsets = [(abs(v - nominal[c]), c, k, v) for c, k, v in found]
    offset, coordinate, key, value = max(offsets)
    quality = grade(offset, window_mm, bad_window_mm)
    explanation = (
        f"beam {coordinate} at {station_name(key)}: "
        f"{fmt_judged(offset, window_mm, bad_window_mm, decimals=1)} mm from nominal "
        f"{nominal[coordinate]:.1f} mm (window ±{window_mm:g}, bad ±{bad_window_mm:g})"
    )
    details = {f"observed_{c}": v for c, _, v in found}
    details.update({f"expected_{c}": nominal[c] for c, _, _ in found})
    return CheckResult(
        quality, offset, {"warning": window_mm, "bad": bad_window_mm}, explanation, details
    )


@register_check(
    "beam_width",
    params={
        "x_key": (str, "beam_sigma_x_ms1_0", "summary key of the beam σ_x [mm] ('' = skip)"),
        "y_key": (str, "beam_sigma_y_ms1_0", "summary key of the beam σ_y [mm] ('' = skip)"),
        "x_nominal": (float, 15.0, "nominal σ_x [mm]"),
        "y_nominal": (float, 10.0, "nominal σ_y [mm]"),
        "rel_tolerance": (float, 0.15, "WARNING when a width deviates by more than this fraction"),
        "bad_rel_tolerance": (float, 0.30, "BAD when a width deviates by more than this fraction"),
    },
    ordered=(("rel_tolerance", "bad_rel_tolerance"),),
)
def check_beam_width(
    context: CheckContext,
    *,
    x_key: str,
    y_key: str,
    x_nominal: float,
    y_nominal: float,
    rel_tolerance: float,
    bad_rel_tolerance: float,
) -> CheckResult:
    """Beam width (σ) within a relative tolerance of nominal, wider or narrower."""
    found = _coordinates(context, x_key, y_key)
    if not found:
        return no_data(f"no beam width ({x_key}, {y_key}) in the summary")
    nominal = {"x": x_nominal, "y": y_nominal}
    deviations = [(abs(v / nominal[c] - 1.0), c, k, v) for c, k, v in found]
    deviation, coordinate, key, value = max(deviations)
    quality = grade(deviation, rel_tolerance, bad_rel_tolerance)
    percent = 100 * (value / nominal[coordinate] - 1)
    limits = symmetric(100 * rel_tolerance, 100 * bad_rel_tolerance)
    explanation = (
        f"beam σ_{coordinate} at {station_name(key)}: {value:.1f} mm vs nominal "
        f"{nominal[coordinate]:.1f} mm ({fmt_judged(percent, *limits, decimals=0, signed=True)} %,"
        f" tolerance ±{100 * rel_tolerance:g} %, bad ±{100 * bad_rel_tolerance:g} %)"
    )
    return CheckResult(
        quality,
        deviation,
        {"warning": rel_tolerance, "bad": bad_rel_tolerance},
        explanation,
        {"observed": value, "expected": nominal[coordinate], "quantity": key},
    )


@register_check(
    "intensity",
    params={
        "key": (str, "n_events", "summary key measuring the beam intensity"),
        "spills": (int, 5, "median over at most this many previous spills"),
        "min_history": (int, 3, "fewer previous spills than this → NO_DATA"),
        "drop_warning": (float, 0.7, "WARNING below this fraction of the recent median"),
        "drop_bad": (float, 0.6, "BAD below this fraction of the recent median"),
    },
    min_entries=0,
    ordered=(("drop_bad", "drop_warning"),),
)
def check_intensity(
    context: CheckContext,
    *,
    key: str,
    spills: int,
    min_history: int,
    drop_warning: float,
    drop_bad: float,
) -> CheckResult:
    """Intensity drop: this spill against the median of the previous ``spills``.

    A median, not a mean, so one earlier bad spill does not lower the bar. No
    history means nothing to compare with: NO_DATA, not GOOD.
    """
    current = summary_value(context, key)
    past = [] if context.history is None else [float(v) for v in context.history.get(key, ())]
    recent = [v for v in past[-spills:] if np.isfinite(v)]
    if current is None:
        return no_data(f"'{key}' missing from this spill's summary")
    if len(recent) < min_history:
        return no_data(f"only {len(recent)} previous spill(s) of '{key}', need {min_history}")
    median = float(np.median(recent))
    if median <= 0:
        return no_data(f"median '{key}' of the previous spills is {median:g}")
    ratio = current / median
    quality = (
        Quality.BAD
        if ratio < drop_bad
        else (Quality.WARNING if ratio < drop_warning else Quality.GOOD)
    )
    explanation = (
        f"{key} = {current:.0f}, "
        f"{fmt_judged(100 * ratio, 100 * drop_warning, 100 * drop_bad, decimals=0)} % of the "
        f"median {median:.0f} of the "
        f"last {len(recent)} spills (warning < {100 * drop_warning:g} %, "
        f"bad < {100 * drop_bad:g} %)"
    )
    return CheckResult(
        quality,
        ratio,
        {"warning": drop_warning, "bad": drop_bad},
        explanation,
        {"observed": current, "expected": median, "quantity": key},
    )


@register_check(
    "daq_completeness",
    params={
        "key": (str, "daq_completeness", "summary key: fraction of events with every source"),
        "source_prefix": (str, "daq_source_completeness_", "prefix of the per-source keys"),
        "completeness_warning": (float, 0.99, "WARNING below this completeness"),
        "completeness_bad": (float, 0.95, "BAD below this completeness"),
    },
    ordered=(("completeness_bad", "completeness_warning"),),
)
def check_daq_completeness(
    context: CheckContext,
    *,
    key: str,
    source_prefix: str,
    completeness_warning: float,
    completeness_bad: float,
) -> CheckResult:
    """Events missing DAQ sources; the explanation names the incomplete sources."""
    overall = summary_value(context, key)
    summary = context.summary or {}
    sources = {
        k[len(source_prefix) :]: float(v)
        for k, v in summary.items()
        if k.startswith(source_prefix) and np.isfinite(float(v))
    }
    if overall is None and not sources:
        return no_data(f"no '{key}' nor '{source_prefix}*' in the summary")

    def quality_of(fraction: float) -> Quality:
        if fraction < completeness_bad:
            return Quality.BAD
        return Quality.WARNING if fraction < completeness_warning else Quality.GOOD

    value = overall if overall is not None else min(sources.values())
    quality = worst([quality_of(value), *(quality_of(f) for f in sources.values())])
    incomplete = sorted((f, s) for s, f in sources.items() if f < completeness_warning)
    limits = (completeness_warning, completeness_bad)
    explanation = f"DAQ completeness {fmt_judged(value, *limits, decimals=3)}"
    if incomplete:
        percent_limits = (100 * completeness_warning, 100 * completeness_bad)
        explanation += "; incomplete source(s): " + ", ".join(
            f"{s} present in {fmt_judged(100 * f, *percent_limits, decimals=1)} % of events"
            for f, s in incomplete
        )
    elif sources:
        explanation += f"; all {len(sources)} sources ≥ {completeness_warning:g}"
    return CheckResult(
        quality,
        value,
        {"warning": completeness_warning, "bad": completeness_bad},
        explanation,
        {
            "observed": value,
            "sources": sources,
            "incomplete": [s for _, s in incomplete],
            "absent": {s: 1.0 - f for s, f in sources.items() if f < 1.0},
        },
    )
