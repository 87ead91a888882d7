"""Beam and DAQ checks on spill summary quantities: centroid, width, intensity, DAQ.

Inputs are the spill summary (and, for intensity, the run's history); thresholds
are in physical units named in the parameters (``window_mm``). The nominal beam
centroid and width at a station are the reference's — the beam profile of the certified
reference run at that station, from the check's own reference histogram — and the spec's
numbers only without a reference: physics from the runs, not from constants.
"""

from __future__ import annotations

import re

import numpy as np

from dqm.checks._core import CheckContext, CheckResult, Quality, worst
from dqm.checks._registry import register_check
from dqm.checks._util import fmt_judged, grade, no_data, summary_value, symmetric

__all__ = [
    "reference_profile",
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


def reference_profile(
    context: CheckContext, coordinate: str, keys: tuple[str, str], min_entries: float = 1000.0
) -> tuple[float, float] | None:
    """Centroid and width of the reference beam profile along ``coordinate`` [mm].

    The reference histogram is the check's own: a 2D x–y profile (axis 0 is x, axis 1
    is y) or a 1D profile of the one coordinate the check follows. The width is
    corrected for the binning (Sheppard: σ² − w²/12). ``None`` without a reference or
    with fewer than ``min_entries`` entries in range.
    """
    ref = context.reference
    if ref is None:
        return None
    if ref.ndim == 2:
        axis = {"x": 0, "y": 1}[coordinate]
        profile = ref.project(axis)
    elif ref.ndim == 1 and sum(1 for k in keys if k) == 1:
        profile = ref
    else:
        return None
    counts = np.asarray(profile.values(), dtype=float)
    total = counts.sum()
    if total < min_entries:
        return None
    centres = np.asarray(profile.axes[0].centers, dtype=float)
    widths = np.asarray(profile.axes[0].widths, dtype=float)
    mean = float(counts @ centres / total)
    variance = float(counts @ (centres - mean) ** 2 / total - counts @ widths**2 / (12 * total))
    return mean, float(np.sqrt(max(variance, 0.0)))


def _nominals(
    context: CheckContext,
    found: list[tuple[str, str, float]],
    keys: tuple[str, str],
    params: dict[str, float],
    which: int,
    from_reference: bool,
) -> tuple[dict[str, float], str]:
    """Nominal value per coordinate (``which`` = 0: centroid, 1: width) and its source."""
    profiles = (
        {c: reference_profile(context, c, keys) for c, _, _ in found} if from_reference else {}
    )
    if profiles and all(p is not None for p in profiles.values()):
        return {c: p[which] for c, p in profiles.items() if p is not None}, "the reference"
    return dict(params), "the spec (no usable reference)" if from_reference else "the spec"


@register_check(
    "beam_centroid",
    params={
        "x_key": (str, "beam_x_mean_ms1_0", "summary key of the beam x centroid [mm] ('' = skip)"),
        "y_key": (str, "beam_y_mean_ms1_0", "summary key of the beam y centroid [mm] ('' = skip)"),
        "from_reference": (
            bool,
            True,
            "nominal centroid from the reference profile (this histogram's reference) when "
            "there is one; x0/y0 otherwise",
        ),
        "x0": (float, 0.0, "nominal x centroid [mm] without a reference"),
        "y0": (float, 0.0, "nominal y centroid [mm] without a reference"),
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
    from_reference: bool,
    x0: float,
    y0: float,
    window_mm: float,
    bad_window_mm: float,
) -> CheckResult:
    """Beam centroid within a window around nominal, in x and in y.

    The statistical error of a centroid (σ/√N ≈ 0.1 mm for 20 000 muons) is far below
    any sensible window, so the offset itself is compared. The nominal centroid is the
    reference's (the beam as it was certified at this station), else the spec's.
    """
    found = _coordinates(context, x_key, y_key)
    if not found:
        return no_data(f"no beam centroid ({x_key}, {y_key}) in the summary")
    nominal, source = _nominals(
        context, found, (x_key, y_key), {"x": x0, "y": y0}, 0, from_reference
    )
    offsets = sorted(((v - nominal[c], c, k, v) for c, k, v in found), key=lambda o: -abs(o[0]))
    offset, coordinate, key, _ = offsets[0]
    quality = grade(abs(offset), window_mm, bad_window_mm)
    limits = symmetric(window_mm, bad_window_mm)
    explanation = (
        f"beam {coordinate} at {station_name(key)}: "
        f"{fmt_judged(offset, *limits, decimals=2, signed=True)} mm from nominal "
        f"{nominal[coordinate]:+.2f} mm of {source} (warning ±{window_mm:g}, bad "
        f"±{bad_window_mm:g} mm)"
    )
    explanation += "".join(f"; {c} {o:+.2f} mm" for o, c, _, _ in offsets[1:])
    details: dict[str, object] = {f"observed_{c}": v for c, _, v in found}
    details.update({f"expected_{c}": nominal[c] for c, _, _ in found})
    details["nominal_from"] = source
    return CheckResult(
        quality, abs(offset), {"warning": window_mm, "bad": bad_window_mm}, explanation, details
    )


@register_check(
    "beam_width",
    params={
        "x_key": (str, "beam_sigma_x_ms1_0", "summary key of the beam σ_x [mm] ('' = skip)"),
        "y_key": (str, "beam_sigma_y_ms1_0", "summary key of the beam σ_y [mm] ('' = skip)"),
        "from_reference": (
            bool,
            True,
            "nominal widths from the reference profile when there is one; x_nominal/"
            "y_nominal otherwise",
        ),
        "x_nominal": (float, 15.0, "nominal σ_x [mm] without a reference"),
        "y_nominal": (float, 10.0, "nominal σ_y [mm] without a reference"),
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
    from_reference: bool,
    x_nominal: float,
    y_nominal: float,
    rel_tolerance: float,
    bad_rel_tolerance: float,
) -> CheckResult:
    """Beam width (σ) within a relative tolerance of nominal, wider or narrower, x and y."""
    found = _coordinates(context, x_key, y_key)
    if not found:
        return no_data(f"no beam width ({x_key}, {y_key}) in the summary")
    nominal, source = _nominals(
        context, found, (x_key, y_key), {"x": x_nominal, "y": y_nominal}, 1, from_reference
    )
    deviations = sorted(
        ((v / nominal[c] - 1.0, c, k, v) for c, k, v in found if nominal[c] > 0),
        key=lambda d: -abs(d[0]),
    )
    if not deviations:
        return no_data("nominal beam width is 0")
    deviation, coordinate, key, value = deviations[0]
    quality = grade(abs(deviation), rel_tolerance, bad_rel_tolerance)
    limits = symmetric(100 * rel_tolerance, 100 * bad_rel_tolerance)
    explanation = (
        f"beam σ_{coordinate} at {station_name(key)}: {value:.2f} mm vs nominal "
        f"{nominal[coordinate]:.2f} mm of {source} "
        f"({fmt_judged(100 * deviation, *limits, decimals=1, signed=True)} %, warning "
        f"±{100 * rel_tolerance:g} %, bad ±{100 * bad_rel_tolerance:g} %)"
    )
    explanation += "".join(f"; σ_{c} {100 * d:+.1f} %" for d, c, _, _ in deviations[1:])
    return CheckResult(
        quality,
        abs(deviation),
        {"warning": rel_tolerance, "bad": bad_rel_tolerance},
        explanation,
        {
            "observed": value,
            "expected": nominal[coordinate],
            "quantity": key,
            "nominal_from": source,
            **{f"observed_{c}": v for c, _, v in found},
            **{f"expected_{c}": nominal[c] for c, _, _ in found},
        },
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
