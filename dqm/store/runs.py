"""Runs in the database: look one up, its beam configuration, the newest number.

Layer: I/O shell (store). A run row is created by the first spill stored for it
(:func:`dqm.store.spills.ensure_spill`); its beam configuration chooses the reference
its spills are compared with.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.errors import StorageError
from dqm.store.models import Run

__all__ = [
    "DEFAULT_BEAM_CONFIG",
    "get_run",
    "beam_config_of",
    "newest_run_number",
    "run_beam_configs",
    "set_beam_config",
]

#: Beam configuration of a run stored without one (the nominal 160 GeV μ⁻ beam).
DEFAULT_BEAM_CONFIG = "mu160"


def get_run(session: Session, run: int) -> Run | None:
    """The run's row, or None if no spill of it ever reached the store."""
    return session.get(Run, run)


def beam_config_of(session: Session, run: int) -> str:
    """The run's beam configuration (the default one for a run not in the store)."""
    return session.scalar(select(Run.beam_config).where(Run.run == run)) or DEFAULT_BEAM_CONFIG


def run_beam_configs(session: Session, runs: Iterable[int]) -> dict[int, str]:
    """Run -> beam configuration for each of ``runs`` (the default one for a run not stored)."""
    wanted = set(runs)
    stmt = select(Run.run, Run.beam_config).where(Run.run.in_(wanted))
    stored = {run: config for run, config in session.execute(stmt)}
    return {run: stored.get(run, DEFAULT_BEAM_CONFIG) for run in wanted}


def newest_run_number(session: Session) -> int | None:
    """The highest run number in the store, None when it is empty."""
    return session.scalar(select(func.max(Run.run)))


def set_beam_config(session: Session, run: int, beam_config: str) -> None:
    """Record the run's beam configuration (the run must exist); the caller commits."""
    row = session.get(Run, run)
    if row is None:
        raise StorageError(f"run {run} is not in the database")
    row.beam_config = beam_config
