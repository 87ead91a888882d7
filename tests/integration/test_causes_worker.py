"""Incidents through the real worker on Redis and PostgreSQL: the ``cause`` of every flag.

Given a certified reference run, then a run whose spill 2 misses MS1 in its second half,
whose spill 3 has a 40 % wider beam and whose spill 4 is clean, when a worker with the
checks as close hook consumes them, then each flag row names its incident (``cause``), a
flag that follows from another subsystem's incident says so (``details.follows_from``), the
checks say on how many events they judged, the announcement lists the spill's incidents,
and ``recheck_run`` reproduces the causes exactly.
"""

from __future__ import annotations

import json

import pytest
import redis as redislib
from sqlalchemy import select

from dqm.checks import Quality
from dqm.core.roles import EXPERT, Actor
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.worker import Worker
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.actions import set_reference
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Flag
from tests.helpers import publish, small_run

pytestmark = pytest.mark.integration

REFERENCE_RUN, RUN = 31, 32
MS1_HALF = "missing_source@2:source=MS1,start_s=2.4"
WIDER = "beam_width@3:factor=1.4"


def _drain(settings, specs) -> None:
    engine = make_engine(settings.database_url)
    try:
        Worker(
            settings,
            redis_client=redislib.Redis.from_url(settings.redis_url),
            sessions=make_sessionmaker(engine),
            specs=specs,
            consumer="causes-test",
            close_hooks=close_hooks(settings, specs),
        ).run(burst=True)
    finally:
        engine.dispose()


def test_the_worker_stores_the_cause_of_every_flag(settings, redis_client, specs):
    # Given a reference run, certified
    publish(redis_client, settings, small_run(run=REFERENCE_RUN, n_spills=4, events=6000))
    _drain(settings, specs)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            set_reference(session, REFERENCE_RUN, Actor("alice", EXPERT), comment="clean")
        listener = redis_client.pubsub()
        listener.subscribe(settings.channel)
        assert listener.get_message(timeout=5.0)["type"] == "subscribe"
        # When a run with MS1 missing (spill 2) and a wider beam (spill 3) goes through it
        cfg = SimConfig(run=RUN, n_spills=4, events_per_spill=6000, batch_size=1000)
        anomalies = [parse_anomaly(MS1_HALF), parse_anomaly(WIDER)]
        publish(redis_client, settings, list(simulate_run(cfg, anomalies)))
        _drain(settings, specs)
        announced = {}
        while (message := listener.get_message(timeout=1.0)) is not None:
            note = json.loads(message["data"])
            announced[(note["run"], note["spill"])] = note
        listener.close()

        with sessions() as session:
            flags = list(session.scalars(select(Flag).where(Flag.run == RUN)))

        def rows(spill, **match):
            return [
                f
                for f in flags
                if f.spill == spill and all(getattr(f, k) == v for k, v in match.items())
            ]

        # Then spill 2: the DAQ flag is the incident's own, named after the source
        (daq,) = rows(2, check="daq_completeness")
        assert daq.quality == Quality.BAD and daq.cause == "daq_source_absent:MS1"
        # the beam checks judged the events that had MS1, and say so
        for f in rows(2, subsystem="beam"):
            if f.check not in ("rollup", "intensity", "empty"):
                assert f.details["n_judged"] < f.details["n_events"], f.check
                assert "MS1 absent in" in f.explanation, f.explanation
        # and every other bad flag of the spill follows from it, on the flag and its roll-up
        for f in rows(2):
            if f.quality >= Quality.WARNING and f.check != "rollup":
                assert f.cause == "daq_source_absent:MS1", (f.histogram, f.check)
                if f.subsystem != "daq":
                    assert f.details["follows_from"]["subsystem"] == "daq"
        assert [i["cause"] for i in announced[(RUN, 2)]["incidents"]] == ["daq_source_absent:MS1"]
        # Spill 3: the beam width is the cause; calorimeter cells that moved follow from it
        widths = rows(3, check="beam_width")  # judged at every MS1 station
        assert len(widths) == 3
        assert all(w.quality == Quality.BAD and w.cause == "beam_width" for w in widths)
        for f in rows(3, subsystem="calorimeter"):
            if f.quality >= Quality.WARNING and f.check != "rollup":
                assert (
                    f.cause == "beam_width" and f.details["follows_from"]["cause"] == "beam_width"
                )
        (beam_rollup,) = rows(3, subsystem="beam", check="rollup")
        assert beam_rollup.cause is None  # the cause's own tile
        incidents = announced[(RUN, 3)]["incidents"]
        assert [i["cause"] for i in incidents] == ["beam_width"]
        assert incidents[0]["explanation"].startswith("beam size changed: beam σ")
        # Spill 4: clean, no cause anywhere
        assert all(f.cause is None for f in rows(4)) and announced[(RUN, 4)]["incidents"] == []
        # When the run is rechecked, then the causes are reproduced exactly
        with sessions() as session:
            again = recheck_run(session, RUN, specs)
        assert again.spills == 4 and again.differences == []
    finally:
        engine.dispose()
