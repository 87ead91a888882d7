"""The spill simulator: determinism, plausible physics, anomalies, parser errors, replay files."""

from __future__ import annotations

import dataclasses
import time
from functools import cache

import numpy as np
import pytest

from dqm.core.events import DAQ_SOURCES, TRIGGER_BITS, decode_batch
from dqm.errors import BatchError, ConfigError
from dqm.sim.anomalies import ANOMALY_KINDS, DEMO_ANOMALY_CYCLE, Anomaly, parse_anomaly
from dqm.sim.simfile import read_spill_file, verify_spill_file, write_spill_file
from dqm.sim.simulate import CATEGORIES, SimConfig, SpillData, simulate_run, simulate_spill

CFG = SimConfig()
PIK, BREMS, MUON = CATEGORIES.index("pik"), CATEGORIES.index("brems"), CATEGORIES.index("muon")


@cache
def clean(spill: int = 1, **overrides) -> SpillData:
    return simulate_spill(dataclasses.replace(CFG, **overrides), spill)


def with_anomaly(text: str, spill: int = 5, **overrides) -> SpillData:
    return simulate_spill(dataclasses.replace(CFG, **overrides), spill, [parse_anomaly(text)])


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_other_spills_differ():
    a, b = simulate_spill(CFG, 3).batches(), simulate_spill(CFG, 3).batches()
    assert a == b
    assert simulate_spill(CFG, 4).batches()[0] != a[0]
    assert simulate_spill(dataclasses.replace(CFG, seed=CFG.seed + 1), 3).batches()[0] != a[0]


def test_spill_content_does_not_depend_on_which_spills_were_generated():
    cfg = dataclasses.replace(CFG, n_spills=3, events_per_spill=2000)
    run = list(simulate_run(cfg, first_spill=2))
    alone = simulate_spill(dataclasses.replace(CFG, events_per_spill=2000), 4)
    assert [s.spill for s in run] == [2, 3, 4]
    assert run[2].batches() == alone.batches()
    period = CFG.spill_period_s
    assert [s.start_offset_s for s in run] == pytest.approx([0.0, period, 2 * period])


# --------------------------------------------------------------------------- physics


def test_momentum_means_and_resolutions():
    c, truth = clean().columns, clean().truth
    muon = truth["category"] == MUON
    p_bms, p_ms2 = c["p_bms"][muon], c["p_ms2"][muon]
    assert p_bms.mean() == pytest.approx(160.0, rel=0.005)
    expected_bms = np.hypot(CFG.bms_resolution, CFG.beam_momentum_spread)
    assert p_bms.std() / p_bms.mean() == pytest.approx(expected_bms, rel=0.05)
    assert p_bms.std() / p_bms.mean() == pytest.approx(0.01, rel=0.1)
    assert p_ms2.mean() == pytest.approx(160.0, rel=0.005)
    assert p_ms2.std() / p_ms2.mean() == pytest.approx(0.035, rel=0.05)


def test_beam_profile_and_magnet_bend():
    c = clean().columns
    for station in range(3):
        assert c["ms1_x"][:, station].std() == pytest.approx(15.0, rel=0.03)
        assert c["ms1_y"][:, station].std() == pytest.approx(10.0, rel=0.03)
        assert abs(c["ms1_x"][:, station].mean()) < 0.5
    lever_m = np.asarray(CFG.ms2_z_m) - CFG.magnet_z_m
    bend = 0.2998 * CFG.magnet_bl_tm * 1e3 * lever_m / CFG.p_beam_gev
    assert np.median(c["ms2_x"] - c["ms1_x"][:, -1:], axis=0) == pytest.approx(bend, rel=0.05)


def test_calorimeter_mips_of_ordinary_muons():
    s = clean()
    muon = (s.truth["category"] == MUON) & ~s.truth["pileup"]
    ecal = s.columns["ecal"][muon].sum(axis=(1, 2, 3))
    hcal = s.columns["hcal"][muon]
    assert np.median(ecal) == pytest.approx(CFG.ecal_mip_gev, rel=0.15)
    per_module = hcal.sum(axis=(2, 3)).mean(axis=0)
    assert per_module == pytest.approx([CFG.hcal_mip_gev_per_module] * 4, rel=0.05)
    assert hcal[:, :, 1, 1].sum() / hcal.sum() > 0.95  # the beam sits in the centre cell
    main = s.columns["ecal"][muon, 1].mean(axis=0)
    assert main[2:4, 2:4].sum() / main.sum() > 0.85  # ... and in the central ECAL cells
    per_plane = s.columns["veto"][muon].sum(axis=2).mean(axis=0)
    assert per_plane == pytest.approx([CFG.veto_mip_gev] * 3, rel=0.1)


