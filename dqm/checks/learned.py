"""The learned check: a spill's shapes against a PCA model of good spills (issue 14).

``pca_score`` judges a whole subsystem at once — all its histograms, normalised, as one
vector (:mod:`dqm.learn`) — so it sees what no single-histogram rule names: a pattern over
several cells each within its own tolerance, or a changed correlation between detectors
in a 2D histogram that no rule watches. It is declared in the specs on one histogram of
the subsystem (whose entries the common ``min_entries`` rule counts) and judges like any
other check: NO_DATA without a model for the run's beam configuration, GOOD / WARNING /
BAD against the model's calibrated threshold, the score, threshold and model version in
the flag, and the histograms and bins that contribute most named in its explanation.
"""

from __future__ import annotations

from dqm.checks._core import CheckContext, CheckResult, Quality
from dqm.checks._registry import register_check
from dqm.learn.explain import explain_score, top_contributions
from dqm.learn.pca import LearnedModel, histogram_excess, score_vector
from dqm.learn.vector import vectorise

__all__ = ["check_pca_score"]


def _no_model(context: CheckContext) -> CheckResult:
    beam = context.conditions.beam_config if context.conditions is not None else None
    under = f" under {beam}" if beam else " (no run conditions, so no beam configuration)"
    how = f"dqm model train --beam-config {beam}" if beam else "dqm model train"
    return CheckResult(
        Quality.NO_DATA,
        None,
        {},
        f"no learned model of {context.subsystem or 'this subsystem'}{under}: an expert "
        f"trains one on good spills ({how})",
        {},
    )


@register_check(
    "pca_score",
    params={
        "bad_factor": (
            float,
            3.0,
            "BAD above this multiple of the model's calibrated threshold (WARNING above it)",
        ),
    },
    needs_histogram=True,
    min_entries=1000,
)
def check_pca_score(context: CheckContext, *, bad_factor: float) -> CheckResult:
    """Reconstruction error of the subsystem's normalised histograms under its PCA model.

    Score = mean squared standardised residual after projecting the spill's vector on the
    model's principal components; beside it, the largest histogram's own score above its
    usual value in units of its spread (a change confined to one histogram is diluted in the
    whole). WARNING when either is above its threshold calibrated on held-out good spills
    (half the model's false-alarm rate per spill each), BAD above ``bad_factor`` times it.
    The explanation names the histograms and bins (cells) that make up most of the score,
    the standing-out histogram first.
    """
    model = context.model
    if not isinstance(model, LearnedModel):
        return _no_model(context)
    vector = vectorise(context.histograms, model.layout)
    score, residual = score_vector(model, vector)
    excess, index = histogram_excess(model, residual)
    excess_limit = model.histogram_threshold
    stands_out = index is not None and excess > excess_limit
    contributions = top_contributions(model.layout, residual, lead=index if stands_out else None)
    threshold = {"warning": model.threshold, "bad": bad_factor * model.threshold}
    if score > threshold["bad"] or (stands_out and excess > bad_factor * excess_limit):
        quality = Quality.BAD
    elif score > threshold["warning"] or stands_out:
        quality = Quality.WARNING
    else:
        quality = Quality.GOOD
    rate = f"{100 * model.false_alarm:.2g} % false alarms per spill"
    which = model.layout[index].title if index is not None else ""
    one = (
        f"; {which} {excess:.3g} spreads above its usual score "
        f"{'>' if stands_out else '≤'} {excess_limit:.3g}"
        if index is not None
        else ""
    )
    if quality == Quality.GOOD:
        text = (
            f"shapes as in the good spills: score {score:.3g} ≤ {model.threshold:.3g}{one} "
            f"({model.label}, {rate})"
        )
    else:
        compare = ">" if score > model.threshold else "≤"
        text = (
            f"shapes unlike the good spills of {model.beam_config}: score {score:.3g} "
            f"{compare} {model.threshold:.3g}{one} ({model.label}, {rate}): "
            f"{explain_score(contributions)}"
        )
    return CheckResult(
        quality,
        score,
        threshold,
        text,
        {
            "model_id": model.id,
            "model_version": model.version,
            "beam_config": model.beam_config,
            "false_alarm": model.false_alarm,
            "histogram_excess": excess if index is not None else None,
            "histogram_threshold": excess_limit if index is not None else None,
            "histogram": which or None,
            "contributions": [
                {
                    "histogram": c.histogram,
                    "share": c.share,
                    "bins": list(c.bins),
                    "directions": list(c.directions),
                    "index": list(c.indices),
                }
                for c in contributions
            ],
        },
    )
