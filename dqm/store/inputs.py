"""A spill's check inputs as they were when it closed: history, reference, masks, overrides.

Every input of :func:`dqm.core.evaluate.evaluate_spill` is read *as it was when the spill
closed*: history = the run's spills closed before it, masks in force at its closing
time, overrides up to the configuration version, the reference recorded with it.
So ``dqm recheck`` with the same configuration version reproduces the live flags
(:mod:`dqm.store.flags` stores them; this module only reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.core.conditions import RunConditions
from dqm.core.evaluate import Arrival, accumulated, config_version
from dqm.core.specs import SpecSet
from dqm.errors import StorageError
from dqm.store.history import RecentHistograms, history, run_start
from dqm.store.learned import ModelCache, flags_model_ids
from dqm.store.models import ChannelMask, CheckOverride, Flag, Reference, Run, Spill
from dqm.store.references import (
    ReferenceCache,
    active_reference,
    flags_reference_run,
    newest_reference_of_run,
)
from dqm.store.runs import as_conditions

__all__ = [
    "CheckInputs",
    "gather_inputs",
    "recorded_inputs",
    "spill_arrival",
    "JUDGING_CHECK",
    "ACTIVE",
    "CURRENT",
]


#: Check name of the flags standing for a spill whose judging failed as a whole
#: (:class:`dqm.store.judge.SpillJudge`).
JUDGING_CHECK = "judging"


@dataclass
class CheckInputs:
    history: dict[str, list[float]]
    reference: Mapping
    reference_run: int | None
    masked: dict[str, list[list[int]]]
    overrides: dict[tuple[str, str], dict]
    version: str
    #: the run conditions the spill is judged under (None: none received)
    conditions: RunConditions | None = None
    #: the conditions the reference was taken under (None: none, or not recorded)
    reference_conditions: RunConditions | None = None
    run_start: dict[str, list[float]] | None = None
    reference_history: dict[str, list[float]] | None = None
    recent: list[dict] = field(default_factory=list)
    #: the learned model per subsystem (``pca_score``): the active ones of the beam
    #: configuration, or those a spill judged before recorded in its flags
    models: dict = field(default_factory=dict)

    def evaluate_kwargs(self) -> dict:
        """The inputs as :func:`dqm.core.evaluate.evaluate_spill` keywords."""
        return {
            "history": self.history,
            "reference": self.reference,
            "masked": self.masked,
            "overrides": self.overrides,
            "conditions": self.conditions,
            "reference_conditions": self.reference_conditions,
            "run_start": self.run_start,
            "reference_history": self.reference_history,
            "recent": self.recent,
            "models": self.models,
        }


def _overrides(session: Session, upto: int | None) -> dict[tuple[str, str], dict]:
    stmt = select(CheckOverride).order_by(CheckOverride.id)
    if upto is not None:
        stmt = stmt.where(CheckOverride.id <= upto)
    out: dict[tuple[str, str], dict] = {}
    for o in session.scalars(stmt):
        out.setdefault((o.histogram, o.check), {}).update(o.params)
    return out


def _masks(session: Session, at: datetime) -> dict[str, list[list[int]]]:
    rows = session.scalars(
        select(ChannelMask).where(ChannelMask.created_at <= at, ChannelMask.until > at)
    ).all()
    out: dict[str, list[list[int]]] = {}
    for m in rows:
        out.setdefault(m.histogram, []).append(list(m.channel))
    return out


#: ``gather_inputs(reference=ACTIVE)``: use the beam configuration's active reference.
ACTIVE = object()
#: ``gather_inputs(conditions=CURRENT)``: the run's conditions as stored now.
CURRENT = object()


def gather_inputs(
    session: Session,
    sp: Spill,
    specs: SpecSet,
    refs: ReferenceCache,
    *,
    version: str | None = None,
    reference: Reference | None | object = ACTIVE,
    conditions: RunConditions | None | object = CURRENT,
    recent: RecentHistograms | None = None,
    models: ModelCache | None = None,
    model_ids: dict[str, int] | None = None,
) -> CheckInputs:
    """Inputs as they were when ``sp`` closed; ``version`` pins the threshold overrides.

    ``conditions`` are the run conditions to judge under (``None``: none, as when the live
    flags were made without them); by default the run's. ``reference`` is the reference to
    compare with (``None``: none); by default the active one of the beam configuration
    those conditions give — no conditions, no reference (never a default configuration).
    ``recent`` caches decoded histograms of earlier spills (the cell checks that add up
    spills need them); without one they are decoded afresh.
    """
    if version is not None:
        spec_hash, _, ov = version.partition("+")
        if spec_hash != specs.version:
            raise StorageError(
                f"configuration version {version} was made with specs {spec_hash}; the specs in "
                f"use are {specs.version}"
            )
        upto = int(ov or 0)
    else:
        upto = session.scalar(select(func.max(CheckOverride.id))) or 0
    if conditions is CURRENT:
        run_row = session.get(Run, sp.run)
        conditions = as_conditions(run_row.conditions) if run_row else None
    assert conditions is None or isinstance(conditions, RunConditions)
    if reference is ACTIVE:
        reference = active_reference(session, conditions.beam_config) if conditions else None
    ref = reference
    assert ref is None or isinstance(ref, Reference)
    at = sp.closed_at or datetime.now(UTC)
    overrides = _overrides(session, upto)
    names, n_recent = accumulated(specs, overrides)
    models = models or ModelCache()
    learned = (
        models.recorded(session, model_ids)
        if model_ids is not None
        else models.active(session, conditions.beam_config if conditions else None)
    )
    return CheckInputs(
        history=history(session, sp),
        reference=refs.get(session, ref),
        reference_run=ref.run if ref else None,
        masked=_masks(session, at),
        overrides=overrides,
        version=config_version(specs, upto),
        conditions=conditions,
        reference_conditions=as_conditions(ref.conditions) if ref else None,
        run_start=run_start(session, sp),
        reference_history=refs.series(session, ref),
        recent=(recent or RecentHistograms()).get(session, sp, names, n_recent),
        models=learned,
    )


def spill_arrival(sp: Spill) -> Arrival:
    """What the spill's end-of-spill marker announced against what arrived (from its row)."""
    return Arrival(
        received_batches=int(sp.received_batches or 0),
        received_events=int(sp.n_events) if sp.n_events is not None else None,
        expected_batches=sp.expected_batches,
        expected_events=sp.expected_events,
        late_batches=int(sp.late_batches or 0),
        late_events=int(sp.late_events or 0),
    )


