"""Draw one panel on given matplotlib axes: overlay + ratio, colour maps, trends.

Layer: plotting only. Numbers come from :func:`dqm.checks.compare` (the same
normalised overlay, ratio and errors the control room shows) or from the pure
:mod:`dqm.report.layout`; nothing here reads the store or decides a quality.
Every function draws into axes it is given, so the page code decides the layout
and the same panels could be reused elsewhere (e.g. the expert app's PNG export).
"""

from __future__ import annotations

from collections.abc import Sequence

import boost_histogram as bh
import matplotlib.colors as mcolors
import mplhep
import numpy as np
from matplotlib.axes import Axes

from dqm.checks import Quality, compare
from dqm.core.specs import HistogramSpec
from dqm.errors import DQMError
from dqm.report.layout import Trend

__all__ = [
    "draw_overlay",
    "draw_maps",
    "draw_trend",
    "draw_missing",
    "QUALITY_COLOURS",
    "DATA_COLOUR",
    "REF_COLOUR",
]

DATA_COLOUR, REF_COLOUR = "black", "#e42536"
#: per stored quality (dqm.checks.Quality); -1: not judged. CHECK_ERROR is the palette's violet.
QUALITY_COLOURS = {
    int(Quality.GOOD): "#2b8a3e",
    int(Quality.NO_DATA): "#9c9ca1",
    int(Quality.WARNING): "#f89c20",
    int(Quality.CHECK_ERROR): "#7a21dd",
    int(Quality.BAD): "#e42536",
    -1: "#5790fc",
}


def _axis_label(axis: bh.axis.Axis, fallback: str) -> str:
    label = getattr(axis, "label", "") or ""
    return label if label and label != "None" else fallback


def draw_missing(ax: Axes, spec: HistogramSpec, why: str) -> None:
    """A panel with the spec's title and why there is nothing to show (keeps one panel per spec)."""
    ax.set_title(spec.title, fontsize=9, loc="left")
    ax.text(
        0.5,
        0.5,
        why,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=9,
        color="#666666",
        wrap=True,
    )
    ax.set_axis_off()  # no ticks to build: a period without data renders quickly too


def draw_overlay(
    ax: Axes,
    rax: Axes,
    spec: HistogramSpec,
    h: bh.Histogram,
    ref: bh.Histogram | None,
    ref_label: str,
) -> None:
    """Period (points) over reference (filled), both per unit area; ratio below."""
    note = ""
    try:
        cmp = compare(h, ref)
    except DQMError as exc:  # e.g. the reference's binning differs: draw without it
        cmp, note = compare(h), f"reference not drawn: {exc}"
    edges = cmp["edges"]
    has_ref = "reference_norm" in cmp
    if has_ref:
        mplhep.histplot(
            cmp["reference_norm"],
            edges,
            ax=ax,
            histtype="fill",
            color=REF_COLOUR,
            alpha=0.35,
            label=ref_label,
            flow=None,
        )
    mplhep.histplot(
        cmp["observed_norm"],
        edges,
        yerr=cmp["observed_err_norm"],
        ax=ax,
        histtype="errorbar",
        color=DATA_COLOUR,
        markersize=2.5,
        elinewidth=0.8,
        label=f"period ({cmp['entries']:.3g} entries)",
        flow=None,
    )
    positive = np.concatenate(
        [
            cmp["observed_norm"][cmp["observed_norm"] > 0],
            cmp.get("reference_norm", np.zeros(0))[cmp.get("reference_norm", np.zeros(0)) > 0],
        ]
    )
    if positive.size and positive.max() / positive.min() > 1e3:
        ax.set_yscale("log")
        ax.set_ylim(positive.min() / 3, positive.max() * 8)
    ax.set_ylabel("fraction / bin", fontsize=8)
    ax.set_title(spec.title, fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(labelbottom=False, labelsize=7)
    if has_ref:
        ratio, err = cmp["ratio"], cmp["ratio_err"]
        centres = 0.5 * (edges[1:] + edges[:-1])
        ok = np.isfinite(ratio)
        rax.errorbar(
            centres[ok],
            ratio[ok],
            yerr=np.nan_to_num(err[ok]),
            fmt="o",
            ms=2,
            color=DATA_COLOUR,
            elinewidth=0.7,
        )
        rax.axhline(1.0, color=REF_COLOUR, lw=0.8)
        rax.set_ylim(0.5, 1.5)
    else:
        rax.text(
            0.5,
            0.5,
            note or "no reference for this histogram",
            transform=rax.transAxes,
            ha="center",
            va="center",
            fontsize=7,
            color="#666666",
        )
    rax.set_xlim(edges[0], edges[-1])
    ax.set_xlim(edges[0], edges[-1])
    rax.set_ylabel("period / ref", fontsize=7)
    rax.set_xlabel(cmp["label"] or spec.name, fontsize=8)
    rax.tick_params(labelsize=7)


def _map_values(h: bh.Histogram) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.asarray(h.values(flow=False), dtype=float)
    total = values.sum()
    return (
        (values / total if total > 0 else values),
        np.asarray(h.axes[0].edges),
        np.asarray(h.axes[1].edges),
    )


def _uniform(edges: np.ndarray) -> bool:
    widths = np.diff(edges)
    return bool(widths.size) and np.allclose(widths, widths[0])


def draw_maps(
    axes: Sequence[Axes],
    spec: HistogramSpec,
    h: bh.Histogram,
    ref: bh.Histogram | None,
    ref_label: str,
):
    """Period and reference as colour maps side by side, per unit area, on one colour scale.

    Maps are images (regular bins, the specs' only kind) or rasterised meshes: a
    200×200 map as vector quads would make the PDF slow to render and several MB
    large. Returns the image/mesh for the caller's colour bar.
    """
    maps = [("period", h)] + ([(ref_label, ref)] if ref is not None and len(axes) > 1 else [])
    prepared = []
    for label, hist in maps:
        try:
            prepared.append((label, hist, *_map_values(hist)))
        except (IndexError, ValueError):
            continue
    if len(prepared) == 2 and prepared[0][2].shape != prepared[1][2].shape:
        prepared = prepared[:1]
    positive = np.concatenate([p[2][p[2] > 0] for p in prepared]) if prepared else np.zeros(0)
    if positive.size and positive.max() / positive.min() > 50:
        norm: mcolors.Normalize = mcolors.LogNorm(vmin=positive.min(), vmax=positive.max())
    else:
        norm = mcolors.Normalize(vmin=0.0, vmax=positive.max() if positive.size else 1.0)
    mesh = None
    for ax, (label, hist, values, xe, ye) in zip(axes, prepared, strict=False):
        shown = (
            np.ma.masked_less_equal(values.T, 0) if isinstance(norm, mcolors.LogNorm) else values.T
        )
        if _uniform(xe) and _uniform(
            ye
        ):  # an image: embedded as is, far cheaper than a rasterised mesh
            mesh = ax.imshow(
                shown,
                norm=norm,
                cmap="viridis",
                origin="lower",
                aspect="auto",
                interpolation="nearest",
                extent=(xe[0], xe[-1], ye[0], ye[-1]),
            )
        else:
            mesh = ax.pcolormesh(
                xe, ye, shown, norm=norm, cmap="viridis", rasterized=True, shading="flat"
            )
        ax.set_xlabel(_axis_label(hist.axes[0], "x"), fontsize=8)
        ax.set_ylabel(_axis_label(hist.axes[1], "y"), fontsize=8)
        ax.text(
            0.03,
            0.97,
            label,
            transform=ax.transAxes,
            fontsize=7,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.5},
        )
        ax.tick_params(labelsize=7)
    if axes:
        axes[0].set_title(spec.title, fontsize=9, loc="left")
    for ax in axes[len(prepared) :]:
        ax.text(
            0.5,
            0.5,
            "no reference for this histogram",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=8,
            color="#666666",
        )
        ax.set_axis_off()
    return mesh


