"""Run and spill numbers as a shifter reads them: ranges, and the gaps between them.

The DAQ numbers the spills of a run 1, 2, 3 …; a number missing between two that the
DQM stored is a spill that never reached it (lost before the stream, or trimmed from a
stream whose backlog outgrew ``DQM_STREAM_MAXLEN``). Nothing else would show such a
loss: a spill that never arrived has no row to flag.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["ranges_text", "missing_numbers"]


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
