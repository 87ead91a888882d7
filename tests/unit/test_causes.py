"""Cause rules and the DAQ sources of histograms: loaded, validated (file, line, entry, key),
and applied to a spill's judgements so that one cause makes one incident.

The grouping tests build judgements by hand (no simulation): they pin the precedence and
attribution rules of :mod:`dqm.core.incidents` one at a time. The detector scenarios (each
source absent, beam moves) are in ``test_cause_scenarios.py``.
"""

from __future__ import annotations

import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest

from dqm.checks import CheckResult, Quality
from dqm.core.causes import percent
from dqm.core.evaluate import Judgement, Verdict
from dqm.core.incidents import find_incidents
from dqm.core.specs import load_specs
from dqm.errors import SpecError

SHIPPED = Path(__file__).resolve().parents[2] / "histograms"


def specs_with(tmp_path: Path, causes: str | None, extra: str = ""):
    """The shipped histograms with ``causes`` as the cause rules (and ``extra`` histograms)."""
    folder = tmp_path / "specs"
    folder.mkdir(parents=True)
    for toml in SHIPPED.glob("*.toml"):
        if toml.name != "causes.toml":
            shutil.copy(toml, folder / toml.name)
    if causes is not None:
        (folder / "causes.toml").write_text(textwrap.dedent(causes).lstrip("\n"))
    if extra:
        (folder / "zz_extra.toml").write_text(textwrap.dedent(extra).lstrip("\n"))
    return folder


