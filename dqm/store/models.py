"""SQLAlchemy 2 models: the schema the Alembic migrations in ``db/`` create.

The same models run on PostgreSQL (production) and SQLite (embedded default), so
only portable types are used (JSON — JSONB for the spill summary on PostgreSQL —,
LargeBinary, and :class:`UTCDateTime` for every point in time). A test compares these
models with the migrated schema so they never drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from dqm.core.status import SPILL_COMPLETE, SPILL_INCOMPLETE, SPILL_OPEN

__all__ = [
    "Base",
    "Run",
    "Spill",
    "SpillPartial",
    "SpillHistograms",
    "RunHistograms",
    "ProcessedMessage",
    "Flag",
    "CheckText",
    "Reference",
    "AuditEntry",
    "ChannelMask",
    "CheckOverride",
    "StoredIncident",
    "AlarmSilence",
    "Certification",
    "ModelRow",
    "UTCDateTime",
    "utcnow",
    "SPILL_OPEN",
    "SPILL_COMPLETE",
    "SPILL_INCOMPLETE",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time: written as UTC, read back as an aware UTC ``datetime``, on both databases.

    Why one column type: PostgreSQL's ``timestamptz`` keeps the zone, SQLite has none
    and hands back naive values (and would store an aware value's wall clock *without*
    converting it). Converting here — for every column, every bound parameter of a
    comparison (``closed_at < :cutoff``) and every row read — is what lets the rest of
    the code compare times without asking which database it runs on. A naive value
    given to the store is taken as UTC, the DQM's one clock.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME stores the wall clock as text: give it UTC's, without a zone
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


class Run(Base):
    """A sequence of spills under fixed conditions; ``beam_config`` selects its reference.

    ``conditions`` are the run's conditions as the DAQ announced them
    (:class:`dqm.core.conditions.RunConditions` as JSON) and ``beam_config`` is derived
    from them; both are NULL while none arrived — a run is never assumed to be "mu160".
    ``conditions_message`` is the stream id of the announcement in force: a later
    announcement (higher id) replaces it, an older one redelivered late does not.
    Runs stored before conditions existed keep their ``beam_config`` with NULL conditions.
    """

    __tablename__ = "runs"
    run: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    beam_config: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    comment: Mapped[str] = mapped_column(Text, default="")
    conditions: Mapped[dict | None] = mapped_column(JSON)
    conditions_message: Mapped[str | None] = mapped_column(String(64))
    conditions_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Spill(Base):
    """One SPS spill: status, bookkeeping of batches, the per-spill summary and its verdict."""

    __tablename__ = "spills"
    __table_args__ = (UniqueConstraint("run", "spill", name="uq_spills_run_spill"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run: Mapped[int] = mapped_column(ForeignKey("runs.run"), index=True)
    spill: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=SPILL_OPEN, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # indexed (0004P): the newest closed spills, the change check and time spans ask by it
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    expected_batches: Mapped[int | None] = mapped_column(Integer)
    expected_events: Mapped[int | None] = mapped_column(Integer)
    received_batches: Mapped[int] = mapped_column(Integer, default=0)
    n_events: Mapped[int] = mapped_column(BigInteger, default=0)
    # batches of this spill that came after its end-of-spill marker in the stream, or after
    # it closed: dead-lettered, not counted, but judged (daq/marker_mismatch)
    late_batches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    late_events: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the summary (NULL until the spill closes): dqm.core.summary.finalize's quantities, plus
    # the per-subsystem qualities under "quality" once judged. Stored once, as JSON: no query
    # filters or sorts on a summary quantity (migration 0003f dropped 12 column copies).
    # JSONB on PostgreSQL (migration 0005R): Trends read one key without parsing the rest
    summary: Mapped[dict | None] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    quality: Mapped[int | None] = mapped_column(Integer)
    config_version: Mapped[str | None] = mapped_column(String(64))
    # the run conditions the spill was judged under (NULL: judged without), for rechecks
    conditions: Mapped[dict | None] = mapped_column(JSON)

    @hybrid_property
    def closed(self) -> bool:
        """Closed (complete or incomplete): its histograms and summary are final.

        Also a SQL condition: ``select(Spill).where(Spill.closed)``; the one place that
        says which statuses count as closed.
        """
        return self.status != SPILL_OPEN


class SpillPartial(Base):
    """A worker's contribution to a spill from one commit group (additive; merged at close)."""

    __tablename__ = "spill_partials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spill_id: Mapped[int] = mapped_column(ForeignKey("spills.id", ondelete="CASCADE"), index=True)
    consumer: Mapped[str] = mapped_column(String(128))
    n_batches: Mapped[int] = mapped_column(Integer)
    n_events: Mapped[int] = mapped_column(BigInteger)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpillHistograms(Base):
    """The merged histograms of a closed spill, in :mod:`dqm.core.histio`'s versioned format."""

    __tablename__ = "spill_histograms"
    spill_id: Mapped[int] = mapped_column(
        ForeignKey("spills.id", ondelete="CASCADE"), primary_key=True
    )
    format_version: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class RunHistograms(Base):
    """A run's closed spills summed once (migration 0006H): the spills closed at or before
    ``closed_until``, ``n_spills`` of them (``n_summed`` had histograms).

    Closes of a run are ordered by ``closed_at`` (:mod:`dqm.store.closing`), so the covered
    spills are a prefix of the run; :mod:`dqm.store.rollup` extends it and checks the count
    before a reader trusts it, so a spill is never counted twice.
    """

    __tablename__ = "run_histograms"
    run: Mapped[int] = mapped_column(
        ForeignKey("runs.run", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    n_spills: Mapped[int] = mapped_column(Integer)
    n_summed: Mapped[int] = mapped_column(Integer)
    closed_until: Mapped[datetime] = mapped_column(UTCDateTime)
    format_version: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# migration 0006H: the spills of a run closed after its aggregate, a run's closing span
Index("ix_spills_run_closed_at", Spill.run, Spill.closed_at)


class ProcessedMessage(Base):
    """Stream message ids whose contribution is stored: the exactly-once ledger.

    Written in the same transaction as the partial it produced; a redelivered id found
    here is acknowledged without being counted again.
    """

    __tablename__ = "processed_messages"
    stream: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # batch | eos | conditions | dead | late
    spill_id: Mapped[int | None] = mapped_column(
        ForeignKey("spills.id", ondelete="CASCADE"), index=True
    )
    batch_index: Mapped[int | None] = mapped_column(Integer)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# a batch of a spill is stored once, whatever message carried it (NULL batch_index: markers)
Index(
    "uq_processed_spill_batch", ProcessedMessage.spill_id, ProcessedMessage.batch_index, unique=True
)


class Flag(Base):
    """One check result worth keeping: reproducible from its check-configuration version."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run: Mapped[int] = mapped_column(Integer, index=True)
    spill: Mapped[int | None] = mapped_column(Integer)
    spill_id: Mapped[int | None] = mapped_column(
        ForeignKey("spills.id", ondelete="CASCADE"), index=True
    )
    subsystem: Mapped[str] = mapped_column(String(32))
    histogram: Mapped[str | None] = mapped_column(String(128))
    check: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int] = mapped_column(Integer, index=True)
    value: Mapped[float | None] = mapped_column(Float)
    thresholds: Mapped[dict | None] = mapped_column(JSON)
    explanation: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict | None] = mapped_column(JSON)
    instruction: Mapped[str] = mapped_column(Text, default="")
    config_version: Mapped[str] = mapped_column(String(64))
    reference_run: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    annotation: Mapped[str | None] = mapped_column(Text)
    #: the incident the flag belongs to (:attr:`dqm.core.incidents.Incident.cause`, e.g.
    #: ``daq_source_absent:MS1``); on a roll-up row, the cause elsewhere its subsystem follows
    #: from; NULL for GOOD flags and for flags stored before causes existed
    cause: Mapped[str | None] = mapped_column(String(128))


# migration 0004P: a run's flags by quality, and the newest flagged (WARNING and worse) rows
Index("ix_flags_run_quality", Flag.run, Flag.quality)
Index(
    "ix_flags_flagged_spill",
    Flag.spill_id,
    postgresql_where=Flag.quality >= 1,
    sqlite_where=Flag.quality >= 1,
)


class CheckText(Base):
    """A check's shifter instruction under one configuration version, stored once (migration
    0006H) instead of on every flagged row: :mod:`dqm.store.flag_texts`."""

    __tablename__ = "check_texts"
    config_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    histogram: Mapped[str] = mapped_column(String(128), primary_key=True)  # "" for none
    check: Mapped[str] = mapped_column(String(64), primary_key=True)
    instruction: Mapped[str] = mapped_column(Text)


@event.listens_for(Flag, "load")
@event.listens_for(Flag, "refresh")
def _flag_instruction(target: Flag, context, *_attrs) -> None:
    """Fill in a flag row's instruction from ``check_texts`` when the row left it out."""
    from dqm.store.flag_texts import fill_on_load  # imported on the first flag loaded

    fill_on_load(target, context)


class Reference(Base):
    """A certified reference run for a beam configuration, with its provenance."""

    __tablename__ = "references"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    beam_config: Mapped[str] = mapped_column(String(64), index=True)
    run: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    set_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)  # imported histograms (ROOT import)
    # the conditions the reference was taken under (NULL: not recorded, e.g. set before
    # conditions existed); a run judged against it under other conditions is told so
    conditions: Mapped[dict | None] = mapped_column(JSON)


