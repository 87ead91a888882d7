"""Per-spill summary quantities, built from additive accumulators.

Workers see disjoint pieces of a spill, so the summary is carried as sums
(counts, Σx, Σx²) that partials add up; :func:`finalize` turns the merged sums into
means, widths and fractions with their statistical errors. Means and widths of the
momenta use the *beam core* (events without a large energy loss), so that one π/K
or hard-brems event in the tail cannot move the spill's momentum scale.

Every quantity is taken over the events that carry the DAQ sources it is measured with
(a source missing from an event leaves zeros in its columns, not a measurement), and the
number of events behind each mean is kept beside it so the checks' statistical errors use
it: ``p_bms_n`` (BMS read out, calorimeters quiet), ``p_ms2_n`` = ``dp_n`` (BMS and MS2,
beam core), ``pik_n_events`` (ECAL and HCAL: the π/K tag needs both; the denominator of
``pik_fraction``). ``daq_patterns`` (``{word: events}``, not a number, so no trend) counts
the events per ``daq_sources`` word: from it :mod:`dqm.core.coverage` tells, for any
histogram, on how many events it was filled. These bookkeeping keys are left out of
:data:`SUMMARY_DOCS`, whose every entry the report draws as a trend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from dqm.core.events import DAQ_SOURCES, N_MS1, N_MS2
from dqm.core.variables import BatchView

__all__ = ["accumulate", "merge", "finalize", "SUMMARY_DOCS"]

#: Events whose calorimeters saw less than this are "passing muons" for the Δp core. A
#: muon's MIP chain (≈0.4 GeV ECAL + 4 × 2.5 GeV HCAL) hardly depends on its momentum, so
#: this is a detector property, not a beam setting: it holds for any beam momentum.
CORE_CALO_MAX_GEV = 15.0

_STATIONS = [("ms1", k) for k in range(N_MS1)] + [("ms2", k) for k in range(N_MS2)]
_PATTERN = "daq_pattern:"  # accumulator prefix: events per daq_sources word
_ALL = (1 << len(DAQ_SOURCES)) - 1


def _moments(acc: dict[str, float], key: str, x: np.ndarray) -> None:
    x64 = x.astype(np.float64, copy=False)
    acc[f"{key}:n"] = acc.get(f"{key}:n", 0.0) + float(x64.size)
    acc[f"{key}:s1"] = acc.get(f"{key}:s1", 0.0) + float(x64.sum())
    acc[f"{key}:s2"] = acc.get(f"{key}:s2", 0.0) + float(np.dot(x64, x64))


def _add(acc: dict[str, float], key: str, value: float) -> None:
    acc[key] = acc.get(key, 0.0) + value


def accumulate(acc: dict[str, float], view: BatchView) -> None:
    """Add one batch's sums to ``acc`` (in place)."""
    bits = view["daq_source_bit"]
    src = {name: bits[:, i] for i, name in enumerate(DAQ_SOURCES)}
    n = view.n_events
    _add(acc, "n_events", n)
    # the core cut uses the calorimeters that were read out: an event without them cannot be
    # told from a passing muon, and dropping it would leave the momenta unjudged whenever a
    # calorimeter is missing (π/K and hard brems are ~0.2 % of events: a negligible bias)
    calo = view["calo_total"]
    has_p = src["BMS"] & src["MS2"]
    # the core leaves out the signal region relative to the event's own p_BMS: a fixed cut
    # (p_MS2 > 100 GeV) would cut a 100 GeV beam in half and fake a momentum-scale shift
    core = has_p & (calo < CORE_CALO_MAX_GEV) & ~view["is_low_pout"]
    _moments(acc, "p_bms", view["p_bms"][src["BMS"] & (calo < CORE_CALO_MAX_GEV)])
    _moments(acc, "p_ms2", view["p_ms2"][core])
    _moments(acc, "dp", view["dp"][core])
    _add(acc, "low_pout", float(np.count_nonzero(view["is_low_pout"] & has_p)))
    _add(acc, "n_ms2", float(np.count_nonzero(has_p)))
    for det, k in _STATIONS:
        ok = src[det.upper()]
        _moments(acc, f"{det}_{k}_x", view[f"{det}_x"][ok, k])
        _moments(acc, f"{det}_{k}_y", view[f"{det}_y"][ok, k])
    complete = view.complete  # the usual case: no event to leave out, nothing to copy
    ecal, hcal, hadron = view["ecal_total"], view["hcal_total"], view["is_hadron"]
    calos = src["ECAL"] & src["HCAL"]  # the π/K tag needs both
    if not complete:
        ecal, hcal, hadron = ecal[src["ECAL"]], hcal[src["HCAL"]], hadron & calos
    _add(acc, "ecal_sum", float(ecal.sum(dtype=np.float64)))
    _add(acc, "hcal_sum", float(hcal.sum(dtype=np.float64)))
    _add(acc, "n_hadron", float(np.count_nonzero(hadron)))
    _add(acc, "n_calo", float(n if complete else np.count_nonzero(calos)))
    _add(acc, "n_daq_complete", float(n if complete else np.count_nonzero(view["daq_complete"])))
    present = bits.sum(axis=0)
    for i, name in enumerate(DAQ_SOURCES):
        _add(acc, f"src_{name}", float(present[i]))
    if complete:
        _add(acc, f"{_PATTERN}{_ALL}", float(n))
    else:
        words = np.bincount(view["daq_sources"])
        for word in np.flatnonzero(words):
            _add(acc, f"{_PATTERN}{word}", float(words[word]))


