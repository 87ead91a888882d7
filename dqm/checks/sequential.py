"""Sequential count checks: Page's Poisson CUSUM on the run's per-spill counts.

Why: ≈2 π/K are tagged in a 20 000-event spill, so one spill (or a fixed window of two)
cannot see a ×2 excess quickly without false alarms, and a check that pools a fixed window
forgets the excess as soon as one quiet spill enters it (the flag flickers while the beam is
still contaminated). Page's CUSUM accumulates the log-likelihood ratio of every spill since
the evidence last was zero: it is the fastest test for λ0 → r·λ0 at a given false-alarm
rate (Lorden 1971; Moustakides 1986), and while the excess persists its statistic keeps
growing, so the flag stays up; after the excess ends it falls by ≈ k − λ0 counts per spill.

The threshold is not a magic number: it is solved from a stated false-alarm rate with the
exact Markov chain of the statistic as the check runs it (:mod:`dqm.checks._sequential_math`:
never restarted; a spill whose count alarms on its own is BAD by itself and left out of the
accumulation for the spills after it, so a one-spill ×10 glitch leaves no trail of flags,
while an excess that persists keeps the flag up). Layer: pure (a summary and a history in,
a result out).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.typing import NDArray

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._held_cusum import CountCusumDesign, design_count_cusum
from dqm.checks._registry import register_check
from dqm.checks._sequential_math import reference_value
from dqm.checks._util import no_data, summary_value

__all__ = ["check_pik_cusum", "PIK_FRACTION_ALARM_RATE"]

#: False-alarm episodes per spill of the ``pik_fraction`` check it replaces (BAD at a pooled
#: count ≥ 12 in 2 spills of 20 000 events at 1e-4), exact: ``dqm.sim.count_bound.
#: episode_rate(12, 2, 2.0)``. The default, so the CUSUM raises no more false alarms.
PIK_FRACTION_ALARM_RATE = 8.44e-4
#: Below this mean count per spill (≈ 500 events at 1e-4) k is under the chain's lattice
#: resolution (1/50 count) and no honest threshold exists: NO_DATA, with the reason.
MIN_EXPECTED_PER_SPILL = 0.05
#: WARNING allows this many times the BAD false-alarm rate unless ``warning_rate`` is given.
WARNING_RATE_FACTOR = 10.0


def _spills(
    context: CheckContext, count_key: str, n_key: str, count: float, events: float
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Counts and events of the earlier spills that have both (NaN skipped), then this one."""
    history = context.history or {}
    counts = np.asarray(history.get(count_key, ()), dtype=float)
    n = np.asarray(history.get(n_key, ()), dtype=float)
    depth = min(counts.size, n.size)  # aligned on the newest spill
    counts, n = counts[counts.size - depth :], n[n.size - depth :]
    ok = np.isfinite(counts) & np.isfinite(n) & (n > 0) & (counts >= 0)
    return (
        np.append(np.rint(counts[ok]), round(count)).astype(np.int64),
        np.append(n[ok], events),
    )


def _design(
    lambda0_mean: float, ratio: float, alarm: float, warning: float, headroom: float
) -> CountCusumDesign:
    # 3 significant digits: a run's spills share one cached design, the rate moves < 1 %
    return design_count_cusum(float(f"{lambda0_mean:.3g}"), ratio, alarm, warning, headroom)


