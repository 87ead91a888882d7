"""Per-spill summaries: finalize(accumulate(...)) against the same statistics computed
directly with numpy, DAQ completeness under a missing source, and merge == whole."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from dqm.core.events import DAQ_SOURCES, decode_batch
from dqm.core.summary import SUMMARY_DOCS, accumulate, finalize, merge
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, SpillData, simulate_spill

CFG = SimConfig(events_per_spill=6000, batch_size=1000, pik_fraction=0.03, brems_fraction=0.02)


@cache
def spill(anomaly: str | None = None) -> SpillData:
    return simulate_spill(CFG, 2, [parse_anomaly(anomaly)] if anomaly else [])


def accumulate_batches(payloads: list[bytes]) -> dict[str, float]:
    acc: dict[str, float] = {}
    for p in payloads:
        accumulate(acc, BatchView(decode_batch(p).columns))
    return acc


def summary(anomaly: str | None = None) -> dict:
    return finalize(accumulate_batches(spill(anomaly).batches()))


def direct(data: SpillData) -> dict[str, np.ndarray]:
    """The selections written out by hand from the columns."""
    c = data.columns
    bit = {name: (c["daq_sources"] >> i) & 1 == 1 for i, name in enumerate(DAQ_SOURCES)}
    ecal = c["ecal"].sum(axis=(1, 2, 3), dtype=np.float32)
    hcal = c["hcal"].sum(axis=(1, 2, 3), dtype=np.float32)
    calo = ecal + hcal
    quiet = calo < 15.0  # passing muons: calorimeters saw less than 15 GeV
    core = bit["BMS"] & bit["MS2"] & quiet & (c["p_ms2"] > 100.0)
    return {
        "p_bms": c["p_bms"][bit["BMS"] & quiet].astype(np.float64),
        "p_ms2": c["p_ms2"][core].astype(np.float64),
        "dp": (c["p_bms"] - c["p_ms2"])[core].astype(np.float64),
        "hadron": (hcal > 30.0)
        & (ecal > 5.0),  # a shower starting in the ECAL, continuing in the HCAL
        "ecal": ecal,
        "hcal": hcal,
        "bit": bit,
    }


def test_momentum_means_and_widths_equal_numpy_on_the_core_selection():
    # Given a spill and its beam-core selections computed by hand
    d = direct(spill())
    # When the per-batch accumulators are finalized
    s = summary()
    # Then mean and sample standard deviation match numpy on the same events
    for key in ("p_bms", "p_ms2", "dp"):
        x = d[key]
        assert 1000 < x.size < len(spill().columns["event"]), key  # a real, partial selection
        assert s[f"{key}_mean"] == pytest.approx(np.mean(x), rel=1e-9), key
        assert s[f"{key}_sigma"] == pytest.approx(np.std(x, ddof=1), rel=1e-7), key
    # and the physics is plausible: 160 GeV beam, small Δp for passing muons
    assert s["p_bms_mean"] == pytest.approx(160.0, rel=0.01)
    assert abs(s["dp_mean"]) < 5.0


def test_beam_position_means_and_widths_equal_numpy():
    c = spill().columns
    s = summary()
    for det, n in (("ms1", 3), ("ms2", 2)):
        for k in range(n):
            for axis in ("x", "y"):
                x = c[f"{det}_{axis}"][:, k].astype(np.float64)
                assert s[f"beam_{axis}_mean_{det}_{k}"] == pytest.approx(
                    np.mean(x), rel=1e-9, abs=1e-9
                )
                assert s[f"beam_sigma_{axis}_{det}_{k}"] == pytest.approx(
                    np.std(x, ddof=1), rel=1e-7
                )


def test_fractions_and_means_equal_direct_counts():
    data, d = spill(), direct(spill())
    n = len(data.columns["event"])
    s = summary()
    k = int(np.count_nonzero(d["hadron"]))
    assert 0 < k < n
    assert s["n_events"] == n
    assert s["n_hadron"] == k
    assert s["pik_fraction"] == pytest.approx(k / n, rel=1e-12)
    # binomial error sqrt(f (1 - f) / n)
    f = k / n
    assert s["pik_fraction_err"] == pytest.approx(math.sqrt(f * (1 - f) / n), rel=1e-9)
    assert s["ecal_mean"] == pytest.approx(d["ecal"].astype(np.float64).mean(), rel=1e-6)
    assert s["hcal_mean"] == pytest.approx(d["hcal"].astype(np.float64).mean(), rel=1e-6)
    low = np.count_nonzero(data.columns["p_ms2"] < 100.0)
    assert s["low_pout_fraction"] == pytest.approx(low / n, rel=1e-12)
    assert s["daq_completeness"] == 1.0


def test_pik_fraction_error_without_hadrons_is_not_zero():
    # Given a spill with no hadron at all, the error is the 68 % one-sided limit, not 0
    acc: dict[str, float] = {}
    cols = {k: v.copy() for k, v in spill().columns.items()}
    cols["hcal"][...] = np.minimum(cols["hcal"], 0.5)  # at most 36 * 0.5 = 18 GeV < 30
    accumulate(acc, BatchView(cols))
    s = finalize(acc)
    n = len(cols["event"])
    assert s["pik_fraction"] == 0.0
    assert s["pik_fraction_err"] == pytest.approx(1.14 / n)


def test_missing_source_lowers_daq_completeness_to_its_fraction():
    # Given HCAL missing from the last half (in time) of spill 2
    text = "missing_source@2:source=HCAL,fraction=0.5"
    data = spill(text)
    assert "missing_source" in data.anomalies
    s = summary(text)
    # Then completeness is the share of events before the dropout, ≈ 0.5
    t = data.columns["time_in_spill_s"]
    before = np.count_nonzero(t < 0.5 * CFG.spill_length_s) / len(t)
    assert s["daq_completeness"] == pytest.approx(before, rel=1e-12)
    assert s["daq_completeness"] == pytest.approx(0.5, abs=0.03)
    assert s["daq_source_completeness_HCAL"] == pytest.approx(before, rel=1e-12)
    for name in DAQ_SOURCES:
        if name != "HCAL":
            assert s[f"daq_source_completeness_{name}"] == 1.0, name


def test_missing_ms2_is_kept_out_of_the_momentum_core():
    # Given MS2 missing for the last 40 %, p_ms2 is zero there and must not pull the mean down
    text = "missing_source@2:source=MS2,fraction=0.4"
    clean, broken = summary(), summary(text)
    d = direct(spill(text))
    assert broken["p_ms2_mean"] == pytest.approx(np.mean(d["p_ms2"]), rel=1e-9)
    assert broken["p_ms2_mean"] == pytest.approx(clean["p_ms2_mean"], rel=0.01)
    assert broken["low_pout_fraction"] == pytest.approx(clean["low_pout_fraction"], abs=0.01)


def test_merge_of_two_halves_equals_the_whole():
    # Given the spill's batches split between two "workers"
    payloads = spill().batches()
    half = len(payloads) // 2
    first, second = accumulate_batches(payloads[:half]), accumulate_batches(payloads[half:])
    whole = accumulate_batches(payloads)
    one_view: dict[str, float] = {}
    accumulate(one_view, BatchView(spill().columns))
    # When merged and finalized
    merged = finalize(merge(first, second))
    # Then every summary quantity equals the whole spill's within 1e-9 relative
    for reference in (finalize(whole), finalize(one_view)):
        assert set(merged) == set(reference)
        for key, value in reference.items():
            if value is None:
                assert merged[key] is None, key
            else:
                assert merged[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_merge_is_plain_addition_of_accumulators():
    a, b = {"n_events": 3.0, "x:s1": 1.5}, {"n_events": 2.0, "y:s1": 4.0}
    assert merge(a, b) == {"n_events": 5.0, "x:s1": 1.5, "y:s1": 4.0}
    assert merge() == {}
    assert a == {"n_events": 3.0, "x:s1": 1.5}, "inputs are not modified"


def test_empty_summary_has_no_numbers():
    s = finalize({})
    assert s["n_events"] == 0
    for key in (
        "p_bms_mean",
        "p_bms_sigma",
        "pik_fraction",
        "pik_fraction_err",
        "daq_completeness",
        "ecal_mean",
    ):
        assert s[key] is None, key


def test_documented_quantities_are_produced():
    assert set(SUMMARY_DOCS) <= set(summary())


def test_calorimeter_quantities_use_the_events_that_have_the_calorimeter():
    # Given HCAL missing from the second half of the spill (its columns read 0 there)
    text = "missing_source@2:source=HCAL,fraction=0.5"
    clean, broken = summary(), summary(text)
    d = direct(spill(text))
    with_hcal = d["bit"]["HCAL"]
    both = with_hcal & d["bit"]["ECAL"]
    # Then the HCAL mean is over the events with the HCAL, not diluted by the zeros
    assert broken["hcal_mean"] == pytest.approx(d["hcal"][with_hcal].mean(), rel=1e-6)
    assert broken["hcal_mean"] == pytest.approx(clean["hcal_mean"], rel=0.1)
    # and the π/K fraction is over the events where the tag could be made (ECAL and HCAL)
    assert broken["pik_n_events"] == np.count_nonzero(both) < broken["n_events"]
    tagged = np.count_nonzero(d["hadron"] & both)
    assert broken["pik_fraction"] == pytest.approx(tagged / np.count_nonzero(both), rel=1e-12)
    assert broken["pik_fraction"] == pytest.approx(clean["pik_fraction"], rel=0.25)


def test_counts_behind_the_means_and_the_daq_patterns():
    text = "missing_source@2:source=MS2,from_fraction=0.2,to_fraction=0.5"
    s, data = summary(text), spill(text)
    d = direct(data)
    assert s["p_bms_n"] == len(d["p_bms"]) and s["p_ms2_n"] == s["dp_n"] == len(d["p_ms2"])
    words, counts = np.unique(data.columns["daq_sources"], return_counts=True)
    assert s["daq_patterns"] == {str(w): int(c) for w, c in zip(words, counts, strict=True)}
    assert len(s["daq_patterns"]) == 2 and sum(s["daq_patterns"].values()) == s["n_events"]
