"""The simulation that sets (and re-checks) the change-detection limits of ``dqm.checks.trend``.

Why a simulation: the limits of a CUSUM or EWMA whose μ₀ and σ are *estimated* from a
short baseline have no closed form — textbook limits (h = 5, L = 3) fire in 20–45 % of
stationary 100-spill runs — and what matters to a shifter is the rate per run and what
a glitch, a step or a drift does to the flags. So each configuration is run on many
synthetic runs, exactly as the worker judges them:

* a run is ``n_baseline`` anchor spills then ``n_monitored`` monitored spills of
  N(0, 1) (the per-spill quantity in units of its in-control σ);
* the baseline is estimated from the anchor spills and every monitored spill is
  standardised with the prediction error and mapped t → normal (as
  :class:`dqm.checks._baseline.Baseline` does);
* at every monitored spill the statistic is recomputed over the live history window
  (the last ``HISTORY_SPILLS`` spills and this one), clipped and held at the limit
  (as :func:`dqm.checks.trend.trend_path`; a unit test checks the two agree spill by
  spill).

Reproduce the table in :mod:`dqm.checks.trend` with::

    python -m dqm.sim.trend_limits --runs 6000

Pure numpy: the recursion runs over time with every run at once.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dqm._lazy import lazy_module
from dqm.core.evaluate import HISTORY_SPILLS

_st = lazy_module("scipy.stats")

__all__ = ["Chart", "CHARTS", "Scenario", "SCENARIOS", "paths", "study", "format_study", "main"]


@dataclass(frozen=True)
class Chart:
    """One control chart as the checks run it (defaults of ``dqm.checks.trend``)."""

    statistic: str  # "cusum" | "ewma"
    warning: float
    bad: float
    clip_sigma: float = 4.0
    k: float = 1.0
    lam: float = 0.2
    hold: bool = True

    @property
    def label(self) -> str:
        if self.statistic == "cusum":
            rule = f"CUSUM k={self.k:g}, h={self.bad:g} (warn {self.warning:g})"
        else:
            rule = f"EWMA λ={self.lam:g}, L={self.bad:g} (warn {self.warning:g})"
        return rule + f", clip {self.clip_sigma:g}σ" + ("" if self.hold else ", no hold")


CHARTS = (Chart("cusum", 8.0, 10.0), Chart("ewma", 5.25, 5.75))


@dataclass(frozen=True)
class Scenario:
    """A shift added to the monitored spills from ``start`` (0-based monitored index)."""

    label: str
    shift: Callable[[np.ndarray], np.ndarray]  # spills since start (0, 1, …) → shift in σ
    start: int = 49
    length: int | None = None  # spills the shift lasts (None: to the end)


SCENARIOS = (
    Scenario("in control", lambda j: 0.0 * j, length=1),
    Scenario("glitch 40σ", lambda j: 40.0 * (j == 0), length=1),
    Scenario("step 40σ", lambda j: 40.0 + 0.0 * j),
    Scenario("step 3σ", lambda j: 3.0 + 0.0 * j),
    Scenario("step 2σ", lambda j: 2.0 + 0.0 * j),
    Scenario("drift 4σ/spill", lambda j: 4.0 * (j + 1)),
    Scenario("step 40σ for 20 spills", lambda j: 40.0 + 0.0 * j, length=20),
)


def _runs(
    rng: np.random.Generator, runs: int, n_baseline: int, n_monitored: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In-control runs: the baseline mean and prediction-error scale, and the monitored spills.

    Everything is in units of the true per-spill σ; the scale is ``s·√(1 + 1/n)`` of the
    anchor spills, as :class:`dqm.checks._baseline.Baseline` standardises.
    """
    anchor = rng.standard_normal((runs, n_baseline))
    monitored = rng.standard_normal((runs, n_monitored))
    mean = anchor.mean(axis=1, keepdims=True)
    scale = anchor.std(axis=1, ddof=1, keepdims=True) * math.sqrt(1.0 + 1.0 / n_baseline)
    return mean, scale, monitored


def _to_normal(t_score: np.ndarray, dof: int) -> np.ndarray:
    return np.sign(t_score) * np.minimum(_st.norm.isf(_st.t.sf(np.abs(t_score), dof)), 40.0)


def _path(z: np.ndarray, chart: Chart) -> np.ndarray:
    """The held statistic over ``z`` (runs × spills), recursion started at spill 0."""
    clipped = np.clip(z, -chart.clip_sigma, chart.clip_sigma)
    runs, n = clipped.shape
    out = np.empty_like(clipped)
    if chart.statistic == "cusum":
        ceiling = chart.bad if chart.hold else np.inf
        up = np.zeros(runs)
        down = np.zeros(runs)
        for i in range(n):
            up = np.minimum(np.maximum(0.0, up + clipped[:, i] - chart.k), ceiling)
            down = np.minimum(np.maximum(0.0, down - clipped[:, i] - chart.k), ceiling)
            out[:, i] = np.maximum(up, down)
        return out
    lam = chart.lam
    t = np.arange(1, n + 1)
    half = np.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * t)))
    level = np.zeros(runs)
    for i in range(n):
        level = lam * clipped[:, i] + (1.0 - lam) * level
        if chart.hold:
            level = np.clip(level, -chart.bad * half[i], chart.bad * half[i])
        out[:, i] = level / half[i]
    return np.abs(out)