def error_of(folder: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_specs(folder)
    return info.value


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


# --------------------------------------------------------------------------- the shipped rules


def test_shipped_rules_load_most_fundamental_first(specs):
    names = [r.name for r in specs.causes]
    assert names[0] == "daq_source_absent", "a missing source explains the rest: it comes first"
    assert {"beam_position", "beam_width", "pik_excess"} <= set(names)
    daq = specs.causes[0]
    assert daq.subsystem == "daq" and daq.for_each == "source" and daq.each == "incomplete"
    assert daq.cause_id("MS1") == "daq_source_absent:MS1"


def test_every_shipped_histogram_declares_its_sources_explicitly():
    for toml in SHIPPED.glob("*.toml"):
        histograms = tomllib.loads(toml.read_text()).get("histogram", [])
        assert all("requires" in h for h in histograms), toml.name


def test_requires_is_derived_when_absent_and_checked_when_given(tmp_path):
    folder = specs_with(
        tmp_path,
        None,
        """
        [[histogram]]
        name = "dp_derived"
        subsystem = "momentum"
        kind = "h1"
        x = { expr = "dp", bins = 10, lo = -10, hi = 10 }

        [[histogram]]
        name = "dp_with_trigger"
        subsystem = "momentum"
        kind = "h1"
        requires = ["TRIGGER", "MS2", "BMS"]
        x = { expr = "dp", bins = 10, lo = -10, hi = 10 }
        selection = "energy_balance > 0"
        """,
    )
    with pytest.raises(SpecError) as info:
        load_specs(folder)
    # the selection reads the calorimeters too: an explicit list must name them
    err = info.value
    assert (err.entry, err.key) == ("dp_with_trigger", "requires")
    assert "reads ECAL" in str(err) and "zeros" in str(err)
    assert err.line == line_of(folder / "zz_extra.toml", 'requires = ["TRIGGER"')
    # fixed: sources in the DAQ's order, extra ones kept; derived ones from the expression
    path = folder / "zz_extra.toml"
    path.write_text(
        path.read_text().replace(
            '"TRIGGER", "MS2", "BMS"', '"TRIGGER", "MS2", "BMS", "HCAL", "ECAL"'
        )
    )
    specs = load_specs(folder)
    assert specs["dp_derived"].requires == ("BMS", "MS2")
    assert specs["dp_with_trigger"].requires == ("BMS", "MS2", "ECAL", "HCAL", "TRIGGER")
    assert specs["time_in_spill"].requires == () and specs["time_in_spill"].source_bits == 0


@pytest.mark.parametrize(
    "requires,message",
    [
        ('["MS3"]', "unknown DAQ source 'MS3' (did you mean 'MS2'?)"),
        ('["ms1"]', "unknown DAQ source 'ms1' (did you mean 'MS1'?)"),
        ('"MS1"', "expected a list of DAQ sources"),
        ('["MS1", "MS1"]', "listed twice"),
    ],
)
def test_a_bad_requires_names_line_and_key(tmp_path, requires, message):
    folder = specs_with(
        tmp_path,
        None,
        f"""
        [[histogram]]
        name = "x_at_ms1"
        subsystem = "beam"
        kind = "h1"
        requires = {requires}
        x = {{ expr = "ms1_x[0]", bins = 10, lo = -10, hi = 10 }}
        """,
    )
    err = error_of(folder)
    assert message in str(err)
    assert (err.entry, err.key) == ("x_at_ms1", "requires")
    assert err.line == line_of(folder / "zz_extra.toml", "requires =")
    assert "histogram 'x_at_ms1'" in str(err)


def test_a_check_declares_the_sources_its_inputs_need_beyond_its_histogram(tmp_path):
    # p_scale on p_MS2 reads the passing-muon mean, cut relative to each event's p_BMS
    specs = load_specs(SHIPPED)
    assert specs["p_ms2"].requires == ("MS2",)
    assert specs["p_ms2"].judged_by("p_scale").requires == ("BMS", "MS2")
    assert specs["p_ms2"].judged_by("ks").requires == ("MS2",)
    # and a check's requires is validated like a histogram's
    folder = specs_with(
        tmp_path,
        None,
        """
        [[histogram]]
        name = "x_at_ms1"
        subsystem = "beam"
        kind = "h1"
        x = { expr = "ms1_x[0]", bins = 10, lo = -10, hi = 10 }

        [[histogram.check]]
        type = "empty"
        requires = ["BSM"]
        """,
    )
    err = error_of(folder)
    assert "unknown DAQ source 'BSM' (did you mean 'BMS'?)" in str(err)
    assert err.key == "requires"


# --------------------------------------------------------------------------- bad rules

GOOD_RULE = """
[[cause]]
name = "beam_moved"
subsystem = "beam"
established_by = { histogram = "beam_xy_ms1_0", check = "beam_centroid" }
explains = [{ subsystem = "calorimeter", kind = "cellmap" }]
explanation = "beam moved: {explanation}"
"""


def test_a_good_rule_loads(tmp_path):
    specs = load_specs(specs_with(tmp_path, GOOD_RULE))
    (rule,) = specs.causes
    assert rule.name == "beam_moved" and rule.instruction == "" and rule.line == 2


@pytest.mark.parametrize(
    "old,new,key,message",
    [
        ("explains = [", "explain = [", "explain", "did you mean 'explains'?"),
        ('subsystem = "beam"', 'subsystem = "beams"', "subsystem", "subsystem must be one of"),
        (
            'histogram = "beam_xy_ms1_0"',
            'histogram = "beam_xy_ms1_00"',
            "histogram",
            "unknown histogram 'beam_xy_ms1_00' (did you mean 'beam_xy_ms1_0'?)",
        ),
        (
            'check = "beam_centroid"',
            'check = "beam_centroids"',
            "check",
            "unknown check 'beam_centroids' (did you mean 'beam_centroid'?)",
        ),
        (
            'check = "beam_centroid"',
            'check = "chi2"',
            "established_by",
            "established_by matches no check of any histogram",
        ),
        (
            'kind = "cellmap"',
            'kind = "cellmaps"',
            "kind",
            "unknown kind 'cellmaps' (did you mean 'cellmap'?)",
        ),
        (  # no momentum histogram is a cell map (the calorimeter's h2 has a learned check now)
            'subsystem = "calorimeter", kind = "cellmap"',
            'subsystem = "momentum", kind = "cellmap"',
            "explains",
            "explains[0] matches no check",
        ),
        ('kind = "cellmap"', 'colour = "red"', "colour", "unknown key in explains[0]"),
        (
            'subsystem = "calorimeter", kind = "cellmap"',
            'requires = "{source}"',
            "requires",
            "unknown requires '{source}'",
        ),
        ("{explanation}", "{explanation", "explanation", "not a valid template"),
        ("{explanation}", "{explanation.__class__}", "explanation", "use plain names"),
        (
            'explains = [{ subsystem = "calorimeter", kind = "cellmap" }]',
            'explains = "calorimeter"',
            "explains",
            "expected list",
        ),
    ],
)
def test_a_bad_rule_names_its_line_and_key(tmp_path, old, new, key, message):
    # Given the good rule with one mistake
    assert old in GOOD_RULE
    text = GOOD_RULE.replace(old, new, 1)
    folder = specs_with(tmp_path, text)
    # When it is loaded, then the error names the cause, the key and the key's line
    err = error_of(folder)
    assert message in str(err), str(err)
    assert (err.entry, err.key) == ("beam_moved", key), str(err)
    assert err.path == str(folder / "causes.toml")
    assert "cause 'beam_moved'" in str(err)  # named as a cause, not as a histogram
    changed = next(i for i, line in enumerate(text.lstrip("\n").splitlines(), 1) if new in line)
    assert err.line == changed, str(err)


def test_for_each_needs_the_details_key_listing_its_instances(tmp_path):
    rule = """
    [[cause]]
    name = "source_gone"
    subsystem = "daq"
    for_each = "source"
    established_by = { histogram = "daq_source_presence", check = "daq_completeness" }
    explains = [{ requires = "{source}" }]
    """
    err = error_of(specs_with(tmp_path, rule))
    assert (err.entry, err.key) == ("source_gone", "for_each") and "each =" in str(err)
    fixed = rule.replace('check = "daq_completeness"', 'check = "daq_completeness", each = "x"')
    err = error_of(specs_with(tmp_path / "b", fixed.replace('"source"', '"module"')))
    assert (err.key, err.line) == ("for_each", 4) and "for_each must be one of source" in str(err)


def test_duplicate_cause_names_are_refused(tmp_path):
    err = error_of(specs_with(tmp_path, GOOD_RULE + GOOD_RULE))
    assert (err.entry, err.key) == ("beam_moved", "name") and "duplicate" in str(err)


# --------------------------------------------------------------------------- grouping


def judgement(
    subsystem: str,
    histogram: str | None,
    check: str,
    quality: Quality,
    explanation: str = "",
    **details,
) -> Judgement:
    result = CheckResult(quality, 1.0, {}, explanation or f"{histogram}/{check}", details, check)
    return Judgement(subsystem, histogram, check, result, f"call the {subsystem} expert")


def daq(quality: Quality, *absent: str) -> Judgement:
    return judgement(
        "daq",
        "daq_source_presence",
        "daq_completeness",
        quality,
        incomplete=list(absent),
        absent={s: 0.5 for s in absent},
    )


G, N, W, B = Quality.GOOD, Quality.NO_DATA, Quality.WARNING, Quality.BAD


def test_a_tile_good_on_what_it_could_judge_follows_from_the_missing_source(specs):
    # Given the BMS absent for a whole spill: the momentum checks that need it judge nothing,
    # the one on p_MS2 alone is GOOD
    js = [
        daq(B, "BMS"),
        judgement("momentum", "p_bms", "p_scale", N, n_judged=0),
        judgement("momentum", "p_ms2", "ks", G),
        judgement("beam", "time_in_spill", "intensity", G),
    ]
    marked, incidents = find_incidents(js, specs)
    (incident,) = incidents
    verdict = Verdict(marked, incidents)
    # Then the momentum tile stays GOOD but follows from the DAQ incident, naming what it
    # could not judge; a tile with nothing left unjudged (beam) does not
    assert verdict.subsystems["momentum"] == G
    assert verdict.follows_from("momentum") is incident
    assert verdict.unjudged_by("momentum", incident).histogram == "p_bms"
    assert verdict.follows_from("beam") is None
    # and with the BMS present nothing follows
    fine, none = find_incidents([daq(G), *js[1:]], specs)
    assert none == [] and Verdict(fine, none).follows_from("momentum") is None


def test_a_missing_source_explains_every_flag_of_histograms_that_need_it(specs):
    js = [
        daq(B, "MS1"),
        judgement("beam", "beam_x_ms1_2", "max_pull", B),
        judgement("beam", "beam_xy_ms1_0", "beam_centroid", N, n_judged=0),  # nothing to judge
        judgement("beam", "time_in_spill", "intensity", G),
        judgement("momentum", "p_bms", "ks", N),  # waiting for a reference: nobody's doing
    ]
    marked, incidents = find_incidents(js, specs)
    (incident,) = incidents
    assert incident.cause == "daq_source_absent:MS1" and incident.subsystem == "daq"
    assert incident.explanation == "MS1 absent in 50 % of events"
    assert incident.instruction.startswith("DAQ source MS1 missing from events")
    assert incident.title == "DAQ source MS1 absent"
    assert [j.check for j in incident.flags] == ["daq_completeness"]
    assert [j.check for j in incident.consequences] == ["max_pull", "beam_centroid"]
    assert [j.cause for j in marked] == ["daq_source_absent:MS1"] * 3 + [None, None]
    verdict = Verdict(marked, incidents)
    assert verdict.follows_from("beam") is incident
    assert verdict.follows_from("daq") is None and verdict.follows_from("momentum") is None


def test_an_unexplained_flag_in_the_consequence_tile_keeps_it_its_own(specs):
    js = [
        daq(B, "MS1"),
        judgement("beam", "beam_x_ms1_2", "max_pull", B),
        judgement("beam", "time_in_spill", "intensity", W),  # nothing to do with MS1
    ]
    marked, incidents = find_incidents(js, specs)
    assert [i.cause for i in incidents] == ["daq_source_absent:MS1", "time_in_spill/intensity"]
    assert Verdict(marked, incidents).follows_from("beam") is None  # the shifter must act on it


def test_one_flag_listing_two_sources_makes_two_incidents(specs):
    js = [daq(B, "MS1", "HCAL"), judgement("calorimeter", "hcal_total", "chi2", B)]
    marked, incidents = find_incidents(js, specs)
    assert sorted(i.cause for i in incidents) == [
        "daq_source_absent:HCAL",
        "daq_source_absent:MS1",
    ]
    hcal = next(i for i in incidents if i.cause.endswith("HCAL"))
    assert [j.histogram for j in hcal.consequences] == ["hcal_total"]
    assert all(i.flags[0].check == "daq_completeness" for i in incidents)
    assert marked[0].cause == "daq_source_absent:MS1"  # the first rule instance names it


def test_a_cause_established_by_consequences_of_an_earlier_one_is_not_its_own(tmp_path):
    # a (hypothetical) rule whose only establishing flag needs MS1: an MS1 outage explains it
    rules = (SHIPPED / "causes.toml").read_text() + textwrap.dedent(
        """
        [[cause]]
        name = "beam_profile"
        subsystem = "beam"
        established_by = { histogram = "beam_x_ms1_2", check = "beam_profile" }
        explains = [{ subsystem = "calorimeter", kind = "cellmap" }]
        """
    )
    specs = load_specs(specs_with(tmp_path, rules))
    js = [
        daq(B, "MS1"),
        judgement("beam", "beam_x_ms1_2", "beam_profile", B),
        # a dead cell: no shipped rule is established by it (a hot one is a cause itself)
        judgement("calorimeter", "ecal_occupancy", "dead_channels", B),
    ]
    _, incidents = find_incidents(js, specs)
    # the MS1 outage explains the beam flag, so beam_profile is not a cause of its own this
    # spill, and the ECAL flag (which needs ECAL, not MS1) is an incident of its own
    assert [i.cause for i in incidents] == [
        "daq_source_absent:MS1",
        "ecal_occupancy/dead_channels",
    ]
    # without the MS1 outage the same beam flag is a cause of its own
    _, incidents = find_incidents(js[1:], specs)
    assert [i.cause for i in incidents] == ["beam_profile"]
    assert [j.histogram for j in incidents[0].consequences] == ["ecal_occupancy"]


def test_a_beam_move_explains_calorimeter_cells_not_their_energy(specs):
    js = [
        judgement("beam", "beam_xy_ms1_0", "beam_centroid", W, "beam x 1.2 mm off"),
        judgement("calorimeter", "ecal_occupancy", "hot_channels", B),
        judgement("calorimeter", "ecal_total", "chi2", W),
    ]
    marked, incidents = find_incidents(js, specs)
    beam, calo = incidents
    assert beam.cause == "beam_position" and beam.quality == B  # worst of what it explains
    assert beam.explanation == "beam moved: beam x 1.2 mm off"
    assert [j.histogram for j in beam.consequences] == ["ecal_occupancy"]
    assert calo.cause == "ecal_total/chi2" and calo.subsystem == "calorimeter"
    assert Verdict(marked, incidents).follows_from("calorimeter") is None


def test_a_hot_calorimeter_cell_explains_the_pik_flag_unless_the_beam_moved_it(specs):
    hot = judgement("calorimeter", "ecal_occupancy", "hot_channels", B, "ECAL cell (4,1) hot")
    pik = judgement("pik", "hadron_tag", "pik_cusum", B, "π/K ×2")
    marked, incidents = find_incidents([hot, pik], specs)
    (incident,) = incidents
    assert incident.cause == "hot_calorimeter_cell" and incident.subsystem == "calorimeter"
    assert incident.explanation == "hot cell: ECAL cell (4,1) hot"
    assert [j.check for j in incident.consequences] == ["pik_cusum"]
    assert Verdict(marked, incidents).follows_from("pik") is incident
    # a beam move that makes a cell look hot is the root: the hot cell is its consequence,
    # and the π/K flag (which the beam rule does not explain) is π/K's own incident
    move = judgement("beam", "beam_xy_ms1_0", "beam_centroid", B, "beam x 3 mm off")
    _, incidents = find_incidents([move, hot, pik], specs)
    assert [i.cause for i in incidents] == ["beam_position", "pik_excess"]


def test_residual_flags_make_one_incident_per_subsystem_named_by_the_worst(specs):
    js = [
        judgement("calorimeter", "ecal_occupancy", "dead_channels", W),
        judgement("calorimeter", "hcal_module_energy", "channel_means", B),
        judgement("calorimeter", "hcal_total", "chi2", B),
        judgement("daq", None, "spill_complete", B),
        judgement("momentum", "p_bms", "ks", G),
    ]
    marked, incidents = find_incidents(js, specs)
    assert [(i.cause, i.quality) for i in incidents] == [
        ("hcal_module_energy/channel_means", B),
        ("daq/spill_complete", B),
    ]
    assert [j.histogram for j in incidents[0].flags] == [
        "hcal_module_energy",
        "hcal_total",
        "ecal_occupancy",
    ]
    assert incidents[0].instruction == "call the calorimeter expert"
    assert [j.cause for j in marked][-1] is None


def test_no_rules_no_grouping_beyond_the_tiles(tmp_path):
    specs = load_specs(specs_with(tmp_path, None))
    assert specs.causes == ()
    js = [daq(B, "MS1"), judgement("beam", "beam_x_ms1_2", "max_pull", B)]
    _, incidents = find_incidents(js, specs)
    assert [i.cause for i in incidents] == [
        "beam_x_ms1_2/max_pull",
        "daq_source_presence/daq_completeness",
    ]


def test_a_template_field_missing_at_run_time_falls_back_to_the_flag(specs):
    js = [
        judgement(
            "daq", "daq_source_presence", "daq_completeness", B, "DAQ 0.5", incomplete=["MS2"]
        )
    ]  # no "absent" details: the template cannot be filled
    _, (incident,) = find_incidents(js, specs)
    assert incident.cause == "daq_source_absent:MS2" and incident.explanation == "DAQ 0.5"


@pytest.mark.parametrize(
    "fraction,text",
    [(0.497, "50 %"), (1.0, "100 %"), (0.9996, "99.9 %"), (0.055, "5.5 %"), (0.0004, "0.04 %")],
)
def test_percent_never_rounds_to_all_or_nothing(fraction, text):
    assert percent(fraction) == text
