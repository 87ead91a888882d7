"""Histograms → column data for the figures of :mod:`apps.plots` (pure numpy, no bokeh).

Computed **once per spill** by the data refresher (the wall) or once per request (the
expert page); every shape is normalised to unit area (fraction per bin) so a spill can be
laid over a whole reference run, with the numbers of :func:`dqm.checks.compare.compare`,
the same function the report uses. Cell maps carry the Poisson significance of each cell
against the reference (:mod:`dqm.checks.significance`): a cell that expects 0.3 hits
and sees none is as expected, not "dead".
"""

from __future__ import annotations

import re
from typing import Any

import boost_histogram as bh
import numpy as np

from dqm.checks.compare import compare
from dqm.checks.significance import significance_vs_reference

__all__ = [
    "plot_data",
    "channel_names",
    "drawn_bins",
    "trimmed",
    "DIVERGING",
    "MAX_LINE_CHANNELS",
    "CHANNEL_COLOURS",
    "SIGNIFICANCE_RANGE",
]

#: cell maps' significance colour scale spans ±5σ (beyond: the end colour)
SIGNIFICANCE_RANGE = 5.0

#: up to this many channels a ``channels`` histogram is drawn as one line per channel
MAX_LINE_CHANNELS = 8
CHANNEL_COLOURS = (
    "#4fc3f7",
    "#aed581",
    "#f06292",
    "#ffd54f",
    "#ba68c8",
    "#4db6ac",
    "#ff8a65",
    "#e0e0e0",
)
DIVERGING = tuple(  # blue (deficit, dead) - white (as expected) - red (excess, hot)
    "#{:02x}{:02x}{:02x}".format(*tuple(int(a + (b - a) * t) for a, b in zip(lo, hi, strict=False)))
    for lo, hi, n in (((33, 102, 172), (247, 247, 247), 64), ((247, 247, 247), (178, 24, 43), 64))
    for t in np.linspace(0, 1, n)
)


def channel_names(label: str, n: int) -> list[str]:
    """Tick names from an axis label like ``"source (BMS MS1 MS2 …)"`` when it lists n names."""
    m = re.search(r"\(([^)]*)\)", label or "")
    names = m.group(1).split() if m else []
    return names if len(names) == n else [str(i) for i in range(n)]


def _norm(a: np.ndarray) -> np.ndarray:
    total = float(a.sum())
    return a / total if total > 0 else a * 0.0