def test_hadron_fraction_and_showers():
    s = clean(pik_fraction=1e-2)
    pik = s.truth["category"] == PIK
    n = s.n_events
    assert abs(pik.sum() - 1e-2 * n) < 5 * np.sqrt(1e-2 * n)
    e_cal = s.columns["ecal"].sum(axis=(1, 2, 3)) + s.columns["hcal"].sum(axis=(1, 2, 3))
    assert np.all(e_cal[pik] > 0.5 * s.columns["p_bms"][pik])
    assert np.percentile(e_cal[s.truth["category"] == MUON], 99) < 20.0
    hcal_modules = s.columns["hcal"][pik].sum(axis=(0, 2, 3))
    assert hcal_modules[:2].sum() > 0.6 * hcal_modules.sum()
    assert np.all(s.columns["trigger_bits"][pik] & 1)  # hadron-like -> physics trigger


def test_brems_energy_balance():
    s = clean(brems_fraction=2e-2)
    rows = s.truth["category"] == BREMS
    ecal, hcal = s.columns["ecal"][rows], s.columns["hcal"][rows]
    deposit = ecal.sum(axis=(1, 2, 3)) + hcal.sum(axis=(1, 2, 3))
    balance = s.truth["p_true"][rows] - s.truth["p_out_true"][rows] - deposit
    mips = CFG.ecal_mip_gev + 4 * CFG.hcal_mip_gev_per_module
    assert np.median(balance) == pytest.approx(-mips, abs=2.0)
    measured = s.columns["p_bms"][rows] - s.columns["p_ms2"][rows] - deposit
    assert abs(np.median(measured) + mips) < 5.0


def test_intensity_fluctuates_within_five_percent():
    cfg = dataclasses.replace(CFG, events_per_spill=1000)
    n = [simulate_spill(cfg, s).n_events for s in range(1, 30)]
    assert min(n) >= 950 and max(n) <= 1050 and len(set(n)) > 5


def test_event_layout_and_every_batch_validates():
    cfg = dataclasses.replace(CFG, batch_size=1500)
    s = simulate_spill(cfg, 2, [parse_anomaly(t) for t in DEMO_ANOMALY_CYCLE if t != "stale"])
    batches = s.batches()
    assert len(batches) == s.n_batches == -(-s.n_events // 1500)
    decoded = [decode_batch(b, validate=True) for b in batches]
    assert [d.batch_index for d in decoded] == list(range(len(batches)))
    assert all(d.n_events == 1500 for d in decoded[:-1]) and 1 <= decoded[-1].n_events <= 1500
    events = np.concatenate([d["event"] for d in decoded])
    assert np.array_equal(events, np.arange(s.n_events))
    t = np.concatenate([d["time_in_spill_s"] for d in decoded])
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] < CFG.spill_length_s
    for name, arr in s.columns.items():
        assert np.isfinite(arr).all(), name
    assert clean().columns["daq_sources"].min() == 2 ** len(DAQ_SOURCES) - 1
    bits = clean().columns["trigger_bits"]
    physics, beam = 1 << TRIGGER_BITS.index("physics"), 1 << TRIGGER_BITS.index("beam")
    assert np.all((bits & physics > 0) ^ (bits & beam > 0))


def test_generation_is_fast():
    simulate_spill(CFG, 1)
    best = min(_timed(lambda: simulate_spill(CFG, 9)) for _ in range(3))
    assert best < 0.25  # target ~50 ms; loose here so a busy CI machine does not flake


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- anomalies


def test_every_kind_is_covered_by_the_demo_cycle():
    assert {parse_anomaly(t).kind for t in DEMO_ANOMALY_CYCLE} == set(ANOMALY_KINDS)


def test_dead_cell_reads_zero_and_rest_unchanged():
    s, ref = with_anomaly("dead_cell@5:detector=ecal,cell=1/2/3"), clean(5)
    assert np.all(s.columns["ecal"][:, 1, 2, 3] == 0)
    assert ref.columns["ecal"][:, 1, 2, 3].mean() > 0.05
    ref_ecal = ref.columns["ecal"].copy()
    ref_ecal[:, 1, 2, 3] = 0
    assert np.array_equal(s.columns["ecal"], ref_ecal)
    assert s.anomalies == ["dead_cell"]
    v = with_anomaly("dead_cell:detector=veto,cell=2/1")
    assert np.all(v.columns["veto"][:, 2, 1] == 0)


