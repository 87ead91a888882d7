"""Run and spill numbers as a shifter reads them: ranges, and the gaps between them.

The DAQ numbers the spills of a run 1, 2, 3 …; a number missing between two that the
DQM stored is a spill that never reached it (lost before the stream, or trimmed from a
stream whose backlog outgrew ``DQM_STREAM_MAXLEN``). Nothing else would show such a
loss: a spill that never arrived has no row to flag.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime

__all__ = ["MAX_ID", "ranges_text", "missing_numbers", "settled_gaps"]

#: Largest run, spill or batch number: the database stores them as 32-bit signed integers,
#: so a larger one (a corrupt header) must be refused here, not crash the commit. (Here,
#: not in :mod:`dqm.core.events`, so that conditions and the stream need no NumPy.)
MAX_ID = 2**31 - 1


def ranges_text(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1–3, 7"`` (sorted, duplicates ignored); ``"none"`` when empty."""
    ordered = sorted(set(numbers))
    if not ordered:
        return "none"
    parts, start, prev = [], ordered[0], ordered[0]
    for n in ordered[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def missing_numbers(numbers: Iterable[int]) -> list[int]:
    """The numbers absent between the smallest and the largest of ``numbers``."""
    present = set(numbers)
    if not present:
        return []
    return [n for n in range(min(present), max(present) + 1) if n not in present]


def settled_gaps(opened: Mapping[int, datetime], now: datetime, settle_s: float) -> list[int]:
    """Spill numbers missing between those in ``opened`` (spill -> when it was opened) that can no
    longer arrive: the next spill that did arrive was opened more than ``settle_s`` ago.

    With several workers, spill k can close while the batches of k-1 (earlier in the stream)
    are still being filled by another worker and k-1 has no row yet; that is not a loss.
    """
    gaps = missing_numbers(opened)
    if not gaps:
        return []
    present = sorted(opened)
    settled = []
    for n in gaps:
        after = present[bisect.bisect_right(present, n)]
        if (now - opened[after]).total_seconds() > settle_s:
            settled.append(n)
    return settled
