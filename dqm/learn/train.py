"""Train one model: split good spills, fit on one part, calibrate on the other. Pure.

The split interleaves (every ``holdout_every``-th spill is held out) so that the held-out
spills span the same runs and times as the training ones: a slow drift over the training
period is then in both, and the threshold is not calibrated on a different era.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import boost_histogram as bh
import numpy as np

from dqm.learn.calibrate import Calibration, calibrate_threshold, score_summary
from dqm.learn.pca import LearnedModel, array_bytes, bytes_array, fit_model, score_vector
from dqm.learn.vector import HistogramLayout, layout_of, vectorise

__all__ = ["Training", "train_model", "subsystem_layout", "MIN_SPILLS"]

#: fewest good spills a model is trained on (a third of them calibrate the threshold)
MIN_SPILLS = 30


@dataclass(frozen=True)
class Training:
    """A trained, calibrated model and what it was made from (indices into the inputs)."""

    model: LearnedModel
    calibration: Calibration
    train: tuple[int, ...]
    holdout: tuple[int, ...]
    train_scores: tuple[float, ...]
    holdout_scores: tuple[float, ...]

    def scores(self) -> dict[str, Any]:
        return {
            "train": score_summary(self.train_scores),
            "holdout": score_summary(self.holdout_scores),
        }


def subsystem_layout(
    names: Sequence[str], hists: Mapping[str, bh.Histogram]
) -> tuple[HistogramLayout, ...]:
    """The layout of the subsystem's histograms ``names`` as filled in ``hists``."""
    return tuple(layout_of(n, hists[n]) for n in names if n in hists)


def as_stored(model: LearnedModel) -> LearnedModel:
    """The model as it will be read back from the store (float32 arrays)."""
    return replace(
        model,
        mean=bytes_array(array_bytes(model.mean)),
        scale=bytes_array(array_bytes(model.scale)),
        components=bytes_array(array_bytes(model.components)),
    )


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
    vectors = np.array([vectorise(s, layout) for s in spills])
    holdout = tuple(i for i in range(len(spills)) if i % holdout_every == holdout_every - 1)
    train = tuple(i for i in range(len(spills)) if i % holdout_every != holdout_every - 1)
    totals = np.array(
        [
            [float(s[item.name].values().sum()) if item.name in s else 0.0 for item in layout]
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
    train_scores = tuple(score_vector(fitted, vectors[i])[0] for i in train)
    holdout_scores = tuple(score_vector(fitted, vectors[i])[0] for i in holdout)
    calibration = calibrate_threshold(holdout_scores, false_alarm)
    model = replace(fitted, threshold=calibration.threshold, false_alarm=false_alarm)
    return Training(model, calibration, train, holdout, train_scores, holdout_scores)
