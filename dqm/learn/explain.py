"""A score in words: which histograms and which bins (cells) make it up.

"ecal_energy_map cells (2,3),(2,4) contribute 61 % of the score" — the shifter's sentence,
computed from the per-bin residuals of :func:`dqm.learn.pca.score_vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dqm.learn.vector import HistogramLayout, bin_words

__all__ = ["Contribution", "top_contributions", "explain_score"]


@dataclass(frozen=True)
class Contribution:
    """One histogram's share of the score and its leading bins."""

    histogram: str
    share: float
    bins: tuple[str, ...]
    #: each leading bin's direction against the model: "high" or "low"
    directions: tuple[str, ...]
    #: flat bin indices (for the expert page's highlight)
    indices: tuple[int, ...]
    #: how the words name it (a response map: "ecal_energy_map per ecal_mip_hits")
    title: str = ""

    def words(self) -> str:
        cells = all("at" not in b and "–" not in b for b in self.bins)  # cells/channels, not ranges
        noun = ("cells " if cells else "bins ") if self.bins else ""
        listed = ", ".join(f"{b} {d}" for b, d in zip(self.bins, self.directions, strict=True))
        name = self.title or self.histogram
        return f"{name} {noun}{listed} contribute {100 * self.share:.0f} % of the score"


def top_contributions(
    layout: Sequence[HistogramLayout],
    residual: NDArray[np.float64],
    *,
    histograms: int = 2,
    bins: int = 3,
    cover: float = 0.5,
    lead: int | None = None,
) -> list[Contribution]:
    """The histograms contributing most to the score, each with its leading bins.

    Args:
        layout: the model's layout (vector order).
        residual: per-bin standardised residual (:func:`dqm.learn.pca.score_vector`).
        histograms: at most this many histograms.
        bins: at most this many bins per histogram ...
        cover: ... or fewer, once they make up this share of the histogram's part.
        lead: the layout index of a histogram to name first whatever its share (the one
            whose own score stands out, :func:`dqm.learn.pca.histogram_excess`).
    """
    squared = np.asarray(residual, dtype=float) ** 2
    total = float(squared.sum())
    if total <= 0:
        return []
    parts = []
    start = 0
    for item in layout:
        part = squared[start : start + item.size]
        parts.append((float(part.sum()), item, start))
        start += item.size
    parts.sort(key=lambda p: -p[0])
    if lead is not None:
        parts.sort(key=lambda p: p[1] is not layout[lead])
    out = []
    for share_sum, item, begin in parts[:histograms]:
        if share_sum <= 0:
            break
        part = squared[begin : begin + item.size]
        order = np.argsort(part)[::-1]
        chosen: list[int] = []
        running = 0.0
        for index in order[:bins]:
            chosen.append(int(index))
            running += float(part[index])
            if running >= cover * share_sum:
                break
        out.append(
            Contribution(
                item.name,
                share_sum / total,
                tuple(bin_words(item, i) for i in chosen),
                tuple("high" if residual[begin + i] > 0 else "low" for i in chosen),
                tuple(item.bin_index(i) for i in chosen),
                item.title,
            )
        )
    return out


def explain_score(contributions: Sequence[Contribution]) -> str:
    """``"ecal_energy_map cells (2,3) low, (2,4) low contribute 61 % of the score; …"``."""
    return "; ".join(c.words() for c in contributions)
