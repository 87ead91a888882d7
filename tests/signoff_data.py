"""A judged run for the sign-off tests: spills with per-subsystem qualities and BAD flags.

Written with :func:`dqm.store.bulk.insert_judged_spills`, i.e. the rows the live path
leaves behind (spill roll-ups in the summary, check flags with their cause), plus the
stored incidents the close hook latches for them (one per cause and stretch of spills,
opened at once: ``incident_warning_spills = 1``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dqm.checks import Quality
from dqm.core.signoff import spill_ranges
from dqm.core.specs import SUBSYSTEMS
from dqm.store.bulk import JudgedSpill, insert_judged_spills
from dqm.store.incidents import acknowledge_incident
from dqm.store.models import StoredIncident

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
GOOD, WARNING, BAD = int(Quality.GOOD), int(Quality.WARNING), int(Quality.BAD)


def judged_run(
    session,
    run: int,
    n_spills: int,
    *,
    bad: dict[str, range] | None = None,
    warning: dict[str, range] | None = None,
    events: int = 1000,
    start: datetime = T0,
) -> None:
    """``n_spills`` closed spills of ``run``; subsystems BAD/WARNING in the given spills.

    Each BAD (WARNING) spill of a subsystem has one check flag whose cause is
    ``<subsystem>_fault`` (``<subsystem>_drift``), as the judge would have stored it, and
    each stretch of them one stored incident (open: nobody acknowledged it).
    """
    bad, warning = bad or {}, warning or {}
    spills = []
    for n in range(1, n_spills + 1):
        q = {s: GOOD for s in SUBSYSTEMS}
        flags = []
        for marks, quality, word in ((warning, WARNING, "drift"), (bad, BAD, "fault")):
            for subsystem, where in marks.items():
                if n in where:
                    q[subsystem] = quality
                    flags.append(
                        {
                            "subsystem": subsystem,
                            "histogram": f"{subsystem}_h",
                            "check": "test_check",
                            "quality": quality,
                            "explanation": f"{subsystem} {word} in spill {n}",
                            "instruction": f"call the {subsystem} expert",
                            "cause": f"{subsystem}_{word}",
                        }
                    )
        closed = start + timedelta(seconds=30 * n)
        spills.append(
            JudgedSpill(
                run=run,
                spill=n,
                status="complete",
                opened_at=closed - timedelta(seconds=5),
                closed_at=closed,
                batches=1,
                summary={"n_events": events + n, "quality": q},
                blob=b"",
                quality=max(q.values()),
                config_version="test+0",
                flags=flags,
            )
        )
    insert_judged_spills(session, spills)
    for marks, quality, word in ((bad, BAD, "fault"), (warning, WARNING, "drift")):
        for subsystem, where in marks.items():
            for first, last in spill_ranges([n for n in where if 1 <= n <= n_spills]):
                session.add(
                    StoredIncident(
                        run=run,
                        cause=f"{subsystem}_{word}",
                        subsystem=subsystem,
                        quality=quality,
                        title=f"{subsystem} {word}",
                        explanation=f"{subsystem} {word} in spill {last}",
                        instruction=f"call the {subsystem} expert",
                        first_spill=first,
                        last_spill=last,
                        n_spills=last - first + 1,
                        histogram=f"{subsystem}_h",
                        opened_at=start + timedelta(seconds=30 * first),
                        updated_at=start + timedelta(seconds=30 * last),
                    )
                )
    session.flush()


def acknowledge_run_incidents(session, run: int, user: str, note: str | None = None) -> None:
    """A person acknowledges every incident of ``run`` (the wall's action)."""
    for row in session.query(StoredIncident).filter_by(run=run).all():
        acknowledge_incident(session, row.id, user, annotation=note)
