"""Physics-quantity checks: hadron contamination and momentum scales.

These watch the background sources of the NA64μ missing-momentum search (π/K in
the beam, mis-measured incoming or outgoing momentum) through the spill summary.
Each flags a deviation only when it is both larger than a physics tolerance *and*
statistically significant, so a short spill cannot raise a false alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dqm._lazy import lazy_module
from dqm.checks._core import CheckContext, CheckResult, Quality, worst
from dqm.checks._registry import REQUIRED, register_check
from dqm.checks._util import fmt_judged, fmt_limit, grade, no_data, summary_value, symmetric
from dqm.checks.stats import p_to_sigma

_st = lazy_module("scipy.stats")

__all__ = ["check_pik_fraction", "check_momentum_scale", "check_p_scale"]


@register_check(
    "pik_fraction",
    params={
        "key": (str, "pik_fraction", "summary key of the hadron-tagged fraction"),
        "err_key": (str, "pik_fraction_err", "summary key of its statistical error"),
        "n_key": (str, "n_events", "summary key of the number of events"),
        "expected": (float, 1e-4, "expected π/K fraction (seed: (9.7 ± 1.4)e-5)"),
        "sigma_warning": (float, 3.0, "WARNING when the excess reaches this significance"),
        "sigma_bad": (float, 5.0, "BAD when the excess reaches this significance"),
        "ratio_bad": (
            float,
            None,
            "optional: BAD also when f/expected ≥ this with significance ≥ sigma_warning (e.g. 3)",
        ),
        "window": (
            int,
            1,
            "spills pooled: this one and the previous window − 1 (from the history)",
        ),
    },
    ordered=(("sigma_warning", "sigma_bad"),),
)
def check_pik_fraction(
    context: CheckContext,
    *,
    key: str,
    err_key: str,
    n_key: str,
    expected: float,
    sigma_warning: float,
    sigma_bad: float,
    ratio_bad: float | None,
    window: int,
) -> CheckResult:
    """Excess of hadron-tagged events (π/K decaying to μν fake a signal).

    With ≈2 hadrons expected per 20 000-event spill only a Poisson tail is honest:
    ``p = P(X ≥ k | n·expected)`` converted to a one-sided Gaussian σ. One spill
    holds too few hadrons to see a ×5 excess reliably, so ``window`` pools the
    tagged counts of this spill and the previous ones (a ×5 excess then shows
    within two spills at 20 000 events each).
    """
    fraction = summary_value(context, key)
    n_events = summary_value(context, n_key)
    if fraction is None or n_events is None or n_events <= 0:
        return no_data(f"'{key}' or '{n_key}' missing from the summary")
    tagged_now = round(fraction * n_events)
    tagged, pooled_events, pooled = tagged_now, n_events, 1
    history = context.history or {}
    past_f = list(history.get(key, ()))[-(window - 1) :] if window > 1 else []
    past_n = list(history.get(n_key, ()))[-(window - 1) :] if window > 1 else []
    for f, n in zip(past_f, past_n, strict=False):
        if math.isfinite(f) and math.isfinite(n) and n > 0:
            tagged += round(f * n)
            pooled_events += n
            pooled += 1
    mean = pooled_events * expected
    p_value = float(_st.poisson.sf(tagged - 1, mean))
    sigma = float(p_to_sigma(p_value))
    ratio = tagged / mean if mean > 0 else math.inf
    quality = grade(sigma, sigma_warning, sigma_bad)
    if ratio_bad is not None and ratio >= ratio_bad and sigma >= sigma_warning:
        quality = Quality.BAD
    error = summary_value(context, err_key)
    err_text = f" ± {error:.1e}" if error is not None else ""
    over = f" over the last {pooled} spills" if pooled > 1 else ""
    explanation = (
        f"π/K fraction {fraction:.1e}{err_text} in this spill; {tagged} tagged "
        f"in {pooled_events:.0f} events{over} vs {mean:.1f} expected at "
        f"{expected:.1e}: {fmt_judged(ratio, ratio_bad, decimals=1)}× expected, excess "
        f"{fmt_judged(sigma, sigma_warning, sigma_bad, decimals=1)}σ "
        f"(warning ≥ {fmt_limit(sigma_warning)}, bad ≥ {fmt_limit(sigma_bad)})"
    )
    threshold = {"warning": sigma_warning, "bad": sigma_bad}
    if ratio_bad is not None:
        threshold["ratio_bad"] = ratio_bad
    return CheckResult(
        quality,
        sigma,
        threshold,
        explanation,
        {
            "observed": fraction,
            "expected": expected,
            "tagged": tagged,
            "tagged_this_spill": tagged_now,
            "spills_pooled": pooled,
            "expected_count": mean,
            "ratio": ratio,
            "significance": sigma,
            "p_value": p_value,
        },
    )


#: What every mean-shift check reads besides its quantity, and how sure a shift must be.
_SPILL_MEAN = {
    "n_key": (str, "n_events", "summary key of the number of events"),
    "min_sigma": (float, 3.0, "shifts below this significance are not flagged"),
}


@dataclass(frozen=True)
class _SpillMean:
    """A spill's mean of a quantity, with its spread and the statistical error of the mean."""

    key: str
    value: float
    spread: float | None
    error: float  # spread / √N; 0 without a spread (every shift then counts as significant)

    def shift(
        self, expected: float, warning: float, bad: float, min_sigma: float
    ) -> tuple[Quality, float, float]:
        """``(quality, value − expected, significance)``: the shift graded against its limits,
        counted only when significant (a short spill cannot raise a false alarm)."""
        delta = self.value - expected
        significance = abs(delta) / self.error if self.error > 0 else math.inf
        if significance < min_sigma:
            return Quality.GOOD, delta, significance
        return grade(abs(delta), warning, bad), delta, significance


