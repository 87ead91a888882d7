"""Spills stored with a verdict exactly as the worker's close hook stores them: flags, then
incidents. Shared by the incident and notifier tests."""

from __future__ import annotations

from sqlalchemy import select

from dqm.checks import CheckResult, Quality
from dqm.core.evaluate import Judgement, Verdict
from dqm.core.incidents import Incident
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import store_verdict
from dqm.store.incidents import record_incidents
from dqm.store.inputs import CheckInputs
from dqm.store.models import Run, Spill, StoredIncident, utcnow

RUN = 31
CAUSE = "beam_position"


def incident_store(pg_url: str):
    """A sessionmaker on ``pg_url`` with run RUN created; yields it, disposes the engine."""
    engine = make_engine(pg_url)
    with make_sessionmaker(engine).begin() as s:
        s.add(Run(run=RUN))
    yield make_sessionmaker(engine)
    engine.dispose()


def verdict(
    quality: Quality | None, cause: str = CAUSE, text: str = "beam moved by 4 mm"
) -> Verdict:
    """A spill's verdict: one beam-position judgement of ``quality`` (None: all GOOD)."""
    q = quality or Quality.GOOD
    result = CheckResult(q, 4.0, {"warning": 2, "bad": 3}, text if quality else "", {}, "mean")
    j = Judgement(
        "beam", "beam_x", "mean", result, "call the beam expert", cause if quality else None
    )
    if quality is None:
        return Verdict([j])
    incident = Incident(
        cause, "beam", q, text, "call the beam expert", (j,), rule=CAUSE, title="Beam moved"
    )
    return Verdict([j], [incident])


def close(sessions, spill: int, v: Verdict, *, warning_spills: int = 3) -> list[int]:
    """Store spill ``spill`` closed with verdict ``v``, as the close hook does; new incidents."""
    with sessions.begin() as s:
        sp = s.scalar(select(Spill).where(Spill.run == RUN, Spill.spill == spill))
        if sp is None:
            sp = Spill(run=RUN, spill=spill, status="complete", closed_at=utcnow())
            s.add(sp)
            s.flush()
        store_verdict(s, sp, v, CheckInputs({}, {}, None, {}, {}, "test+0"))
        return [i.id for i in record_incidents(s, sp, v, warning_spills=warning_spills)]


def incidents(sessions) -> list[StoredIncident]:
    with sessions() as s:
        rows = list(s.scalars(select(StoredIncident).order_by(StoredIncident.id)))
        s.expunge_all()
        return rows
