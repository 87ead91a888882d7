"""The learned detector beside the rules on simulated spills (``dqm validate --learned``).

Given models trained on a small clean run, when a beam whose x and y become correlated at
MS1 (``beam_tilt``: centroids and widths unchanged) is judged, then no rule flags it and the
beam model does; the clean spills raise neither. Small sizes (4 000 events, 31 training
spills) keep it to seconds; the full figures are in docs/learned.md.
"""

from __future__ import annotations

from dqm.cli import main
from dqm.sim.learned_study import learned_markdown, learned_study, matrix_scenarios
from dqm.sim.matrix import MATRIX
from dqm.sim.scenarios import NOMINAL_BEAM, Measure
from dqm.sim.validate_report import BEGIN, END


def test_beam_tilt_is_missed_by_the_rules_and_caught_by_the_model(specs):
    study = learned_study(
        specs,
        events_per_spill=4000,
        train_spills=31,
        clean_spills=3,
        anomaly_spills=2,
        kinds=("beam_tilt:rho=0.8",),
    )
    clean, tilt = study.rows
    assert clean.spills == 3 and clean.model == 0
    assert tilt.spills == 2 and tilt.rules == 0, tilt.rule_checks
    assert tilt.model == 2 and tilt.model_subsystems["beam"] == 2
    assert "| beam_tilt:rho=0.8 | 2 | 0 % | 100 % |" in learned_markdown(study)
    assert study.score_ms and "scoring a spill" in study.cost()


def test_an_hv_group_a_few_percent_low_is_missed_by_the_rules_and_caught_by_the_model(specs):
    # Given models trained on a small clean run (nominal statistics: a cell's mean response
    # per hit is then known to about 0.5 %)
    # When the preshower column x = 3 (one HV group) loses 4 % of gain: each cell inside the
    # cell_gain rule's ±5 %, the ECAL total moved by a fraction of its bin
    study = learned_study(
        specs,
        events_per_spill=20_000,
        train_spills=33,
        clean_spills=3,
        anomaly_spills=2,
        kinds=(("ECAL preshower HV group", "hv_group:layer=0,ix=3,factor=0.96"),),
    )
    clean, group = study.rows
    # Then no rule flags it and the calorimeter model does, through its response map
    assert clean.model == 0 and clean.spills == 3
    assert group.rules == 0, group.rule_checks
    assert group.model == 2 and group.model_subsystems["calorimeter"] == 2
    table = learned_markdown(study)
    assert (
        "| ECAL preshower HV group (`hv_group:layer=0,ix=3,factor=0.96`) | 2 | 0 % | 100 % |"
        in table
    )
    assert "Missed by the rules, caught by the model: ECAL preshower HV group." in table


def test_the_table_covers_the_matrix_rows_at_the_nominal_beam():
    # Given the validation matrix, when its scenarios for the learned table are listed
    scenarios = dict(matrix_scenarios())
    detect = [row for row in MATRIX if row.measure == Measure.DETECT]
    # Then every one-spill detection row at the nominal beam is there with its anomaly ...
    for row in detect:
        nominal = row.beam == NOMINAL_BEAM and not row.needs and row.reference is None
        assert (row.label in scenarios) == nominal, row.label
        if nominal:
            assert scenarios[row.label] == row.anomaly
    # ... then the kinds only the model sees (and π/K ×5 as one spill), the quick ones a subset
    assert {"beam_tilt:rho=0.3", "hv_group:layer=0,ix=3,factor=0.96"} <= set(scenarios.values())
    quick = dict(matrix_scenarios(quick=True))
    assert set(quick) < set(scenarios) and "beam x shift 3 mm" in quick


def test_validate_learned_writes_one_table_between_the_markers(specs, tmp_path, capsys):
    # Given a page with the generated-block markers
    page = tmp_path / "learned.md"
    page.write_text(f"# Page\n\n{BEGIN}\nold\n{END}\n\nprose after\n", encoding="utf-8")
    # When `dqm validate --learned` runs one matrix row at small sizes
    code = main(
        [
            "validate",
            "--learned",
            "--quick",
            "--quiet",
            "--only",
            "beam x shift",
            "--spills",
            "3",
            "--events-per-spill",
            "4000",
            "--markdown",
            str(page),
        ]
    )
    # Then the table (clean row, that row) replaces the old block, with its command and load
    assert code == 0
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and text.endswith("prose after\n")
    assert "Made with `dqm validate --quick --only 'beam x shift' --spills 3" in text
    assert "load average" in text and "| clean spills | 3 |" in text
    assert "| beam x shift 3 mm (`beam_shift:dx_mm=3`) | 4 |" in text
    assert "Missed by the rules, caught by the model:" in text
    assert text.count("| scenario |") == 1 and "Made with" in capsys.readouterr().out
