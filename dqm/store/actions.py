"""Expert actions: the only writes a person makes to the DQM, each by a named user, each audited.

Layer: I/O shell (store). Why a library module and not code in ``apps/``: the rule
"a named person, an audit entry, bound parameters" must hold whoever calls it — the
expert web page today, a ``dqm`` subcommand or a script tomorrow — so it is enforced
here, not by hiding a button. The web page additionally hides the forms from guests,
but a guest who crafted the request would still be refused by :func:`require_user`.

Every function takes a SQLAlchemy ``Session`` and leaves committing to the caller
(sessions at the edge): the action's change and its :class:`AuditEntry` land in the
same transaction or not at all. All values reach SQL through the ORM (bound
parameters); nothing is formatted into SQL text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.core.roles import EXPERT, SHIFTER, Actor, role_of  # noqa: F401 - re-exported
from dqm.core.specs import SpecSet
from dqm.errors import DQMError, SpecError, StorageError
from dqm.store import references
from dqm.store.models import AuditEntry, ChannelMask, CheckOverride, Flag, Reference, utcnow
from dqm.store.queries import count_closed_spills
from dqm.store.signoff import run_contents

__all__ = [
    "ActionError",
    "PermissionDenied",
    "ANONYMOUS",
    "Actor",
    "SHIFTER",
    "EXPERT",
    "require_user",
    "require_expert",
    "audit",
    "set_reference",
    "acknowledge_flag",
    "annotate_flag",
    "mask_channel",
    "edit_check_thresholds",
    "config_version",
    "channel_shape",
    "free_text",
    "MAX_TEXT",
]

#: User names that are not a person: Panel reports unauthenticated visitors as "guest".
ANONYMOUS = frozenset({"", "guest"})


class ActionError(DQMError):
    """An expert action was refused: bad target or parameters (the message says which)."""


class PermissionDenied(ActionError):
    """The action needs a logged-in, named user (or one with the expert role)."""


#: Longest free text (annotation, comment, reason) an action stores; user names fit in 128.
MAX_TEXT = 10_000
MAX_NAME = 128


def require_user(user: str | None) -> str:
    """The user's name, or :class:`PermissionDenied` for anonymous/guest callers."""
    name = (user or "").strip()
    if name in ANONYMOUS:
        raise PermissionDenied("this action needs a logged-in user (guests may only look)")
    if len(name) > MAX_NAME or not name.isprintable():
        raise PermissionDenied(
            f"user name of {len(name)} characters with control characters or over {MAX_NAME}: "
            "refused"
        )
    return name


def require_expert(user: str | None, what: str) -> str:
    """The user's name if they act as an expert, else :class:`PermissionDenied`.

    Why: references, masks and thresholds change how every later spill is judged; a
    shifter acknowledges, annotates and signs off, and asks the subsystem expert for these.
    """
    name = require_user(user)
    if role_of(user) != EXPERT:
        raise PermissionDenied(
            f"{what} needs the expert role; {name} is logged in as a {role_of(user)} "
            "(shifters acknowledge, annotate and sign off)"
        )
    return name


def free_text(value: str | None, what: str, *, limit: int = MAX_TEXT) -> str:
    """Text a person typed, stored verbatim — or :class:`ActionError` if it cannot be.

    Anything else is kept as typed (quotes, SQL, markup, any script): it reaches the
    database as a bound parameter, never as SQL. Refused: longer than ``limit``, and
    NUL, which PostgreSQL text cannot hold.
    """
    text = value or ""
    if len(text) > limit:
        raise ActionError(f"{what} of {len(text)} characters is longer than {limit}")
    if "\x00" in text:
        raise ActionError(f"{what} contains a NUL character")
    return text


def audit(
    session: Session, user: str, action: str, target: str, details: Mapping[str, Any] | None = None
) -> AuditEntry:
    """Record who did what to which target, now (same transaction as the change)."""
    entry = AuditEntry(
        at=utcnow(), user=user, action=action, target=target[:256], details=dict(details or {})
    )
    session.add(entry)
    session.flush()
    return entry


