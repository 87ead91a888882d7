"""Quality words: the severity scale every layer shares, in the foundation layer.

Why here and not in :mod:`dqm.checks` (which re-exports them): the words are all that
``dqm flags`` and ``dqm status`` need of the check layer, and importing :mod:`dqm.checks`
loads NumPy, boost-histogram and every check — half a second of a command that must
answer at once (issue 15, item 3). Nothing here imports more than :mod:`enum`.
"""

from __future__ import annotations

import enum

__all__ = ["ROLLUP", "Quality", "quality_name"]

#: The check name under which a worst-of roll-up is stored with the flags (one row per
#: subsystem of a spill, and per subsystem of a run): every reader tells them apart by it.
ROLLUP = "rollup"


class Quality(enum.IntEnum):
    """Data quality of one check, subsystem or spill.

    The integer order *is* the severity order used by :func:`worst` and by every
    "this quality or worse" filter (``Flag.quality >= WARNING`` in SQL, the report,
    ``dqm flags --quality``), so the integers are stored in the database as they are:

    * ``GOOD`` (0) — judged and fine.
    * ``NO_DATA`` (1) — not judged: too few entries, no reference, a baseline still
      being collected. Above GOOD (an unexamined histogram must not look certified)
      but below WARNING and BAD, so a missing histogram can never hide a real problem;
      the roll-up (:func:`judged_worst`) shows it only when nothing else could judge.
    * ``WARNING`` (2) — worth watching.
    * ``CHECK_ERROR`` (3) — the judging itself failed (a check raised, its parameters
      or reference are unusable, the inputs could not be gathered); the result names
      the check and the error. It is *not* NO_DATA: it counts as judged in the
      roll-up, so a subsystem whose only failing piece is a broken check is never
      painted GOOD, nor the grey that shifters learn to ignore. It sits above
      WARNING because the unknown outcome could have been BAD and somebody (the
      DQM on-call expert) must act, and below BAD so that a known BAD elsewhere in
      the same subsystem is what the tile shows — a broken check never hides it.
    * ``BAD`` (4) — act now.

    Numbering history: before migration ``0003b`` BAD was 3; that migration moves
    stored BAD values to 4.
    """

    GOOD = 0
    NO_DATA = 1
    WARNING = 2
    CHECK_ERROR = 3
    BAD = 4


def quality_name(value: int | None, unjudged: str = "NO_DATA") -> str:
    """The word for a stored quality integer (the pages, the report and the CLI all use it).

    Args:
        value: a :class:`Quality` or its integer, as stored; ``None`` for a spill that
            no check judged.
        unjudged: the word for ``None``.

    Returns:
        The quality's name; an integer this version does not know (written by a newer
        one) is shown as the number itself rather than dressed up as a known quality.
    """
    if value is None:
        return unjudged
    try:
        return Quality(int(value)).name
    except ValueError:
        return str(value)
