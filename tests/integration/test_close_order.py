"""Judgement is reproducible when two workers close neighbouring spills of a run at once.

A spill is judged against the run's spills closed before it. Closes of one run are
ordered by the run's row lock, taken as soon as a close wins its spill and held until it
commits, and ``closed_at`` is given under that lock (:mod:`dqm.store.closing`). So a
spill whose close began while its neighbour's was still being judged waits for it, sees
it in its history, and ``dqm recheck`` (which reads the history by ``closed_at``) sees the
same. Tested on PostgreSQL with two closers, the first one slowed down inside its close.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from dqm.pipeline import stream as rs
from dqm.pipeline.runtime import close_hooks
from dqm.pipeline.worker import Worker
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import recheck_run
from dqm.store.models import Spill
from tests.helpers import small_run

pytestmark = pytest.mark.integration

RUN = 61


def test_neighbouring_spills_closed_at_once_are_judged_as_recheck_judges_them(
    settings, specs, redis_client
):
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    spills = small_run(run=RUN, n_spills=6)
    # Given a run whose first 4 spills are closed and judged
    first = Worker(
        settings,
        redis_client=redis_client,
        sessions=sessions,
        specs=specs,
        consumer="first",
        close_hooks=close_hooks(settings, specs),
    )
    for spill in spills[:4]:
        rs.publish_spill(redis_client, settings.stream, spill)
    first.run(burst=True)
    # and spills 5 and 6 stored whole, not closed yet
    storer = Worker(
        settings, redis_client=redis_client, sessions=sessions, specs=specs, consumer="storer"
    )
    storer._settle = lambda: None  # type: ignore[method-assign]  # store only, close nothing
    for spill in spills[4:]:
        rs.publish_spill(redis_client, settings.stream, spill)
    msgs = rs.read_group(
        redis_client, settings.stream, settings.group, "storer", count=1000, block_ms=None
    )
    storer.intake.process(msgs, check_seen=False)
    assert storer._commit()
    with sessions() as session:
        ids = {
            sp.spill: sp.id
            for sp in session.scalars(select(Spill).where(Spill.run == RUN, Spill.spill > 4))
        }
    # When worker A closes spill 5 and is slow inside its close, and worker B closes
    # spill 6 while A's close is still going on
    done: dict[str, float] = {}

    def slow_hook(session, closed):
        time.sleep(1.5)
        return None

    def closer(name: str, hooks: list, spill_id: int) -> None:
        w = Worker(
            settings,
            redis_client=redis_client,
            sessions=sessions,
            specs=specs,
            consumer=name,
            close_hooks=hooks,
        )
        w.closer.close(spill_id, incomplete=False)
        done[name] = time.monotonic()

    a = threading.Thread(
        target=closer, args=("A", [slow_hook, *close_hooks(settings, specs)], ids[5])
    )
    b = threading.Thread(target=closer, args=("B", close_hooks(settings, specs), ids[6]))
    a.start()
    time.sleep(0.4)
    b.start()
    a.join(60)
    b.join(60)
    # Then B's close waited for A's: spill 6 closed after spill 5 ...
    assert set(done) == {"A", "B"} and done["B"] > done["A"]
    with sessions() as session:
        closed_at = dict(
            session.execute(
                select(Spill.spill, Spill.closed_at).where(Spill.run == RUN, Spill.spill > 4)
            ).all()
        )
        assert closed_at[5] < closed_at[6]
        # ... and `dqm recheck` reproduces every stored flag of the run
        assert recheck_run(session, RUN, specs).differences == []
    engine.dispose()
