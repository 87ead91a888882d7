"""Plan the report's pages from the gathered data and the specs: pure, no drawing.

The plan is a list of :class:`Page` decided before anything is drawn, so every page
can carry "page i / N", and so tests can check that the page count follows the
specs (one panel per spec histogram, ``per_page`` panels a page, a new page per
subsystem) without rendering. The WARNING/BAD table is paginated here by counting
wrapped text lines against a page's line budget.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from dqm.checks import quality_name
from dqm.core.specs import SpecSet
from dqm.core.summary import SUMMARY_DOCS
from dqm.report.data import FlagRow, ReportData, SpillRow
from dqm.report.signoff_pages import SECTION_TITLE, signoff_pages

__all__ = [
    "Page",
    "TableRow",
    "Trend",
    "TRENDS",
    "plan_pages",
    "trend_series",
    "SUBSYSTEM_TITLES",
    "TABLE_COLUMNS",
]

SUBSYSTEM_TITLES = {
    "beam": "Beam",
    "calorimeter": "Calorimeters",
    "momentum": "Momentum",
    "pik": "π/K contamination",
    "daq": "DAQ",
}

#: (header, characters a line, share of the page width) of the WARNING/BAD table
TABLE_COLUMNS = (
    ("run / spill", 12, 0.075),
    ("closed", 14, 0.085),
    ("quality", 8, 0.06),
    ("subsystem · histogram · check", 30, 0.175),
    ("explanation", 62, 0.345),
    ("shifter instruction", 44, 0.26),
)
#: columns whose text is replaced by a ditto mark when it repeats the row above on the same page
DITTO_COLUMNS = (3, 4, 5)
DITTO = ("″",)


@dataclass(frozen=True)
class Trend:
    """One trend panel: summary keys drawn against spill (or time), optional error key."""

    title: str
    keys: tuple[str, ...]
    ylabel: str
    err: str | None = None


_GROUPED = (
    Trend("Events sampled per spill (intensity)", ("n_events",), "events / spill"),
    Trend("Incoming momentum (BMS)", ("p_bms_mean",), "mean p_BMS [GeV]"),
    Trend("Outgoing momentum (MS2), passing muons", ("p_ms2_mean",), "mean p_MS2 [GeV]"),
    Trend("Δp = p_BMS − p_MS2", ("dp_mean",), "mean Δp [GeV]"),
    Trend("Momentum widths", ("p_bms_sigma", "p_ms2_sigma", "dp_sigma"), "σ [GeV]"),
    Trend("Low-p_MS2 fraction (signal region)", ("low_pout_fraction",), "fraction"),
    Trend("Mean calorimeter energy per event", ("ecal_mean", "hcal_mean"), "E [GeV]"),
    Trend("π/K (hadron-tagged) fraction", ("pik_fraction",), "fraction", err="pik_fraction_err"),
    Trend("DAQ completeness", ("daq_completeness",), "fraction of complete events"),
    Trend(
        "Beam centroid at MS1 station 2", ("beam_x_mean_ms1_2", "beam_y_mean_ms1_2"), "mean [mm]"
    ),
    Trend("Beam width at MS1 station 2", ("beam_sigma_x_ms1_2", "beam_sigma_y_ms1_2"), "σ [mm]"),
)


def _all_trends() -> tuple[Trend, ...]:
    """The grouped panels, then any documented summary quantity they do not cover yet."""
    covered = {k for t in _GROUPED for k in (*t.keys, t.err)}
    extra = tuple(
        Trend(doc, (key,), key) for key, doc in SUMMARY_DOCS.items() if key not in covered
    )
    return _GROUPED + extra


TRENDS = _all_trends()


@dataclass(frozen=True)
class TableRow:
    """One WARNING/BAD flag as wrapped cell lines."""

    quality: int
    cells: tuple[tuple[str, ...], ...]

    @property
    def lines(self) -> int:
        return max(len(c) for c in self.cells)

    def after(self, previous: TableRow | None) -> TableRow:
        """This row as printed under ``previous``: repeated long texts become a ditto mark.

        A night of one recurring problem would otherwise print the same instruction
        hundreds of times; the first row of every page keeps the full text.
        """
        if previous is None:
            return self
        cells = tuple(
            DITTO if i in DITTO_COLUMNS and c == p and c != ("",) else c
            for i, (c, p) in enumerate(zip(self.cells, previous.cells, strict=False))
        )
        return TableRow(self.quality, cells)


@dataclass(frozen=True)
class Page:
    kind: str  # cover | signoff | flags | histograms | trends
    title: str
    items: tuple = ()


def _instruction(flag: FlagRow, specs: SpecSet) -> str:
    """The flag's own instruction, else the spec's instruction for that check or histogram."""
    if flag.instruction:
        return flag.instruction
    try:
        spec = specs[flag.histogram] if flag.histogram else None
    except KeyError:
        spec = None
    if spec is None:
        return ""
    return next(
        (c.instruction for c in spec.checks if c.type == flag.check and c.instruction),
        spec.instruction,
    )


def _wrap(text: str, width: int, max_lines: int = 8) -> tuple[str, ...]:
    lines = textwrap.wrap(" ".join(text.split()), width) or [""]
    return (
        tuple(lines[: max_lines - 1] + [lines[max_lines - 1][: width - 1] + "…"])
        if len(lines) > max_lines
        else tuple(lines)
    )


def table_rows(
    flags: list[FlagRow], specs: SpecSet, closed_at: dict[tuple[int, int | None], datetime]
) -> list[TableRow]:
    rows = []
    for f in flags:
        when = closed_at.get((f.run, f.spill))
        what = " · ".join(x for x in (f.subsystem, f.histogram or "", f.check) if x)
        texts = (
            f"{f.run} / {f.spill if f.spill is not None else '–'}",
            f"{when.astimezone():%m-%d %H:%M:%S}" if when else "",
            quality_name(f.quality),
            what,
            f.explanation,
            _instruction(f, specs),
        )
        rows.append(
            TableRow(
                f.quality,
                tuple(_wrap(t, w) for t, (_, w, _) in zip(texts, TABLE_COLUMNS, strict=False)),
            )
        )
    return rows


def _paginate(rows: list[TableRow], budget: int) -> list[tuple[TableRow, ...]]:
    """Rows into pages of at most ``budget`` text lines, with ditto marks within a page."""
    pages: list[list[TableRow]] = [[]]
    used = 0
    previous: TableRow | None = None
    for row in rows:
        shown = row.after(previous)
        if pages[-1] and used + shown.lines > budget:
            pages.append([])
            used = 0
            shown = row
        pages[-1].append(shown)
        used += shown.lines
        previous = row
    return [tuple(p) for p in pages]


def _chunks(seq: list, n: int) -> list[tuple]:
    return [tuple(seq[i : i + n]) for i in range(0, len(seq), n)] or [()]


def plan_pages(
    data: ReportData,
    *,
    per_page: int = 4,
    trends_per_page: int = 6,
    table_lines: int = 46,
    max_table_pages: int = 40,
) -> list[Page]:
    """Cover, sign-off pages (each run's incidents and certification), WARNING/BAD table
    pages, per-subsystem histogram pages, trend pages.

    A night with a detector off can flag every spill; past ``max_table_pages`` the
    table stops (its last title says how many flags were left out) so the report
    stays printable and is still ready for the morning.
    """
    pages = [Page("cover", f"NA64μ data-quality report — {data.period.label}")]
    signoff = signoff_pages(data.run_summaries)
    for i, chunk in enumerate(signoff, 1):
        pages.append(Page("signoff", f"{SECTION_TITLE} ({i}/{len(signoff)})", chunk))
    closed = {(s.run, s.spill): s.closed_at for s in data.spills}
    rows = table_rows(data.problem_flags, data.specs, closed)
    table = _paginate(rows, table_lines)
    shown = table[:max_table_pages]
    left_out = len(rows) - sum(len(p) for p in shown)
    n_spills = len({(f.run, f.spill) for f in data.problem_flags})
    for i, chunk in enumerate(shown, 1):
        title = f"WARNING and BAD flags — {len(rows)} flags in {n_spills} spills ({i}/{len(shown)})"
        if left_out and i == len(shown):
            title += f"; {left_out} more not listed"
        pages.append(Page("flags", title, chunk))
    for subsystem, specs in data.specs.by_subsystem().items():
        if not specs:
            continue
        chunks = _chunks(list(specs), per_page)
        name = SUBSYSTEM_TITLES.get(subsystem, subsystem)
        for i, chunk in enumerate(chunks, 1):
            pages.append(
                Page(
                    "histograms",
                    f"{name} — integrated over the period vs reference ({i}/{len(chunks)})",
                    chunk,
                )
            )
    trends = _chunks(list(TRENDS), trends_per_page)
    for i, chunk in enumerate(trends, 1):
        pages.append(
            Page(
                "trends",
                f"Per-spill summary trends, flagged spills marked ({i}/{len(trends)})",
                chunk,
            )
        )
    return pages


def trend_series(spills: list[SpillRow], trend: Trend) -> dict[str, np.ndarray]:
    """Arrays for one panel: ``x`` spill order, ``quality``, one array per key (NaN if absent)."""
    out: dict[str, np.ndarray] = {
        "quality": np.array([-1 if s.quality is None else s.quality for s in spills], dtype=int)
    }
    for key in (*trend.keys, *((trend.err,) if trend.err else ())):
        values = [
            s.n_events if key == "n_events" and key not in s.summary else s.summary.get(key)
            for s in spills
        ]
        out[key] = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return out
