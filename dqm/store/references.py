"""Reference runs: certified "expected shapes", chosen per beam configuration.

A reference is a run (its closed spills' histograms summed) or histograms imported
from a ROOT file. Its provenance — run, when, who — travels with every comparison
(flags record ``reference_run``). Setting one is an expert action and is audited.

The beam configuration (``mu160``, ``mu100`` …) follows from the run conditions, and a
reference records the conditions it was taken under: certifying a run as the reference
of a configuration its conditions do not give is refused (unless forced, audited), and a
run judged against a reference taken under other conditions is told so with every spill.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import boost_histogram as bh
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions
from dqm.core.evaluate import REFERENCE_SPILLS, history_series
from dqm.core.histio import decode_histograms, encode_histograms
from dqm.errors import StorageError
from dqm.store.flag_reads import newest_reference_of_run, reference_warnings
from dqm.store.models import AuditEntry, Flag, Reference, Run, Spill, utcnow
from dqm.store.queries import closed_spills, count_closed_spills
from dqm.store.runs import as_conditions
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
    "DEFAULT_BEAM_CONFIG",
    "flags_reference_run",
    "newest_reference_of_run",
    "active_beam_configs",
    "has_active_reference",
    "runs_judged_against",
]

#: The configuration of runs stored before conditions existed (μ⁻ 160 GeV): a default
#: for commands' options only — a run whose conditions are unknown has no configuration.
DEFAULT_BEAM_CONFIG = "mu160"


def active_reference(
    session: Session, beam_config: str | None = DEFAULT_BEAM_CONFIG
) -> Reference | None:
    """The active reference of ``beam_config`` (None: none set, or the configuration unknown)."""
    if beam_config is None:
        return None
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
        .where(Spill.run == run, Spill.closed)
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


def reference_config(
    run: int,
    conditions: RunConditions | None,
    beam_config: str | None,
    *,
    stored_config: str | None = None,
    force: bool = False,
) -> str:
    """The configuration a run may be certified for; raises :class:`StorageError` if none.

    A run's conditions give its configuration; asking for another one is refused unless
    ``force``. A run without recorded conditions (one stored before they existed keeps its
    ``stored_config``) needs the configuration named.
    """
    if conditions is None:
        config = beam_config or stored_config
        if config is None:
            raise StorageError(
                f"run {run} has no recorded run conditions: name the beam configuration it is "
                "the reference of (--beam-config, e.g. mu160)"
            )
        return config
    if beam_config and beam_config != conditions.beam_config and not force:
        raise StorageError(
            f"run {run} was taken with {conditions.describe()}, i.e. beam configuration "
            f"'{conditions.beam_config}': it cannot be the reference of '{beam_config}' "
            "(--force to certify it anyway; every run compared with it is then told so)"
        )
    return beam_config or conditions.beam_config


def set_reference(
    session: Session,
    run: int,
    user: str,
    beam_config: str | None = None,
    comment: str = "",
    *,
    force: bool = False,
) -> Reference:
    """Make ``run`` the active reference of its beam configuration (audited).

    The configuration comes from the run's conditions, which the reference records;
    another one is refused unless ``force`` (see :func:`reference_config`).
    """
    run_row = session.get(Run, run)
    if run_row is None:
        raise StorageError(f"run {run} is not in the database")
    n_closed = count_closed_spills(session, run)
    if not n_closed:
        raise StorageError(f"run {run} has no closed spills to serve as a reference")
    conditions = as_conditions(run_row.conditions)
    config = reference_config(
        run, conditions, beam_config, stored_config=run_row.beam_config, force=force
    )
    session.execute(
        update(Reference)
        .where(Reference.beam_config == config, Reference.active.is_(True))
        .values(active=False)
    )
    ref = Reference(
        beam_config=config,
        run=run,
        set_by=user,
        comment=comment,
        active=True,
        set_at=utcnow(),
        conditions=conditions.to_dict() if conditions else None,
    )
    session.add(ref)
    _audit(
        session,
        user,
        "set_reference",
        f"run {run}",
        {
            "beam_config": config,
            "comment": comment,
            "spills": n_closed,
            "conditions": conditions.to_dict() if conditions else None,
            "forced": bool(force and conditions and conditions.beam_config != config),
        },
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
    *,
    force: bool = False,
) -> Reference:
    """Activate histograms made elsewhere (e.g. a ROOT file) as the reference (audited).

    When ``run`` is in the database with its conditions, they are recorded with the
    reference and must give ``beam_config`` (unless ``force``).
    """
    if not hists:
        raise StorageError("no histograms to import")
    run_row = session.get(Run, run)
    conditions = as_conditions(run_row.conditions) if run_row else None
    reference_config(run, conditions, beam_config, force=force)
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
        conditions=conditions.to_dict() if conditions else None,
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
        rows = [(sp.quality, sp.n_events) for sp in closed_spills(session, run)]
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


def active_beam_configs(session: Session) -> list[str]:
    """Beam configurations that have an active reference, in alphabetical order."""
    stmt = select(Reference.beam_config).where(Reference.active.is_(True)).distinct()
    return sorted(session.scalars(stmt))


def has_active_reference(session: Session, beam_config: str | None = None) -> bool:
    """Whether ``beam_config`` (with None: any beam configuration) has an active reference."""
    stmt = select(func.count()).select_from(Reference).where(Reference.active.is_(True))
    if beam_config is not None:
        stmt = stmt.where(Reference.beam_config == beam_config)
    return bool(session.scalar(stmt))


def runs_judged_against(session: Session, reference_run: int) -> int:
    """How many runs have flags judged against ``reference_run``."""
    stmt = select(func.count(func.distinct(Flag.run))).where(Flag.reference_run == reference_run)
    return int(session.scalar(stmt) or 0)