class AuditEntry(Base):
    """Who did what, when: every expert action."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256), default="")
    details: Mapped[dict | None] = mapped_column(JSON)


class ChannelMask(Base):
    """A channel the checks ignore until ``until`` (e.g. a known-dead ECAL cell)."""

    __tablename__ = "channel_masks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    histogram: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[list] = mapped_column(JSON)  # cell index, e.g. [2, 3]
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckOverride(Base):
    """An expert's threshold change: a new check-configuration version on top of the specs.

    The configuration version in force is ``<spec hash>+<id of the newest override>``;
    flags record it so ``dqm recheck`` can reproduce them.
    """

    __tablename__ = "check_overrides"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    histogram: Mapped[str] = mapped_column(String(128))
    check: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredIncident(Base):
    """An incident that stays: one cause of one run, open until a person acknowledges it.

    Opened at spill close by a BAD (or CHECK_ERROR) judgement, or by a WARNING that
    persisted for ``incident_warning_spills`` spills; extended (``last_spill``,
    ``n_spills``) while its cause persists, whether acknowledged or not. The
    ``notified_*`` columns are the notifier's outbox: NULL means not yet posted.
    """

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_run_cause", "run", "cause"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run: Mapped[int] = mapped_column(Integer, index=True)
    cause: Mapped[str] = mapped_column(String(128))
    subsystem: Mapped[str] = mapped_column(String(32))
    quality: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(256), default="")
    explanation: Mapped[str] = mapped_column(Text, default="")
    instruction: Mapped[str] = mapped_column(Text, default="")
    first_spill: Mapped[int] = mapped_column(Integer)
    last_spill: Mapped[int] = mapped_column(Integer)
    n_spills: Mapped[int] = mapped_column(Integer, default=1)
    #: the histogram of its worst flag (the expert page's link), and the checks it holds
    histogram: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict | None] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    annotation: Mapped[str | None] = mapped_column(Text)
    notified_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: set when judging the run again (its conditions arrived late) removed every flag of
    #: its cause: closed, no longer open, kept with what it was (``details["history"]``)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_note: Mapped[str | None] = mapped_column(Text)


class AlarmSilence(Base):
    """A person silenced the alarm sound until ``until``, for the incidents open then.

    An incident opened later (``id`` above ``up_to_incident``) sounds again: a silence
    is "I know about these", not "mute the control room".
    """

    __tablename__ = "alarm_silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    reason: Mapped[str] = mapped_column(Text)
    up_to_incident: Mapped[int] = mapped_column(Integer, default=0)


class Certification(Base):
    """A person's sign-off: spills ``first_spill``–``last_spill`` of ``run`` are good (or bad)
    for physics in ``subsystem``.

    Append-only: a later certification of the same spills (an expert's correction) is a new
    row and wins by its higher ``id``; nothing is updated or deleted, so the history of every
    decision stays, and a good-spill list cites the ``id`` it was made up to (its revision).
    """

    __tablename__ = "certifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run: Mapped[int] = mapped_column(Integer, index=True)
    subsystem: Mapped[str] = mapped_column(String(32))
    first_spill: Mapped[int] = mapped_column(Integer)
    last_spill: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(8))  # good | bad (for physics)
    comment: Mapped[str] = mapped_column(Text, default="")
    certified_by: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # shifter | expert, when it was signed
    certified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelRow(Base):
    """A learned anomaly model (:mod:`dqm.learn`) of one subsystem and beam configuration,
    with its provenance: who trained it on which spills, its score distributions, its
    calibrated threshold, and the fitted arrays as float32 ``.npy`` bytes. Versions stay;
    ``active`` marks the one judging new spills (SQL in :mod:`dqm.store.learned`)."""

    __tablename__ = "models"
    __table_args__ = (Index("ix_models_config", "beam_config", "subsystem"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="pca")
    subsystem: Mapped[str] = mapped_column(String(32))
    beam_config: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str] = mapped_column(Text, default="")
    training: Mapped[dict] = mapped_column(JSON)  # train/holdout: [[run, first, last], …]
    n_train: Mapped[int] = mapped_column(Integer)
    n_holdout: Mapped[int] = mapped_column(Integer)
    scores: Mapped[dict] = mapped_column(JSON)  # {"train": summary, "holdout": summary}
    calibration: Mapped[dict] = mapped_column(JSON)
    threshold: Mapped[float] = mapped_column(Float)
    false_alarm: Mapped[float] = mapped_column(Float)
    layout: Mapped[list] = mapped_column(JSON)
    components: Mapped[bytes] = mapped_column(LargeBinary)
    mean: Mapped[bytes] = mapped_column(LargeBinary)
    scale: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
