"""Expert 1D figures: overlay + ratio + pull, statistics box, a check's number over the spills.

Pure conversions from numbers (``dqm.checks.compare`` output, frames of the store) to
bokeh figures on a light background, for reading at a desk. No queries here.

The ratio and pull panels must stay quiet on a healthy spill: a bin is drawn there only
when it says something (observed or expected ≥ 1 count), and its pull is the Poisson
significance of :mod:`dqm.checks.significance`, not a Gaussian pull that turns one event in
an empty tail into a red bar.
"""

from __future__ import annotations

from typing import Any

import boost_histogram as bh
import numpy as np
import pandas as pd
from bokeh.models import Span
from bokeh.plotting import figure

from apps.expert_figures import HIGHLIGHT, H1Figures, SeriesFigure, columns
from apps.plots import _style
from apps.theme import SERIES

__all__ = [
    "overlay_ratio_pull",
    "statistics",
    "statistics_html",
    "rebin_choices",
    "rebinned",
    "check_series_figure",
    "history_figure",
    "HIGHLIGHT",
    "columns",
]

_LIGHT_OBS, _LIGHT_REF = SERIES["light"]
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def rebin_choices(n_bins: int) -> list[int]:
    """Rebinning factors that divide ``n_bins`` (1 first): merged bins keep their edges."""
    return [k for k in (1, 2, 3, 4, 5, 6, 8, 10) if n_bins % k == 0 and n_bins // k >= 2]


def rebinned(h: bh.Histogram | None, factor: int) -> bh.Histogram | None:
    """``h`` with ``factor`` neighbouring bins merged along its first axis (flow kept)."""
    if h is None or factor <= 1 or len(h.axes[0]) % factor:
        return h
    return h[:: bh.rebin(factor)] if h.ndim == 1 else h[:: bh.rebin(factor), :]


def statistics(h: bh.Histogram) -> dict[str, float]:
    """Entries, mean, RMS, under- and overflow of a 1D histogram (ROOT's statistics box).

    Mean and RMS are of the in-range bins at their centres, as ROOT computes them from a
    stored histogram; under/overflow are the flow bins' counts (0 without flow).
    """
    values = np.asarray(h.values(), dtype=float)
    centres = np.asarray(h.axes[0].centers, dtype=float)
    total = float(values.sum())
    mean = float(np.dot(values, centres) / total) if total > 0 else float("nan")
    rms = (
        float(np.sqrt(max(np.dot(values, (centres - mean) ** 2) / total, 0.0)))
        if total > 0
        else float("nan")
    )
    flow = np.asarray(h.values(flow=True), dtype=float)
    under = float(flow[0]) if h.axes[0].traits.underflow else 0.0
    over = float(flow[-1]) if h.axes[0].traits.overflow else 0.0
    return {
        "entries": total + under + over,
        "mean": mean,
        "rms": rms,
        "underflow": under,
        "overflow": over,
    }


def statistics_html(stats: dict[str, float], unit: str = "") -> str:
    u = f" {unit}" if unit else ""
    return (
        '<table class="dqm-stats">'
        f"<tr><td>entries</td><td>{stats['entries']:,.0f}</td></tr>"
        f"<tr><td>mean</td><td>{stats['mean']:.4g}{u}</td></tr>"
        f"<tr><td>RMS</td><td>{stats['rms']:.4g}{u}</td></tr>"
        f"<tr><td>underflow</td><td>{stats['underflow']:,.0f}</td></tr>"
        f"<tr><td>overflow</td><td>{stats['overflow']:,.0f}</td></tr></table>"
    )


def overlay_ratio_pull(
    c: dict[str, Any],
    title: str,
    *,
    log: bool = False,
    highlight: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> list:
    """Three stacked figures sharing x: normalised overlay, ratio, significance (new ones;
    the explorer refills its own :class:`~apps.expert_figures.H1Figures` instead)."""
    figs = H1Figures(log=log)
    figs.update(c, title, highlight=highlight)
    return figs.figures if "reference_norm" in c else [figs.top]


def check_series_figure(
    frame: pd.DataFrame, title: str, *, current: int | None = None, by_time: bool = False
):
    """A check's own number per spill with its WARNING/BAD bands (a new figure).

    This is what a change-detection check (CUSUM, EWMA) or an intensity check judges: the
    statistic, not the one-spill histogram in which the change is invisible.
    """
    fig = SeriesFigure(log=SeriesFigure.wants_log(frame), by_time=by_time)
    fig.update(frame, title, current=current)
    return fig.fig


def history_figure(
    history: dict[str, list], title: str, reference_level: float | None = None
) -> figure:
    """One channel's hits per event across the run's spills."""
    fig = figure(title=title, height=260, sizing_mode="stretch_width", tools=_TOOLS)
    fig.line(history["spill"], history["per_event"], line_color=_LIGHT_OBS, line_width=2)
    fig.scatter(history["spill"], history["per_event"], color=_LIGHT_OBS, size=6)
    if reference_level is not None:
        fig.add_layout(
            Span(
                location=reference_level,
                dimension="width",
                line_color=_LIGHT_REF,
                line_dash="dashed",
                line_width=2,
            )
        )
    fig.xaxis.axis_label = "spill"
    fig.yaxis.axis_label = "hits per event" + (
        " (dashed: reference)" if reference_level is not None else ""
    )
    _style(fig, "light")
    return fig
