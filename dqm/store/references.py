"""Reference runs: certified "expected shapes", chosen per beam configuration.

A reference is a run (its closed spills' histograms summed) or histograms imported
from a ROOT file. Its provenance — run, when, who — travels with every comparison
(flags record ``reference_run``). Setting one is an expert action and is audited.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

import boost_histogram as bh
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dqm.core.evaluate import REFERENCE_SPILLS, history_series
from dqm.core.histio import decode_histograms, encode_histograms
from dqm.errors import StorageError
from dqm.store.models import AuditEntry, Flag, Reference, Run, Spill, as_utc, utcnow
from dqm.store.spills import run_histograms

__all__ = [
    "active_reference",
    "reference_histograms",
    "reference_series",
    "set_reference",
    "list_references",
    "suggest_reference",
    "import_reference",
    "reference_warnings",
    "ReferenceCache",
    "Candidate",
]

DEFAULT_BEAM_CONFIG = "mu160"


def active_reference(session: Session, beam_config: str = DEFAULT_BEAM_CONFIG) -> Reference | None:
    stmt = (
        select(Reference)
        .where(Reference.beam_config == beam_config, Reference.active.is_(True))
        .order_by(Reference.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def reference_histograms(session: Session, ref: Reference) -> dict[str, bh.Histogram]:
    """The reference's histograms: the imported blob, else its run's closed spills summed."""
    if ref.blob:
        return decode_histograms(ref.blob)[0]
    return run_histograms(session, ref.run)


def reference_series(session: Session, run: int) -> dict[str, list[float]]:
    """The first ``REFERENCE_SPILLS`` closed spills of ``run`` as per-spill series."""
    rows = session.execute(
        select(Spill.spill, Spill.summary)
        .where(Spill.run == run, Spill.status != "open")
        .order_by(Spill.spill)
        .limit(REFERENCE_SPILLS)
    ).all()
    return history_series([r.summary for r in rows], spills=[r.spill for r in rows])


class ReferenceCache:
    """Per-process LRU of decoded reference histograms, keyed by reference id.

    A reference never changes once set (a new one gets a new id), so entries never go stale.
    """

    def __init__(self, size: int = 4) -> None:
        self._items: OrderedDict[int, dict[str, bh.Histogram]] = OrderedDict()
        self._series: OrderedDict[int, dict[str, list[float]] | None] = OrderedDict()
        self.size = size

    def series(self, session: Session, ref: Reference | None) -> dict[str, list[float]] | None:
        """Per-spill summary series of the reference run (change detection's anchor).

        ``None`` without a reference or for an imported one (its histograms did not come
        from this store's spills). Cached like the histograms: a reference never changes.
        """
        if ref is None or ref.blob:
            return None
        if ref.id not in self._series:
            self._series[ref.id] = reference_series(session, ref.run)
            while len(self._series) > self.size:
                self._series.popitem(last=False)
        self._series.move_to_end(ref.id)
        return self._series[ref.id]

    def get(self, session: Session, ref: Reference | None) -> dict[str, bh.Histogram]:
        if ref is None:
            return {}
        if ref.id not in self._items:
            self._items[ref.id] = reference_histograms(session, ref)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(ref.id)
        return self._items[ref.id]


def _audit(session: Session, user: str, action: str, target: str, details: dict) -> None:
    session.add(AuditEntry(user=user, action=action, target=target, details=details, at=utcnow()))


def set_reference(
    session: Session, run: int, user: str, beam_config: str | None = None, comment: str = ""
) -> Reference:
    """Make ``run`` the active reference of its beam configuration (audited)."""
    run_row = session.get(Run, run)
    if run_row is None:
        raise StorageError(f"run {run} is not in the database")
    n_closed = session.scalar(
        select(func.count()).select_from(Spill).where(Spill.run == run, Spill.status != "open")
    )
    if not n_closed:
        raise StorageError(f"run {run} has no closed spills to serve as a reference")
    config = beam_config or run_row.beam_config
    session.execute(
        update(Reference)
        .where(Reference.beam_config == config, Reference.active.is_(True))
        .values(active=False)
    )
    ref = Reference(
        beam_config=config, run=run, set_by=user, comment=comment, active=True, set_at=utcnow()
    )
    session.add(ref)
    _audit(
        session,
        user,
        "set_reference",
        f"run {run}",
        {"beam_config": config, "comment": comment, "spills": n_closed},
    )
    session.flush()
    return ref


def import_reference(
    session: Session,
    hists: dict[str, bh.Histogram],
    run: int,
    user: str,
    beam_config: str = DEFAULT_BEAM_CONFIG,
    comment: str = "",
) -> Reference:
    """Activate histograms made elsewhere (e.g. a ROOT file) as the reference (audited)."""
    if not hists:
        raise StorageError("no histograms to import")
    session.execute(
        update(Reference)
        .where(Reference.beam_config == beam_config, Reference.active.is_(True))
        .values(active=False)
    )
    ref = Reference(
        beam_config=beam_config,
        run=run,
        set_by=user,
        comment=comment or "imported",
        active=True,
        blob=encode_histograms(hists),
        set_at=utcnow(),
    )
    session.add(ref)
    _audit(
        session,
        user,
        "import_reference",
        f"run {run}",
        {"beam_config": beam_config, "histograms": sorted(hists)},
    )
    session.flush()
    return ref


def list_references(session: Session) -> list[Reference]:
    return list(session.scalars(select(Reference).order_by(Reference.id.desc())))


def reference_warnings(
    session: Session,
    ref: Reference | None,
    run: int,
    max_age_days: float = 90.0,
    now: datetime | None = None,
) -> list[str]:
    """Reasons to distrust a comparison: no reference, too old, other beam conditions."""
    if ref is None:
        return ["no reference run set for this beam configuration: shape comparisons give NO_DATA"]
    out = []
    set_at = as_utc(ref.set_at)
    if set_at and (now or utcnow()) - set_at > timedelta(days=max_age_days):
        out.append(
            f"reference run {ref.run} was set {((now or utcnow()) - set_at).days} days ago (> "
            f"{max_age_days:g})"
        )
    this_run = session.get(Run, run)
    if this_run is not None and this_run.beam_config != ref.beam_config:
        out.append(
            f"reference run {ref.run} was taken with beam '{ref.beam_config}', run {run} with "
            f"'{this_run.beam_config}'"
        )
    return out


@dataclass(frozen=True)
class Candidate:
    run: int
    beam_config: str
    spills: int
    good_fraction: float
    n_events: int


def suggest_reference(
    session: Session, beam_config: str = DEFAULT_BEAM_CONFIG, min_spills: int = 10, limit: int = 5
) -> list[Candidate]:
    """Recent runs with matching conditions, ranked by fraction of GOOD spills then size."""
    runs = session.scalars(
        select(Run.run).where(Run.beam_config == beam_config).order_by(Run.run.desc()).limit(50)
    ).all()
    out = []
    for run in runs:
        rows = session.execute(
            select(Spill.quality, Spill.n_events).where(Spill.run == run, Spill.status != "open")
        ).all()
        if len(rows) < min_spills:
            continue
        n_bad = sum(1 for q, _ in rows if q is not None and q >= 2)
        out.append(
            Candidate(run, beam_config, len(rows), 1 - n_bad / len(rows), sum(n for _, n in rows))
        )
    out.sort(key=lambda c: (c.good_fraction, c.spills, c.run), reverse=True)
    return out[:limit]


def flags_reference_run(session: Session, spill_id: int) -> int | None:
    """The reference run recorded with a spill's stored flags (for faithful rechecks)."""
    return session.scalar(
        select(Flag.reference_run)
        .where(Flag.spill_id == spill_id, Flag.reference_run.is_not(None))
        .limit(1)
    )