def drawn_bins(*counts: np.ndarray | None) -> slice:
    """The bins worth drawing: the filled ones of any of ``counts`` with a margin around.

    The momentum axes span 0–320 GeV so that one binning serves every beam; a 160 GeV
    peak drawn over all of it would be a spike. The range is rounded to 1/32 of the axis
    so it does not jitter from spill to spill.
    """
    arrays = [np.asarray(c) for c in counts if c is not None and len(c)]
    if not arrays:
        return slice(None)
    filled = np.flatnonzero(np.any([a > 0 for a in arrays], axis=0))
    n = len(arrays[0])
    if filled.size == 0:
        return slice(None)
    step = max(n // 32, 1)
    pad = max((filled[-1] - filled[0]) // 5, step)
    lo = max((filled[0] - pad) // step * step, 0)
    hi = min(-(-(filled[-1] + 1 + pad) // step) * step, n)
    return slice(int(lo), int(hi))


def trimmed(c: dict[str, Any]) -> dict[str, Any]:
    """A :func:`dqm.checks.compare` result cut to its :func:`drawn_bins` (edges included)."""
    n = len(c["observed"])
    keep = drawn_bins(c["observed"], c.get("reference_norm"))
    if keep == slice(None) or (keep.start, keep.stop) == (0, n):
        return c
    out = {k: v[keep] if isinstance(v, np.ndarray) and len(v) == n else v for k, v in c.items()}
    out["edges"] = c["edges"][keep.start : keep.stop + 1]
    return out


def _h1(h: bh.Histogram, ref: bh.Histogram | None) -> dict[str, Any]:
    c = trimmed(compare(h, ref))
    edges = c["edges"]
    data: dict[str, Any] = {
        "obs": {
            "left": edges[:-1],
            "right": edges[1:],
            "top": c["observed_norm"],
            "count": c["observed"],
        }
    }
    if "reference_norm" in c:
        r = c["reference_norm"]
        data["ref"] = {"x": edges, "y": np.append(r, r[-1])}
    else:
        data["ref"] = {"x": [], "y": []}
    data["_meta"] = {"has_ref": "reference_norm" in c, "entries": c["entries"]}
    return data


def _image(h: bh.Histogram, per_row: bool = False) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    if per_row:  # channels: each channel's spectrum normalised on its own
        sums = z.sum(axis=1, keepdims=True)
        z = np.divide(z, sums, out=np.zeros_like(z), where=sums > 0)
    z = np.where(z > 0, z, np.nan)
    ex, ey = h.axes[0].edges, h.axes[1].edges
    img = {
        "image": [z.T],
        "x": [ex[0]],
        "y": [ey[0]],
        "dw": [ex[-1] - ex[0]],
        "dh": [ey[-1] - ey[0]],
    }
    return {"img": img, "_meta": {"has_ref": False, "entries": float(np.nansum(h.values()))}}


def _channel_lines(h: bh.Histogram, ref: bh.Histogram | None, names: list[str]) -> dict[str, Any]:
    x = np.asarray(h.axes[1].centers)
    obs = np.asarray(h.values(), dtype=float)
    colours = [CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)] for i in range(obs.shape[0])]
    data = {
        "obs": {
            "xs": [x] * len(obs),
            "ys": [_norm(row) for row in obs],
            "color": colours,
            "label": names,
        }
    }
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and ref.values().shape == obs.shape
        else None
    )
    data["ref"] = (
        {"xs": [x] * len(r), "ys": [_norm(row) for row in r], "color": colours, "label": names}
        if r is not None and r.sum() > 0
        else {"xs": [], "ys": [], "color": [], "label": []}
    )
    data["_meta"] = {"has_ref": bool(r is not None and r.sum() > 0), "entries": float(obs.sum())}
    return data


def _cells(h: bh.Histogram, ref: bh.Histogram | None, n_events: float | None) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    ix, iy = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
    occ = z / n_events if n_events else z / max(float(z.max()), 1.0)
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and ref.values().shape == z.shape
        else None
    )
    has_ref = r is not None and r.sum() > 0 and z.sum() > 0
    if has_ref:
        assert r is not None
        rn = _norm(r)
        ratio = np.divide(_norm(z), rn, out=np.full_like(z, np.nan), where=rn > 0)
        sig = significance_vs_reference(z, r)
    else:
        ratio = sig = np.full_like(z, np.nan)
    cells = {
        "x": ix.ravel(),
        "y": iy.ravel(),
        "count": z.ravel(),
        "occupancy": occ.ravel(),
        "ratio": ratio.ravel(),
        "significance": sig.ravel(),
        "shown": np.clip(sig, -SIGNIFICANCE_RANGE, SIGNIFICANCE_RANGE).ravel(),
    }
    return {"cells": cells, "_meta": {"has_ref": bool(has_ref), "entries": float(z.sum())}}


def _bars(
    h: bh.Histogram, ref: bh.Histogram | None, n_events: float | None, names: list[str]
) -> dict[str, Any]:
    z = np.asarray(h.values(), dtype=float)
    frac = z / n_events if n_events else z / max(float(z.max()), 1.0)
    x = np.arange(len(z))
    data = {"bars": {"x": x, "fraction": frac, "count": z, "name": names}}
    r = (
        np.asarray(ref.values(), dtype=float)
        if ref is not None and len(ref.values()) == len(z)
        else None
    )
    has_ref = r is not None and r.max() > 0
    data["ref"] = {"x": x, "fraction": r / r.max()} if has_ref else {"x": [], "fraction": []}
    data["_meta"] = {"has_ref": bool(has_ref), "entries": float(z.sum())}
    return data


def plot_data(
    spec, h: bh.Histogram | None, ref: bh.Histogram | None = None, *, n_events: float | None = None
) -> dict[str, Any]:
    """Column data for :func:`make_plot` of ``spec`` (empty histogram when ``h`` is None)."""
    if h is None:
        from dqm.core.fill import book_histogram

        h, ref = book_histogram(spec), None
    if ref is not None and (
        ref.ndim != h.ndim or any(len(a) != len(b) for a, b in zip(ref.axes, h.axes, strict=False))
    ):
        ref = None  # binning changed since the reference was taken: draw without it
    if spec.kind == "h1":
        return _h1(h, ref)
    if spec.kind == "h2":
        return _image(h)
    if spec.kind == "channels":
        n = len(h.axes[0])
        if n <= MAX_LINE_CHANNELS:
            return _channel_lines(h, ref, [f"{spec.channel_label} {i}" for i in range(n)])
        return _image(h, per_row=True)
    if h.ndim == 1:
        return _bars(h, ref, n_events, channel_names(spec.x_label, len(h.axes[0])))
    return _cells(h, ref, n_events)
