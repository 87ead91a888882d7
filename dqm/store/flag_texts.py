"""Shifter instructions stored once per check and configuration version (issue 15, item 5).

Layer: I/O shell (store). A check row's instruction is the spec's text for that histogram and
check (``check.instruction or spec.instruction``), fixed by the configuration version the row
was judged under; copied onto every WARNING, BAD and NO_DATA row it cost ≈ 1.1 kB a spill
(docs/retention.md). It is now written once into ``check_texts`` (migration 0006H), keyed by
(configuration version, histogram, check), **in the same transaction** as the flag rows that
leave it out (``flags.instruction = ''``), so a committed row never lacks its text.

Readers see the same words as before, without asking: an ORM-loaded :class:`Flag` gets its
text filled in on load (:func:`_fill_on_load`, not marked as a change), and a column query
selects :func:`shown_instruction` instead of the column. Rows that keep their own text: GOOD
rows (none, as before), roll-ups (their text is composed per spill), CHECK_ERROR rows (the
judge's own instruction, not the spec's) and any row stored before this.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, case, func, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from dqm.checks import ROLLUP, Quality
from dqm.store.models import CheckText, Flag

__all__ = ["compact_instructions", "shown_instruction", "instruction_of", "fill_on_load"]

_GOOD = int(Quality.GOOD)
_ERROR = int(Quality.CHECK_ERROR)

#: (database URL, config version, histogram, check) -> text. A key's text never changes (the
#: version fixes the spec), so a text once read stays right whatever happens to transactions.
_CACHE: dict[tuple[str, str, str, str], str] = {}


def _catalogued(check: str, quality: int) -> bool:
    return check != ROLLUP and quality not in (_GOOD, _ERROR)


def compact_instructions(session: Session, version: str, rows: Iterable[Flag]) -> None:
    """Write the texts of ``rows`` (new flag rows of one spill, one version) into the catalogue
    where missing, and blank each row's own copy of a text the catalogue holds; flushes
    nothing itself (the caller's flush writes rows and texts together)."""
    wanted: dict[tuple[str, str], str] = {}
    candidates = []
    for f in rows:
        if f.instruction and _catalogued(f.check, f.quality):
            candidates.append(f)
            wanted.setdefault((f.histogram or "", f.check), f.instruction)
    if not candidates:
        return
    known = dict(
        ((h, c), t)
        for h, c, t in session.execute(
            select(CheckText.histogram, CheckText.check, CheckText.instruction).where(
                CheckText.config_version == version,
                tuple_(CheckText.histogram, CheckText.check).in_(list(wanted)),
            )
        )
    )
    missing = [
        {"config_version": version, "histogram": h, "check": c, "instruction": t}
        for (h, c), t in wanted.items()
        if (h, c) not in known
    ]
    if missing:
        from dqm.store.spills import insert_ignore  # spills imports the models only

        insert_ignore(session, CheckText, missing)
        known.update(
            ((h, c), t)
            for h, c, t in session.execute(
                select(CheckText.histogram, CheckText.check, CheckText.instruction).where(
                    CheckText.config_version == version,
                    tuple_(CheckText.histogram, CheckText.check).in_(
                        [(m["histogram"], m["check"]) for m in missing]
                    ),
                )
            )
        )
    for f in candidates:
        if known.get((f.histogram or "", f.check)) == f.instruction:
            f.instruction = ""


def _url(session: Session) -> str:
    bind = session.get_bind()
    return str(bind.url)


def instruction_of(session: Session, version: str, histogram: str | None, check: str) -> str:
    """The catalogued text of a check under ``version`` ("" if none)."""
    key = (_url(session), version, histogram or "", check)
    text = _CACHE.get(key)
    if text is None:
        text = (
            session.scalar(
                select(CheckText.instruction).where(
                    CheckText.config_version == version,
                    CheckText.histogram == (histogram or ""),
                    CheckText.check == check,
                )
            )
            or ""
        )
        if text and len(_CACHE) < 100_000:
            _CACHE[key] = text
    return text


def shown_instruction():
    """The instruction a reader shows, as a SQL expression: the row's own text, or for a row
    that left it out the catalogue's (a primary-key look-up)."""
    catalogued = (
        select(CheckText.instruction)
        .where(
            CheckText.config_version == Flag.config_version,
            CheckText.histogram == func.coalesce(Flag.histogram, ""),
            CheckText.check == Flag.check,
        )
        .scalar_subquery()
    )
    blank = and_(
        Flag.instruction == "",
        Flag.check != ROLLUP,
        Flag.quality.not_in([_GOOD, _ERROR]),
    )
    return case((blank, func.coalesce(catalogued, "")), else_=Flag.instruction).label("instruction")


def fill_on_load(target: Flag, context) -> None:
    """A loaded row that left its text out gets the catalogue's, as if stored (not a change);
    registered on :class:`Flag`'s ``load`` and ``refresh`` events in :mod:`dqm.store.models`."""
    loaded = target.__dict__  # only what this load brought: never trigger another load here
    if any(k not in loaded for k in ("instruction", "check", "quality", "config_version")):
        return
    if loaded["instruction"] or not _catalogued(loaded["check"], loaded["quality"]):
        return
    session = context.session
    if session is None or not loaded["config_version"]:
        return
    with session.no_autoflush:
        text = instruction_of(
            session, loaded["config_version"], loaded.get("histogram"), loaded["check"]
        )
    if text:
        set_committed_value(target, "instruction", text)
