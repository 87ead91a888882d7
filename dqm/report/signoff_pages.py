"""The report's sign-off section: each run's incidents, acknowledgements, certification, and
what fraction of its spills and muons on target is good.

The same content as the end-of-run summary page (``/summary``, :mod:`apps.summary`), read
from :func:`dqm.store.signoff.run_summaries`: the shift leader reading the morning PDF and
the shifter at the end of a run see the same words. Planned as text lines (pure, paginated
against a page's line budget like the WARNING/BAD table) and drawn on the ``Figure`` given.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dqm.checks import quality_name
from dqm.store.signoff import RunSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["SignoffLine", "signoff_lines", "signoff_pages", "draw_signoff", "SECTION_TITLE"]

SECTION_TITLE = "Runs: incidents and sign-off"
_WIDTH = 150  # characters a line at 8 pt across an A4 landscape page
_COLOURS = {"BAD": "#c4161c", "WARNING": "#b07800", "CHECK_ERROR": "#0a5cc2"}


@dataclass(frozen=True)
class SignoffLine:
    text: str
    kind: str  # run | text | incident
    colour: str = "black"


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, _WIDTH, initial_indent=indent, subsequent_indent=indent + "  ")


def signoff_lines(summaries: Sequence[RunSummary]) -> list[SignoffLine]:
    """Each run as lines: its status and fractions, certification per subsystem, incidents."""
    lines: list[SignoffLine] = []
    for s in summaries:
        f = s.fractions
        lines.append(
            SignoffLine(
                f"Run {s.run} — {s.status} — signed by {', '.join(s.signed_by) or 'nobody yet'}",
                "run",
            )
        )
        lines += [
            SignoffLine(t, "text")
            for t in _wrap(
                f"spills {s.first_spill}–{s.last_spill} ({s.spills} closed); good spills "
                f"{_pct(f['good_spills'])} (certified {_pct(f['certified_spills'])}); good "
                f"muons on target {_pct(f['good_mot'])} (certified {_pct(f['certified_mot'])})",
                "  ",
            )
        ]
        cert = "; ".join(
            f"{sub} {g} good / {b} bad / {u} not certified"
            for sub, (g, b, u) in s.certification.items()
        )
        lines += [SignoffLine(t, "text") for t in _wrap(f"certified: {cert}", "  ")]
        if not s.incidents:
            lines.append(SignoffLine("  no incident was opened", "text"))
        for i in s.incidents:
            name = quality_name(i.quality)
            ack = f"superseded: {i.superseded}" if i.superseded else i.acknowledgement
            notes = f"; notes: {' | '.join(i.annotations)}" if i.annotations else ""
            text = (
                f"{name} {i.cause} [{i.subsystem}] spills {i.first_spill}–{i.last_spill} "
                f"({i.spills}): {i.explanation} — {ack}{notes}"
            )
            colour = _COLOURS.get(name, "black")
            lines += [SignoffLine(t, "incident", colour) for t in _wrap(text, "    • ")]
        lines.append(SignoffLine("", "text"))
    return lines


def signoff_pages(summaries: Sequence[RunSummary], budget: int = 44) -> list[tuple]:
    """The lines in pages of at most ``budget``; a run's header never ends a page."""
    pages: list[list[SignoffLine]] = [[]]
    for line in signoff_lines(summaries):
        room = budget - (1 if line.kind == "run" else 0)
        if len(pages[-1]) >= room and pages[-1]:
            pages.append([])
        if line.kind == "text" and not line.text and not pages[-1]:
            continue
        pages[-1].append(line)
    return [tuple(p) for p in pages if p]


def draw_signoff(fig: Figure, lines: Sequence[SignoffLine]) -> None:
    y, step = 0.90, 0.0185
    if not lines:
        fig.text(0.03, y, "No run in this period.", fontsize=10)
        return
    for line in lines:
        fig.text(
            0.03,
            y,
            line.text,
            fontsize=10 if line.kind == "run" else 8,
            weight="bold" if line.kind == "run" else "normal",
            color=line.colour,
            va="top",
            family="DejaVu Sans",
        )
        y -= step * (1.3 if line.kind == "run" else 1.0)