def paths(z: np.ndarray, chart: Chart, window: int = HISTORY_SPILLS) -> np.ndarray:
    """The statistic at every monitored spill as the worker computes it live.

    At monitored spill ``i`` the checks see the last ``window`` spills and this one,
    so the recursion restarts at ``max(0, i − window)``.
    """
    runs, n = z.shape
    out = np.empty_like(z)
    head = _path(z[:, : window + 1], chart)
    out[:, : window + 1] = head
    for i in range(window + 1, n):
        out[:, i] = _path(z[:, i - window : i + 1], chart)[:, -1]
    return out


def _first(mask: np.ndarray) -> np.ndarray:
    """Index of the first True per row (-1 when none)."""
    hit = mask.any(axis=1)
    return np.where(hit, mask.argmax(axis=1), -1)


def study(
    runs: int = 6000,
    *,
    n_baseline: int = 20,
    n_monitored: int = 100,
    charts: tuple[Chart, ...] = CHARTS,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    seed: int = 2024,
    trail: int = 20,
) -> dict[str, dict[str, dict[str, float]]]:
    """Rates and delays per chart and scenario (same random runs for every cell).

    Returns ``{chart label: {scenario label: {measure: value}}}``; measures:
    ``any_bad``/``any_warning`` (fraction of runs), ``median_delay`` (spills from the
    first shifted spill to the first BAD, 1 = that spill), ``held`` (fraction of the
    shifted spills after the first BAD that are BAD), ``trail`` (fraction of runs with a
    flag in the ``trail`` spills after the shift ended) and ``trail_max`` (most spills
    flagged after it ended).
    """
    rng = np.random.default_rng(seed)
    mean, scale, monitored = _runs(rng, runs, n_baseline, n_monitored)
    dof = n_baseline - 1
    out: dict[str, dict[str, dict[str, float]]] = {}
    for chart in charts:
        rows: dict[str, dict[str, float]] = {}
        for sc in scenarios:
            j = np.arange(n_monitored) - sc.start
            active = (j >= 0) & ((j < sc.length) if sc.length is not None else True)
            shift = np.where(active, sc.shift(np.maximum(j, 0)), 0.0)
            z = _to_normal((monitored + shift[None, :] - mean) / scale, dof)
            stat = paths(z, chart)
            bad, warn = stat >= chart.bad, stat >= chart.warning
            row = {
                "any_bad": float(bad.any(axis=1).mean()),
                "any_warning": float(warn.any(axis=1).mean()),
            }
            if np.any(shift != 0):
                first = _first(bad[:, active])
                found = first >= 0
                row["detected"] = float(found.mean())
                delays = first[found] + 1
                row["median_delay"] = float(np.median(delays)) if found.any() else math.nan
                runs_found = np.flatnonzero(found)
                held = [bad[r, active][first[r] :].mean() for r in runs_found]
                flagged = [warn[r, active][first[r] :].mean() for r in runs_found]
                row["held"] = float(np.mean(held)) if held else math.nan
                row["flagged"] = float(np.mean(flagged)) if flagged else math.nan
            end = int(np.flatnonzero(active)[-1]) + 1 if active.any() else n_monitored
            after = warn[:, end : end + trail]
            if after.shape[1]:
                row["trail"] = float(after.any(axis=1).mean())
                row["trail_mean"] = float(after.sum(axis=1).mean())
                row["trail_max"] = float(after.sum(axis=1).max())
            rows[sc.label] = row
        out[chart.label] = rows
    return out


def format_study(result: dict[str, dict[str, dict[str, float]]], runs: int, trail: int = 20) -> str:
    """The study as a Markdown table per chart."""
    lines = []
    for chart, rows in result.items():
        lines += [
            f"{chart} — {runs} runs",
            "",
            "| scenario | runs with BAD | runs with WARNING | detected | median spills to BAD "
            "| BAD after first BAD | flagged after first BAD | runs flagged in the "
            f"{trail} spills after the end | spills flagged after the end: mean, most |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, m in rows.items():

            def pct(key: str, m: dict[str, float] = m) -> str:
                return f"{100 * m[key]:.2f} %" if key in m else ""

            delay = f"{m['median_delay']:.0f}" if "median_delay" in m else ""
            most = f"{m['trail_mean']:.2f}, {m['trail_max']:.0f}" if "trail_max" in m else ""
            lines.append(
                f"| {label} | {pct('any_bad')} | {pct('any_warning')} | {pct('detected')} | "
                f"{delay} | {pct('held')} | {pct('flagged')} | {pct('trail')} | {most} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dqm.sim.trend_limits", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=6000, help="synthetic runs per cell")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--clip", type=float, nargs="*", default=[4.0], help="clip_sigma values to compare"
    )
    parser.add_argument("--no-hold", action="store_true", help="also show charts without hold")
    args = parser.parse_args(argv)
    charts = []
    for clip in args.clip:
        for hold in (True, False) if args.no_hold else (True,):
            charts += [
                Chart("cusum", 8.0, 10.0, clip_sigma=clip, hold=hold),
                Chart("ewma", 5.25, 5.75, clip_sigma=clip, hold=hold),
            ]
    print(format_study(study(args.runs, charts=tuple(charts), seed=args.seed), args.runs))


if __name__ == "__main__":  # pragma: no cover
    main()
