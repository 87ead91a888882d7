"""Gather everything a report shows, from the store, into plain data (no plotting).

Layer: I/O shell over the SQL store, read-only. It asks the store
(:mod:`dqm.store.periods`) for the closed spills of a :class:`Period`, their flags,
the references in force and the period's integrated histograms, and returns a
:class:`ReportData` that the page planner and the plotting code consume without
touching the database again. So the pages can be tested from a hand-built
``ReportData`` and the gathering from a real database, separately.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import boost_histogram as bh

from dqm.checks import ROLLUP, Quality, quality_name
from dqm.core.histio import decode_histograms
from dqm.core.numbering import missing_numbers
from dqm.core.specs import SpecSet
from dqm.errors import ConfigError
from dqm.report.integrate import Integrator
from dqm.report.progress import NullProgress, Progress
from dqm.store import Session
from dqm.store.models import Reference
from dqm.store.periods import (
    period_flag_counts,
    period_flags,
    period_reference_runs,
    period_spills,
    references_by_set_time,
)
from dqm.store.rollup import period_sum, run_sum_blobs
from dqm.store.runs import as_conditions, runs_by_number
from dqm.store.signoff import RunSummary, run_summaries

__all__ = [
    "Period",
    "SpillRow",
    "FlagRow",
    "ReferenceInfo",
    "ReportData",
    "gather",
    "parse_utc",
]

WARNING = int(Quality.WARNING)

ProgressFactory = Callable[..., Progress]


def parse_utc(text: str, what: str = "--since") -> datetime:
    """An ISO date or date-time; naive values are UTC (the DQM's one clock)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            what, text, "an ISO date or date-time such as 2025-06-01T06:00 (UTC)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """What a report covers: a UTC time window on spill closing times, or one run."""

    label: str
    start: datetime | None = None
    end: datetime | None = None
    run: int | None = None

    @classmethod
    def day(cls, day: date, tz: tzinfo | None = UTC) -> Period:
        """Midnight to midnight in ``tz``; ``None`` means the machine's local time zone.

        A local day is 23 or 25 hours long when daylight saving time changes: each
        midnight is converted on its own, so the window is always that calendar day.
        """
        if tz is None:  # local: let the C library apply the DST rule in force at each midnight
            start = datetime.combine(day, time(0)).astimezone()
            end = datetime.combine(day + timedelta(days=1), time(0)).astimezone()
        else:
            start = datetime.combine(day, time(0), tzinfo=tz)
            end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
        return cls(
            f"{day.isoformat()} ({start.tzname() or 'local'})",
            start.astimezone(UTC),
            end.astimezone(UTC),
        )

    @classmethod
    def for_run(cls, run: int) -> Period:
        return cls(f"run {run}", run=run)

    @classmethod
    def between(cls, since: datetime, until: datetime) -> Period:
        if not until > since:
            raise ConfigError(
                "--until", until.isoformat(), f"a time after --since ({since.isoformat()})"
            )
        return cls(f"{since:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC", since, until)


@dataclass(frozen=True)
class SpillRow:
    id: int
    run: int
    spill: int
    status: str
    closed_at: datetime
    n_events: int
    quality: int | None
    summary: dict


@dataclass(frozen=True)
class FlagRow:
    run: int
    spill: int | None
    subsystem: str
    histogram: str | None
    check: str
    quality: int
    value: float | None
    explanation: str
    instruction: str
    reference_run: int | None
    created_at: datetime | None


@dataclass(frozen=True)
class ReferenceInfo:
    beam_config: str
    run: int
    set_at: datetime | None
    set_by: str
    comment: str
    imported: bool
    in_force_at_end: bool


@dataclass
class ReportData:
    """Everything the pages show; built by :func:`gather`, or by hand in tests."""

    period: Period
    specs: SpecSet
    generated_at: datetime
    spills: list[SpillRow]
    flags: list[FlagRow]
    references: list[ReferenceInfo]
    histograms: dict[str, bh.Histogram]
    reference_histograms: dict[str, bh.Histogram] = field(default_factory=dict)
    reference_run: int | None = None
    beam_configs: dict[str, int] = field(default_factory=dict)  # config -> spills
    #: run -> its conditions in words (RunConditions.describe), "" when none were received
    run_conditions: dict[int, str] = field(default_factory=dict)
    mot_per_event: float = 1.0
    skipped: dict[str, int] = field(default_factory=dict)  # histogram -> spills not summed
    #: spills of the period without stored histograms (closed without any, or deleted by the
    #: histogram retention and not covered by an aggregate usable for this period)
    missing_histograms: int = 0
    #: subsystem -> quality name -> number of check flags (all qualities, roll-ups left out)
    flag_counts: dict[str, Counter] = field(default_factory=dict)
    #: each run of the period, whole: incidents, certification, good fractions (sign-off pages)
    run_summaries: list[RunSummary] = field(default_factory=list)

    @property
    def runs(self) -> list[int]:
        return sorted({s.run for s in self.spills})

    @property
    def missing_spills(self) -> dict[int, list[int]]:
        """Run -> spill numbers absent between the run's first and last spill of the period:
        spills that never reached the DQM (:mod:`dqm.core.numbering`)."""
        by_run: dict[int, list[int]] = {}
        for s in self.spills:
            by_run.setdefault(s.run, []).append(s.spill)
        gaps = {run: missing_numbers(numbers) for run, numbers in sorted(by_run.items())}
        return {run: gap for run, gap in gaps.items() if gap}

    @property
    def n_events(self) -> int:
        return sum(s.n_events for s in self.spills)

    @property
    def mot(self) -> float:
        return self.n_events * self.mot_per_event

    @property
    def quality_counts(self) -> Counter:
        """Spills per quality name (``UNCHECKED`` when no check judged the spill)."""
        return Counter(quality_name(s.quality, unjudged="UNCHECKED") for s in self.spills)

    @property
    def good_fraction(self) -> float | None:
        return self.quality_counts["GOOD"] / len(self.spills) if self.spills else None

    @property
    def problem_flags(self) -> list[FlagRow]:
        """Every WARNING/BAD check flag, in time order: the report's table.

        Per-subsystem roll-up rows repeat their worst check's explanation, so they are
        left out here (a spill flagged only by its completeness check still appears:
        that check has no histogram but is not a roll-up).
        """
        return [f for f in self.flags if f.quality >= WARNING and f.check != ROLLUP]

    @property
    def problem_spills(self) -> list[tuple[int, int | None]]:
        """(run, spill) of every spill with a WARNING/BAD flag, in time order."""
        return list(dict.fromkeys((f.run, f.spill) for f in self.problem_flags))

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        """The period's bounds, or for a run its first and last closing times."""
        if self.period.start is not None or not self.spills:
            return self.period.start, self.period.end
        return self.spills[0].closed_at, self.spills[-1].closed_at


def _spills(session: Session, period: Period) -> list[SpillRow]:
    return [
        SpillRow(
            sp.id,
            sp.run,
            sp.spill,
            sp.status,
            sp.closed_at,
            int(sp.n_events or 0),
            sp.quality,
            dict(sp.summary or {}),
        )
        for sp in period_spills(session, period)
    ]


def _flags(session: Session, period: Period) -> list[FlagRow]:
    """WARNING/BAD flags only: a day has ~25 GOOD check rows per spill, counted in SQL instead."""
    return [
        FlagRow(
            f.run,
            f.spill,
            f.subsystem,
            f.histogram,
            f.check,
            int(f.quality),
            f.value,
            f.explanation or "",
            f.instruction or "",
            f.reference_run,
            f.created_at,
        )
        for f in period_flags(session, period, WARNING)
    ]


def _flag_counts(session: Session, period: Period) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for subsystem, quality, n in period_flag_counts(session, period):
        out.setdefault(subsystem, Counter())[quality_name(quality)] += n
    return out


def _with_worst_flag(spills: list[SpillRow], flags: list[FlagRow]) -> list[SpillRow]:
    """A spill whose quality column is empty takes the worst of its flags."""
    worst: dict[tuple[int, int | None], int] = {}
    for f in flags:
        key = (f.run, f.spill)
        worst[key] = max(worst.get(key, 0), f.quality)  # roll-up is worst-of
    out = []
    for s in spills:
        if s.quality is None and (s.run, s.spill) in worst:
            s = SpillRow(
                s.id,
                s.run,
                s.spill,
                s.status,
                s.closed_at,
                s.n_events,
                worst[(s.run, s.spill)],
                s.summary,
            )
        out.append(s)
    return out


def _references(
    session: Session, configs: list[str], flag_runs: set[int], end: datetime | None
) -> tuple[list[ReferenceInfo], dict[str, Reference]]:
    """References that were in force at the period's end, plus those the flags name."""
    infos: list[ReferenceInfo] = []
    in_force: dict[str, Reference] = {}
    rows = references_by_set_time(session)
    for config in configs:
        mine = [r for r in rows if r.beam_config == config]
        before = [r for r in mine if end is None or r.set_at <= end]
        chosen = before[-1] if before else next((r for r in reversed(mine) if r.active), None)
        if chosen is not None:
            in_force[config] = chosen
    seen: set[int] = set()
    for r in rows:
        if r.id in seen or not (r in in_force.values() or r.run in flag_runs):
            continue
        seen.add(r.id)
        infos.append(
            ReferenceInfo(
                r.beam_config,
                r.run,
                r.set_at,
                r.set_by,
                r.comment or "",
                r.blob is not None,
                r in in_force.values(),
            )
        )
    return infos, in_force


def reference_histograms(
    session: Session, ref: Reference, threads: int | None = None
) -> dict[str, bh.Histogram]:
    """An imported reference's histograms, or the sum of its run's closed spills."""
    if ref.blob is not None:
        return decode_histograms(ref.blob)[0]
    acc = Integrator()
    acc.add_many(run_sum_blobs(session, ref.run), threads=threads)
    return acc.histograms()


def gather(
    session: Session,
    specs: SpecSet,
    period: Period,
    *,
    mot_per_event: float = 1.0,
    progress: ProgressFactory = NullProgress,
    now: datetime | None = None,
    threads: int | None = None,
    aggregates: bool = True,
) -> ReportData:
    """Read the period's spills, flags, references and integrated histograms.

    ``aggregates=False`` sums every spill's own histograms (the benchmark's baseline).
    """
    flags = _flags(session, period)
    spills = _with_worst_flag(_spills(session, period), flags)
    configs = Counter()
    run_conditions: dict[int, str] = {}
    if spills:
        stored = runs_by_number(session, {s.run for s in spills})
        run_cfg = {run: row.beam_config for run, row in stored.items()}
        for run, row in stored.items():
            cond = as_conditions(row.conditions)
            run_conditions[run] = cond.describe() if cond else ""
        configs = Counter(run_cfg.get(s.run) or "unknown" for s in spills)
    end = period.end or (spills[-1].closed_at if spills else None)
    flag_runs = period_reference_runs(session, period)
    refs, in_force = _references(session, list(configs), flag_runs, end)
    acc = Integrator()
    # whole runs from their aggregates (dqm.store.rollup), the period's edges spill by spill
    plan = period_sum(
        session,
        ((s.id, s.run, s.closed_at) for s in spills),
        period.start,
        period.end,
        aggregates=aggregates,
    )
    with progress("integrating spills", total=plan.n_blobs) as bar:
        acc.add_many(plan.blobs(session), threads=threads, on_each=bar.update)
    ref_hists: dict[str, bh.Histogram] = {}
    ref_run = None
    if configs:
        main_config = configs.most_common(1)[0][0]
        if main_config in in_force:
            ref_run = in_force[main_config].run
            ref_hists = reference_histograms(session, in_force[main_config], threads)
    return ReportData(
        period=period,
        specs=specs,
        generated_at=now or datetime.now(UTC),
        spills=spills,
        flags=flags,
        references=refs,
        histograms=acc.histograms(),
        reference_histograms=ref_hists,
        reference_run=ref_run,
        beam_configs=dict(configs),
        run_conditions=run_conditions,
        mot_per_event=mot_per_event,
        skipped=dict(acc.skipped),
        missing_histograms=plan.missing,
        flag_counts=_flag_counts(session, period),
        run_summaries=run_summaries(session, sorted({s.run for s in spills})),
    )
