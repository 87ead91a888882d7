"""Change detection along a run: catches a slow momentum drift, stays quiet otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from dqm.checks import CheckContext, CheckResult, Quality, run_check

P_NOMINAL_GEV = 160.0
SIGMA_MEAN_GEV = 0.04  # per-spill statistical error of p_ms2_mean (≈ 5.6 GeV / √20 000)
N_BASELINE = 20


def run_on_series(name: str, values: np.ndarray, **params: object) -> CheckResult:
    """The check as the worker runs it at the last spill of ``values``."""
    context = CheckContext(
        summary={"p_ms2_mean": float(values[-1]), "n_events": 20_000.0},
        history={"p_ms2_mean": [float(v) for v in values[:-1]]},
    )
    return run_check(name, context, {"quantity": "p_ms2_mean", **params})


def drifting_run(
    seed: int, drift_per_spill: float = 1e-3, n_stable: int = 30, n_drift: int = 25
) -> np.ndarray:
    """p_ms2_mean per spill: stable, then the scale creeps by ``drift_per_spill`` each spill."""
    rng = np.random.default_rng(seed)
    scale = np.concatenate([np.zeros(n_stable), drift_per_spill * np.arange(1, n_drift + 1)])
    return P_NOMINAL_GEV * (1 + scale) + rng.normal(0, SIGMA_MEAN_GEV, n_stable + n_drift)


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_slow_momentum_drift_is_caught_well_before_two_percent(name: str) -> None:
    for seed in range(20):
        values = drifting_run(seed)
        first_bad = next(
            t
            for t in range(N_BASELINE + 1, len(values) + 1)
            if run_on_series(name, values[:t]).quality is Quality.BAD
        )
        drift_at_alarm = values[first_bad - 1] / P_NOMINAL_GEV - 1
        # BAD after at most 4 drifting spills: ≤ 0.4 %, long before a 2 % scale error
        assert first_bad - 30 <= 4, (seed, first_bad)
        assert drift_at_alarm < 0.005


def test_cusum_explanation_names_direction_and_baseline() -> None:
    result = run_on_series("cusum", drifting_run(1))
    assert result.quality is Quality.BAD
    assert result.explanation.startswith("p_ms2_mean: upward CUSUM")
    assert "vs baseline 160" in result.explanation
    assert result.details["spills_since_change"] >= 20


@pytest.mark.parametrize(("name", "statistic"), [("cusum", "c_plus"), ("ewma", "deviation")])
def test_stationary_runs_do_not_fire_in_99_percent(name: str, statistic: str) -> None:
    # 1000 healthy runs of 120 spills. The statistic at spill t only depends on spills
    # ≤ t (fixed baseline), so the last call's series is every earlier call's value:
    # a run "fires" if any spill would have been WARNING or BAD.
    rng = np.random.default_rng(99)
    fired = 0
    for _ in range(1000):
        values = P_NOMINAL_GEV + rng.normal(0, SIGMA_MEAN_GEV, 120)
        result = run_on_series(name, values)
        path = np.abs(np.asarray(result.details[statistic]))
        if name == "cusum":
            path = np.maximum(path, np.asarray(result.details["c_minus"]))
        fired += bool(np.any(path >= result.threshold["warning"]))
    assert fired <= 10, fired  # ≈ 0.3 % expected (see dqm.checks.trend)


def test_last_call_path_equals_calling_at_each_spill() -> None:
    values = drifting_run(3, drift_per_spill=2e-4)
    last = run_on_series("cusum", values).details
    for t in (N_BASELINE + 3, N_BASELINE + 12, len(values) - 1):
        earlier = run_on_series("cusum", values[:t]).details
        monitored = t - N_BASELINE
        assert earlier["c_plus"] == pytest.approx(last["c_plus"][:monitored])
        assert earlier["c_minus"] == pytest.approx(last["c_minus"][:monitored])


def test_baseline_collection_and_explicit_parameters() -> None:
    short = run_on_series("cusum", P_NOMINAL_GEV + np.zeros(10))
    assert short.quality is Quality.NO_DATA and "collecting the baseline" in short.explanation
    flat = run_on_series("ewma", P_NOMINAL_GEV + np.zeros(30))
    assert flat.quality is Quality.NO_DATA and "give 'sigma'" in flat.explanation
    # with μ0 and σ given, monitoring starts at the first spill; a jump that persists for
    # four spills is BAD (one jumping spill alone is a glitch, see below)
    jump = np.array([160.0, 160.02, 161.0, 161.0, 161.0, 161.0])
    assert run_on_series("cusum", jump, mu0=160.0, sigma=0.04).quality is Quality.BAD
    assert run_on_series("cusum", jump[:3], mu0=160.0, sigma=0.04).quality is Quality.GOOD
    assert run_on_series("ewma", jump[:2], mu0=160.0, sigma=0.04).quality is Quality.GOOD


# ----------------------------------------------------------------------- anchored baselines

HISTORY = 60  # the worker's history window (dqm.core.evaluate.HISTORY_SPILLS)


def live_context(
    values: np.ndarray,
    *,
    quality: np.ndarray | None = None,
    errors: np.ndarray | None = None,
    reference: dict[str, list[float]] | None = None,
) -> CheckContext:
    """The context of the last spill of ``values`` as the worker builds it: a 60-spill
    history window with spill numbers and stored qualities, and the run's first 60 spills."""
    n = len(values)
    spills = np.arange(1, n + 1, dtype=float)
    quality = np.zeros(n) if quality is None else quality

    def series(lo: int, hi: int) -> dict[str, list[float]]:
        out = {
            "p_ms2_mean": list(values[lo:hi]),
            "spill": list(spills[lo:hi]),
            "quality.momentum": list(quality[lo:hi]),
        }
        if errors is not None:
            out["p_ms2_mean_err"] = list(errors[lo:hi])
        return out

    summary = {"p_ms2_mean": float(values[-1]), "n_events": 20_000.0}
    if errors is not None:
        summary["p_ms2_mean_err"] = float(errors[-1])
    return CheckContext(
        summary=summary,
        history=series(max(0, n - 1 - HISTORY), n - 1),
        run_start=series(0, min(HISTORY, n - 1)),
        reference_history=reference,
        subsystem="momentum",
    )


