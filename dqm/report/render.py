"""Draw a planned report into a PDF: cover, sign-off, WARNING/BAD table, histograms, trends.

Layer: plotting and file output. Everything shown comes from a :class:`ReportData`
(:func:`dqm.report.data.gather`) and the page plan (:func:`dqm.report.layout.plan_pages`);
this module decides only where things go on an A4 landscape page. Panels are drawn by
:mod:`dqm.report.plots`, the cover by :mod:`dqm.report.cover`, the sign-off section by
:mod:`dqm.report.signoff_pages`. Each page is its own ``Figure`` (no pyplot state), written
and freed at once, so memory stays flat however long the period.

The file is written next to its destination and renamed into place when complete:
whoever lists the reports folder (the expert page) never serves half a PDF.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
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
from dqm.core.numbering import ranges_text
from dqm.core.specs import HistogramSpec
from dqm.report.cover import draw_cover, fmt_time
from dqm.report.data import ReportData
from dqm.report.layout import (
    TABLE_COLUMNS,
    Page,
    TableRow,
    plan_pages,
    trend_series,
)
from dqm.report.plots import QUALITY_COLOURS, draw_maps, draw_missing, draw_overlay, draw_trend
from dqm.report.progress import NullProgress
from dqm.report.signoff_pages import draw_signoff

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


def _frame(fig: Figure, page: Page, number: int, total: int, data: ReportData) -> None:
    """Title on top, generation stamp and page number at the bottom of every page."""
    fig.text(0.03, 0.965, page.title, fontsize=13, weight="bold", va="top")
    stamp = (
        f"NA64μ DQM · {data.period.label} · generated {fmt_time(data.generated_at)} by dqm "
        f"{__version__}"
        f" · specs {data.specs.version}"
    )
    fig.text(0.03, 0.015, stamp, fontsize=7, color="#555555")
    fig.text(0.97, 0.015, f"page {number} / {total}", fontsize=8, ha="right")


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
        draw_cover(fig, data)
    elif page.kind == "signoff":
        draw_signoff(fig, page.items)
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
