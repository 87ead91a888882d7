"""In-control baselines of change detection: anchored, certified, never sliding.

A CUSUM or EWMA is only as good as its in-control mean μ₀ and per-spill σ. Estimated
from "the first spills of the history window" they slide: sixty spills into a
persistent step the window holds nothing but the step, the step becomes the baseline
and the flag goes GOOD while the fault is still there. So the baseline is *anchored*:

* on the **reference run** — its spills' summaries, as stored with the run — when it
  has at least ``n_baseline`` certified spills with the quantity, or
* on this run's **certified start** — its first ``n_baseline`` certified spills, read
  from the run's first spills (``CheckContext.run_start``), not from the sliding window.

A spill is *certified* for a check when the roll-up of the check's subsystem stored with
it was not flagged: GOOD, or NO_DATA (nothing could judge it — no conditions, no
reference yet — which says nothing against it); WARNING, BAD and CHECK_ERROR leave it
out. Spills judged before qualities were stored count as certified (nothing says
otherwise). A glitch at the start of a run is therefore never part of the baseline.

With a per-spill statistical error (``error_key``, e.g. ``dp_mean_err``) the spread is
split into the errors and an excess ``τ² = max(0, s² − mean(e²))`` (method of moments,
DerSimonian & Laird, Control. Clin. Trials 7 (1986) 177); a spill is then standardised
with its own ``√(τ² + e²)``, so a run at half the reference's intensity is not judged
with the reference's narrower spread. Either way the estimate's own uncertainty enters
as a prediction error and the t(n − 1) score is mapped to a normal quantile (see
:mod:`dqm.checks.trend`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dqm._lazy import lazy_module
from dqm.checks._core import CheckContext, Quality

_st = lazy_module("scipy.stats")

__all__ = ["Baseline", "ANCHORS", "choose_baseline", "monitored_points", "certified"]

FloatArray = NDArray[np.float64]
Series = Mapping[str, Sequence[float]]

#: Where a baseline may come from (the ``anchor`` parameter of the trend checks).
ANCHORS = ("auto", "reference", "run_start")
QUALITY_PREFIX = "quality."
SPILL_KEY = "spill"
#: Standardised values are capped here: beyond ~8σ the t → normal map loses precision and
#: nothing downstream distinguishes 40σ from 400σ.
_Z_MAX = 40.0


@dataclass(frozen=True)
class Baseline:
    """μ₀ and the per-spill spread, where they came from, and which spills they used.

    Attributes:
        mean: in-control mean μ₀.
        excess_variance: τ², the spill-to-spill variance beyond the per-spill errors;
            without errors, the whole per-spill variance s².
        mean_variance: variance of the estimated μ₀ (0 when μ₀ was given).
        dof: degrees of freedom of the spread estimate; ``None`` when it was given.
        uses_errors: spills are standardised with their own statistical error.
        source: words for the explanation, e.g. "the reference run's 58 certified spills".
        after_spill: monitoring starts after this spill number (run-start anchor).
        after_index: … or after this position of the history (no spill numbers known).
    """

    mean: float
    excess_variance: float
    mean_variance: float
    dof: int | None
    uses_errors: bool
    source: str
    after_spill: float | None = None
    after_index: int | None = None

    def sigma(self, error: float = float("nan")) -> float:
        """Per-spill σ of a spill whose own statistical error is ``error``."""
        own = error**2 if self.uses_errors and math.isfinite(error) else 0.0
        return math.sqrt(self.excess_variance + own)

    def standardise(self, values: FloatArray, errors: FloatArray) -> FloatArray:
        """Normal scores of ``values``: prediction-error standardised, t → normal mapped."""
        own = np.where(np.isfinite(errors), errors, 0.0) ** 2 if self.uses_errors else 0.0
        scale = np.sqrt(self.excess_variance + own + self.mean_variance)
        z = (values - self.mean) / scale
        if self.dof is None:
            return np.clip(z, -_Z_MAX, _Z_MAX)
        # tails via sf/isf keep precision far out (cdf rounds to 1 beyond ~8σ)
        normal = _st.norm.isf(_st.t.sf(np.abs(z), self.dof))
        return np.sign(z) * np.minimum(normal, _Z_MAX)


def _column(series: Series | None, key: str, n: int) -> FloatArray:
    if not key or series is None or key not in series:
        return np.full(n, np.nan)
    return np.asarray(series[key], dtype=float)


def _length(series: Series | None) -> int:
    return max((len(v) for v in series.values()), default=0) if series else 0


def certified(series: Series | None, subsystem: str) -> NDArray[np.bool_]:
    """Which spills of ``series`` were certified for ``subsystem`` (roll-up not flagged).

    A spill without a stored roll-up counts as certified; with no ``subsystem`` every
    spill does.
    """
    n = _length(series)
    quality = _column(series, f"{QUALITY_PREFIX}{subsystem}" if subsystem else "", n)
    unflagged = (quality == int(Quality.GOOD)) | (quality == int(Quality.NO_DATA))
    return ~np.isfinite(quality) | unflagged


def _estimate(
    values: FloatArray, errors: FloatArray | None, source: str
) -> tuple[float, float, float, bool] | str:
    """``(μ₀, τ² or s², Var μ₀, uses_errors)`` from anchor points, or why not."""
    n = len(values)
    variance = float(np.var(values, ddof=1))
    if errors is not None and np.all(np.isfinite(errors) & (errors > 0)):
        excess = max(variance - float(np.mean(errors**2)), 0.0)
        weights = 1.0 / (excess + errors**2)
        mean = float(np.sum(weights * values) / np.sum(weights))
        return mean, excess, 1.0 / float(np.sum(weights)), True
    if not variance > 0:
        return f"the spread of {source} is {math.sqrt(max(variance, 0.0)):g}: give 'sigma'"
    return float(np.mean(values)), variance, variance / n, False


def _points(
    series: Series | None, quantity: str, error_key: str, subsystem: str
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.intp]]:
    """Certified spills of ``series`` with a finite ``quantity``: values, errors, spills, index."""
    n = _length(series)
    values = _column(series, quantity, n)
    usable = certified(series, subsystem) & np.isfinite(values)
    index = np.flatnonzero(usable)
    return (
        values[index],
        _column(series, error_key, n)[index],
        _column(series, SPILL_KEY, n)[index],
        index,
    )


def _given(
    mu0: float | None, sigma: float | None, estimate: Baseline | None
) -> Baseline | str | None:
    if mu0 is None and sigma is None:
        return None
    if estimate is None and (mu0 is None or sigma is None):
        return None
    if sigma is not None and not sigma > 0:
        return f"'sigma' must be > 0, got {sigma:g}"
    base = estimate or Baseline(0.0, 0.0, 0.0, None, False, "the given μ0 and σ")
    return Baseline(
        mean=base.mean if mu0 is None else mu0,
        excess_variance=base.excess_variance if sigma is None else sigma**2,
        mean_variance=base.mean_variance if mu0 is None else 0.0,
        dof=base.dof if sigma is None else None,
        uses_errors=base.uses_errors and sigma is None,
        source=base.source if estimate is not None else "the given μ0 and σ",
        after_spill=base.after_spill,
        after_index=base.after_index,
    )


def choose_baseline(
    context: CheckContext,
    *,
    quantity: str,
    error_key: str,
    anchor: str,
    n_baseline: int,
    mu0: float | None = None,
    sigma: float | None = None,
) -> Baseline | str:
    """The anchored baseline of ``quantity`` for this spill, or why there is none yet.

    ``anchor`` is ``"reference"``, ``"run_start"`` or ``"auto"`` (the reference when it
    has ``n_baseline`` certified spills with the quantity, else the run's start). With
    both ``mu0`` and ``sigma`` given nothing is estimated and every spill is monitored.
    """
    if mu0 is not None and sigma is not None:
        given = _given(mu0, sigma, None)
        assert given is not None
        return given
    subsystem = context.subsystem
    reference = context.reference_history
    if anchor in ("auto", "reference"):
        values, errors, _, _ = _points(reference, quantity, error_key, subsystem)
        if len(values) >= max(n_baseline, 2):
            source = f"the reference run's {len(values)} certified spills"
            estimate = _estimate(values, errors if error_key else None, source)
            if isinstance(estimate, str):
                return estimate
            mean, excess, mean_var, uses = estimate
            found = Baseline(mean, excess, mean_var, len(values) - 1, uses, source)
            return _given(mu0, sigma, found) or found
        if anchor == "reference":
            if reference is None:
                return "no per-spill series of a reference run (none set, or an imported one)"
            return (
                f"the reference run has {len(values)} certified spills with {quantity}, "
                f"fewer than n_baseline={n_baseline}"
            )
    from_history = context.run_start is None
    start = context.history if from_history else context.run_start
    values, errors, spills, index = _points(start, quantity, error_key, subsystem)
    if len(values) < max(n_baseline, 2):
        seen = _length(start)
        flagged = f"; {seen - len(values)} of the run's first {seen} spills flagged" if seen else ""
        hint = " (or certify a reference run)" if seen >= 3 * n_baseline else ""
        return (
            f"collecting the baseline: {len(values)} of {n_baseline} certified spills{flagged}"
            f"{hint}"
        )
    values, errors = values[:n_baseline], errors[:n_baseline]
    spills, index = spills[:n_baseline], index[:n_baseline]
    first, last = spills[0], spills[-1]
    source = f"this run's first {n_baseline} certified spills" + (
        f" ({first:.0f}–{last:.0f})" if np.isfinite(last) else ""
    )
    estimate = _estimate(values, errors if error_key else None, source)
    if isinstance(estimate, str):
        return estimate
    mean, excess, mean_var, uses = estimate
    known_spills = np.isfinite(last) and SPILL_KEY in (context.history or {})
    found = Baseline(
        mean,
        excess,
        mean_var,
        n_baseline - 1,
        uses,
        source,
        after_spill=float(last) if known_spills else None,
        after_index=int(index[-1]) if from_history and not known_spills else None,
    )
    return _given(mu0, sigma, found) or found


def monitored_points(
    context: CheckContext, quantity: str, error_key: str, baseline: Baseline
) -> tuple[FloatArray, FloatArray]:
    """Values and errors of the spills change detection runs over, this spill last.

    The history window's spills after the anchor (all of them for a reference anchor),
    without those whose value is missing, then this spill.
    """
    history = context.history or {}
    n = _length(history)
    values = _column(history, quantity, n)
    errors = _column(history, error_key, n)
    keep = np.isfinite(values)
    if baseline.after_spill is not None:
        keep &= _column(history, SPILL_KEY, n) > baseline.after_spill
    elif baseline.after_index is not None:
        keep &= np.arange(n) > baseline.after_index
    summary = context.summary or {}
    current = float(summary.get(quantity, float("nan")))
    current_error = float(summary.get(error_key, float("nan"))) if error_key else float("nan")
    return (
        np.append(values[keep], current),
        np.append(errors[keep], current_error),
    )
