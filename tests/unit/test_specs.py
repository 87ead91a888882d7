"""Histogram specs: the shipped set loads; every mistake in a spec file is reported with its
file, line, entry and key (and the closest valid name); a new entry needs no Python."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dqm.core.fill import Filler
from dqm.core.specs import KINDS, SUBSYSTEMS, load_specs
from dqm.core.variables import BatchView
from dqm.errors import SpecError
from dqm.sim.simulate import SimConfig, simulate_spill

SHIPPED = Path(__file__).resolve().parents[2] / "histograms"

REQUIRED = (
    "ecal_occupancy",
    "hcal_module_energy",
    "ecal_vs_hcal",
    "beam_xy_ms1_0",
    "beam_xy_ms1_2",
    "p_bms",
    "p_ms2",
    "p_bms_vs_p_ms2",
    "dp",
    "p_ms2_low_tail",
    "hcal_total_hadron",
)

GOOD_ENTRY = """
[[histogram]]
name = "p_in"
title = "Incoming momentum"
kind = "h1"
x = { expr = "p_bms", bins = 100, lo = 0, hi = 200 }
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_containing(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def spec_error(directory: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_specs(directory)
    return info.value


def assert_points_at(
    err: SpecError, path: Path, line: int, entry: str | None, key: str | None
) -> None:
    msg = str(err)
    assert str(path) in msg, msg
    assert f"{path}:{line}" in msg, msg
    assert (err.path, err.line, err.entry, err.key) == (str(path), line, entry, key)
    if entry:
        assert f"'{entry}'" in msg, msg
    if key:
        assert f"key '{key}'" in msg, msg


# --------------------------------------------------------------------------- shipped specs


def test_shipped_specs_load(specs):
    # Given the histograms/ folder, when loaded, then it holds a full monitoring set
    assert len(specs) >= 30
    by_sub = specs.by_subsystem()
    assert set(SUBSYSTEMS) <= set(by_sub)
    for sub in SUBSYSTEMS:
        assert by_sub[sub], f"no histogram for subsystem {sub}"
    missing = [n for n in REQUIRED if n not in specs.names]
    assert not missing, missing
    assert len(set(specs.names)) == len(specs.names)
    assert {h.kind for h in specs} <= set(KINDS)


def test_shipped_specs_are_consistent(specs):
    # Then each histogram knows where it came from, and the version hashes the content
    for h in specs:
        assert h.path.endswith(".toml") and h.line and h.line >= 1, h.name
        assert h.title, h.name
    assert specs.version == load_specs(SHIPPED).version
    assert specs["p_ms2_low_tail"].selection is not None
    assert specs["hcal_total_hadron"].selection is not None
    assert specs["ecal_vs_hcal"].kind == "h2" and specs["hcal_module_energy"].kind == "channels"
    assert specs["ecal_occupancy"].kind == "cellmap"


def test_version_changes_with_content(tmp_path):
    a = write(tmp_path / "a", "momentum.toml", 'subsystem = "momentum"\n' + GOOD_ENTRY)
    v1 = load_specs(a.parent).version
    a.write_text(a.read_text().replace("bins = 100", "bins = 101"))
    assert load_specs(a.parent).version != v1


# --------------------------------------------------------------------------- bad spec files


def test_misspelled_axis_key_suggests_the_closest(tmp_path):
    # Given 'bnis' for 'bins' in the second entry's axis
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n'
        + GOOD_ENTRY
        + """
        [[histogram]]
        name = "p_out"
        kind = "h1"
        x = { expr = "p_ms2", bnis = 100, lo = 0, hi = 200 }
        """,
    )
    # When loaded, then the error names file:line, the entry, the key and suggests 'bins'
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "bnis"), "p_out", "bnis")
    assert "did you mean 'bins'?" in str(err)


def test_misspelled_entry_key_suggests_the_closest(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace("title =", "titel ="),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "titel"), "p_in", "titel")
    assert "did you mean 'title'?" in str(err)


def test_misspelled_file_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "momentum.toml", 'subsytem = "momentum"\n' + GOOD_ENTRY)
    err = spec_error(tmp_path)
    assert_points_at(err, path, 1, None, "subsytem")
    assert "did you mean 'subsystem'?" in str(err)


