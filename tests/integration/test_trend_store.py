"""Anchored change detection through a real worker on PostgreSQL.

Given a certified reference run and a run whose MS2 momentum scale steps by 1 % and
stays there, the CUSUM reads its baseline from the reference run's stored spills (with
the qualities stored with them), stays BAD for as long as the step lasts, and a recheck
reproduces every flag from the same stored inputs.
"""

from __future__ import annotations

import pytest
import redis as redislib
from sqlalchemy import select

from dqm.checks import Quality
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.worker import Worker
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_run
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import gather_inputs, recheck_run
from dqm.store.models import Flag, Spill
from dqm.store.references import ReferenceCache, set_reference
from tests.helpers import publish

pytestmark = pytest.mark.integration

REFERENCE_RUN, RUN = 31, 32


def _drain(settings, specs) -> None:
    engine = make_engine(settings.database_url)
    try:
        Worker(
            settings,
            redis_client=redislib.Redis.from_url(settings.redis_url),
            sessions=make_sessionmaker(engine),
            specs=specs,
            consumer="trend-test",
            close_hooks=close_hooks(settings, specs),
        ).run(burst=True)
    finally:
        engine.dispose()


def _run(run: int, n_spills: int, anomalies: str | None = None) -> list:
    cfg = SimConfig(run=run, n_spills=n_spills, events_per_spill=4000, batch_size=2000)
    return list(simulate_run(cfg, [parse_anomaly(anomalies)] if anomalies else []))


def test_persistent_step_stays_bad_against_the_stored_reference(settings, redis_client, specs):
    # Given a reference run of 22 spills, certified
    publish(redis_client, settings, _run(REFERENCE_RUN, 22))
    _drain(settings, specs)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            set_reference(session, REFERENCE_RUN, "alice")
        # When a run with a 1 % MS2 scale step from spill 6 on is judged by a worker
        publish(redis_client, settings, _run(RUN, 26, "ms2_scale@6-:factor=1.01"))
        _drain(settings, specs)
        with sessions() as session:
            # Then every spill stored its subsystem roll-up with its summary …
            summaries = session.scalars(select(Spill.summary).where(Spill.run == RUN)).all()
            assert all(set(s["quality"]) >= {"momentum", "beam"} for s in summaries)
            # … the judge of the last spill saw the reference's per-spill series and the
            # run's start, with spill numbers and qualities
            last = session.scalar(select(Spill).where(Spill.run == RUN, Spill.spill == 26))
            inputs = gather_inputs(session, last, specs, ReferenceCache())
            assert inputs.reference_history["spill"] == [float(s) for s in range(1, 23)]
            assert len(inputs.reference_history["dp_mean_err"]) == 22
            assert inputs.run_start["spill"][:3] == [1.0, 2.0, 3.0]
            assert inputs.run_start["quality.momentum"][:5] == [float(Quality.GOOD)] * 5
            cusum = {
                f.spill: f
                for f in session.scalars(select(Flag).where(Flag.run == RUN, Flag.check == "cusum"))
            }
            # … and the CUSUM, anchored on the reference, is GOOD before the step and BAD from
            # its 4th spill to the last
            assert all(cusum[s].quality == Quality.GOOD for s in range(1, 6))
            assert [s for s in range(9, 27) if cusum[s].quality != Quality.BAD] == []
            assert "from the reference run's 22 certified spills" in cusum[26].explanation
        # When the run is rechecked from the stored inputs, it reproduces every flag
        with sessions() as session:
            assert recheck_run(session, RUN, specs).differences == []
    finally:
        engine.dispose()
