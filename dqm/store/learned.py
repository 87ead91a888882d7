"""Learned models as data: store, version, activate, load; the good spills to train on.

Layer: I/O shell (store). A model row carries its provenance (who, when, which spills,
score distributions, calibration) and its fitted arrays; :class:`ModelCache` decodes each
stored model once per process, so a worker's close hook reads a few rows, not arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dqm.checks import ROLLUP, Quality
from dqm.learn.pca import LearnedModel, array_bytes, bytes_array
from dqm.learn.vector import HistogramLayout
from dqm.store.actions import audit
from dqm.store.models import Certification, Flag, ModelRow, Run, Spill

__all__ = [
    "store_model",
    "as_model",
    "model_row",
    "list_models",
    "active_model_rows",
    "ModelCache",
    "good_spills",
    "spill_ranges",
    "flags_model_ids",
    "LEARNED_CHECK",
]

#: the check whose flags record the model they used (``details["model_id"]``)
LEARNED_CHECK = "pca_score"


def spill_ranges(spills: Iterable[tuple[int, int]]) -> list[list[int]]:
    """``[(run, spill), …]`` as ``[[run, first, last], …]`` ranges (how provenance is stored)."""
    out: list[list[int]] = []
    for run, spill in sorted(spills):
        if out and out[-1][0] == run and out[-1][2] == spill - 1:
            out[-1][2] = spill
        else:
            out.append([run, spill, spill])
    return out


def store_model(
    session: Session,
    model: LearnedModel,
    *,
    created_by: str,
    training: dict[str, Any],
    n_train: int,
    n_holdout: int,
    scores: dict[str, Any],
    calibration: dict[str, Any],
    comment: str = "",
) -> ModelRow:
    """Store ``model`` as the next version of its subsystem and beam configuration and make
    it the active one (the previous versions stay, inactive). Audited."""
    newest = session.scalar(
        select(func.max(ModelRow.version)).where(
            ModelRow.subsystem == model.subsystem, ModelRow.beam_config == model.beam_config
        )
    )
    session.execute(
        update(ModelRow)
        .where(ModelRow.subsystem == model.subsystem, ModelRow.beam_config == model.beam_config)
        .values(active=False)
    )
    row = ModelRow(
        kind="pca",
        subsystem=model.subsystem,
        beam_config=model.beam_config,
        version=int(newest or 0) + 1,
        created_by=created_by,
        comment=comment,
        training=training,
        n_train=n_train,
        n_holdout=n_holdout,
        scores=scores,
        calibration={**calibration, "info": dict(model.info)},
        threshold=float(model.threshold),
        false_alarm=float(model.false_alarm),
        layout=[item.to_dict() for item in model.layout],
        components=array_bytes(model.components),
        mean=array_bytes(model.mean),
        scale=array_bytes(model.scale),
        active=True,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        created_by,
        "model_train",
        f"model {row.id}",
        {"subsystem": row.subsystem, "beam_config": row.beam_config, "version": row.version},
    )
    return row


def as_model(row: ModelRow) -> LearnedModel:
    """The stored row as a model the ``pca_score`` check scores with."""
    return LearnedModel(
        row.subsystem,
        row.beam_config,
        tuple(HistogramLayout.from_dict(item) for item in row.layout),
        bytes_array(row.mean),
        bytes_array(row.scale),
        bytes_array(row.components),
        threshold=float(row.threshold),
        false_alarm=float(row.false_alarm),
        id=row.id,
        version=row.version,
        info=dict((row.calibration or {}).get("info", {})),
    )


def model_row(session: Session, model_id: int) -> ModelRow | None:
    return session.get(ModelRow, model_id)


def list_models(session: Session, beam_config: str | None = None) -> list[ModelRow]:
    """Every stored model (newest first), optionally of one beam configuration."""
    stmt = select(ModelRow).order_by(ModelRow.id.desc())
    if beam_config is not None:
        stmt = stmt.where(ModelRow.beam_config == beam_config)
    return list(session.scalars(stmt))


def active_model_rows(session: Session, beam_config: str) -> list[tuple[int, str]]:
    """``(id, subsystem)`` of the active models of a beam configuration."""
    stmt = select(ModelRow.id, ModelRow.subsystem).where(
        ModelRow.beam_config == beam_config, ModelRow.active
    )
    return [(int(i), str(s)) for i, s in session.execute(stmt)]


def flags_model_ids(session: Session, spill_id: int) -> dict[str, int]:
    """``{subsystem: model id}`` recorded by a spill's ``pca_score`` flags (for recheck)."""
    rows = session.scalars(
        select(Flag).where(Flag.spill_id == spill_id, Flag.check == LEARNED_CHECK)
    )
    out = {}
    for f in rows:
        model_id = (f.details or {}).get("model_id")
        if isinstance(model_id, int):
            out[f.subsystem] = model_id
    return out


