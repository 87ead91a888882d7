"""What a worker's speed buys the physics: events per SPS cycle, and detection delays.

A worker's CPU per spill is ``fixed + per_event × N`` (closing, judging and storing a spill
cost the same whatever its size; decoding and filling grow with it). Two bench runs at two
spill sizes give both terms, and from them the largest spill one worker keeps up with on
one core within the SPS cycle (16.8 s). What larger samples change:

* **π/K excess** — the ``hadron_tag/pik_cusum`` check watches the count of hadron-tagged
  events per spill, λ0 = f·N. Its delay is within 0.9–1.3× of the best sequential test
  (:doc:`validation`), so the table gives that bound: Page's CUSUM at the spec's false-alarm
  rate, exact (:func:`dqm.sim.sequential.best_delay`, stationary start), for an excess ×r.
* **beam drift** — ``beam_centroid`` flags a spill BAD when the centroid is more than
  ``bad_window_mm`` from the reference. The spill's measured centroid scatters by
  σ = √(w² + σ_beam²/N): the beam's own spill-to-spill wander w and the statistical error
  of the mean. For a ramp of v mm per spill the expected delay is that of the first
  spill t whose centroid v·t + ε_t leaves the window (ε_t independent, normal).

Pure numbers (the two bench figures in, a table out); no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dqm.core.specs import SpecSet

__all__ = ["CostModel", "ReachRow", "reach_rows", "bench_reach", "SPS_CYCLE_S", "beam_ramp_delay"]

#: The SPS supercycle NA64 shares (one spill per cycle).
SPS_CYCLE_S = 16.8
#: In-control spill-to-spill wander of the beam centroid (the validation study's clean beam).
BEAM_WANDER_MM = 0.3


@dataclass(frozen=True)
class CostModel:
    """Worker CPU per spill = ``fixed_s + per_event_s × N``, from two measured spill sizes."""

    fixed_s: float
    per_event_s: float

    @classmethod
    def from_runs(cls, n_small: int, cpu_small_s: float, n_large: int, cpu_large_s: float):
        """Both arguments per spill: events and worker CPU-seconds."""
        per_event = (cpu_large_s - cpu_small_s) / (n_large - n_small)
        return cls(max(cpu_small_s - per_event * n_small, 0.0), per_event)

    def sustained_events(self, cycle_s: float = SPS_CYCLE_S) -> int:
        """The largest spill one worker (one core) closes within ``cycle_s``."""
        return int((cycle_s - self.fixed_s) / self.per_event_s)


@dataclass(frozen=True)
class ReachRow:
    events: int
    cpu_per_spill_s: float
    pik_lambda0: float
    pik_delays: dict[float, float]  # excess ratio -> expected delay [spills]
    beam_sigma_mm: float
    beam_ramp_delay: float  # spills


def _pik_params(specs: SpecSet) -> tuple[float, float]:
    """(expected tagged fraction, false-alarm rate per spill) of the spec's π/K CUSUM."""
    for spec in specs:
        for check in spec.checks:
            if check.type == "pik_cusum":
                return float(check.params["expected"]), float(check.params["alarm_rate"])
    raise LookupError("no pik_cusum check in the specs")


def _beam_params(specs: SpecSet) -> float:
    """The BAD window of the first ``beam_centroid`` check [mm]."""
    for spec in specs:
        for check in spec.checks:
            if check.type == "beam_centroid":
                return float(check.params["bad_window_mm"])
    raise LookupError("no beam_centroid check in the specs")