def judge_each_spill(name: str, values: np.ndarray, first: int, **kw: object) -> list[Quality]:
    """The check's quality on every spill from ``first`` (1-based) to the last, live."""
    params = {"quantity": "p_ms2_mean", **kw.pop("params", {})}  # type: ignore[arg-type]
    out = []
    for t in range(first, len(values) + 1):
        context = live_context(
            values[:t], **{k: (v[:t] if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        )
        out.append(run_check(name, context, params).quality)
    return out


def stable_run(seed: int, n: int) -> np.ndarray:
    return P_NOMINAL_GEV + np.random.default_rng(seed).normal(0, SIGMA_MEAN_GEV, n)


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_one_spill_glitch_flags_no_later_spill(name: str) -> None:
    # Given runs in which spill 40 alone reads 1 % high (a 40σ glitch)
    for seed in range(10):
        values = stable_run(seed, 70)
        values[39] *= 1.01
        qualities = judge_each_spill(name, values, 41)
        # Then none of the 30 normal spills after it is flagged by change detection
        assert qualities == [Quality.GOOD] * 30, (seed, qualities)


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_persistent_step_stays_flagged_while_it_persists(name: str) -> None:
    # Given a 1 % step from spill 31 that lasts 80 spills — longer than the history window
    values = stable_run(4, 110)
    values[30:] *= 1.01
    qualities = judge_each_spill(name, values, 31)
    # Then it is BAD from its 4th spill on, on every spill while it persists (≥ 50 of them),
    # including after the history window holds nothing but the step
    first_bad = qualities.index(Quality.BAD)
    assert first_bad <= 3
    assert qualities[first_bad:] == [Quality.BAD] * (len(qualities) - first_bad)
    assert len(qualities) - first_bad >= 50


@pytest.mark.parametrize("name", ["cusum", "ewma"])
def test_slow_ramp_is_flagged_and_stays_flagged(name: str) -> None:
    # Given a scale creeping by 0.02 % per spill (0.8σ per spill) from spill 31
    values = stable_run(5, 100)
    values[30:] *= 1 + 2e-4 * np.arange(1, 71)
    qualities = judge_each_spill(name, values, 31)
    first_bad = qualities.index(Quality.BAD)
    assert first_bad < 12  # within 0.25 %
    assert all(q is Quality.BAD for q in qualities[first_bad:])


def test_flagged_spills_are_left_out_of_the_run_start_baseline() -> None:
    # Given a run whose spills 3 and 7 were flagged BAD (a 2 % glitch each) by the window checks
    values = stable_run(6, 30)
    quality = np.zeros(30)
    for glitch in (2, 6):
        values[glitch] *= 1.02
        quality[glitch] = int(Quality.BAD)
    result = run_check("cusum", live_context(values, quality=quality), {"quantity": "p_ms2_mean"})
    # Then the baseline is the first 20 *certified* spills — 1–22 without 3 and 7 — and the
    # glitches neither shift its mean nor inflate its spread
    assert result.details["baseline"] == "this run's first 20 certified spills (1–22)"
    clean = np.delete(values[:22], [2, 6])
    assert result.details["expected"] == pytest.approx(clean.mean())
    assert result.details["sigma"] == pytest.approx(clean.std(ddof=1))
    # and without stored qualities the glitches would have made the spread 20× larger
    unaware = run_check(
        "cusum",
        CheckContext(
            summary={"p_ms2_mean": float(values[-1])}, history={"p_ms2_mean": list(values[:-1])}
        ),
        {"quantity": "p_ms2_mean"},
    )
    assert unaware.details["sigma"] > 10 * result.details["sigma"]


def test_baseline_waits_for_enough_certified_spills() -> None:
    values = stable_run(7, 25)
    quality = np.where(np.arange(25) % 2 == 0, int(Quality.WARNING), 0)
    result = run_check("ewma", live_context(values, quality=quality), {"quantity": "p_ms2_mean"})
    assert result.quality is Quality.NO_DATA
    assert "collecting the baseline: 12 of 20 certified spills" in result.explanation


def test_reference_run_anchors_the_baseline() -> None:
    # Given a reference run whose spills sit at 160 GeV (two of them flagged), and a run that
    # sits 0.5 % (20σ) above it from its very first spill
    reference = stable_run(8, 40)
    ref_quality = np.zeros(40)
    ref_quality[[5, 9]] = int(Quality.BAD)
    ref_series = {
        "p_ms2_mean": list(reference),
        "spill": list(range(1, 41)),
        "quality.momentum": list(ref_quality),
    }
    values = stable_run(9, 30) * 1.005
    context = live_context(values, reference=ref_series)
    # Then the baseline is the reference's 38 certified spills, and the run is BAD …
    result = run_check("cusum", context, {"quantity": "p_ms2_mean"})
    assert result.details["baseline"] == "the reference run's 38 certified spills"
    assert result.quality is Quality.BAD
    # … which a run-start anchor cannot see (the run is off from its start)
    own = run_check("cusum", context, {"quantity": "p_ms2_mean", "anchor": "run_start"})
    assert own.quality is Quality.GOOD and own.details["baseline"].startswith("this run's")
    # and a reference with too few certified spills falls back to the run's start
    short = {k: v[:10] for k, v in ref_series.items()}
    fallback = run_check("cusum", live_context(values, reference=short), {"quantity": "p_ms2_mean"})
    assert fallback.details["baseline"].startswith("this run's first 20")
    strict = run_check(
        "cusum",
        live_context(values, reference=short),
        {"quantity": "p_ms2_mean", "anchor": "reference"},
    )
    assert strict.quality is Quality.NO_DATA and "fewer than n_baseline=20" in strict.explanation


def test_per_spill_errors_keep_a_low_intensity_run_in_control() -> None:
    # Given a reference at 20 000 events per spill and a healthy run at 5 000 (spread ×2)
    rng = np.random.default_rng(10)
    reference = P_NOMINAL_GEV + rng.normal(0, SIGMA_MEAN_GEV, 40)
    ref_series = {
        "p_ms2_mean": list(reference),
        "p_ms2_mean_err": [SIGMA_MEAN_GEV] * 40,
        "spill": list(range(1, 41)),
    }
    fired = {"": 0, "p_ms2_mean_err": 0}
    for seed in range(20):
        run = P_NOMINAL_GEV + np.random.default_rng(100 + seed).normal(0, 2 * SIGMA_MEAN_GEV, 60)
        errors = np.full(60, 2 * SIGMA_MEAN_GEV)
        for key in fired:
            result = run_check(
                "cusum",
                live_context(run, errors=errors, reference=ref_series),
                {"quantity": "p_ms2_mean", "error_key": key},
            )
            path = np.maximum(result.details["c_plus"], result.details["c_minus"])
            fired[key] += bool(np.any(path >= result.threshold["warning"]))
    # Then standardised with its own error it stays quiet; with the reference's σ it does not
    assert fired["p_ms2_mean_err"] <= 1, fired
    assert fired[""] >= 5, fired
