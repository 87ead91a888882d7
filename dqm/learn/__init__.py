"""The learned anomaly detector: a PCA model of a subsystem's good spills (issue 14).

Layer: pure core. A spill's histograms of one subsystem, each normalised to unit area and
concatenated, are one vector (:mod:`dqm.learn.vector`); a model fitted on good spills of
one beam configuration reconstructs it from a few principal components, and the
reconstruction error is the spill's score, with a contribution per bin that names the
histograms and cells behind it (:mod:`dqm.learn.pca`, :mod:`dqm.learn.explain`). The
threshold is calibrated on held-out good spills to a stated false-alarm rate per spill
(:mod:`dqm.learn.calibrate`). This is the AutoDQM baseline (CMS, PCA reconstruction error).

Scoring is plain NumPy; scikit-learn (fitting) and SciPy (calibration) are imported only
when a model is trained, never by a worker or the command line's start. No I/O here: the
models are stored by :mod:`dqm.store.learned`, judged by the ``pca_score`` check
(:mod:`dqm.checks.learned`).
"""

from __future__ import annotations

from dqm.learn.calibrate import Calibration, calibrate_threshold
from dqm.learn.explain import explain_score, top_contributions
from dqm.learn.pca import LearnedModel, fit_model, score_vector
from dqm.learn.vector import HistogramLayout, layout_of, vectorise

__all__ = [
    "HistogramLayout",
    "layout_of",
    "vectorise",
    "LearnedModel",
    "fit_model",
    "score_vector",
    "Calibration",
    "calibrate_threshold",
    "top_contributions",
    "explain_score",
]
