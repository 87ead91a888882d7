"""The learned detector beside the rules on simulated spills (``dqm validate --learned``).

Given models trained on a small clean run, when a beam whose x and y become correlated at
MS1 (``beam_tilt``: centroids and widths unchanged) is judged, then no rule flags it and the
beam model does; the clean spills raise neither. Small sizes (4 000 events, 31 training
spills) keep it to seconds; the full figures are in docs/learned.md.
"""

from __future__ import annotations

from dqm.sim.learned_study import learned_markdown, learned_study


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