def test_hot_cell_fires_in_the_requested_fraction():
    s = with_anomaly("hot_cell:detector=ecal,cell=0/5/5,fraction=0.3,mean_gev=5")
    fires = s.columns["ecal"][:, 0, 5, 5] > 0.05
    assert fires.mean() == pytest.approx(0.3, abs=0.02)
    assert s.columns["ecal"][fires, 0, 5, 5].mean() == pytest.approx(5.0, rel=0.1)


def test_hcal_gain_drop_lowers_that_module_by_twenty_percent():
    s, ref = with_anomaly("hcal_gain_drop@5:module=2"), clean(5)
    ratio = s.columns["hcal"].mean(axis=(0, 2, 3)) / ref.columns["hcal"].mean(axis=(0, 2, 3))
    assert ratio == pytest.approx([1.0, 1.0, 0.8, 1.0], rel=1e-4)


def test_beam_shift_and_width():
    s, ref = with_anomaly("beam_shift@5:dx_mm=3"), clean(5)
    dx = s.columns["ms1_x"].mean(axis=0) - ref.columns["ms1_x"].mean(axis=0)
    assert dx == pytest.approx([3.0] * 3, abs=0.01)
    assert s.columns["ms1_y"].mean() == pytest.approx(ref.columns["ms1_y"].mean(), abs=0.01)
    w = with_anomaly("beam_width@5")
    for axis in ("ms1_x", "ms1_y"):
        ratio = w.columns[axis][:, 2].std() / ref.columns[axis][:, 2].std()
        assert ratio == pytest.approx(1.3, rel=0.01)


def test_intensity_drop_and_momentum_scales():
    ref = clean(5)
    assert with_anomaly("intensity_drop@5").n_events == pytest.approx(ref.n_events / 2, abs=1)
    bms = with_anomaly("bms_scale@5")
    ratio = bms.columns["p_bms"].mean() / ref.columns["p_bms"].mean()
    assert ratio == pytest.approx(1.02, rel=1e-4)
    assert np.array_equal(bms.columns["p_ms2"], ref.columns["p_ms2"])
    ms2 = with_anomaly("ms2_scale@5:factor=0.98")
    ratio = ms2.columns["p_ms2"].mean() / ref.columns["p_ms2"].mean()
    assert ratio == pytest.approx(0.98, rel=1e-4)


def test_momentum_drift_grows_linearly():
    drift = [parse_anomaly("momentum_drift@3-:per_spill=0.002")]
    cfg = dataclasses.replace(CFG, events_per_spill=2000)
    ratios = []
    for spill in range(3, 8):
        s, ref = simulate_spill(cfg, spill, drift), simulate_spill(cfg, spill)
        ratios.append(s.columns["p_ms2"].mean() / ref.columns["p_ms2"].mean())
    assert ratios == pytest.approx([1 + 0.002 * k for k in range(5)], rel=1e-5)
    assert simulate_spill(cfg, 2, drift).anomalies == []


def test_pik_boost_multiplies_hadrons():
    base = clean(5, pik_fraction=1e-3).truth["category"] == PIK
    boosted = with_anomaly("pik_boost@5:factor=5", pik_fraction=1e-3).truth["category"] == PIK
    expected = 5e-3 * boosted.size
    assert abs(boosted.sum() - expected) < 5 * np.sqrt(expected)
    assert boosted.sum() > 2 * base.sum()


@pytest.mark.parametrize(
    "source,columns",
    [("MS2", ("p_ms2", "ms2_x", "ms2_y")), ("ECAL", ("ecal",)), ("BMS", ("p_bms",))],
)
def test_missing_source_clears_bit_for_the_right_fraction(source, columns):
    s = with_anomaly(f"missing_source@5:source={source},fraction=0.3")
    bit = 1 << DAQ_SOURCES.index(source)
    lost = (s.columns["daq_sources"] & bit) == 0
    assert lost.mean() == pytest.approx(0.3, abs=0.02)
    assert np.all(s.columns["time_in_spill_s"][lost] >= 0.7 * CFG.spill_length_s)
    assert np.all(s.columns["daq_sources"][lost] == (2 ** len(DAQ_SOURCES) - 1) ^ bit)
    for name in columns:
        assert np.all(s.columns[name][lost] == 0) and np.any(s.columns[name][~lost] != 0)
    for b in s.batches():
        decode_batch(b, validate=True)