def merge(*accs: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for acc in accs:
        for k, v in acc.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _mean_sigma(acc: Mapping[str, float], key: str) -> tuple[float | None, float | None]:
    n = acc.get(f"{key}:n", 0.0)
    if n < 1:
        return None, None
    mean = acc[f"{key}:s1"] / n
    var = max(acc[f"{key}:s2"] / n - mean * mean, 0.0)
    return mean, math.sqrt(var * n / (n - 1)) if n > 1 else 0.0


SUMMARY_DOCS: dict[str, str] = {
    "n_events": "events sampled in the spill (intensity proxy)",
    "p_bms_mean": "mean incoming momentum (BMS) [GeV]",
    "p_bms_sigma": "width of incoming momentum [GeV]",
    "p_ms2_mean": "mean outgoing momentum of passing muons (MS2) [GeV]",
    "p_ms2_sigma": "width of outgoing momentum [GeV]",
    "dp_mean": "mean Δp = p_BMS − p_MS2 of passing muons [GeV]",
    "dp_sigma": "width of Δp [GeV]",
    "low_pout_fraction": "fraction of events (BMS and MS2 read out) with p_MS2 < 0.625 p_BMS",
    "ecal_mean": "mean ECAL energy per event [GeV]",
    "hcal_mean": "mean HCAL energy per event [GeV]",
    "pik_fraction": "hadron-tagged (π/K) fraction of the events with ECAL and HCAL",
    "pik_fraction_err": "binomial error of the π/K fraction",
    "daq_completeness": "fraction of events with every DAQ source",
}


def finalize(acc: Mapping[str, float]) -> dict[str, Any]:
    """Summary quantities (JSON-able) from merged accumulators."""
    n = acc.get("n_events", 0.0)
    out: dict[str, float | None] = {"n_events": n, "intensity": n}
    for key in ("p_bms", "p_ms2", "dp"):
        out[f"{key}_mean"], out[f"{key}_sigma"] = _mean_sigma(acc, key)
        # σ/√n: change detection standardises each spill with its own statistical error
        # (not in SUMMARY_DOCS: an error is not a trend of its own in the report)
        sigma = out[f"{key}_sigma"]
        n_key = acc.get(f"{key}:n", 0.0)
        out[f"{key}_mean_err"] = sigma / math.sqrt(n_key) if sigma is not None else None
        out[f"{key}_n"] = acc.get(f"{key}:n", 0.0)
    n_ms2 = acc.get("n_ms2", 0.0)
    out["low_pout_fraction"] = acc.get("low_pout", 0.0) / n_ms2 if n_ms2 else None
    for det, k in _STATIONS:
        for c in ("x", "y"):
            out[f"beam_{c}_mean_{det}_{k}"], out[f"beam_sigma_{c}_{det}_{k}"] = _mean_sigma(
                acc, f"{det}_{k}_{c}"
            )
    for det, key in (("ECAL", "ecal"), ("HCAL", "hcal")):
        n_det = acc.get(f"src_{det}", n)  # older partials lack src_*: then every event
        out[f"{key}_mean"] = acc.get(f"{key}_sum", 0.0) / n_det if n_det else None
    k_had = acc.get("n_hadron", 0.0)
    n_pik = acc.get("n_calo", n)
    out["n_hadron"] = k_had
    out["pik_n_events"] = n_pik
    out["pik_fraction"] = k_had / n_pik if n_pik else None
    # binomial error; for k = 0 use the 68 % one-sided Poisson limit (1.14/n) instead of 0
    out["pik_fraction_err"] = (
        (math.sqrt(k_had * (1 - k_had / n_pik)) / n_pik if k_had else 1.14 / n_pik)
        if n_pik
        else None
    )
    out["daq_completeness"] = acc.get("n_daq_complete", 0.0) / n if n else None
    for name in DAQ_SOURCES:
        out[f"daq_source_completeness_{name}"] = acc.get(f"src_{name}", 0.0) / n if n else None
    patterns = {k[len(_PATTERN) :]: int(v) for k, v in acc.items() if k.startswith(_PATTERN)}
    if patterns:
        out["daq_patterns"] = dict(  # type: ignore[assignment]  # the one non-number entry
            sorted(patterns.items(), key=lambda kv: int(kv[0]))
        )
    return out