def recorded_inputs(
    session: Session,
    sp: Spill,
    specs: SpecSet,
    refs: ReferenceCache,
    *,
    version: str | None = None,
    recent: RecentHistograms | None = None,
    models: ModelCache | None = None,
) -> CheckInputs:
    """Inputs of a spill judged before, as they were then: its conditions, reference, overrides.

    The reference is the one recorded with its flags (none if it was judged without one);
    a spill never judged (or whose judging failed as a whole) gets the active one, as the
    live hook would now. The overrides are pinned to ``version`` or else to the spill's
    own configuration version (when the specs still match it). The learned models are those
    its flags recorded (none if it was judged without one).
    """
    ref: Reference | None | object = ACTIVE
    cond: RunConditions | None | object = CURRENT
    model_ids: dict[str, int] | None = None
    judged = select(func.count()).select_from(Flag).where(Flag.spill_id == sp.id)
    # a spill whose judging failed as a whole was never compared with anything: it gets
    # the active reference, as the live hook would have used
    if session.scalar(judged.where(Flag.check != JUDGING_CHECK)):
        cond = as_conditions(sp.conditions)  # the run conditions it was judged under
        ref_run = flags_reference_run(session, sp.id)
        ref = newest_reference_of_run(session, ref_run) if ref_run is not None else None
        model_ids = flags_model_ids(session, sp.id)
    pinned = version or sp.config_version
    return gather_inputs(
        session,
        sp,
        specs,
        refs,
        version=pinned if pinned and pinned.split("+")[0] == specs.version else None,
        reference=ref,
        conditions=cond,
        recent=recent,
        models=models,
        model_ids=model_ids,
    )