def test_unknown_kind_suggests_the_closest(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace('"h1"', '"chanels"'),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "chanels"), "p_in", "kind")
    assert "'chanels'" in str(err) and "did you mean 'channels'?" in str(err)


def test_unknown_kind_without_a_close_match_lists_the_kinds(tmp_path):
    path = write(
        tmp_path, "momentum.toml", 'subsystem = "momentum"\n' + GOOD_ENTRY.replace('"h1"', '"h3"')
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "h3"), "p_in", "kind")
    assert "'h3'" in str(err) and all(k in str(err) for k in KINDS)


def test_unknown_variable_suggests_the_closest_variable(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace('"p_bms"', '"p_bsm"'),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "p_bsm"), "p_in", "expr")
    assert "'p_bsm'" in str(err) and "did you mean 'p_bms'?" in str(err)


def test_unknown_variable_in_a_selection(tmp_path):
    path = write(
        tmp_path, "pik.toml", 'subsystem = "pik"\n' + GOOD_ENTRY + 'selection = "is_hadorn"\n'
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "is_hadorn"), "p_in", "selection")
    assert "did you mean 'is_hadron'?" in str(err)


def test_missing_required_key_points_at_its_own_entry(tmp_path):
    # Given three entries where only the middle one lacks 'bins' (its neighbours have it)
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n'
        + GOOD_ENTRY
        + """
        [[histogram]]
        name = "p_out"
        kind = "h1"
        x = { expr = "p_ms2", lo = 0, hi = 200 }
        """
        + GOOD_ENTRY.replace("p_in", "p_in_again"),
    )
    # When loaded, then the error points into the middle entry, not at a neighbour's 'bins'
    err = spec_error(tmp_path)
    assert err.entry == "p_out" and err.key == "bins"
    assert "required key is missing" in str(err)
    start, end = line_containing(path, '"p_out"'), line_containing(path, '"p_in_again"')
    assert start - 1 <= err.line < end, (err.line, start, end)
    assert f"{path}:{err.line}" in str(err)


def test_missing_kind(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace('kind = "h1"\n', ""),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, '"p_in"'), "p_in", "kind")
    assert "required key is missing" in str(err)


@pytest.mark.parametrize(
    "old, new, key, expected",
    [
        ("bins = 100", 'bins = "100"', "bins", "expected int"),
        ("bins = 100", "bins = 10.5", "bins", "expected int"),
        ('title = "Incoming momentum"', "title = 3", "title", "expected str"),
        ("lo = 0", 'lo = "zero"', "lo", "expected int or float"),
        ('kind = "h1"', 'kind = "h1"\ncontrol_room = "yes"', "control_room", "expected bool"),
        ('kind = "h1"', 'kind = "h1"\ncontrol_room = 1', "control_room", "expected bool"),
    ],
)
def test_wrong_type(tmp_path, old, new, key, expected):
    path = write(
        tmp_path, "momentum.toml", 'subsystem = "momentum"\n' + GOOD_ENTRY.replace(old, new)
    )
    err = spec_error(tmp_path)
    needle = new.splitlines()[-1]
    assert_points_at(err, path, line_containing(path, needle), "p_in", key)
    assert expected in str(err)


@pytest.mark.parametrize("lo, hi", [(200, 200), (200, 0)])
def test_hi_not_above_lo(tmp_path, lo, hi):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n'
        + GOOD_ENTRY.replace("lo = 0, hi = 200", f"lo = {lo}, hi = {hi}"),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, f"hi = {hi}"), "p_in", "hi")
    assert "must be greater than lo" in str(err)


def test_invalid_toml_names_the_line(tmp_path):
    # Given an unclosed inline table on line 6
    text = 'subsystem = "momentum"\n' + GOOD_ENTRY.replace("hi = 200 }", "hi = 200")
    path = write(tmp_path, "momentum.toml", text)
    bad_line = line_containing(path, "hi = 200")
    # When loaded, then "invalid TOML" with the file and that line
    err = spec_error(tmp_path)
    assert "invalid TOML" in str(err)
    assert err.path == str(path) and err.line == bad_line
    assert f"{path}:{bad_line}" in str(err)