def set_reference(
    session: Session,
    run: int,
    user: str | None,
    *,
    beam_config: str | None = None,
    comment: str = "",
    force: bool = False,
    bad_spills_reason: str = "",
) -> Reference:
    """Certify ``run`` as the reference of its beam configuration (the previous one is retired).

    An expert action. The configuration follows from the run's conditions; another one is
    refused unless ``force`` (:func:`dqm.store.references.reference_config`). A run with
    BAD spills would teach every later comparison that its anomalies are normal, so it is
    refused unless the expert gives ``bad_spills_reason`` (kept in the audit entry, with
    the run's flags summary). Then :func:`dqm.store.references.set_reference` does it.
    """
    name = require_expert(user, "setting a reference run")
    run = int(run)
    comment = free_text(comment, "comment")
    reason = free_text(bad_spills_reason, "reason").strip()
    if beam_config is not None:
        beam_config = free_text(beam_config, "beam configuration", limit=64)
    if not count_closed_spills(session, run):
        raise ActionError(f"run {run} has no closed spills: it cannot be a reference")
    contents = run_contents(session, run)
    if contents.bad_spills and not reason:
        raise ActionError(
            f"run {run} has {len(contents.bad_spills)} BAD spill(s) ({contents.describe()}): "
            "a reference with anomalies makes them look normal; give a reason to use it anyway"
        )
    try:
        ref = references.set_reference(
            session, run, name, beam_config=beam_config, comment=comment, force=force
        )
    except StorageError as exc:
        raise ActionError(str(exc)) from None
    if contents.bad_spills:
        audit(
            session,
            name,
            "reference_with_bad_spills",
            f"run {run}",
            {"reason": reason, "contents": contents.describe(), "bad": contents.bad_spills},
        )
    return ref


def _flag(session: Session, flag_id: int) -> Flag:
    flag = session.get(Flag, int(flag_id))
    if flag is None:
        raise ActionError(f"no flag with id {flag_id}")
    return flag


def acknowledge_flag(
    session: Session, flag_id: int, user: str | None, *, annotation: str | None = None
) -> Flag:
    """Mark a flag as seen by ``user`` (optionally with a note): it stays, with who and when."""
    name = require_user(user)
    annotation = free_text(annotation, "annotation") or None
    flag = _flag(session, flag_id)
    flag.acknowledged_by, flag.acknowledged_at = name, utcnow()
    if annotation:
        flag.annotation = annotation
    audit(
        session,
        name,
        "acknowledge_flag",
        f"flag {flag.id}",
        {
            "flag_id": flag.id,
            "run": flag.run,
            "spill": flag.spill,
            "subsystem": flag.subsystem,
            "check": flag.check,
            "annotation": annotation,
        },
    )
    return flag


def annotate_flag(session: Session, flag_id: int, user: str | None, text: str) -> Flag:
    """Attach (replace) a free-text note to a flag, e.g. "known: HV trip, fixed 14:05"."""
    name = require_user(user)
    text = free_text(text, "annotation").strip()
    if not text:
        raise ActionError("an annotation needs some text")
    flag = _flag(session, flag_id)
    previous, flag.annotation = flag.annotation, text
    audit(
        session,
        name,
        "annotate_flag",
        f"flag {flag.id}",
        {"flag_id": flag.id, "annotation": text, "previous": previous},
    )
    return flag


def channel_shape(specs: SpecSet, histogram: str) -> tuple[int, ...]:
    """Index ranges of the channels of a ``cellmap``/``channels`` histogram, e.g. (6, 6)."""
    from dqm.core.fill import book_histogram

    spec = _spec(specs, histogram)
    if spec.kind not in ("cellmap", "channels"):
        raise ActionError(
            f"histogram '{histogram}' is a '{spec.kind}' histogram: only cellmap/channels "
            "histograms have channels"
        )
    h = book_histogram(spec)
    axes = h.axes[:1] if spec.kind == "channels" else h.axes
    return tuple(len(ax) for ax in axes)