@register_check(
    "pik_cusum",
    params={
        "count_key": (str, "n_hadron", "summary key of the hadron-tagged count per spill"),
        "n_key": (str, "pik_n_events", "summary key of the events the tag could see"),
        "expected": (
            float,
            1e-4,
            "in-control π/K fraction per event; λ0 per spill = expected × events",
        ),
        "ratio": (float, 3.0, "design ratio r: Page's test for λ0 → r·λ0 (fastest at ×r)"),
        "alarm_rate": (
            float,
            PIK_FRACTION_ALARM_RATE,
            "BAD: at most this many false-alarm episodes per in-control spill",
        ),
        "warning_rate": (
            float,
            None,
            f"WARNING: at most this many (default {WARNING_RATE_FACTOR:g} × alarm_rate)",
        ),
        "headroom": (
            float,
            3.0,
            "counts the statistic may climb above its BAD threshold: the flag then outlives "
            "an excess by ≈ headroom / (k − λ0) spills",
        ),
        "hold": (
            float,
            3.0,
            "once BAD, the tile stays flagged (WARNING, 'alarm held') until the statistic "
            "falls this many counts below the BAD threshold (hysteresis: 0 = none)",
        ),
    },
    ordered=(("alarm_rate", "warning_rate"),),
)
def check_pik_cusum(
    context: CheckContext,
    *,
    count_key: str,
    n_key: str,
    expected: float,
    ratio: float,
    alarm_rate: float,
    warning_rate: float | None,
    headroom: float,
    hold: float = 3.0,
) -> CheckResult:
    """Page's Poisson CUSUM of the hadron-tagged count; value = the statistic (counts).

    Each spill adds its count minus ``k = λ0·(r − 1)/ln r`` (λ0 = ``expected`` × its events);
    BAD at ``h``, WARNING at a lower threshold, both solved from the stated rates. Once the
    statistic has reached ``h``, the alarm is *held* (at least WARNING) until it falls below
    ``h − hold``: an excess whose statistic climbs slowly (×2: ≈ 1.1 counts per spill,
    scattering by ± 2) does not flicker to GOOD right after its detection. A spill that
    alarmed on its own (an outlier, left out of the accumulation) raises no hold, so a
    one-spill glitch still leaves no trail; holds only lengthen alarm episodes, never start
    one, so the stated false-alarm rates are unchanged.
    """
    if hold < 0:
        raise ValueError(f"hold must be ≥ 0 counts, got {hold}")
    count = summary_value(context, count_key)
    events = summary_value(context, n_key)
    if count is None or events is None or events <= 0:
        return no_data(f"'{count_key}' or '{n_key}' missing from the summary (or no events)")
    counts, n = _spills(context, count_key, n_key, count, events)
    lambda0s = expected * n
    if lambda0s.mean() < MIN_EXPECTED_PER_SPILL:
        return no_data(
            f"π/K: {lambda0s.mean():.3f} hadrons expected per spill in this run, fewer than "
            f"{MIN_EXPECTED_PER_SPILL:g}: too few events to follow a π/K rate",
            observed=round(count),
            expected=expected * events,
        )
    warning = warning_rate or WARNING_RATE_FACTOR * alarm_rate
    design = _design(float(lambda0s.mean()), ratio, alarm_rate, warning, headroom)
    b, h, top = design.denominator, design.h_steps, design.ceiling_steps
    # each spill's own k (its λ0) and cap (the count that alarms from 0): see _sequential_math
    k_steps = np.rint(b * reference_value(1.0, ratio) * lambda0s).astype(np.int64)
    caps = -(-(h + k_steps) // b)
    clear = max(0, h - round(hold * b))  # the held alarm ends below this
    state, path, outliers, held = 0, [], 0, False
    window = (0, 0.0, 0)  # hadrons, expected, spills since the statistic left zero
    last = len(counts) - 1
    for t, (x, a, cap, lambda0) in enumerate(
        zip(counts.tolist(), k_steps.tolist(), caps.tolist(), lambda0s.tolist(), strict=True)
    ):
        if x >= cap and t < last:
            # an earlier spill that alarmed on its own was flagged there: it is left out of
            # the accumulation (flagged spills excluded) and counts as an ordinary in-control
            # spill (λ0 hadrons), so a one-spill glitch leaves no trail
            outliers += 1
            state = min(max(0, state + round(b * lambda0) - a), top)
            held = held and state >= clear
            path.append(state / b)
            continue
        state = min(max(0, state + b * min(x, cap) - a), top)
        held = state >= h or (held and state >= clear)
        path.append(state / b)
        window = (window[0] + x, window[1] + lambda0, window[2] + 1) if state else (0, 0.0, 0)
    if not state:
        window = (round(count), expected * events, 1)
    quality = (
        Quality.BAD
        if state >= design.h_steps
        else Quality.WARNING
        if state >= design.h_warning_steps or held
        else Quality.GOOD
    )
    result = _result(
        quality, state / b, design, window, round(count), expected * events, path, clear / b
    )
    result.details["held"] = held and state < design.h_warning_steps
    result.details["outlier_spills_excluded"] = outliers
    result.details["alone_alarms_at"] = int(caps[-1])
    if counts[-1] >= caps[-1]:
        alone = (
            f"; {int(counts[-1])} hadrons in this spill alarm on their own (≥ {int(caps[-1])}): "
            "later spills judge without it, so it leaves no trail if it does not recur"
        )
        result = dataclasses.replace(result, explanation=result.explanation + alone)
    return result


def _result(
    quality: Quality,
    value: float,
    design: CountCusumDesign,
    window: tuple[int, float, int],
    count: int,
    lambda0: float,
    path: list[float],
    clear: float,
) -> CheckResult:
    hadrons, mean, spills = window
    b = design.denominator
    h, h_warning = design.h_steps / b, design.h_warning_steps / b
    where = "in this spill" if spills == 1 else f"in the last {spills} spills"
    times = hadrons / mean if mean > 0 else math.inf
    # thresholds are multiples of 1/b = 0.02 counts: two decimals separate them exactly
    if quality == Quality.BAD:
        verdict = f"CUSUM {value:.2f} ≥ {h:.2f} (BAD)"
    elif quality == Quality.WARNING and value < h_warning:  # held since it was BAD
        verdict = (
            f"CUSUM {value:.2f} < {h_warning:.2f}, alarm held since it reached {h:.2f} (BAD) "
            f"until it falls below {clear:.2f}"
        )
    elif quality == Quality.WARNING:
        verdict = f"CUSUM {value:.2f} ≥ {h_warning:.2f} (WARNING; BAD at {h:.2f})"
    else:
        verdict = f"CUSUM {value:.2f} < {h_warning:.2f} (WARNING) and {h:.2f} (BAD)"
    explanation = (
        f"π/K: {hadrons} hadrons {where} where {mean:.1f} were expected (×{times:.1f}); {verdict}"
    )
    return CheckResult(
        quality,
        value,
        {"warning": h_warning, "bad": h},
        explanation,
        {
            "observed": count,
            "expected": lambda0,
            "hadrons_since_rise": hadrons,
            "expected_since_rise": mean,
            "spills_since_rise": spills,
            "ratio": times,
            "k": design.k_steps / b,
            "h": h,
            "h_warning": h_warning,
            "ceiling": design.ceiling_steps / b,
            "clears_below": clear,
            "design_ratio": design.ratio,
            "design_lambda0": design.lambda0,
            "false_alarm_rate": design.alarm_rate,
            "warning_alarm_rate": design.warning_rate,
            "cusum": path[-60:],
        },
    )
