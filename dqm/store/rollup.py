"""Per-run histograms: a run's closed spills summed once (issue 15, items 4 and 5).

Layer: I/O shell (store). The nightly report's day sums ≈ 2000 spills' histograms, and the
histogram retention wants to delete old per-spill rows without losing their sums: both read
:class:`~dqm.store.models.RunHistograms`, written here.

**What an aggregate is.** The closes of one run are ordered (:mod:`dqm.store.closing` takes
the run's lock and gives each close a ``closed_at`` later than every one committed before),
so "the run's closed spills with ``closed_at <= closed_until``" is a prefix of the run. An
aggregate is the sum of that prefix, with its size ``n_spills``. It is *derived*: built and
extended only from stored per-spill histograms, never from a worker's in-memory state, so
exactly-once, late batches (never filled into a closed spill) and re-judging (which changes
flags, not histograms) cannot make it differ from the sum of the spills it covers.

**Never counted twice.** Extending adds only spills closed after ``closed_until`` and moves
``closed_until`` to the newest one added, in one transaction under the aggregate's row lock.
A reader trusts an aggregate only if the run's closed spills up to ``closed_until`` are still
exactly ``n_spills`` (:func:`aggregate_is_current`); otherwise it sums the spills instead.
While a run's per-spill rows all exist the aggregate can be rebuilt from them
(:func:`roll_up_run` with ``rebuild=True``); once the retention deleted some
(:mod:`dqm.store.retention`), the aggregate is their only record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from dqm.core.histio import FORMAT_VERSION, decode_histograms, encode_histograms
from dqm.store.models import RunHistograms, Spill, SpillHistograms, utcnow

__all__ = [
    "AggregateInfo",
    "RollUp",
    "aggregate_infos",
    "aggregate_is_current",
    "aggregate_blob",
    "runs_to_roll_up",
    "roll_up_run",
    "roll_up_runs",
    "run_closing_spans",
    "spill_blobs",
    "run_sum_blobs",
    "PeriodSum",
    "period_sum",
    "histograms_deleted",
    "run_histogram",
]


@dataclass(frozen=True)
class AggregateInfo:
    """An aggregate's coverage, without its blob."""

    run: int
    n_spills: int
    closed_until: datetime


@dataclass(frozen=True)
class RollUp:
    """What :func:`roll_up_run` did to one run."""

    run: int
    added: int  # spills added to the aggregate in this pass
    n_spills: int  # spills the aggregate covers now
    skipped: dict[str, int]  # histogram -> spills whose binning differed (not summed: no aggregate)


def aggregate_infos(session: Session, runs: Iterable[int]) -> dict[int, AggregateInfo]:
    """run -> coverage of its aggregate, for the runs that have one (primary-key look-ups)."""
    runs = list(runs)
    if not runs:
        return {}
    rows = session.execute(
        select(RunHistograms.run, RunHistograms.n_spills, RunHistograms.closed_until).where(
            RunHistograms.run.in_(runs)
        )
    )
    return {r: AggregateInfo(r, n, t) for r, n, t in rows}


def _closed_up_to(session: Session, run: int, until: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Spill)
            .where(Spill.run == run, Spill.closed, Spill.closed_at <= until)
        )
        or 0
    )


def aggregate_is_current(session: Session, info: AggregateInfo) -> bool:
    """True when the run's closed spills up to ``closed_until`` are still the ``n_spills`` summed
    (an index range count on ``spills (run, closed_at)``)."""
    return _closed_up_to(session, info.run, info.closed_until) == info.n_spills


def aggregate_blob(session: Session, run: int) -> bytes | None:
    return session.scalar(select(RunHistograms.blob).where(RunHistograms.run == run))


def run_closing_spans(
    session: Session, runs: Iterable[int]
) -> dict[int, tuple[int, datetime, datetime]]:
    """run -> (closed spills, first and last closing time), over the whole run."""
    runs = list(runs)
    if not runs:
        return {}
    rows = session.execute(
        select(Spill.run, func.count(), func.min(Spill.closed_at), func.max(Spill.closed_at))
        .where(Spill.run.in_(runs), Spill.closed)
        .group_by(Spill.run)
    )
    return {r: (int(n), lo, hi) for r, n, lo, hi in rows}


def spill_blobs(session: Session, spill_ids: Iterable[int], chunk: int = 500) -> Iterator[bytes]:
    """The stored histograms of these spills (those still stored), streamed by id chunks."""
    ids = sorted(spill_ids)
    for i in range(0, len(ids), chunk):
        stmt = select(SpillHistograms.blob).where(SpillHistograms.spill_id.in_(ids[i : i + chunk]))
        yield from session.scalars(stmt)


