"""PCA model of good spills: fit (scikit-learn), score (NumPy), bytes for the store.

Each bin of the normalised vector is standardised with the training spills' mean and
spread (floored per histogram, so a bin that never moved does not divide by zero); the
standardised vector is projected on the first principal components and back; the score
is the mean squared residual over the bins, so a good spill scores about the noise level
and the per-bin squared residuals (which sum to the score) say where it differs.

Reference: M. Abbas et al. (CMS), "AutoDQM: automated data quality monitoring", PCA
reconstruction error of normalised histograms (github.com/cms-DQM/AutoDQM).

The mean over all of a subsystem's bins dilutes a change confined to one histogram (a few
cells of a 36-cell map among 8 600 bins), so each histogram's own part of the residual is
scored too: its mean squared residual, standardised by that histogram's own spread on the
training spills — its median ``u`` and the mean excess ``β`` above it, so a histogram whose
score is heavy-tailed (a sparse hit map) does not drown a steady one (:func:`histogram_excess`);
the largest such excess over the subsystem's histograms is a second statistic, calibrated on
the same held-out spills the same way.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dqm.learn.vector import HistogramLayout

__all__ = [
    "LearnedModel",
    "fit_model",
    "score_vector",
    "histogram_scores",
    "histogram_excess",
    "array_bytes",
    "bytes_array",
]

FloatArray = NDArray[np.float64]

#: A bin's spread is at least this fraction of its histogram's typical bin spread.
SCALE_FLOOR = 0.1


@dataclass(frozen=True)
class LearnedModel:
    """A fitted model of one subsystem under one beam configuration.

    Attributes:
        subsystem, beam_config: what it judges.
        layout: the histograms in vector order with their binning.
        mean, scale: per-bin mean and spread of the training vectors.
        components: the principal components (``k × bins``, orthonormal rows).
        threshold: the score above which a spill is flagged (calibrated, see
            :mod:`dqm.learn.calibrate`); ``inf`` before calibration.
        false_alarm: the false-alarm rate per spill the threshold was calibrated to.
        id, version: the stored model's row id and version (``None`` before it is stored).
    """

    subsystem: str
    beam_config: str
    layout: tuple[HistogramLayout, ...]
    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    threshold: float = float("inf")
    false_alarm: float = 1e-3
    id: int | None = None
    version: int | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_bins(self) -> int:
        return int(self.mean.size)

    @property
    def histogram_threshold(self) -> float:
        """Threshold of the largest per-histogram excess (``inf``: a model without one)."""
        return float(self.info.get("histogram_threshold", float("inf")))

    @property
    def label(self) -> str:
        """``"model 3 (calorimeter mu160 v2)"``: how flags and pages name it."""
        which = f"model {self.id} " if self.id is not None else "model "
        version = f" v{self.version}" if self.version is not None else ""
        return f"{which}({self.subsystem} {self.beam_config}{version})"


def _scale(
    train: FloatArray, layout: Sequence[HistogramLayout], entries: Sequence[float] | None
) -> FloatArray:
    spread = train.std(axis=0, ddof=1) if len(train) > 1 else np.zeros(train.shape[1])
    scale = np.empty_like(spread)
    start = 0
    for h, item in enumerate(layout):
        part = spread[start : start + item.size]
        moving = part[part > 0]
        typical = float(np.median(moving)) if moving.size else 1.0 / item.size
        floor = SCALE_FLOOR * typical
        if entries is not None and entries[h] > 0:
            # one entry's worth of the normalised histogram: a bin that went from 0 to 1
            # entry in a sparse 2D histogram is Poisson noise, not a 30σ anomaly
            floor = max(floor, 1.0 / float(entries[h]))
        scale[start : start + item.size] = np.sqrt(part**2 + floor**2)
        start += item.size
    return scale


def fit_model(
    train: FloatArray,
    layout: Sequence[HistogramLayout],
    *,
    subsystem: str,
    beam_config: str,
    n_components: int = 5,
    entries: Sequence[float] | None = None,
) -> LearnedModel:
    """Fit the PCA model on good spills' vectors (scikit-learn, imported here only).

    Args:
        train: ``spills × bins`` vectors of good spills (:func:`dqm.learn.vector.vectorise`).
        layout: their layout.
        subsystem, beam_config: what the model is for.
        n_components: principal components kept (at most ``spills − 1``).
        entries: each histogram's typical entries per spill (layout order); a bin's spread
            is then at least one entry's worth (sparse bins stay Poisson-sized).

    Returns:
        The model, not yet calibrated (``threshold = inf``).

    Raises:
        ValueError: fewer than 3 spills, or vectors that do not match the layout.
    """
    from sklearn.decomposition import PCA  # heavy: only when training

    train = np.asarray(train, dtype=float)
    if train.ndim != 2 or len(train) < 3:
        raise ValueError(f"need at least 3 training spills, got {len(train)}")
    if train.shape[1] != sum(item.size for item in layout):
        raise ValueError("training vectors do not match the layout")
    mean = train.mean(axis=0)
    scale = _scale(train, layout, entries)
    k = max(1, min(n_components, len(train) - 1, train.shape[1]))
    pca = PCA(n_components=k, svd_solver="full").fit((train - mean) / scale)
    return LearnedModel(
        subsystem,
        beam_config,
        tuple(layout),
        mean,
        scale,
        np.asarray(pca.components_, dtype=float),
        info={"explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_]},
    )


def score_vector(model: LearnedModel, vector: FloatArray) -> tuple[float, FloatArray]:
    """Reconstruction error of one spill's vector, and each bin's signed share of it.

    Returns:
        ``(score, residual)``: the mean squared standardised residual over the bins, and the
        standardised residual per bin (``residual**2 / bins`` sums to the score; its sign
        says whether the bin is above or below what the model expects).
    """
    z = (np.asarray(vector, dtype=float) - model.mean) / model.scale
    residual = z - (z @ model.components.T) @ model.components
    return float(np.mean(residual**2)), residual


def histogram_scores(model: LearnedModel, residual: FloatArray) -> FloatArray:
    """Each layout item's mean squared residual (the score restricted to its bins)."""
    squared = np.asarray(residual, dtype=float) ** 2
    bounds = np.cumsum([0] + [item.size for item in model.layout])
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return np.array([float(squared[a:b].mean()) if b > a else 0.0 for a, b in pairs])


def histogram_excess(model: LearnedModel, residual: FloatArray) -> tuple[float, int | None]:
    """The largest standardised histogram score ``(s − u) / β`` and its layout index;
    ``(0, None)`` for a model stored without per-histogram tails."""
    tails = np.asarray(model.info.get("histogram_tails", ()), dtype=float)
    if tails.shape != (len(model.layout), 2):
        return 0.0, None
    excess = (histogram_scores(model, residual) - tails[:, 0]) / tails[:, 1]
    index = int(np.argmax(excess))
    return float(excess[index]), index


def array_bytes(array: FloatArray) -> bytes:
    """``.npy`` bytes of ``array`` as float32 (the stored form of a model's arrays)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def bytes_array(data: bytes) -> FloatArray:
    """Inverse of :func:`array_bytes` (as float64 for scoring)."""
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False), dtype=float)