def test_stale_spills_are_skipped():
    stale = [parse_anomaly("stale@3-4")]
    cfg = dataclasses.replace(CFG, n_spills=5, events_per_spill=1000)
    assert simulate_spill(cfg, 3, stale) is None
    run = list(simulate_run(cfg, stale))
    assert [s.spill for s in run] == [1, 2, 5]
    assert run[-1].start_offset_s == pytest.approx(4 * CFG.spill_period_s)


# --------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    "text,first,last",
    [
        ("dead_cell@5:detector=ecal,cell=1/2/3", 5, 5),
        ("beam_shift@10-14:dx_mm=3", 10, 14),
        ("pik_boost@7-:factor=5", 7, None),
        ("stale", 0, None),
    ],
)
def test_parse_examples_and_round_trip(text, first, last):
    a = parse_anomaly(text)
    assert (a.first_spill, a.last_spill) == (first, last)
    assert parse_anomaly(str(a)) == a
    assert a.kind in a.describe()


def test_parse_fills_defaults_and_converts():
    a = parse_anomaly("dead_cell@5:detector=ecal,cell=1/2/3")
    assert a.params == {"detector": "ecal", "cell": (1, 2, 3)}
    assert parse_anomaly("beam_shift@1").params == {"dx_mm": 3.0, "dy_mm": 0.0}
    assert parse_anomaly("dead_cell@1:detector=hcal").params["cell"] == (0, 1, 1)
    assert "spills 10-14" in parse_anomaly("beam_shift@10-14").describe()
    assert Anomaly("hcal_gain_drop", 2, 3, {"factor": "0.5"}).params == {"module": 0, "factor": 0.5}


@pytest.mark.parametrize(
    "text,needle",
    [
        ("dead_cel@5", "did you mean 'dead_cell'"),
        ("beam_shfit@5", "did you mean 'beam_shift'"),
        ("beam_shift@5:dx=3", "did you mean 'dx_mm'"),
        ("beam_shift@5:dx_mm=three", "dx_mm of type float"),
        ("beam_shift@5:dx_mm", "key=value"),
        ("beam_shift@x-3", "spill range"),
        ("beam_shift@9-3", "spill range"),
        ("dead_cell@5:detector=ecal,cell=1/2/9", "cell of ecal as 0..1/0..5/0..5"),
        ("dead_cell@5:detector=ecal,cell=1/2", "cell of ecal"),
        ("dead_cell@5:detector=tracker", "detector one of ecal"),
        ("missing_source@5:source=RICH", "source one of BMS"),
        ("missing_source@5:fraction=1.5", "fraction in [0, 1]"),
        ("hcal_gain_drop@5:module=7", "module 0..3"),
    ],
)
def test_parser_errors_are_clear(text, needle):
    with pytest.raises(ConfigError) as err:
        parse_anomaly(text)
    assert err.value.setting == "--anomaly" and err.value.value == text
    assert needle in str(err.value)


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ConfigError, match="valid kinds: dead_cell, hot_cell"):
        parse_anomaly("zzz@1")


# --------------------------------------------------------------------------- config


def test_sim_config_documents_every_field_and_rejects_nonsense():
    docs = SimConfig.docs()
    assert all(doc for _, doc in docs.values()) and docs["p_beam_gev"][0] == 160.0
    nonsense = (
        {"pik_fraction": 2.0},
        {"batch_size": 0},
        {"spill_length_s": 100.0},
        {"ms2_resolution": -1.0},
        {"ms1_z_m": (1.0, 2.0)},
        {"p_beam_gev": float("nan")},
    )
    for bad in nonsense:
        with pytest.raises(ConfigError):
            SimConfig(**bad)
    cfg = CFG.with_overrides({"events_per_spill": "5000", "beam_x_mm": "-2.5", "ms2_z_m": "20/24"})
    assert (cfg.events_per_spill, cfg.beam_x_mm, cfg.ms2_z_m) == (5000, -2.5, (20.0, 24.0))
    with pytest.raises(ConfigError, match="did you mean 'beam_x_mm'"):
        CFG.with_overrides({"beam_x": "1"})


# --------------------------------------------------------------------------- replay file