def draw_trend(
    ax: Axes,
    trend: Trend,
    x: np.ndarray,
    series: dict[str, np.ndarray],
    *,
    xlabel: str,
    boundaries: Sequence[tuple[float, str]] = (),
) -> None:
    """Per-spill values as lines; WARNING (orange), CHECK_ERROR (violet) and BAD (red) spills
    marked on every line."""
    quality = series["quality"]
    colours = ["#333333", "#5790fc", "#964a8b"]
    for i, key in enumerate(trend.keys):
        y = series[key]
        ok = np.isfinite(y)
        if not ok.any():
            continue
        colour = colours[i % len(colours)]
        if trend.err and trend.err in series:
            err = np.nan_to_num(series[trend.err][ok])
            ax.fill_between(
                x[ok],
                y[ok] - err,
                y[ok] + err,
                color=colour,
                alpha=0.15,
                lw=0,
                step="mid",
                rasterized=len(x) > 200,
            )
        dense = len(x) > 200  # a day of spills: points read better than a zigzag line
        ax.plot(
            x[ok],
            y[ok],
            lw=0.0 if dense else 0.6,
            color=colour,
            label=key,
            marker="." if dense else "o",
            ms=1.5 if dense else 2,
            ls="none" if dense else "-",
            rasterized=dense,
        )  # 2000 vector dots: slow PDF
        for q, name in (
            (int(Quality.WARNING), "WARNING"),
            (int(Quality.CHECK_ERROR), "CHECK_ERROR"),
            (int(Quality.BAD), "BAD"),
        ):
            sel = ok & (quality == q)
            if sel.any():
                ax.scatter(
                    x[sel],
                    y[sel],
                    s=10,
                    color=QUALITY_COLOURS[q],
                    zorder=3,
                    label=f"{name} spill" if i == 0 else None,
                    edgecolors="none",
                )
    for pos, text in boundaries:
        ax.axvline(pos, color="#9c9ca1", lw=0.6, ls="--")
        if text:  # vertical, at the bottom: clear of the legend in the top corner
            ax.text(
                pos,
                0.03,
                f" {text}",
                transform=ax.get_xaxis_transform(),
                fontsize=5.5,
                va="bottom",
                rotation=90,
                color="#666666",
            )
    ax.set_title(trend.title, fontsize=9, loc="left")
    ax.set_ylabel(trend.ylabel, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        # a fixed corner: loc="best" tests every data point against every candidate box
        ax.legend(
            fontsize=6,
            loc="upper right",
            ncols=len(handles),
            frameon=True,
            framealpha=0.8,
            edgecolor="none",
            markerscale=2,
        )
