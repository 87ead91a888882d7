"""Simulator features for the trend and cell studies: per-cell gain, beam ramps, beam wander."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dqm.errors import ConfigError
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.sim.wander import WANDER_FIELDS, wander_offsets

CFG = SimConfig(events_per_spill=4000, batch_size=4000)


def spill(s: int = 5, anomaly: str | None = None, **overrides) -> dict[str, np.ndarray]:
    cfg = dataclasses.replace(CFG, **overrides)
    data = simulate_spill(cfg, s, [parse_anomaly(anomaly)] if anomaly else [])
    assert data is not None
    return data.columns


@pytest.mark.parametrize(
    ("text", "column", "cell"),
    [
        ("cell_gain@5:detector=ecal,cell=1/3/2,factor=0.8", "ecal", (1, 3, 2)),
        ("cell_gain@5:detector=ecal,cell=0/2/3,factor=1.25", "ecal", (0, 2, 3)),
        ("cell_gain@5:detector=hcal,cell=2/1/0,factor=0.5", "hcal", (2, 1, 0)),
        ("cell_gain@5:detector=hcal,cell=3/1/1,factor=0.8", "hcal", (3, 1, 1)),
    ],
)
def test_cell_gain_scales_that_cell_only(text: str, column: str, cell: tuple[int, ...]) -> None:
    # Given the same spill with and without a per-cell gain change
    clean, changed = spill()[column], spill(anomaly=text)[column]
    factor = parse_anomaly(text).params["factor"]
    # Then that cell's energies are scaled by the factor …
    np.testing.assert_allclose(changed[(slice(None), *cell)], factor * clean[(slice(None), *cell)])
    # … and every other cell (its module's neighbours included) is bit-identical
    mask = np.ones(clean.shape[1:], dtype=bool)
    mask[cell] = False
    assert np.array_equal(changed[:, mask], clean[:, mask])


def test_cell_gain_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="cell of hcal as 0..3/0..2/0..2"):
        parse_anomaly("cell_gain:detector=hcal,cell=4/0/0")
    with pytest.raises(ConfigError, match="factor >= 0"):
        parse_anomaly("cell_gain:detector=ecal,cell=1/2/2,factor=-1")
    assert parse_anomaly("cell_gain:detector=hcal").params["cell"] == (0, 1, 1)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_beam_ramp_moves_the_centroid_linearly_from_its_first_spill(axis: str) -> None:
    other = "y" if axis == "x" else "x"
    ramp = f"beam_ramp@4-:axis={axis},rate_mm=0.5"
    for k, s in enumerate(range(3, 9)):
        moved, clean = spill(s, ramp), spill(s)
        shift = (moved[f"ms1_{axis}"] - clean[f"ms1_{axis}"]).mean(axis=0)
        expected = 0.5 * max(s - 4, 0)
        np.testing.assert_allclose(shift, expected, atol=1e-3, err_msg=f"spill {s}, step {k}")
        assert np.array_equal(moved[f"ms1_{other}"], clean[f"ms1_{other}"])


def test_beam_ramp_axis_is_validated() -> None:
    with pytest.raises(ConfigError, match="axis x or y"):
        parse_anomaly("beam_ramp:axis=z")
    assert str(parse_anomaly("beam_ramp@3-:axis=Y,rate_mm=1")) == "beam_ramp@3-:axis=y,rate_mm=1.0"


def test_wander_off_by_default_leaves_spills_bit_identical() -> None:
    plain = spill()
    explicit = spill(beam_wander_x_mm=0.0, intensity_wander_rel=0.0, beam_wander_correlation=0.5)
    for name, values in plain.items():
        assert np.array_equal(values, explicit[name]), name


def test_wander_is_deterministic_per_spill_and_moves_the_beam_within_its_sigma() -> None:
    # Given a wander of 0.4 mm in x, 0.3 mm in y, 2 % in the widths and 5 % in intensity
    wander = dict(
        beam_wander_x_mm=0.4,
        beam_wander_y_mm=0.3,
        beam_wander_width_rel=0.02,
        intensity_wander_rel=0.05,
        intensity_jitter=0.0,
    )
    cfg = dataclasses.replace(CFG, events_per_spill=2000, **wander)
    centroids, widths, sizes = [], [], []
    for s in range(300):
        data = simulate_spill(cfg, s)
        assert data is not None
        centroids.append(data.columns["ms1_x"][:, 0].mean())
        widths.append(data.columns["ms1_y"][:, 0].std())
        sizes.append(data.n_events)
    # Then the same spill is the same whatever else was generated …
    again = simulate_spill(cfg, 17)
    assert again is not None and again.n_events == sizes[17]
    # … and the spread across spills is the wander plus the statistical error of a mean
    stat_x = 15.0 / np.sqrt(2000)
    assert np.std(centroids) == pytest.approx(np.hypot(0.4, stat_x), rel=0.15)
    assert np.std(sizes) / 2000 == pytest.approx(0.05, rel=0.15)
    stat_w = 10.0 / np.sqrt(2 * 2000)
    assert np.std(widths) == pytest.approx(np.hypot(0.2, stat_w), rel=0.2)


def test_wander_correlation_between_consecutive_spills() -> None:
    for rho in (0.0, 0.8):
        u = np.array([wander_offsets(3, 7, s, rho) for s in range(3000)])
        assert u.shape == (3000, len(WANDER_FIELDS))
        assert u.std(axis=0) == pytest.approx(np.ones(len(WANDER_FIELDS)), abs=0.08)
        lag1 = [np.corrcoef(u[:-1, i], u[1:, i])[0, 1] for i in range(len(WANDER_FIELDS))]
        assert lag1 == pytest.approx([rho] * len(WANDER_FIELDS), abs=0.06)
    with pytest.raises(ConfigError):
        SimConfig(beam_wander_correlation=0.99)
    with pytest.raises(ConfigError):
        SimConfig(beam_wander_x_mm=-1.0)