@pytest.fixture(scope="module")
def small_run():
    cfg = dataclasses.replace(CFG, n_spills=3, events_per_spill=1200, batch_size=500)
    return list(simulate_run(cfg, [parse_anomaly("stale@2")]))


def test_replay_file_round_trip(tmp_path, small_run):
    path = tmp_path / "run.n64r"
    summary = write_spill_file(path, small_run)
    assert (summary.n_spills, summary.n_events) == (2, sum(s.n_events for s in small_run))
    back = list(read_spill_file(path))
    expected = [(s.run, s.spill, s.n_events) for s in small_run]
    assert [(r.run, r.spill, r.n_events) for r in back] == expected
    assert [r.batches for r in back] == [tuple(s.batches()) for s in small_run]
    assert [r.start_offset_s for r in back] == [0.0, 2 * CFG.spill_period_s]
    assert verify_spill_file(path).n_batches == summary.n_batches


def test_replay_file_damage_names_the_offset(tmp_path, small_run):
    path = tmp_path / "run.n64r"
    write_spill_file(path, small_run)
    data = path.read_bytes()
    (tmp_path / "cut.n64r").write_bytes(data[: len(data) // 2])
    with pytest.raises(BatchError, match="offset") as err:
        verify_spill_file(tmp_path / "cut.n64r")
    assert err.value.reason == "truncated"
    flipped = bytearray(data)
    flipped[100] ^= 0xFF
    (tmp_path / "flip.n64r").write_bytes(bytes(flipped))
    with pytest.raises(BatchError, match=r"CRC mismatch in the frame \(byte offset 8\)"):
        verify_spill_file(tmp_path / "flip.n64r")
    (tmp_path / "noend.n64r").write_bytes(data[:-13])
    with pytest.raises(BatchError, match="without its end frame"):
        verify_spill_file(tmp_path / "noend.n64r")
    (tmp_path / "magic.n64r").write_bytes(b"XXXX" + data[4:])
    with pytest.raises(BatchError, match="bad-magic"):
        list(read_spill_file(tmp_path / "magic.n64r"))


@pytest.mark.parametrize(
    "window,expected",
    [
        ("start_s=1.2,end_s=2.4", lambda t, n: (t >= 1.2) & (t < 2.4)),
        ("start_s=3.6", lambda t, n: t >= 3.6),
        ("end_s=0.5", lambda t, n: t < 0.5),
        (
            "from_fraction=0.25,to_fraction=0.5",
            lambda t, n: (np.arange(n) >= n / 4) & (np.arange(n) < n / 2),
        ),
        ("to_fraction=0.1", lambda t, n: np.arange(n) < n / 10),
        ("", lambda t, n: t >= 0.5 * CFG.spill_length_s),
    ],
)
def test_missing_source_for_any_window_of_the_spill(window, expected):
    # Given the MS1 absent for a window given in seconds or as a share of the events
    text = "missing_source@5:source=MS1" + (f",{window}" if window else "")
    s = with_anomaly(text)
    t = s.columns["time_in_spill_s"]
    lost = (s.columns["daq_sources"] & (1 << DAQ_SOURCES.index("MS1"))) == 0
    # Then exactly the events of that window lost the source and its columns
    assert np.all(np.diff(t) >= 0), "events come in time order"
    np.testing.assert_array_equal(lost, expected(t, len(t)))
    assert 0 < lost.sum() < len(t)
    assert np.all(s.columns["ms1_x"][lost] == 0) and np.all(s.columns["ms1_y"][lost] == 0)
    assert str(parse_anomaly(text)) == text  # the compact form round-trips, unset params left out


@pytest.mark.parametrize(
    "text,needed",
    [
        ("missing_source:source=MS1,fraction=0.3,start_s=1", "one window"),
        ("missing_source:source=MS1,start_s=2,end_s=1", "0 <= start_s < end_s"),
        ("missing_source:source=MS1,start_s=-1", "0 <= start_s < end_s"),
        (
            "missing_source:source=MS1,from_fraction=0.5,to_fraction=0.5",
            "from_fraction < to_fraction",
        ),
        ("missing_source:source=MS1,to_fraction=2", "to_fraction in [0, 1]"),
        ("missing_source:source=MS1,start_s=soon", "start_s of type float"),
    ],
)
def test_missing_source_windows_are_checked(text, needed):
    with pytest.raises(ConfigError) as info:
        parse_anomaly(text)
    assert needed in str(info.value)
