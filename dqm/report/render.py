"""Draw a planned report into a PDF: cover, WARNING/BAD table, histogram and trend pages.

Layer: plotting and file output. Everything shown comes from a :class:`ReportData`
(:func:`dqm.report.data.gather`) and the page plan (:func:`dqm.report.layout.plan_pages`);
this module decides only where things go on an A4 landscape page. Panels are drawn by
:mod:`dqm.report.plots`. Each page is its own ``Figure`` (no pyplot state), written
and freed at once, so memory stays flat however long the period.

The file is written next to its destination and renamed into place when complete:
whoever lists the reports folder (the expert page) never serves half a PDF.
"""

from __future__ import annotations

import logging
import os
import tempfile
import textwrap
import warnings
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import matplotlib
import mplhep
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from dqm import __version__
from dqm.checks import Quality
from dqm.core.numbering import ranges_text
from dqm.core.specs import HistogramSpec
from dqm.report.data import ReportData
from dqm.report.layout import (
    SUBSYSTEM_TITLES,
    TABLE_COLUMNS,
    Page,
    TableRow,
    plan_pages,
    trend_series,
)
from dqm.report.plots import QUALITY_COLOURS, draw_maps, draw_missing, draw_overlay, draw_trend
from dqm.report.progress import NullProgress

__all__ = ["render_report", "A4_LANDSCAPE", "STYLE"]

# matplotlib subsets the embedded fonts with fontTools, which logs every table at INFO
logging.getLogger("fontTools").setLevel(logging.WARNING)

A4_LANDSCAPE = (11.69, 8.27)
#: The field's look (mplhep's ROOT style: inward ticks on all four sides, no legend frame)
#: sized for 4 panels on an A4 page, with three changes measured to matter:
#: * DejaVu Sans embedded as TrueType (fonttype 42): the PDF's text can be searched and
#:   extracted (pdftotext), and it has every glyph the pages use (μ, π, Δ, σ, ″);
#:   mplhep's TeX Gyre Heros is an OpenType/CFF font that poppler flags when embedded so;
#: * no minor ticks and a fixed title height: matplotlib builds every tick as a set of
#:   artists and places auto-positioned titles by measuring them — together 60 % of
#:   the render time of a 30-page report.
STYLE = {
    **mplhep.style.ROOT,
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "pdf.fonttype": 42,
    "figure.dpi": 100,
    "xtick.major.size": 5,
    "ytick.major.size": 5,
    "xtick.minor.visible": False,
    "ytick.minor.visible": False,
    "axes.titley": 1.0,
    "axes.titlepad": 4.0,
    "axes.formatter.limits": (-5, 6),
    "axes.formatter.use_mathtext": False,
    "axes.formatter.useoffset": False,
}
_QUALITY_ORDER = ("GOOD", "WARNING", "CHECK_ERROR", "BAD", "NO_DATA", "UNCHECKED")
_BAD = int(Quality.BAD)
_MAP_KINDS = 2  # histograms with this many dimensions are drawn as colour maps


@contextmanager
def _style():
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        # a glyph missing from the font (a spec title in an exotic script) must not stop the nightly
        # report
        warnings.filterwarnings(
            "ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning
        )
        yield


def _fmt_time(ts: datetime | None) -> str:
    return "–" if ts is None else ts.astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _frame(fig: Figure, page: Page, number: int, total: int, data: ReportData) -> None:
    """Title on top, generation stamp and page number at the bottom of every page."""
    fig.text(0.03, 0.965, page.title, fontsize=13, weight="bold", va="top")
    stamp = (
        f"NA64μ DQM · {data.period.label} · generated {_fmt_time(data.generated_at)} by dqm "
        f"{__version__}"
        f" · specs {data.specs.version}"
    )
    fig.text(0.03, 0.015, stamp, fontsize=7, color="#555555")
    fig.text(0.97, 0.015, f"page {number} / {total}", fontsize=8, ha="right")