class ModelCache:
    """Decoded models by id (a stored model never changes: its id is its content)."""

    def __init__(self) -> None:
        self._models: dict[int, LearnedModel] = {}

    def get(self, session: Session, model_id: int) -> LearnedModel | None:
        if model_id not in self._models:
            row = session.get(ModelRow, model_id)
            if row is None:
                return None
            if len(self._models) > 256:
                self._models.clear()
            self._models[model_id] = as_model(row)
        return self._models[model_id]

    def active(self, session: Session, beam_config: str | None) -> dict[str, LearnedModel]:
        """The active model per subsystem of ``beam_config`` (none without one)."""
        if beam_config is None:
            return {}
        out = {}
        for model_id, subsystem in active_model_rows(session, beam_config):
            model = self.get(session, model_id)
            if model is not None:
                out[subsystem] = model
        return out

    def recorded(self, session: Session, ids: dict[str, int]) -> dict[str, LearnedModel]:
        out = {}
        for subsystem, model_id in ids.items():
            model = self.get(session, model_id)
            if model is not None:
                out[subsystem] = model
        return out


def _certified(session: Session, runs: Sequence[int], subsystem: str) -> dict[int, set[int]]:
    """Per run that has certifications of ``subsystem``: its spills certified good
    (a later certification of the same spills wins)."""
    verdicts: dict[int, dict[int, bool]] = {}
    rows = session.scalars(
        select(Certification)
        .where(Certification.run.in_(runs), Certification.subsystem == subsystem)
        .order_by(Certification.id)
    )
    for c in rows:
        marks = verdicts.setdefault(c.run, {})
        for spill in range(c.first_spill, c.last_spill + 1):
            marks[spill] = c.verdict == "good"
    return {run: {s for s, good in marks.items() if good} for run, marks in verdicts.items()}


def good_spills(
    session: Session,
    beam_config: str,
    subsystem: str,
    runs: tuple[int, int] | None = None,
) -> list[Spill]:
    """Closed spills to train ``subsystem``'s model of ``beam_config`` on, by run and spill.

    A run with certifications of the subsystem gives its spills certified good; any other
    run its spills that no check called WARNING or worse (the spill's roll-up of the
    subsystem below WARNING, and none judged with a failing check).
    """
    stmt = select(Run.run).where(Run.beam_config == beam_config)
    if runs is not None:
        stmt = stmt.where(Run.run >= runs[0], Run.run <= runs[1])
    run_numbers = list(session.scalars(stmt))
    if not run_numbers:
        return []
    certified = _certified(session, run_numbers, subsystem)
    flagged = set(
        session.scalars(
            select(Flag.spill_id).where(
                Flag.run.in_(run_numbers),
                Flag.check == ROLLUP,
                Flag.subsystem == subsystem,
                Flag.quality >= int(Quality.WARNING),
            )
        )
    )
    spills = session.scalars(
        select(Spill)
        .where(Spill.run.in_(run_numbers), Spill.closed, Spill.quality.is_not(None))
        .order_by(Spill.run, Spill.spill)
    )
    out = []
    for sp in spills:
        if sp.run in certified:
            if sp.spill in certified[sp.run]:
                out.append(sp)
        elif sp.id not in flagged and (sp.quality or 0) != int(Quality.CHECK_ERROR):
            out.append(sp)
    return out