def test_duplicate_names_across_files(tmp_path):
    # Given the same histogram name in two files
    first = write(tmp_path, "a_momentum.toml", 'subsystem = "momentum"\n' + GOOD_ENTRY)
    second = write(tmp_path, "b_beam.toml", 'subsystem = "beam"\n' + GOOD_ENTRY)
    # When loaded, then the second file's entry is named, and the first file too
    err = spec_error(tmp_path)
    assert_points_at(err, second, line_containing(second, '"p_in"'), "p_in", "name")
    assert "duplicate" in str(err) and str(first) in str(err)


def test_unknown_subsystem(tmp_path):
    path = write(tmp_path, "calo.toml", 'subsystem = "calorimetry"\n' + GOOD_ENTRY)
    err = spec_error(tmp_path)
    assert err.entry == "p_in" and err.key == "subsystem" and err.path == str(path)
    assert err.line == 1, "the file-level subsystem line is the one to fix"
    assert "'calorimetry'" in str(err) and "calorimeter" in str(err)


def test_unknown_subsystem_on_an_entry(tmp_path):
    path = write(
        tmp_path,
        "calo.toml",
        'subsystem = "calorimeter"\n' + GOOD_ENTRY + 'subsystem = "trigger"\n',
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, '"trigger"'), "p_in", "subsystem")


def test_bad_name(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace('"p_in"', '"P-in"'),
    )
    err = spec_error(tmp_path)
    assert err.key == "name" and err.path == str(path)
    assert "'P-in'" in str(err)


def test_unsupported_expression_syntax(tmp_path):
    path = write(
        tmp_path,
        "momentum.toml",
        'subsystem = "momentum"\n' + GOOD_ENTRY.replace('"p_bms"', '"__import__(1)"'),
    )
    err = spec_error(tmp_path)
    assert_points_at(err, path, line_containing(path, "__import__"), "p_in", "expr")
    assert "unsupported syntax" in str(err)


def test_empty_directory(tmp_path):
    with pytest.raises(SpecError, match="no \\*.toml"):
        load_specs(tmp_path)


# --------------------------------------------------------------------------- no Python needed


def test_new_entry_in_a_new_file_is_booked_and_filled(tmp_path):
    # Given a copy of the shipped specs plus a new file with a new histogram
    specs_dir = tmp_path / "histograms"
    shutil.copytree(SHIPPED, specs_dir)
    write(
        specs_dir,
        "extra.toml",
        """
        subsystem = "beam"

        [[histogram]]
        name = "beam_r_ms1_1"
        title = "Radial beam position at MS1 station 1 (muon-like events)"
        kind = "h1"
        x = { expr = "hypot(ms1_x[1], ms1_y[1])", bins = 50, lo = 0, hi = 50, label = "r [mm]" }
        selection = "~is_hadron & (p_ms2 > 100)"
        """,
    )
    specs = load_specs(specs_dir)
    assert specs["beam_r_ms1_1"].subsystem == "beam"
    # When a simulated spill is filled
    spill = simulate_spill(SimConfig(events_per_spill=3000, pik_fraction=0.05), 1)
    filler = Filler(specs)
    hists = filler.book()
    filler.fill(hists, BatchView(spill.columns))
    # Then the new histogram exists and holds exactly the directly computed values
    h = hists["beam_r_ms1_1"]
    c = spill.columns
    hcal_total = c["hcal"].sum(axis=(1, 2, 3), dtype=np.float32)
    ecal_total = c["ecal"].sum(axis=(1, 2, 3), dtype=np.float32)
    keep = ~((hcal_total > 30.0) & (ecal_total > 5.0)) & (c["p_ms2"] > 100)
    r = np.hypot(c["ms1_x"][keep, 1], c["ms1_y"][keep, 1])
    expected, _ = np.histogram(r[r < 50], bins=50, range=(0, 50))
    assert h.title.startswith("Radial") and h.axes[0].label == "r [mm]"
    np.testing.assert_array_equal(h.values(), expected)
    assert h.values(flow=True)[-1] == np.count_nonzero(r >= 50)
    assert 0 < keep.sum() < len(keep)
    assert len(hists) == len(load_specs(SHIPPED)) + 1
