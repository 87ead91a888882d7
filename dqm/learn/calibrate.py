"""The threshold from held-out good spills, to a stated false-alarm rate per spill.

A false-alarm rate of 0.1 % per spill is beyond what a few hundred held-out spills show
directly (their largest score is about the 99.7 % point). So the tail of the held-out
scores above their median is described by an exponential (peaks over a threshold with
shape ξ = 0: Pickands–Balkema–de Haan; the light-tailed limit, and a conservative one for
the χ²-like scores of a good spill — a gamma fitted to all scores underestimated the tail
of simulated spills whose beam wanders, by a factor 20 at 0.1 %), and the threshold is
where that tail reaches the wanted rate: ``u + β·ln(0.5/rate)`` with ``u`` the median and
``β`` the mean excess above it. Its uncertainty is stated two ways: the threshold's
spread over bootstrap resamples of the held-out spills (16–84 %), and the false-alarm
rate those resampled fits give at the chosen threshold. The held-out spills above the
threshold are counted too, with a Clopper–Pearson limit, as the model-free check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["Calibration", "calibrate_threshold", "score_summary", "tail_scale"]

#: bootstrap resamples of the held-out scores for the threshold's uncertainty
BOOTSTRAP = 200


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and what it rests on."""

    threshold: float
    false_alarm: float
    n_holdout: int
    threshold_low: float
    threshold_high: float
    rate_low: float
    rate_high: float
    holdout_above: int
    holdout_rate_high: float
    method: str = "exponential tail above the held-out median, bootstrap 16–84 %"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def words(self) -> str:
        """One line for ``dqm model show`` and the docs."""
        return (
            f"threshold {self.threshold:.3g} (16–84 %: {self.threshold_low:.3g}–"
            f"{self.threshold_high:.3g}) for {100 * self.false_alarm:.3g} % false alarms per "
            f"spill (at this threshold the resampled fits give {100 * self.rate_low:.2g}–"
            f"{100 * self.rate_high:.2g} %); {self.holdout_above} of {self.n_holdout} held-out "
            f"good spills above it (rate < {100 * self.holdout_rate_high:.2g} % at 84 % CL)"
        )


def _tail(scores: np.ndarray) -> tuple[float, float]:
    """``(u, β)``: the median and the mean excess of the scores above it."""
    u = float(np.median(scores))
    excess = scores[scores > u] - u
    beta = float(excess.mean()) if excess.size else 0.0
    if beta <= 0:
        raise ValueError("held-out scores have no spread: cannot calibrate")
    return u, beta


def tail_scale(scores: Sequence[float]) -> tuple[float, float]:
    """``(u, β)`` of a set of scores for standardising them, ``β`` floored at a tenth of
    ``u`` (scores that never moved are not divided by zero)."""
    s = np.asarray(scores, dtype=float)
    u = float(np.median(s))
    excess = s[s > u] - u
    beta = float(excess.mean()) if excess.size else 0.0
    return u, max(beta, 0.1 * abs(u), 1e-12)


def _isf(rate: float, u: float, beta: float) -> float:
    return u + beta * float(np.log(0.5 / rate))


def _sf(x: float, u: float, beta: float) -> float:
    return 0.5 * float(np.exp(-(x - u) / beta)) if x > u else 0.5


def calibrate_threshold(
    holdout_scores: Sequence[float], false_alarm: float = 1e-3, *, seed: int = 0
) -> Calibration:
    """Threshold for ``false_alarm`` per spill from good spills the model was not fitted on.

    Args:
        holdout_scores: scores of held-out good spills (at least 10).
        false_alarm: wanted false-alarm rate per spill (e.g. ``1e-3``).
        seed: the bootstrap's seed (the calibration is reproducible).

    Returns:
        The :class:`Calibration`.

    Raises:
        ValueError: too few scores, no spread, or a rate outside (0, 0.5).
    """
    from scipy import stats  # heavy: only when training

    scores = np.asarray(holdout_scores, dtype=float)
    if scores.size < 10:
        raise ValueError(f"need at least 10 held-out spills to calibrate, got {scores.size}")
    if not 0 < false_alarm < 0.5:
        raise ValueError(f"false-alarm rate {false_alarm} must be in (0, 0.5)")
    threshold = _isf(false_alarm, *_tail(scores))
    rng = np.random.default_rng(seed)
    thresholds, rates = [], []
    for _ in range(BOOTSTRAP):
        sample = rng.choice(scores, scores.size, replace=True)
        try:
            u, beta = _tail(sample)
        except ValueError:
            continue
        thresholds.append(_isf(false_alarm, u, beta))
        rates.append(_sf(threshold, u, beta))
    above = int(np.sum(scores > threshold))
    # one-sided 84 % Clopper–Pearson upper limit of the held-out rate
    upper = float(stats.beta.ppf(0.84, above + 1, scores.size - above))
    return Calibration(
        threshold=threshold,
        false_alarm=false_alarm,
        n_holdout=int(scores.size),
        threshold_low=float(np.percentile(thresholds, 16)),
        threshold_high=float(np.percentile(thresholds, 84)),
        rate_low=float(np.percentile(rates, 16)),
        rate_high=float(np.percentile(rates, 84)),
        holdout_above=above,
        holdout_rate_high=upper,
    )


def score_summary(scores: Sequence[float]) -> dict[str, float]:
    """Mean, spread and quantiles of a set of scores (stored with the model)."""
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return {"n": 0}
    q = np.percentile(s, [0, 50, 90, 99, 100])
    return {
        "n": int(s.size),
        "mean": float(s.mean()),
        "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
        "min": float(q[0]),
        "median": float(q[1]),
        "p90": float(q[2]),
        "p99": float(q[3]),
        "max": float(q[4]),
    }
