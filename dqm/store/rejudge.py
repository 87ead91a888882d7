"""Judge again the spills of a run whose conditions arrived (or changed) after they closed.

Why: the conditions message and the first spill may reach different workers, and a DAQ
may announce a run's conditions late. A spill judged without them says NO_DATA where the
momentum scale matters and was compared with no reference; once the conditions are
stored, its verdict is replaced by the one those conditions give, and announced again so
the wall shows it. Only the most recent :data:`REJUDGE_MAX_SPILLS` are redone by the
worker (a judgement takes ~0.1 s, and the worker must not stall); the rest keep their
flags, recorded with the conditions they were judged under, and the log says how many.

The stored incidents follow the new flags (:func:`dqm.store.incidents.follow_rejudged`):
a cause the conditions explain away is superseded (closed, history kept), a cause they
reveal opens an incident as at spill close. In a savepoint of its own: incidents that
could not be updated are logged, never a reason to lose the new verdicts.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.core.evaluate import evaluate_spill
from dqm.core.specs import SpecSet
from dqm.store.engine import is_outage
from dqm.store.flags import _store_run_rollup, gather_inputs, spill_arrival, store_verdict
from dqm.store.incidents import follow_rejudged, record_incidents
from dqm.store.models import SPILL_OPEN, Spill
from dqm.store.references import ReferenceCache
from dqm.store.rollup import histograms_deleted
from dqm.store.runs import lock_run, run_conditions
from dqm.store.spills import spill_histograms

__all__ = ["rejudge_run", "REJUDGE_MAX_SPILLS"]

log = logging.getLogger("dqm.store.rejudge")

#: At most this many of a run's latest spills are judged again when its conditions change.
REJUDGE_MAX_SPILLS = 60


def rejudge_run(
    session: Session,
    run: int,
    specs: SpecSet,
    refs: ReferenceCache | None = None,
    *,
    warning_spills: int = 3,
) -> list[dict]:
    """Judge again the run's closed spills judged under conditions other than its current ones.

    Returns one announcement per spill (as the close hook's), oldest first. The caller's
    transaction stores the new flags; the run row is locked first, like a live judgement.
    """
    refs = refs or ReferenceCache()
    lock_run(session, run)
    conditions = run_conditions(session, run)
    current = conditions.to_dict() if conditions else None
    closed = session.scalars(
        select(Spill)
        .where(Spill.run == run, Spill.status != SPILL_OPEN, Spill.quality.is_not(None))
        .order_by(Spill.spill.desc())
    ).all()
    stale = [sp for sp in closed if sp.conditions != current]
    # a spill whose own histograms the retention deleted cannot be judged again: it keeps
    # its flags (docs/retention.md)
    deleted = histograms_deleted(session, [sp.id for sp in stale])
    stale = [sp for sp in stale if sp.id not in deleted]
    if len(stale) > REJUDGE_MAX_SPILLS:
        log.warning(
            "run %d: %d spills were judged under other conditions; judging the last %d again "
            "(dqm recheck --run %d shows the others)",
            run,
            len(stale),
            REJUDGE_MAX_SPILLS,
            run,
            extra={"run": run},
        )
    notes = []
    judged = []
    for sp in reversed(stale[:REJUDGE_MAX_SPILLS]):
        inputs = gather_inputs(session, sp, specs, refs, conditions=conditions)
        verdict = evaluate_spill(
            specs,
            spill_histograms(session, sp.id),
            sp.summary or {},
            status=sp.status,
            arrival=spill_arrival(sp),
            **inputs.evaluate_kwargs(),
        )
        store_verdict(session, sp, verdict, inputs, update_run=False)
        judged.append((sp, verdict))
        notes.append(
            {
                "run": sp.run,
                "spill": sp.spill,
                "status": sp.status,
                "n_events": sp.n_events,
                "quality": int(verdict.overall),
                "subsystems": {s: int(q) for s, q in verdict.subsystems.items()},
                "config_version": inputs.version,
                "incidents": [i.to_dict() for i in verdict.incidents],
                "beam_config": conditions.beam_config if conditions else None,
                "rejudged": True,
            }
        )
    if notes:
        session.flush()
        _store_run_rollup(session, run, inputs)  # spills may have got better: recompute
        _follow_incidents(session, run, judged, warning_spills)
        log.info("run %d: %d spills judged again under its conditions", run, len(notes))
    return notes


def _follow_incidents(session: Session, run: int, judged: list, warning_spills: int) -> None:
    """The run's stored incidents after its spills ``judged`` (``(spill, verdict)``, oldest
    first) got new flags: new causes open or extend incidents, vanished ones are superseded."""
    try:
        with session.begin_nested():
            for sp, verdict in judged:
                record_incidents(session, sp, verdict, warning_spills=warning_spills)
            changed = follow_rejudged(session, run, [sp.spill for sp, _ in judged])
    except Exception as error:  # noqa: BLE001 — the new flags stand regardless
        if is_outage(error):
            raise
        log.error("run %d: updating its incidents after judging again failed", run, exc_info=error)
        return
    for row in changed:
        log.info(
            "run %d: incident %d (%s) %s after judging again",
            run,
            row.id,
            row.cause,
            "superseded" if row.superseded_at else "narrowed",
            extra={"run": run},
        )