def run_sum_blobs(session: Session, run: int) -> Iterator[bytes]:
    """Blobs whose sum is the histograms of the run's closed spills, streamed.

    The run's aggregate plus the spills closed after it when the aggregate is current;
    otherwise every spill's own histograms.
    """
    info = aggregate_infos(session, [run]).get(run)
    after = None
    if info is not None and aggregate_is_current(session, info):
        blob = aggregate_blob(session, run)
        if blob is not None:
            yield blob
            after = info.closed_until
    stmt = (
        select(SpillHistograms.blob)
        .join(Spill, Spill.id == SpillHistograms.spill_id)
        .where(Spill.run == run, Spill.closed)
    )
    if after is not None:
        stmt = stmt.where(Spill.closed_at > after)
    yield from session.scalars(stmt.order_by(Spill.closed_at)).yield_per(64)


def runs_to_roll_up(
    session: Session, settled_before: datetime, limit: int = 100, skip: Iterable[int] = ()
) -> list[int]:
    """Runs with a closed spill, closed before ``settled_before``, that no aggregate covers yet
    (oldest run first), but those in ``skip``."""
    uncovered = (
        select(Spill.run)
        .outerjoin(RunHistograms, RunHistograms.run == Spill.run)
        .where(
            Spill.closed,
            Spill.closed_at < settled_before,
            or_(RunHistograms.run.is_(None), Spill.closed_at > RunHistograms.closed_until),
            Spill.run.not_in(list(skip) or [-1]),
        )
        .distinct()
        .order_by(Spill.run)
        .limit(limit)
    )
    return list(session.scalars(uncovered))


