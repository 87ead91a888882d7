"""The π/K bound: the check's false-alarm rate and the best test's delay at that rate.

Why here: :mod:`dqm.sim.sequential` knows nothing of checks; this module ties a count-rate
check of the specs (``hadron_tag/pik_cusum``, or the older ``pik_fraction``) to it. Three
numbers, each printed:

* **λ0, λ1** — expected tagged hadrons per spill before and after the change, from the
  simulator settings of the run (``events_per_spill × pik_fraction``, and the same with the
  row's anomaly applied); the clean run's measured mean count is printed beside λ0.
* **the check's false-alarm rate α** — alarm *episodes* per clean spill (a BAD spill whose
  previous spill was not BAD: that is what 1/ARL0 of a sequential test counts; a check that
  pools two spills stays BAD on the next spill of a high count, which is one alarm, not two).
  Measured on the clean run; with fewer than :data:`MIN_MEASURED_EPISODES` episodes the
  measurement is too poor (> 30 % error) and the *exact* rate of the check's own rule under
  Poisson counts is used. A check that solves its threshold from a stated rate
  (``pik_cusum``) reports that exact rate itself (:func:`design_rate`); for a pooled-count
  rule (``pik_fraction``) the smallest pooled count k* that the check calls BAD is found
  by running the registered check itself, then
  ``α = Σ_y P(Y = y) · P(X ≥ k* − y) · P(X′ < k* − y)`` with Y ~ Poisson((w − 1)·λ0) the
  counts the two windows share and X, X′ ~ Poisson(λ0).
* **the bound** — Page's CUSUM for λ0 → λ1 at exactly that α, its expected delay when the
  change hits a long clean run at a random spill (as the study's trials do), by the exact
  Markov chain (:func:`dqm.sim.sequential.best_delay`).

Layer: pure (the specs, the check registry, :mod:`dqm.sim.sequential`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dqm._lazy import lazy_module
from dqm.checks import CheckContext, Quality, run_check
from dqm.checks._registry import validate_check_params
from dqm.sim.anomalies import apply_to_config, parse_anomaly
from dqm.sim.scenarios import Scenario
from dqm.sim.sequential import SequentialBound, best_delay
from dqm.sim.study import alarm_episodes

_st = lazy_module("scipy.stats")

if TYPE_CHECKING:
    from dqm.sim.study import SpillOutcome, Study

__all__ = [
    "BoundResult",
    "count_bound",
    "design_rate",
    "rule_threshold",
    "episode_rate",
    "MIN_MEASURED_EPISODES",
]

#: Alarm episodes the clean run must hold before its measured rate is used (±30 % at 10).
MIN_MEASURED_EPISODES = 10


@dataclass
class BoundResult:
    lambda0: float
    lambda1: float
    tagged_mean: float | None  # measured mean tagged count per clean spill
    episodes: int  # measured alarm episodes of the check on the clean run
    spills: int
    threshold: int  # k*: smallest pooled count the check calls BAD
    window: int
    model_rate: float  # exact alarm-episode rate of the check's rule under Poisson counts
    rate: float  # the rate the bound is computed at
    rate_source: str
    bound: SequentialBound

    @property
    def delay(self) -> float:
        return self.bound.delay

    @property
    def worst_case_delay(self) -> float:
        return self.bound.worst_case_delay


def rule_threshold(
    histogram: str, check: str, params: dict, n_events: float, limit: int = 10_000
) -> tuple[int, int]:
    """``(k*, window)``: the smallest count pooled over the check's window that it calls BAD.

    Runs the registered check on a spill holding all ``k`` tagged events, after ``window − 1``
    spills holding none (the check pools counts, so only their sum matters).
    """
    resolved = validate_check_params(check, params)
    window = int(resolved.get("window", 1))
    key, n_key = resolved["key"], resolved["n_key"]
    history = {key: [0.0] * (window - 1), n_key: [float(n_events)] * (window - 1)}
    for k in range(limit):
        context = CheckContext(summary={key: k / n_events, n_key: n_events}, history=history)
        if run_check(check, context, params).quality == Quality.BAD:
            return k, window
    raise ValueError(f"{histogram}/{check} never says BAD below {limit} counts")


def episode_rate(threshold: int, window: int, lambda0: float) -> float:
    """Alarm episodes per spill of "pooled count over ``window`` spills ≥ ``threshold``"."""
    shared = np.arange(threshold + 1)
    p_shared = (
        _st.poisson.pmf(shared, (window - 1) * lambda0) if window > 1 else (shared == 0) * 1.0
    )
    need = threshold - shared  # counts the newest (resp. the dropped) spill must bring
    return float(
        np.sum(p_shared * _st.poisson.sf(need - 1, lambda0) * _st.poisson.cdf(need - 1, lambda0))
    )


def count_bound(study: Study, row: Scenario, clean: Sequence[SpillOutcome]) -> BoundResult:
    """The bound of a row with a :class:`~dqm.sim.scenarios.CountBound` (see the module doc)."""
    spec = row.bound
    assert spec is not None
    settings = study.settings(row.beam, 0)
    nominal = dataclasses.replace(settings, events_per_spill=study.config.events_per_spill)
    changed = apply_to_config(nominal, [parse_anomaly(row.anomaly)], 0)
    n = nominal.events_per_spill
    lambda0 = n * getattr(nominal, spec.rate_setting)
    lambda1 = changed.events_per_spill * getattr(changed, spec.rate_setting)
    check = next(c for c in study.specs[spec.histogram].checks if c.type == spec.check)
    designed = design_rate(spec.check, dict(check.params), n)
    if designed is not None:  # a sequential check states its own exact rate
        (model, rule), threshold, window = designed, 0, 1
    else:
        threshold, window = rule_threshold(spec.histogram, spec.check, dict(check.params), n)
        model = episode_rate(threshold, window, lambda0)
        rule = f"k* = {threshold} in {window} spills"
    name = f"{spec.histogram}/{spec.check}"
    episodes = _episodes(clean, name)
    counts = [o.summary.get("n_hadron") for o in clean if o.summary.get("n_hadron") is not None]
    if episodes >= MIN_MEASURED_EPISODES:
        rate, source = episodes / len(clean), f"measured: {episodes} in {len(clean)} clean spills"
    else:
        rate, source = (
            model,
            (f"the check's rule, exact ({rule}; measured {episodes} in {len(clean)} clean spills)"),
        )
    return BoundResult(
        lambda0,
        lambda1,
        statistics.fmean(counts) if counts else None,
        episodes,
        len(clean),
        threshold,
        window,
        model,
        rate,
        source,
        best_delay(lambda0, lambda1, rate),
    )


def design_rate(check: str, params: dict, n_events: float) -> tuple[float, str] | None:
    """``(rate, its rule)`` of a check that solves its threshold from a false-alarm rate.

    Such a check (``pik_cusum``) reports the exact episode rate of its design in
    ``details["false_alarm_rate"]``; it is read by judging one quiet spill of ``n_events``
    with no history. ``None`` for a check that does not (the pooled-count rule is then used).
    """
    resolved = validate_check_params(check, params)
    count_key, n_key = resolved.get("count_key"), resolved.get("n_key")
    if count_key is None or n_key is None:
        return None
    context = CheckContext(summary={count_key: 0.0, n_key: float(n_events)})
    details = run_check(check, context, params).details
    if "false_alarm_rate" not in details:
        return None
    rule = (
        f"held Page CUSUM for ×{details['design_ratio']:g}, k = {details['k']:.2f}, "
        f"h = {details['h']:.2f} counts"
    )
    return float(details["false_alarm_rate"]), rule


def _episodes(outcomes: Sequence[SpillOutcome], name: str) -> int:
    return alarm_episodes(outcomes)[name]