# ---------------------------------------------------------------------- cover
def _cover(fig: Figure, data: ReportData) -> None:
    q = data.quality_counts
    n = len(data.spills)
    status = Counter(s.status for s in data.spills)
    start, end = data.window
    good = "–" if data.good_fraction is None else f"{100 * data.good_fraction:.1f} %"
    lines = [
        ("Period", f"{_fmt_time(start)}  →  {_fmt_time(end)}"),
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
            _fmt_time(r.set_at),
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


# ---------------------------------------------------------------------- WARNING/BAD table
def _flags_table(fig: Figure, rows: tuple[TableRow, ...]) -> None:
    left, right, top, line_h = 0.03, 0.97, 0.91, 0.0172
    xs = np.cumsum([0.0] + [share for _, _, share in TABLE_COLUMNS]) / sum(
        s for _, _, s in TABLE_COLUMNS
    )
    xs = left + xs * (right - left)
    headers = [
        h if h != "closed" else f"closed ({datetime.now().astimezone().tzname()})"
        for h, _, _ in TABLE_COLUMNS
    ]
    for header, x in zip(headers, xs, strict=False):
        fig.text(x + 0.003, top, header, fontsize=7.5, weight="bold", va="top")
    y = top - 1.4 * line_h
    fig.add_artist(
        matplotlib.lines.Line2D([left, right], [y + 0.4 * line_h] * 2, color="#333333", lw=0.8)
    )
    if not rows:
        fig.text(left, y - line_h, "No WARNING or BAD flag in this period.", fontsize=10)
        return
    for i, row in enumerate(rows):
        height = row.lines * line_h
        if i % 2:
            fig.add_artist(
                matplotlib.patches.Rectangle(
                    (left, y - height + 0.3 * line_h),
                    right - left,
                    height,
                    color="#f2f2f2",
                    zorder=-1,
                    transform=fig.transFigure,
                )
            )
        for j, (lines, x) in enumerate(zip(row.cells, xs, strict=False)):
            colour = QUALITY_COLOURS.get(row.quality, "black") if j == 2 else "black"
            fig.text(
                x + 0.003,
                y,
                "\n".join(lines),
                fontsize=7,
                va="top",
                color=colour,
                linespacing=1.25,
                weight="bold" if j == 2 else "normal",
            )
        y -= height


# ---------------------------------------------------------------------- histogram pages
def _histogram_panel(fig: Figure, cell, spec: HistogramSpec, data: ReportData) -> None:
    h = data.histograms.get(spec.name)
    ref = data.reference_histograms.get(spec.name)
    ref_label = (
        f"reference run {data.reference_run}" if data.reference_run is not None else "reference"
    )
    if h is None:
        why = (
            "not in the stored spills of this period" if data.spills else "no spill in this period"
        )
        draw_missing(fig.add_subplot(cell), spec, f"{spec.name}: {why}")
        return
    if h.ndim >= _MAP_KINDS:
        inner = cell.subgridspec(1, 3, width_ratios=(1, 1, 0.05), wspace=0.3)
        axes = [fig.add_subplot(inner[0, 0]), fig.add_subplot(inner[0, 1])]
        mesh = draw_maps(axes, spec, h, ref, ref_label)
        if mesh is not None:
            cbar = fig.colorbar(mesh, cax=fig.add_subplot(inner[0, 2]))
            cbar.ax.tick_params(labelsize=6)
            cbar.set_label("fraction / bin", fontsize=7, labelpad=1)
        return
    inner = cell.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.05)
    ax = fig.add_subplot(inner[0, 0])
    rax = fig.add_subplot(inner[1, 0], sharex=ax)
    draw_overlay(ax, rax, spec, h, ref, ref_label)


def _histograms(fig: Figure, specs: tuple, data: ReportData) -> None:
    grid = fig.add_gridspec(
        2, 2, left=0.06, right=0.955, top=0.9, bottom=0.08, hspace=0.38, wspace=0.25
    )
    for i, spec in enumerate(specs):
        _histogram_panel(fig, grid[i // 2, i % 2], spec, data)


# ---------------------------------------------------------------------- trend pages
def _run_boundaries(data: ReportData) -> list[tuple[float, str]]:
    """Where a new run starts along the spill axis (labelled when there are few)."""
    out, prev = [], None
    for i, s in enumerate(data.spills):
        if s.run != prev:
            out.append((i - 0.5, f"run {s.run}"))
            prev = s.run
    return out if len(out) <= 20 else [(x, "") for x, _ in out]


def _trends(fig: Figure, trends: tuple, data: ReportData) -> None:
    grid = fig.add_gridspec(
        3, 2, left=0.07, right=0.97, top=0.9, bottom=0.08, hspace=0.55, wspace=0.18
    )
    x = np.arange(len(data.spills), dtype=float)
    bounds = _run_boundaries(data)
    for i, trend in enumerate(trends):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        draw_trend(
            ax,
            trend,
            x,
            trend_series(data.spills, trend),
            xlabel="spill in the period (closing order)",
            boundaries=bounds,
        )


# ---------------------------------------------------------------------- the document
def _power_of_ten(value: float, _pos: int) -> str:
    exponent = np.log10(value) if value > 0 else np.nan
    if np.isfinite(exponent) and abs(exponent - round(exponent)) < 1e-9:
        return f"1e{int(round(exponent))}"
    return ""


def _draw(page: Page, data: ReportData) -> Figure:
    fig = Figure(figsize=A4_LANDSCAPE)
    if page.kind == "cover":
        _cover(fig, data)
    elif page.kind == "flags":
        _flags_table(fig, page.items)
    elif page.kind == "histograms":
        _histograms(fig, page.items, data)
    elif page.kind == "trends":
        _trends(fig, page.items, data)
    for ax in fig.axes:  # every tick is a handful of artists: keep few (and no minor ones, which
        ax.minorticks_off()  # log scales and mplhep turn back on); they cost more than they tell
        if not ax.axison:
            continue
        colorbar = getattr(ax, "_colorbar", None) is not None  # keeps its own locator
        for axis in (ax.xaxis, ax.yaxis):
            if (
                axis.get_scale() == "log"
            ):  # "1e-3" as plain text: mathtext labels cost 15 % of a page
                axis.set_major_formatter(FuncFormatter(_power_of_ten))
            elif not colorbar:
                axis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    return fig


def render_report(data: ReportData, out: Path | str, *, progress=NullProgress) -> int:
    """Write the report to ``out`` (atomically); returns the number of pages."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pages = plan_pages(data)
    metadata = {
        "Title": f"NA64μ data-quality report — {data.period.label}",
        "Author": "NA64μ DQM",
        "Subject": f"runs {ranges_text(data.runs)}; {len(data.spills)} spills; "
        f"{len(data.problem_spills)} flagged",
        "Keywords": f"NA64mu DQM report specs={data.specs.version}",
        "Creator": f"dqm {__version__}",
        "CreationDate": data.generated_at,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        with (
            _style(),
            PdfPages(tmp, metadata=metadata) as pdf,
            progress("rendering pages", total=len(pages)) as bar,
        ):
            for number, page in enumerate(pages, 1):
                fig = _draw(page, data)
                _frame(fig, page, number, len(pages), data)
                pdf.savefig(fig, dpi=150)
                fig.clear()
                bar.update()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(pages)
