"""The expert pages' data: the store's reads, and arithmetic on decoded histograms.

The reads (runs, spills of a run, trend, flags, audit and references frames) live in
:mod:`dqm.store.frames` — every query of the DQM is in ``dqm/store`` — and are
re-exported here for the views. What remains here needs no database: summing a
histogram over spills, one channel's history, the report files on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boost_histogram as bh
import numpy as np

from dqm.core.histio import add_into
from dqm.store.frames import (
    SpillInfo,
    audit_frame,
    flags_frame,
    references_frame,
    runs,
    spills_of_run,
    summary_keys,
    trend_frame,
)
from dqm.store.queries import runs_in_period

__all__ = [
    "SpillInfo",
    "runs",
    "spills_of_run",
    "sum_spills",
    "sum_hists",
    "flags_frame",
    "audit_frame",
    "trend_frame",
    "runs_in_period",
    "cell_history",
    "reports",
    "summary_keys",
    "references_frame",
]


def sum_spills(spill_hists: Sequence[dict[str, bh.Histogram]], name: str) -> bh.Histogram | None:
    """One histogram summed over several spills (None if no spill has it)."""
    total: dict[str, bh.Histogram] = {}
    for hists in spill_hists:
        if name in hists:
            add_into(total, {name: hists[name]})
    return total.get(name)


def sum_hists(hists: Sequence[bh.Histogram]) -> bh.Histogram | None:
    """The sum of histograms of one binning (None for none)."""
    if not hists:
        return None
    total = hists[0].copy()
    for h in hists[1:]:
        total += h
    return total


def cell_history(
    spill_hists: Sequence[tuple[SpillInfo, dict[str, bh.Histogram]]], name: str, cell: Sequence[int]
) -> dict[str, Any]:
    """One channel's hits per event across spills (a cellmap cell or a ``channels`` row sum)."""
    spills, per_event = [], []
    for info, hists in spill_hists:
        h = hists.get(name)
        if h is None:
            continue
        values = np.asarray(h.values(), dtype=float)
        v = float(values[tuple(cell)].sum()) if len(cell) <= values.ndim else float("nan")
        spills.append(info.spill)
        per_event.append(v / info.n_events if info.n_events else np.nan)
    return {"spill": spills, "per_event": per_event}


def reports(folder: Path) -> list[tuple[str, int, float]]:
    """Nightly PDF reports in ``folder``: (file name, size in bytes, modification time), newest
    first."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.pdf") if p.is_file()]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [(p.name, p.stat().st_size, p.stat().st_mtime) for p in files]
