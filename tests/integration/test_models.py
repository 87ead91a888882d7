"""Learned models end to end on a real Redis and PostgreSQL (issue 14).

Given a run of clean spills judged by a real worker (the ``pca_score`` flags say NO_DATA:
no model yet), when ``dqm model train`` fits the models on its good spills, then they are
stored with their provenance (``dqm model list/show``), a later run with a hot ECAL cell is
flagged by the calorimeter's model naming the cell map and the cell, the flag records the
model's id and version, and ``recheck_run`` reproduces the flags — also after a newer
model version has become the active one.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dqm.checks import Quality
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Flag, ModelRow
from tests.helpers import publish, small_run
from tests.integration.test_flags import _cli, _drain

pytestmark = pytest.mark.integration

TRAIN_RUN, ANOMALY_RUN = 41, 42


def _flags(settings, run: int) -> list[Flag]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(
                session.scalars(
                    select(Flag).where(Flag.run == run, Flag.check == "pca_score").order_by(Flag.id)
                )
            )
    finally:
        engine.dispose()


def test_train_store_judge_and_recheck(settings, redis_client, specs, monkeypatch, capsys):
    # Given a clean run judged without a model
    clean = small_run(run=TRAIN_RUN, n_spills=36, events=4000)
    beam = clean[0].conditions.beam_config
    publish(redis_client, settings, clean)
    _drain(settings, specs)
    before = _flags(settings, TRAIN_RUN)
    assert before and {f.quality for f in before} == {int(Quality.NO_DATA)}
    assert "dqm model train --beam-config" in before[0].explanation

    # When the models are trained on its good spills
    code, out = _cli(
        monkeypatch, capsys, settings, "model", "train", "--beam-config", beam, "--user", "alice"
    )
    assert code == 0, out
    assert out.count("model ") >= 3 and "false alarms per spill" in out

    # Then they are stored as data with provenance, one active version per subsystem
    code, listed = _cli(monkeypatch, capsys, settings, "model", "list")
    assert code == 0 and "calorimeter" in listed and "alice" in listed
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        calo = session.scalars(select(ModelRow).where(ModelRow.subsystem == "calorimeter")).one()
        calo_id, n_train, n_holdout = calo.id, calo.n_train, calo.n_holdout
    engine.dispose()
    assert n_train + n_holdout <= 36 and n_holdout >= 10
    code, shown = _cli(monkeypatch, capsys, settings, "model", "show", str(calo_id))
    assert code == 0, shown
    assert f"{TRAIN_RUN}:" in shown and "alice" in shown and "held out" in shown
    assert "ecal_vs_hcal" in shown and "threshold" in shown
    # the response maps and the per-histogram excess are part of the stored model
    assert "ecal_energy_map per ecal_mip_hits" in shown
    assert "largest per-histogram excess, held out: n=" in shown

    # When a run with a hot ECAL cell follows
    cfg = SimConfig(run=ANOMALY_RUN, n_spills=4, events_per_spill=4000, batch_size=1000)
    hot = parse_anomaly("hot_cell@2-4:detector=ecal,cell=1/1/4,fraction=0.05")
    publish(redis_client, settings, list(simulate_run(cfg, [hot])))
    _drain(settings, specs)

    # Then the calorimeter model flags it, naming the cell, and records its id and version
    flags = {f.spill: f for f in _flags(settings, ANOMALY_RUN) if f.subsystem == "calorimeter"}
    assert flags[1].quality == int(Quality.GOOD), flags[1].explanation
    flagged = flags[3]
    assert flagged.quality >= int(Quality.WARNING), flagged.explanation
    assert flagged.details["model_id"] == calo_id and flagged.details["model_version"] == 1
    assert flagged.value > flagged.thresholds["warning"]
    assert "(1,4)" in flagged.explanation and "% of the score" in flagged.explanation

    # and recheck reproduces the flags, also once a newer version is active
    code, out = _cli(
        monkeypatch,
        capsys,
        settings,
        "model",
        "train",
        "--beam-config",
        beam,
        "--subsystem",
        "calorimeter",
        "--runs",
        f"{TRAIN_RUN}-{TRAIN_RUN}",
        "--user",
        "bob",
    )
    assert code == 0 and "v2" in out, out
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            result = recheck_run(session, ANOMALY_RUN, specs)
    finally:
        engine.dispose()
    assert result.differences == []
