"""Judging by the run's conditions: parameters taken from them, and the DAQ flag about them.

A check whose nominal value is written ``"@p_beam_gev"`` gets the run's value
(:func:`with_conditions`), or, when the conditions (or a reference chosen by them) are
missing, a NO_DATA result that says so, never an error. :func:`conditions_judgement` is
the ``daq`` flag of a run with no conditions, or judged against a reference taken under
other ones.

Layer: pure core, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from dqm.checks import CHECKS, CheckResult, Quality, validate_check_params
from dqm.checks._core import check_error
from dqm.core.conditions import RunConditions, UnresolvedCondition, resolve_params
from dqm.core.verdict import Judgement

__all__ = ["NO_CONDITIONS", "with_conditions", "conditions_judgement"]

#: Why a check that needs the run's conditions (or a reference chosen by them) did not judge.
NO_CONDITIONS = "no run conditions received"


def with_conditions(
    check: str,
    params: Mapping,
    conditions: RunConditions | None,
    *,
    no_reference: str | None = None,
) -> dict | CheckResult:
    """A check's parameters with ``"@name"`` resolved from the run conditions — or, when it
    cannot judge for want of them, the NO_DATA result that says why (never an error).

    ``no_reference`` is why the spill has no reference at all (no conditions, or none
    certified for this beam configuration); checks that need one get it as their reason,
    unless their parameters are invalid (an expert's override), which is CHECK_ERROR first.
    """
    try:
        resolved = resolve_params(params, conditions)
    except UnresolvedCondition as exc:
        return CheckResult(
            Quality.NO_DATA, None, {}, f"{NO_CONDITIONS} ({exc})", {"needs": "conditions"}, check
        )
    except ValueError as exc:  # a malformed reference in an override written by hand
        return check_error(check, exc)
    registered = CHECKS.get(check)
    if no_reference and registered is not None and registered.needs_reference:
        try:
            validate_check_params(check, resolved)
        except Exception as exc:  # noqa: BLE001 — a broken configuration is reported first
            return check_error(check, exc)
        return CheckResult(Quality.NO_DATA, None, {}, no_reference, {}, check)
    return resolved


def conditions_judgement(
    conditions: RunConditions | None, reference_conditions: RunConditions | None
) -> Judgement | None:
    """The DAQ flag about the run conditions: none received, or a reference taken under others.

    Nothing to say (None) when the run has its conditions and the reference matches them
    or did not record any (a reference set before conditions were recorded).
    """
    if conditions is None:
        return Judgement(
            "daq",
            None,
            "run_conditions",
            CheckResult(
                Quality.WARNING,
                None,
                {},
                f"{NO_CONDITIONS} from the DAQ for this run: momentum-scale checks and reference "
                "comparisons give NO_DATA",
                {"conditions": None},
                "run_conditions",
            ),
            "The DAQ did not announce this run's conditions (beam, momentum, magnets, trigger): "
            "call the DAQ expert. The spills are judged without them until they arrive.",
        )
    if reference_conditions is None:
        return None
    diffs = conditions.differences(reference_conditions)
    if not diffs:
        return None
    return Judgement(
        "daq",
        None,
        "reference_conditions",
        CheckResult(
            Quality.WARNING,
            float(len(diffs)),
            {},
            "the reference was taken under other conditions (this run vs reference): "
            + "; ".join(diffs),
            {
                "conditions": conditions.to_dict(),
                "reference_conditions": reference_conditions.to_dict(),
            },
            "reference_conditions",
        ),
        "Shape comparisons may flag the change of conditions, not the detector: ask the DQM "
        "expert to certify a reference for these conditions (dqm reference suggest).",
    )