def _spill_mean(
    context: CheckContext, key: str, sigma_key: str, n_key: str, *, need_spread: bool
) -> _SpillMean | CheckResult:
    """The spill's mean of ``key`` from its summary, or NO_DATA naming what is missing."""
    value = summary_value(context, key)
    spread = summary_value(context, sigma_key)
    n_events = summary_value(context, n_key)
    wanted = [(key, value), (sigma_key, spread), (n_key, n_events or None)]
    missing = [k for k, v in wanted if v is None and (need_spread or k != sigma_key)]
    if value is None or not n_events or missing:
        return no_data(f"{', '.join(repr(k) for k in missing)} missing from the summary")
    error = (spread if spread is not None else 0.0) / math.sqrt(n_events)
    return _SpillMean(key, value, spread, error)


@register_check(
    "momentum_scale",
    params={
        "dp_mean_key": (str, "dp_mean", "summary key of mean Δp = p_BMS − p_MS2 [GeV]"),
        "dp_sigma_key": (str, "dp_sigma", "summary key of the Δp spread [GeV]"),
        "p_mean_key": (str, "p_bms_mean", "summary key of the beam momentum used for σ(Δp)"),
        "p_nominal_gev": (
            float,
            None,
            'beam momentum when p_mean_key is missing [GeV]; specs give "@p_beam_gev"',
        ),
        "dp_mean_nominal_gev": (float, 0.0, "expected mean Δp [GeV]"),
        "dp_mean_warning_gev": (float, 1.0, "WARNING when |mean Δp − nominal| reaches this"),
        "dp_mean_bad_gev": (float, 2.5, "BAD when |mean Δp − nominal| reaches this"),
        "res_bms": (float, 0.01, "relative BMS momentum resolution"),
        "res_ms2": (float, 0.035, "relative MS2 momentum resolution"),
        "dp_sigma_rel_warning": (float, 0.2, "WARNING when σ(Δp) deviates by this fraction"),
        "dp_sigma_rel_bad": (float, 0.5, "BAD when σ(Δp) deviates by this fraction"),
        **_SPILL_MEAN,
    },
    ordered=(
        ("dp_mean_warning_gev", "dp_mean_bad_gev"),
        ("dp_sigma_rel_warning", "dp_sigma_rel_bad"),
    ),
)
def check_momentum_scale(
    context: CheckContext,
    *,
    dp_mean_key: str,
    dp_sigma_key: str,
    n_key: str,
    p_mean_key: str,
    p_nominal_gev: float | None,
    dp_mean_nominal_gev: float,
    dp_mean_warning_gev: float,
    dp_mean_bad_gev: float,
    res_bms: float,
    res_ms2: float,
    dp_sigma_rel_warning: float,
    dp_sigma_rel_bad: float,
    min_sigma: float,
) -> CheckResult:
    """BMS-vs-MS2 momentum agreement: mean Δp (scale shift) and its width (resolution).

    A relative scale shift δ of either spectrometer moves mean Δp by ≈ δ·p_beam, so the
    specs give the limits as fractions of the run's nominal momentum
    (``"@p_beam_gev * 0.0125"``); σ(Δp) should be ``p·√(res_bms² + res_ms2²)`` with p the
    spill's measured mean p_BMS (else ``p_nominal_gev``). A mis-measured momentum is how a
    passing beam muon fakes a low-p_out signal.
    """
    dp = _spill_mean(context, dp_mean_key, dp_sigma_key, n_key, need_spread=True)
    if isinstance(dp, CheckResult):
        return dp
    p_beam = summary_value(context, p_mean_key) or p_nominal_gev
    if not p_beam:
        return no_data(f"'{p_mean_key}' missing and no nominal momentum given")
    dp_mean, dp_sigma = dp.value, float(dp.spread or 0.0)
    sigma_nominal = p_beam * math.hypot(res_bms, res_ms2)
    mean_quality, delta, significance = dp.shift(
        dp_mean_nominal_gev, dp_mean_warning_gev, dp_mean_bad_gev, min_sigma
    )
    width_dev = dp_sigma / sigma_nominal - 1.0
    width_quality = grade(abs(width_dev), dp_sigma_rel_warning, dp_sigma_rel_bad)
    width_limits = symmetric(100 * dp_sigma_rel_warning, 100 * dp_sigma_rel_bad)
    shift = fmt_judged(
        delta, *symmetric(dp_mean_warning_gev, dp_mean_bad_gev), decimals=2, signed=True
    )
    width = fmt_judged(100 * width_dev, *width_limits, decimals=0, signed=True)
    explanation = (
        f"mean Δp = p_BMS − p_MS2 = {dp_mean:+.2f} GeV vs nominal {dp_mean_nominal_gev:+.2f} "
        f"(shift {shift} GeV, {fmt_judged(significance, min_sigma, decimals=0)}σ, ≈ "
        f"{100 * delta / p_beam:+.1f} % momentum scale; warning ±{dp_mean_warning_gev:g}, bad "
        f"±{dp_mean_bad_gev:g} GeV); σ(Δp) = {dp_sigma:.2f} GeV vs {sigma_nominal:.2f} expected "
        f"({width} %)"
    )
    return CheckResult(
        worst([mean_quality, width_quality]),
        delta,
        {
            "warning": dp_mean_warning_gev,
            "bad": dp_mean_bad_gev,
            "sigma_rel_warning": dp_sigma_rel_warning,
            "sigma_rel_bad": dp_sigma_rel_bad,
        },
        explanation,
        {
            "observed": dp_mean,
            "expected": dp_mean_nominal_gev,
            "significance": significance,
            "dp_sigma": dp_sigma,
            "dp_sigma_expected": sigma_nominal,
            "scale_shift": delta / p_beam,
        },
    )


