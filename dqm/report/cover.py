"""The report's cover: the period in numbers, flag counts by subsystem, references used.

Layer: plotting (split from :mod:`dqm.report.render`, which assembles the pages). Reads only
the :class:`~dqm.report.data.ReportData`; draws on the ``Figure`` it is given.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from datetime import datetime

from matplotlib.figure import Figure

from dqm.checks import Quality
from dqm.core.numbering import ranges_text
from dqm.report.data import ReportData
from dqm.report.layout import SUBSYSTEM_TITLES
from dqm.report.plots import QUALITY_COLOURS

__all__ = ["draw_cover", "fmt_time"]

_QUALITY_ORDER = ("GOOD", "WARNING", "CHECK_ERROR", "BAD", "NO_DATA", "UNCHECKED")
_BAD = int(Quality.BAD)


def fmt_time(ts: datetime | None) -> str:
    return "–" if ts is None else ts.astimezone().strftime("%Y-%m-%d %H:%M %Z")


# ---------------------------------------------------------------------- cover
def draw_cover(fig: Figure, data: ReportData) -> None:
    q = data.quality_counts
    n = len(data.spills)
    status = Counter(s.status for s in data.spills)
    start, end = data.window
    good = "–" if data.good_fraction is None else f"{100 * data.good_fraction:.1f} %"
    lines = [
        ("Period", f"{fmt_time(start)}  →  {fmt_time(end)}"),
        ("Runs", f"{ranges_text(data.runs)}  ({len(data.runs)} runs)"),
        (
            "Spills",
            f"{n:,d} closed: {status.get('complete', 0):,d} complete, "
            f"{status.get('incomplete', 0):,d} incomplete",
        ),
        (
            "Spills not received",
            "; ".join(
                f"run {run}: {ranges_text(gap)} ({len(gap)})"
                for run, gap in data.missing_spills.items()
            )
            or "none: each run's spills are numbered without a gap",
        ),
        ("Events sampled", f"{data.n_events:,d}"),
        (
            "Muons on target",
            f"{data.mot:.4g}"
            + ("" if data.mot_per_event == 1 else f"  ({data.mot_per_event:g} per sampled event)"),
        ),
        (
            "Good spills",
            f"{good}  —  " + ", ".join(f"{k} {q[k]:,d}" for k in _QUALITY_ORDER if q.get(k)),
        ),
        (
            "Flagged spills",
            f"{len(data.problem_spills):,d} with a WARNING, CHECK_ERROR or BAD flag (table on "
            "the next pages)",
        ),
        (
            "Beam configurations",
            ", ".join(f"{c}: {k:,d} spills" for c, k in sorted(data.beam_configs.items())) or "–",
        ),
        *_conditions_lines(data),
    ]
    if not data.spills:
        lines.append(
            ("", "No spill closed in this period: the histogram and trend pages are empty.")
        )
    y = 0.86
    for key, value in lines:
        alarm = (key == "Spills not received" and bool(data.missing_spills)) or (
            _NO_CONDITIONS in value
        )  # a loss nothing else flags, runs judged without their conditions
        fig.text(
            0.05,
            y,
            key,
            fontsize=10,
            weight="bold",
            color=QUALITY_COLOURS[_BAD] if alarm else "black",
        )
        fig.text(
            0.24,
            y,
            value,
            fontsize=10,
            color=QUALITY_COLOURS[_BAD] if alarm else "black",
            weight="bold" if alarm else "normal",
        )
        y -= 0.04
    _counts_table(fig, data, y - 0.02)
    _references_table(fig, data, y - 0.02)
    notes = []
    if data.skipped:
        notes.append(
            "Not summed (binning changed during the period): "
            + ", ".join(f"{k} ({v} spills)" for k, v in sorted(data.skipped.items()))
        )
    if data.missing_histograms:
        notes.append(
            f"Not in the sums: {data.missing_histograms} spills whose histograms are not stored "
            "(closed without any, or deleted by the histogram retention in a run cut by the "
            "period's edges; see docs/retention.md)."
        )
    if data.reference_run is None:
        notes.append(
            "No reference was in force for the main beam configuration: histograms are drawn "
            "without one."
        )
    for i, note in enumerate(notes):
        fig.text(0.05, 0.09 - 0.03 * i, note, fontsize=8, color="#a0522d")


_NO_CONDITIONS = "none received from the DAQ"


def _conditions_lines(data: ReportData, most: int = 2) -> list[tuple[str, str]]:
    """Runs grouped by their conditions, those without any first (at most ``most`` groups),
    each wrapped to the cover's width."""
    groups: dict[str, list[int]] = {}
    for run in data.runs:
        groups.setdefault(data.run_conditions.get(run, ""), []).append(run)
    ordered = sorted(groups.items(), key=lambda g: (g[0] != "", g[1][0]))
    texts = [
        f"run{'s' if len(runs) > 1 else ''} {ranges_text(runs)}: {text or _NO_CONDITIONS}"
        for text, runs in ordered[:most]
    ]
    if len(ordered) > most:
        texts.append(f"… and {len(ordered) - most} more sets of conditions")
    wrapped = [part for text in texts for part in textwrap.wrap(text, 100)]
    return [("Run conditions" if i == 0 else "", part) for i, part in enumerate(wrapped)]