def beam_ramp_delay(ramp_mm: float, window_mm: float, sigma_mm: float, horizon: int = 10_000):
    """Expected number of spills until a centroid drifting by ``ramp_mm`` a spill first
    lies outside ``± window_mm`` (spill 1 is the first drifted one)."""
    expected, alive = 0.0, 1.0
    for t in range(1, horizon + 1):
        shift = ramp_mm * t
        p_out = _normal_sf((window_mm - shift) / sigma_mm) + _normal_sf(
            (window_mm + shift) / sigma_mm
        )
        expected += alive * p_out * t
        alive *= 1.0 - p_out
        if alive < 1e-12:
            break
    return expected + alive * horizon


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def reach_rows(
    specs: SpecSet,
    model: CostModel,
    sizes: list[int],
    ratios: tuple[float, ...] = (1.2, 1.5, 2.0, 5.0),
    ramp_mm: float = 0.05,
    beam_sigma_mm: float = 15.0,
) -> list[ReachRow]:
    """One row per spill size: CPU per spill, π/K bound delays, beam-ramp delay."""
    from dqm.sim.sequential import best_delay  # SciPy-free but a few ms per design

    fraction, alarm_rate = _pik_params(specs)
    window = _beam_params(specs)
    rows = []
    for n in sizes:
        lam0 = fraction * n
        delays = {r: best_delay(lam0, r * lam0, alarm_rate).delay for r in ratios}
        sigma = math.sqrt(BEAM_WANDER_MM**2 + beam_sigma_mm**2 / n)
        rows.append(
            ReachRow(
                n,
                model.fixed_s + model.per_event_s * n,
                lam0,
                delays,
                sigma,
                beam_ramp_delay(ramp_mm, window, sigma),
            )
        )
    return rows


def bench_reach(
    settings, r, specs: SpecSet, db_url: str, hooks, sizes: tuple[int, int], batch_size: int
):
    """Measure the worker at two spill sizes and print the reach table (``dqm bench --reach``).

    Each size is published as its own run (≥ 4 spills, about 1 M events for the large one:
    the stream lives in Redis's memory) and drained by a fresh worker; CPU per spill is the
    worker's CPU over the spills closed.
    """
    import uuid

    from benchmarks.worker import bench_worker, publish_bench_run

    measured = []
    for i, n in enumerate(sizes):
        n_spills = max(4, min(20, 1_000_000 // n))
        stream = f"bench:reach:{uuid.uuid4().hex[:6]}"
        try:
            # a run of its own (run number 900 000 + seed) in the bench's store
            publish_bench_run(r, stream, n_spills, n, batch_size, seed=21 + i)
            res = bench_worker(settings.with_(stream=stream), r, specs, db_url, hooks)
        finally:
            r.delete(stream)
        per_spill = res.cpu_s / max(res.extra.get("spills_closed", n_spills), 1)
        measured.append((n, per_spill, res))
        print(
            f"  {n:>9,d} events/spill, {n_spills} spills: {per_spill * 1000:7.1f} ms worker CPU "
            f"per spill, {res.events_per_cpu_s:,.0f} ev/CPU-s"
        )
    (n0, c0, _), (n1, c1, _) = measured
    model = CostModel.from_runs(n0, c0, n1, c1)
    top = model.sustained_events()
    print(
        f"  worker CPU per spill = {model.fixed_s * 1000:.0f} ms + "
        f"{model.per_event_s * 1e9:.0f} ns x events: one worker (one core) sustains "
        f"{top:,d} events per {SPS_CYCLE_S} s SPS cycle"
    )
    sizes_shown = sorted({2_000, *sizes, top})
    rows = reach_rows(specs, model, sizes_shown)
    ratios = list(rows[0].pik_delays)
    head = " | ".join(f"π/K ×{x:g}" for x in ratios)
    print(f"  events/spill | CPU/spill | λ0 π/K | {head} | beam σ | beam ramp 0.05 mm/spill")
    for row in rows:
        delays = " | ".join(f"{row.pik_delays[x]:6.2f}" for x in ratios)
        print(
            f"  {row.events:>12,d} | {row.cpu_per_spill_s:7.3f} s | {row.pik_lambda0:7.1f} | "
            f"{delays} | {row.beam_sigma_mm:.3f} mm | {row.beam_ramp_delay:5.1f}"
        )
    return model, rows