@register_check(
    "p_scale",
    params={
        "key": (str, "p_bms_mean", "summary key of the mean momentum [GeV]"),
        "sigma_key": (str, "p_bms_sigma", "summary key of the momentum spread [GeV]"),
        "nominal_gev": (
            float,
            REQUIRED,
            'nominal momentum [GeV]: "@p_beam_gev", from the run\'s conditions',
        ),
        "rel_warning": (float, 0.005, "WARNING when |p/nominal − 1| reaches this"),
        "rel_bad": (float, 0.015, "BAD when |p/nominal − 1| reaches this"),
        **_SPILL_MEAN,
    },
    ordered=(("rel_warning", "rel_bad"),),
)
def check_p_scale(
    context: CheckContext,
    *,
    key: str,
    sigma_key: str,
    n_key: str,
    nominal_gev: float,
    rel_warning: float,
    rel_bad: float,
    min_sigma: float,
) -> CheckResult:
    """Mean momentum against nominal: catches a 1–2 % BMS (or MS2) scale shift.

    The nominal is the run's (``nominal_gev = "@p_beam_gev"`` in the specs): a 100 GeV
    run is judged against 100 GeV. The mean's statistical error (σ_p/√N ≈ 0.01 GeV for
    20 000 muons) is tiny, so a 2 % shift (3.2 GeV at 160 GeV) is hundreds of σ and BAD
    by the relative limit.
    """
    p = _spill_mean(context, key, sigma_key, n_key, need_spread=False)
    if isinstance(p, CheckResult):
        return p
    if not nominal_gev > 0:
        return no_data(f"nominal momentum {nominal_gev:g} GeV is not positive")
    p_mean = p.value
    relative = p_mean / nominal_gev - 1.0
    percent_limits = symmetric(100 * rel_warning, 100 * rel_bad)
    quality, _, significance = p.shift(
        nominal_gev, rel_warning * nominal_gev, rel_bad * nominal_gev, min_sigma
    )
    percent = fmt_judged(100 * relative, *percent_limits, decimals=2, signed=True)
    explanation = (
        f"{key} = {p_mean:.2f} GeV, {percent} % from nominal {nominal_gev:g} GeV "
        f"({fmt_judged(significance, min_sigma, decimals=0)}σ; "
        f"warning ±{100 * rel_warning:g} %, bad ±{100 * rel_bad:g} %)"
    )
    return CheckResult(
        quality,
        relative,
        {"warning": rel_warning, "bad": rel_bad},
        explanation,
        {
            "observed": p_mean,
            "expected": nominal_gev,
            "significance": significance,
            "quantity": key,
        },
    )
