"""The expert page's reads behind a flag (dqm.store.evidence) on a real PostgreSQL store.

Given a clean reference run and a run whose beam is shifted on two consecutive spills, the
store says which flag a tile link stands for, gives the check's number on every spill with
the thresholds it was judged with, lays the run out as spills x subsystems, colours a
quantity by its own checks, and groups the flags of the two shifted spills into one incident.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dqm.core.fill import Filler
from dqm.core.specs import load_specs
from dqm.report.sample import store_simulated_spill
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store import evidence
from dqm.store.acknowledgements import acknowledge_cause
from dqm.store.actions import ActionError
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import make_close_hook
from dqm.store.models import Flag, StoredIncident
from dqm.store.references import set_reference

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHIFT = "beam_shift@2-3:dx_mm=5"


@pytest.fixture
def judged(settings):
    specs = load_specs(ROOT / "histograms")
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    filler, hook = Filler(specs), make_close_hook(settings, specs)
    for run, n in ((1, 3), (2, 4)):
        cfg = SimConfig(run=run, n_spills=n, events_per_spill=2500, batch_size=1000, seed=5)
        for spill in range(1, n + 1):
            data = simulate_spill(cfg, spill, [parse_anomaly(SHIFT)] if run == 2 else [])
            with sessions.begin() as s:
                store_simulated_spill(s, filler, data, [hook])
        if run == 1:
            with sessions.begin() as s:
                set_reference(s, 1, "test", comment="clean")
    yield specs, sessions
    engine.dispose()


def test_evidence_reads_of_a_shifted_beam(judged):
    specs, sessions = judged
    with sessions() as s:
        # Then a tile link (run, spill, histogram) stands for that histogram's worst flag
        fid = evidence.evidence_flag_id(s, 2, 2, "beam_xy_ms1_0")
        flag = evidence.flag_evidence(s, fid)
        assert flag["quality"] == "BAD" and flag["check"] == "beam_centroid"
        assert "mm" in flag["explanation"] and flag["time"] is not None
        # and the check's number on every spill, with the thresholds it was judged with
        series = evidence.check_series(s, 2, "beam_xy_ms1_0", "beam_centroid")
        assert list(series["spill"]) == [1, 2, 3, 4]
        assert list(series["quality"])[1:3] == ["BAD", "BAD"]
        assert (series["bad"] > series["warning"]).all()
        assert series["value"][1] > series["bad"][1] > series["value"][0]
        # and the run as spills x subsystems
        grid = evidence.run_map(s, 2)
        assert set(grid["spill"]) == {1, 2, 3, 4}
        beam = grid[grid["subsystem"] == "beam"].set_index("spill")["quality"]
        assert beam[2] == "BAD" and beam[4] != "BAD"
        # and a quantity coloured by its own check only
        judged_by = evidence.worst_check_quality(s, [2], [("beam_xy_ms1_0", "beam_centroid")])
        assert judged_by[(2, 2)] == 4 and judged_by[(2, 1)] == 0
        # and the clicked cell of the map lands on the subsystem's worst check
        fid2, histogram = evidence.worst_check_flag(s, 2, 3, "beam")
        assert evidence.flag_evidence(s, fid2)["quality"] == "BAD" and histogram
        # and the flags of the two shifted spills are one incident, not one per flag
        frame = evidence.incident_frame(s, run=2, subsystem="beam", min_quality=2)
    shifted = frame[frame["spill"].isin([2, 3])]
    assert len(shifted) >= 4
    assert shifted["incident"].nunique() == 1
    label = shifted["incident"].iloc[0]
    assert "spills 2–3" in label and f"{len(shifted)} flags" in label and "to acknowledge" in label


def test_an_incident_acknowledged_once_covers_its_flags_stored_later(settings):
    # Given a reference run and a run whose beam is shifted from spill 2 on, judged up to spill 2
    specs = load_specs(ROOT / "histograms")
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    filler, judge = Filler(specs), make_close_hook(settings, specs)
    ref = SimConfig(run=1, n_spills=3, events_per_spill=2500, batch_size=1000, seed=5)
    live = SimConfig(run=2, n_spills=4, events_per_spill=2500, batch_size=1000, seed=5)
    shift = [parse_anomaly("beam_shift@2-4:dx_mm=5")]
    try:
        for spill in range(1, 4):
            with sessions.begin() as s:
                store_simulated_spill(s, filler, simulate_spill(ref, spill, []), [judge])
        with sessions.begin() as s:
            set_reference(s, 1, "test", comment="clean")
        closed = {}
        for spill in (1, 2):
            with sessions.begin() as s:
                closed[spill] = store_simulated_spill(
                    s, filler, simulate_spill(live, spill, shift), [judge]
                )
        with sessions() as s:
            frame = evidence.incident_frame(s, run=2, subsystem="beam", min_quality=2)
        cause = frame[frame["spill"] == 2]["cause"].iloc[0]
        assert cause and "beam" in cause
        # When an expert acknowledges that incident as the table listed it (spill 2 only)
        with sessions.begin() as s:
            n = acknowledge_cause(
                s, "alice", run=2, cause=cause, first_spill=2, last_spill=2, annotation="seen"
            )
        assert n >= 2
        # And the spill is judged again (late batches), and the next shifted spill arrives
        with sessions.begin() as s:
            judge.amend(s, closed[2].spill_id)
        with sessions.begin() as s:
            store_simulated_spill(s, filler, simulate_spill(live, 3, shift), [judge])
        # Then every flag of that cause, roll-ups and flags stored later included, is theirs
        with sessions() as s:
            rows = s.execute(
                select(Flag.spill, Flag.check, Flag.acknowledged_by).where(
                    Flag.run == 2, Flag.cause == cause, Flag.quality >= 2
                )
            ).all()
            incidents = s.scalars(select(StoredIncident).where(StoredIncident.run == 2)).all()
            frame = evidence.incident_frame(s, run=2, subsystem="beam", min_quality=2)
        assert {r.spill for r in rows} == {2, 3}
        assert {r.acknowledged_by for r in rows} == {"alice"}, rows
        # and the stored incident (the wall's alarm) is acknowledged, and the table says so
        ours = [i for i in incidents if i.cause == cause]
        assert ours and all(i.acknowledged_by == "alice" for i in ours)
        labels = set(frame[frame["cause"] == cause]["incident"])
        assert labels and all(label.endswith("· acknowledged") for label in labels), labels
        # and acknowledging it again is refused (nothing left), and guests cannot
        with pytest.raises(ActionError), sessions.begin() as s:
            acknowledge_cause(s, "alice", run=2, cause=cause, first_spill=2, last_spill=3)
        with pytest.raises(ActionError), sessions.begin() as s:
            acknowledge_cause(s, None, run=2, cause=cause, first_spill=2, last_spill=3)
    finally:
        engine.dispose()
