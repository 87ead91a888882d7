"""Train one model: split good spills, fit on one part, calibrate on the other. Pure.

The split interleaves (every ``holdout_every``-th spill is held out) so that the held-out
spills span the same runs and times as the training ones: a slow drift over the training
period is then in both, and the threshold is not calibrated on a different era.

Two statistics share the stated false-alarm rate, half each (so together at most the rate,
by the union bound): the subsystem's score, and the largest per-histogram excess
(:func:`dqm.learn.pca.histogram_excess`), each calibrated on the held-out spills by
:func:`dqm.learn.calibrate.calibrate_threshold`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import boost_histogram as bh
import numpy as np

from dqm.learn.calibrate import Calibration, calibrate_threshold, score_summary, tail_scale
from dqm.learn.pca import (
    LearnedModel,
    array_bytes,
    bytes_array,
    fit_model,
    histogram_excess,
    histogram_scores,
    score_vector,
)
from dqm.learn.vector import HistogramLayout, layout_of, response_of, vectorise

__all__ = ["Training", "train_model", "subsystem_layout", "spec_layout", "MIN_SPILLS"]

#: fewest good spills a model is trained on (a third of them calibrate the threshold)
MIN_SPILLS = 30
#: a response map keeps the cells with at least this many hits in every training spill
#: (the ``cell_gain`` rule's ``min_hits``: the mean of fewer hits is far from normal)
MIN_RESPONSE_HITS = 50


@dataclass(frozen=True)
class Training:
    """A trained, calibrated model and what it was made from (indices into the inputs)."""

    model: LearnedModel
    calibration: Calibration
    train: tuple[int, ...]
    holdout: tuple[int, ...]
    train_scores: tuple[float, ...]
    holdout_scores: tuple[float, ...]
    #: the largest per-histogram excess: its calibration and held-out values
    histogram_calibration: Calibration | None = None
    holdout_excess: tuple[float, ...] = ()

    def scores(self) -> dict[str, Any]:
        return {
            "train": score_summary(self.train_scores),
            "holdout": score_summary(self.holdout_scores),
            "holdout_histogram_excess": score_summary(self.holdout_excess),
        }


def subsystem_layout(
    names: Sequence[str], hists: Mapping[str, bh.Histogram]
) -> tuple[HistogramLayout, ...]:
    """The layout of the subsystem's histograms ``names`` as filled in ``hists``."""
    return tuple(layout_of(n, hists[n]) for n in names if n in hists)


def spec_layout(specs: Any, subsystem: str, hists: Mapping[str, bh.Histogram]) -> tuple:
    """The subsystem's histograms in spec order, then a response map (energy per hit) for
    every energy map a ``cell_gain`` check watches, with the check's hit map."""
    names = [s.name for s in specs if s.subsystem == subsystem]
    responses = tuple(
        response_of(s.name, c.params["hits"], hists[s.name])
        for s in specs
        if s.subsystem == subsystem and s.name in hists
        for c in s.checks
        if c.type == "cell_gain" and c.params.get("hits") in hists
    )
    return subsystem_layout(names, hists) + responses


def _kept_cells(
    item: HistogramLayout, spills: Sequence[Mapping[str, bh.Histogram]]
) -> HistogramLayout:
    """A response map restricted to the cells with enough hits in every spill."""
    if not item.per:
        return item
    hits = np.array([np.asarray(s[item.per].values(), dtype=float).ravel() for s in spills])
    kept = tuple(int(i) for i in np.flatnonzero(hits.min(axis=0) >= MIN_RESPONSE_HITS))
    return replace(item, cells=kept)


def as_stored(model: LearnedModel) -> LearnedModel:
    """The model as it will be read back from the store (float32 arrays)."""
    return replace(
        model,
        mean=bytes_array(array_bytes(model.mean)),
        scale=bytes_array(array_bytes(model.scale)),
        components=bytes_array(array_bytes(model.components)),
    )