def _table_box(left: float, width: float, top: float) -> tuple[float, float, float, float]:
    """A cover table's axes below ``top``: 0.34 high, shorter when the lines above took room."""
    bottom = max(top - 0.36, 0.12)
    return (left, bottom, width, max(top - 0.02 - bottom, 0.1))


def _counts_table(fig: Figure, data: ReportData, top: float) -> None:
    ax = fig.add_axes(_table_box(0.05, 0.42, top))
    ax.axis("off")
    ax.set_title("Check flags by subsystem and quality", loc="left", fontsize=10, weight="bold")
    qualities = [k for k in ("GOOD", "WARNING", "CHECK_ERROR", "BAD", "NO_DATA")]
    subsystems = [s for s in SUBSYSTEM_TITLES if s in data.flag_counts] + sorted(
        set(data.flag_counts) - set(SUBSYSTEM_TITLES)
    )
    if not subsystems:
        ax.text(
            0, 0.9, "no flags in this period", fontsize=9, color="#666666", transform=ax.transAxes
        )
        return
    cells = [
        [SUBSYSTEM_TITLES.get(s, s)] + [f"{data.flag_counts[s].get(k, 0):,d}" for k in qualities]
        for s in subsystems
    ]
    table = ax.table(
        cellText=cells,
        colLabels=["subsystem"] + [q.replace("_", " ") for q in qualities],
        loc="upper left",
        cellLoc="right",
        colLoc="right",
        colWidths=[0.24] + [0.76 / len(qualities)] * len(qualities),
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1, 1.3)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#bbbbbb")
        name = qualities[col - 1] if col >= 1 else ""
        if row > 0 and name in ("WARNING", "CHECK_ERROR", "BAD") and cells[row - 1][col] != "0":
            cell.set_facecolor(QUALITY_COLOURS[int(Quality[name])] + "40")
        if col == 0:
            cell.set_text_props(ha="left")


def _references_table(fig: Figure, data: ReportData, top: float) -> None:
    ax = fig.add_axes(_table_box(0.52, 0.45, top))
    ax.axis("off")
    ax.set_title("References used", loc="left", fontsize=10, weight="bold")
    if not data.references:
        ax.text(
            0,
            0.9,
            "none: shape comparisons gave NO_DATA",
            fontsize=9,
            color="#666666",
            transform=ax.transAxes,
        )
        return
    rows = [
        [
            r.beam_config,
            str(r.run),
            fmt_time(r.set_at),
            r.set_by or "–",
            ("imported" if r.imported else "run")
            + (", in force at end" if r.in_force_at_end else ""),
            (r.comment or "")[:28],
        ]
        for r in data.references[:12]
    ]
    table = ax.table(
        cellText=rows,
        colLabels=["beam", "run", "set at", "set by", "source", "comment"],
        loc="upper left",
        cellLoc="left",
        colLoc="left",
        colWidths=[0.09, 0.09, 0.26, 0.13, 0.2, 0.23],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.3)
    for cell in table.get_celld().values():
        cell.set_edgecolor("#bbbbbb")