def _spec(specs: SpecSet, histogram: str):
    try:
        return specs[histogram]
    except KeyError:
        raise ActionError(f"unknown histogram '{histogram[:80]}'") from None


def mask_channel(
    session: Session,
    specs: SpecSet,
    histogram: str,
    channel: Sequence[int],
    until: datetime,
    user: str | None,
    *,
    reason: str = "",
) -> ChannelMask:
    """Have the checks ignore one channel of ``histogram`` until ``until`` (UTC if naive);
    an expert action."""
    name = require_expert(user, "masking a channel")
    reason = free_text(reason, "reason")
    shape = channel_shape(specs, histogram)
    cell = [int(c) for c in channel]
    if len(cell) != len(shape) or any(not 0 <= c < n for c, n in zip(cell, shape, strict=False)):
        raise ActionError(
            f"channel {cell} is outside histogram '{histogram}' (index ranges {list(shape)})"
        )
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until <= utcnow():
        raise ActionError(f"mask end {until.isoformat()} is in the past")
    mask = ChannelMask(
        histogram=histogram,
        channel=cell,
        until=until,
        reason=reason,
        created_by=name,
        created_at=utcnow(),
    )
    session.add(mask)
    session.flush()
    audit(
        session,
        name,
        "mask_channel",
        f"{histogram} {cell}",
        {
            "mask_id": mask.id,
            "histogram": histogram,
            "channel": cell,
            "until": until.isoformat(),
            "reason": reason,
        },
    )
    return mask


def config_version(session: Session, specs: SpecSet) -> str:
    """The check configuration in force: ``<spec hash>+<newest override id>`` (``+0`` without
    overrides), the same string the flags record (:func:`dqm.core.evaluate.config_version`)."""
    newest = session.scalar(select(func.max(CheckOverride.id)))
    return f"{specs.version}+{newest or 0}"


def edit_check_thresholds(
    session: Session,
    specs: SpecSet,
    histogram: str,
    check: str,
    params: Mapping[str, Any],
    user: str | None,
    *,
    comment: str = "",
) -> CheckOverride:
    """Change a check's parameters (thresholds): stored as an override = a new configuration
    version.

    ``params`` may hold only the changed keys; they are merged over the spec's (and
    the newest earlier override's) values and validated by the check registry, so a
    typo fails with "did you mean …" instead of silently disabling a check. An expert action.
    """
    name = require_expert(user, "changing check thresholds")
    comment = free_text(comment, "comment")
    spec = _spec(specs, histogram)
    matches = [c for c in spec.checks if c.type == check]
    if not matches:
        known = ", ".join(c.type for c in spec.checks) or "none"
        raise ActionError(f"histogram '{histogram}' has no check '{check}' (its checks: {known})")
    previous = session.scalars(
        select(CheckOverride)
        .where(CheckOverride.histogram == histogram, CheckOverride.check == check)
        .order_by(CheckOverride.id.desc())
        .limit(1)
    ).first()
    base = dict(previous.params) if previous is not None else dict(matches[0].params)
    merged = {**base, **dict(params)}
    try:
        from dqm.checks import validate_check_params
        from dqm.core.conditions import condition_references

        # "@p_beam_gev" parameters stay references: resolved from each run's conditions
        deferred = condition_references(check, merged)
        resolved = validate_check_params(check, merged, deferred=deferred)
    except SpecError as exc:
        raise ActionError(f"check '{check}' of '{histogram}': {exc}") from None
    resolved = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in resolved.items()
    }
    override = CheckOverride(
        histogram=histogram,
        check=check,
        params=resolved,
        comment=comment,
        created_by=name,
        created_at=utcnow(),
    )
    session.add(override)
    session.flush()
    changed = {
        k: {"from": base.get(k), "to": resolved.get(k)}
        for k in resolved
        if base.get(k) != resolved.get(k)
    }
    audit(
        session,
        name,
        "edit_check_thresholds",
        f"{histogram}/{check}",
        {
            "override_id": override.id,
            "histogram": histogram,
            "check": check,
            "changed": changed,
            "config_version": f"{specs.version}+{override.id}",
            "comment": comment,
        },
    )
    return override