#: folds of the training spills for their out-of-fold histogram scores
FOLDS = 3


def _cross_fitted(
    train: np.ndarray,
    layout: Sequence[HistogramLayout],
    subsystem: str,
    beam_config: str,
    n_components: int,
) -> np.ndarray:
    """Per-histogram scores of the training spills, each scored by a model fitted without
    its fold: a spill the model was fitted on fits it better than a new spill does (by up to
    ten times the typical score for a histogram the components follow), so the spread of
    new spills' scores is learnt out of fold, not in sample."""
    out = np.empty((len(train), len(layout)))
    folds = np.arange(len(train)) % FOLDS
    for fold in range(FOLDS):
        model = fit_model(
            train[folds != fold],
            layout,
            subsystem=subsystem,
            beam_config=beam_config,
            n_components=n_components,
        )
        for i in np.flatnonzero(folds == fold):
            out[i] = histogram_scores(model, score_vector(model, train[i])[1])
    return out


def train_model(
    spills: Sequence[Mapping[str, bh.Histogram]],
    layout: Sequence[HistogramLayout],
    *,
    subsystem: str,
    beam_config: str,
    false_alarm: float = 1e-3,
    n_components: int = 5,
    holdout_every: int = 3,
) -> Training:
    """Fit a PCA model on good spills and calibrate its threshold on held-out ones.

    Args:
        spills: the good spills' histograms, in time order.
        layout: the subsystem's histograms (:func:`subsystem_layout`).
        subsystem, beam_config: what the model judges.
        false_alarm: the wanted false-alarm rate per spill.
        n_components: principal components kept.
        holdout_every: every this-many-th spill is held out for the calibration.

    Raises:
        ValueError: fewer than :data:`MIN_SPILLS` spills, or ones the layout does not fit.
    """
    if len(spills) < MIN_SPILLS:
        raise ValueError(
            f"{len(spills)} good spills of {subsystem} under {beam_config}: at least "
            f"{MIN_SPILLS} are needed (a third of them calibrate the threshold)"
        )
    layout = tuple(_kept_cells(item, spills) for item in layout)
    layout = tuple(item for item in layout if item.size)
    vectors = np.array([vectorise(s, layout) for s in spills])
    holdout = tuple(i for i in range(len(spills)) if i % holdout_every == holdout_every - 1)
    train = tuple(i for i in range(len(spills)) if i % holdout_every != holdout_every - 1)
    totals = np.array(
        [
            [
                float(s[item.name].values().sum()) if item.name in s and not item.per else 0.0
                for item in layout
            ]
            for s in spills
        ]
    )
    fitted = as_stored(
        fit_model(
            vectors[list(train)],
            layout,
            subsystem=subsystem,
            beam_config=beam_config,
            n_components=n_components,
            entries=np.median(totals[list(train)], axis=0),
        )
    )
    scored = {i: score_vector(fitted, vectors[i]) for i in range(len(spills))}
    train_scores = tuple(scored[i][0] for i in train)
    holdout_scores = tuple(scored[i][0] for i in holdout)
    calibration = calibrate_threshold(holdout_scores, false_alarm / 2)
    per_train = _cross_fitted(vectors[list(train)], layout, subsystem, beam_config, n_components)
    tails = [list(tail_scale(per_train[:, h])) for h in range(per_train.shape[1])]
    with_tails = replace(fitted, info={**fitted.info, "histogram_tails": tails})
    excess = tuple(histogram_excess(with_tails, scored[i][1])[0] for i in holdout)
    per_histogram = calibrate_threshold(excess, false_alarm / 2)
    model = replace(
        with_tails,
        threshold=calibration.threshold,
        false_alarm=false_alarm,
        info={
            **with_tails.info,
            "histogram_threshold": per_histogram.threshold,
            "histogram_calibration": per_histogram.to_dict(),
        },
    )
    return Training(
        model,
        calibration,
        train,
        holdout,
        train_scores,
        holdout_scores,
        per_histogram,
        excess,
    )