def roll_up_run(
    session: Session, run: int, settled_before: datetime, *, rebuild: bool = False
) -> RollUp:
    """Extend (or, with ``rebuild`` or a stale aggregate, rebuild) ``run``'s aggregate with its
    spills closed before ``settled_before``; flushes, the caller commits.

    The aggregate's row is locked first (``FOR UPDATE``; a new one is inserted), so two
    roll-ups of one run serialise and the second sees the first's ``closed_until``. A stale
    aggregate (see :func:`aggregate_is_current`) is rebuilt from every spill when their
    per-spill rows all exist; when some were deleted by the retention it is left as it is
    and nothing is added (``RollUp.added == 0``; readers then sum the spills). Spills whose
    binning differs from the run's (specs changed during the run) leave the run without an
    aggregate: readers sum its spills, and :attr:`Integrator.skipped` reports them.
    """
    from dqm.report.integrate import Integrator  # numpy-heavy: only where summing happens

    row = session.scalar(select(RunHistograms).where(RunHistograms.run == run).with_for_update())
    if row is not None and not rebuild:
        info = AggregateInfo(run, row.n_spills, row.closed_until)
        if not aggregate_is_current(session, info):
            rebuild = True
    base = Spill.run == run
    cond = [base, Spill.closed, Spill.closed_at < settled_before]
    if row is not None and not rebuild:
        cond.append(Spill.closed_at > row.closed_until)
    new = session.execute(
        select(Spill.id, Spill.closed_at).where(*cond).order_by(Spill.closed_at)
    ).all()
    covered = row.n_spills if row is not None and not rebuild else 0
    if not new:
        return RollUp(run, 0, covered, {})
    if rebuild and row is not None:
        stored = session.scalar(
            select(func.count())
            .select_from(SpillHistograms)
            .join(Spill, Spill.id == SpillHistograms.spill_id)
            .where(base, Spill.closed, Spill.closed_at <= row.closed_until)
        )
        if (stored or 0) < row.n_summed:
            return RollUp(run, 0, row.n_spills, {})  # per-spill rows were pruned: keep it
    acc = Integrator()
    if row is not None and not rebuild:
        acc.add(row.blob)
    blobs = list(spill_blobs(session, [sid for sid, _ in new]))
    acc.add_many(blobs)
    if acc.skipped:
        return RollUp(run, 0, covered, dict(acc.skipped))
    blob = encode_histograms(acc.histograms())
    n_summed = (row.n_summed if row is not None and not rebuild else 0) + len(blobs)
    values = dict(
        n_spills=covered + len(new),
        n_summed=n_summed,
        closed_until=new[-1][1],
        format_version=FORMAT_VERSION,
        size_bytes=len(blob),
        blob=blob,
        updated_at=utcnow(),
    )
    if row is None:
        session.add(RunHistograms(run=run, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.flush()
    return RollUp(run, len(new), covered + len(new), {})


def roll_up_runs(
    sessions: sessionmaker[Session],
    *,
    settle_s: float = 600.0,
    limit: int = 100,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    skip: Iterable[int] = (),
) -> list[RollUp]:
    """Roll up every run with spills closed more than ``settle_s`` ago that no aggregate covers,
    one run per transaction (a run of 200 spills: ≈ 0.1 s of summing).

    It never blocks a worker: a close locks the ``runs`` row and writes ``spills`` and
    ``spill_histograms``; this reads those and locks only the aggregate's own row.
    """
    settled_before = (now or utcnow()) - timedelta(seconds=settle_s)
    with sessions() as session:
        runs = runs_to_roll_up(session, settled_before, limit, skip)
    done = []
    for run in runs:
        if should_stop():
            break
        with sessions.begin() as session:
            done.append(roll_up_run(session, run, settled_before))
    return done


@dataclass
class PeriodSum:
    """How a period's histograms are summed: whole runs' aggregates plus single spills."""

    aggregate_runs: dict[int, int]  # run -> spills of the period its aggregate stands for
    spill_ids: list[int]  # spills summed one by one (edges of the period, uncovered spills)
    #: spills summed one by one that had no stored histograms (never had, or deleted)
    missing: int = 0

    @property
    def n_blobs(self) -> int:
        return len(self.aggregate_runs) + len(self.spill_ids)

    def blobs(self, session: Session) -> Iterator[bytes]:
        """The aggregates, then the single spills' histograms; counts :attr:`missing`."""
        for run in sorted(self.aggregate_runs):
            blob = aggregate_blob(session, run)
            if blob is not None:
                yield blob
        found = 0
        for blob in spill_blobs(session, self.spill_ids):
            found += 1
            yield blob
        self.missing = len(self.spill_ids) - found


def period_sum(
    session: Session,
    spills: Iterable[tuple[int, int, datetime]],
    start: datetime | None,
    end: datetime | None,
    *,
    aggregates: bool = True,
) -> PeriodSum:
    """Plan the sum of a period's closed spills ``(id, run, closed_at)``, the spills of
    ``start <= closed_at < end``.

    A run's aggregate is used when every spill it covers lies in the period (the run's first
    closed spill at or after ``start``, ``closed_until`` before ``end``) and it is current: the
    period holds exactly ``n_spills`` of the run's spills up to ``closed_until``. The run's
    spills closed after it are then summed one by one, as are all spills of the other runs
    (a run cut by the period's start or end). Cost: one grouped query over the period's runs,
    one primary-key read per aggregate, per-spill rows only for the rest.
    """
    by_run: dict[int, list[tuple[int, datetime]]] = {}
    for sid, run, closed_at in spills:
        by_run.setdefault(run, []).append((sid, closed_at))
    infos = aggregate_infos(session, by_run) if aggregates else {}
    spans = run_closing_spans(session, infos) if infos else {}
    plan = PeriodSum({}, [])
    for run, rows in sorted(by_run.items()):
        info, span = infos.get(run), spans.get(run)
        usable = (
            info is not None
            and span is not None
            and (start is None or span[1] >= start)
            and (end is None or info.closed_until < end)
        )
        if usable:
            assert info is not None
            inside = [sid for sid, t in rows if t <= info.closed_until]
            usable = len(inside) == info.n_spills > 0
        if usable:
            assert info is not None
            plan.aggregate_runs[run] = info.n_spills
            plan.spill_ids.extend(sid for sid, t in rows if t > info.closed_until)
        else:
            plan.spill_ids.extend(sid for sid, _ in rows)
    return plan


def histograms_deleted(session: Session, spill_ids: Iterable[int]) -> set[int]:
    """The spills among ``spill_ids`` whose own histograms the retention deleted: no stored
    row, and inside their run's aggregate (a spill closed without histograms is not one)."""
    ids = list(spill_ids)
    if not ids:
        return set()
    stmt = (
        select(Spill.id)
        .join(RunHistograms, RunHistograms.run == Spill.run)
        .outerjoin(SpillHistograms, SpillHistograms.spill_id == Spill.id)
        .where(
            Spill.id.in_(ids),
            SpillHistograms.spill_id.is_(None),
            Spill.closed_at <= RunHistograms.closed_until,
        )
    )
    return set(session.scalars(stmt))


def run_histogram(session: Session, run: int, name: str):
    """Histogram ``name`` summed over the run's closed spills (aggregate + later spills), or
    None when no spill has it."""
    total = None
    for blob in run_sum_blobs(session, run):
        h = decode_histograms(blob, [name])[0].get(name)
        if h is not None:
            total = h if total is None else total + h
    return total
