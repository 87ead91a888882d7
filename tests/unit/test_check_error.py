"""CHECK_ERROR, the judge's guard, the marker judgement and explanations' precision.

* CHECK_ERROR is visible in every roll-up, never passes for GOOD, never hides a BAD;
* :func:`judge_check` turns whatever a check raises (a bug, an invalid override, an
  unusable reference) into CHECK_ERROR naming the check and the error;
* :func:`arrival_judgement` says what the marker announced and what arrived;
* :func:`fmt_judged` prints a value on its true side of every threshold, so
  "2.0 mm (bad ±2)" can no longer stand next to a WARNING.
"""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dqm.checks import CheckContext, Quality, judged_worst, rollup, run_check
from dqm.checks._core import check_error
from dqm.checks._util import fmt_judged
from dqm.core.arrival import Arrival, arrival_judgement
from dqm.core.evaluate import CHECK_ERROR_INSTRUCTION, evaluate_spill, judge_check
from dqm.core.fill import Filler
from dqm.errors import CheckError


def test_check_error_is_visible_never_good_and_never_hides_a_bad() -> None:
    E, B, W, G, N = (
        Quality.CHECK_ERROR,
        Quality.BAD,
        Quality.WARNING,
        Quality.GOOD,
        Quality.NO_DATA,
    )
    assert G < N < W < E < B  # integer order is severity order (stored as such)
    assert judged_worst([G, G, E]) is E  # not GOOD
    assert judged_worst([N, E]) is E  # not the grey that means "nothing judged"
    assert judged_worst([W, E]) is E
    assert judged_worst([E, B]) is B  # a known BAD is what the tile shows
    failed = check_error("ks", ValueError("boom"))
    assert rollup([("momentum", failed)]) == {"momentum": E, "overall": E}


def test_check_error_names_the_check_and_the_original_error() -> None:
    try:
        try:
            raise ValueError("both histograms need entries")
        except ValueError as inner:
            raise CheckError("check 'ks' failed: ValueError: …") from inner
    except CheckError as wrapped:
        result = check_error("ks", wrapped)
    assert result.quality is Quality.CHECK_ERROR and result.check == "ks"
    assert result.explanation == "check 'ks' failed: ValueError: both histograms need entries"
    assert result.details["error_type"] == "ValueError"


def test_an_invalid_threshold_override_is_a_check_error_and_the_rest_is_judged(specs) -> None:
    # Given an override (stored by an expert) that the check's declaration refuses
    hists = Filler(specs).book()
    verdict = evaluate_spill(
        specs, hists, {"n_events": 0.0}, overrides={("p_bms", "ks"): {"p_bad": "often"}}
    )
    by_check = {(j.histogram, j.check): j for j in verdict.judgements}
    broken = by_check[("p_bms", "ks")]
    # Then that one check is CHECK_ERROR naming the parameter, and tells whom to call
    assert broken.result.quality is Quality.CHECK_ERROR
    assert "p_bad" in broken.result.explanation and "SpecError" in broken.result.explanation
    assert broken.instruction == CHECK_ERROR_INSTRUCTION
    # and every other check ran
    others = [j for k, j in by_check.items() if k != ("p_bms", "ks")]
    assert others and all(j.result.quality is not Quality.CHECK_ERROR for j in others)


def test_judge_check_logs_the_traceback_once_then_one_line(caplog, monkeypatch) -> None:
    from dqm.core import evaluate

    monkeypatch.setattr(evaluate, "_LOGGED", set())

    def context() -> CheckContext:
        raise RuntimeError("masks unreadable")

    with caplog.at_level(logging.ERROR, logger="dqm.core.evaluate"):
        for _ in range(3):
            result = judge_check("empty", context, where="h")
    assert result.quality is Quality.CHECK_ERROR
    assert "RuntimeError: masks unreadable" in result.explanation
    records = [r for r in caplog.records if "RuntimeError" in r.getMessage()]
    assert len(records) == 3
    assert [r.exc_info is not None for r in records] == [True, False, False]


@pytest.mark.parametrize(
    ("status", "arrival", "check", "text"),
    [
        ("complete", Arrival(4, 4000, 4, 4000), None, None),
        (
            "complete",
            Arrival(5, 24_871, 4, 20_000),
            "marker_mismatch",
            "end-of-spill marker announced 4 batches / 20 000 events, "
            "5 batches / 24 871 events arrived",
        ),
        (
            "complete",
            Arrival(4, 4000, 4, 4000, late_batches=1, late_events=1000),
            "marker_mismatch",
            "4 batches / 4 000 events arrived; 1 batch / 1 000 events more arrived beyond",
        ),
        ("complete", Arrival(5, 5000, 5, 4990), "marker_mismatch", "5 batches / 5 000 events arr"),
        (
            "incomplete",
            Arrival(3, 3000, 4, 4000),
            "spill_complete",
            "incomplete after the timeout: 3 of 4 batches (3 000 of 4 000 events) arrived",
        ),
        (
            "incomplete",
            Arrival(2, 2000, None, None),
            "spill_complete",
            "2 batches / 2 000 events arrived and no end-of-spill marker",
        ),
    ],
)
def test_arrival_judgement_says_what_was_announced_and_what_arrived(
    status, arrival, check, text
) -> None:
    result = arrival_judgement(status, arrival)
    if check is None:
        assert result is None
        return
    assert result.check == check and result.quality is Quality.BAD
    assert text in result.explanation, result.explanation


@pytest.mark.parametrize(
    ("value", "limits", "shown"),
    [
        (1.996, (1.5, 2.0), "1.996"),  # WARNING against a BAD limit of 2: not "2.0"
        (2.0, (1.5, 2.0), "2.0"),  # exactly on the limit: BAD (≥), printed as equal
        (2.004, (1.5, 2.0), "2.004"),  # just BAD: not "2.0"
        (1.4999, (1.5, 2.0), "1.4999"),
        (0.43, (1.5, 2.0), "0.43"),
        (9.99e-7, (1e-3, 1e-6), "9.99e-07"),  # a p-value just under p_bad
        (1.0004e-6, (1e-3, 1e-6), "1.0004e-06"),
        (-4.999, (4.0, -4.0, 5.0, -5.0), "-4.999"),
        (59.999, (60.0,), "59.999"),
        (None, (1.0,), "n/a"),
        (math.inf, (1.0,), "inf"),
    ],
)
def test_fmt_judged_shows_the_digits_that_separate_the_value_from_its_limits(
    value, limits, shown
) -> None:
    assert fmt_judged(value, *limits) == shown


@pytest.mark.parametrize(
    ("value", "limits", "decimals", "shown"),
    [
        (1.996, (1.5, 2.0), 1, "1.996"),  # "2.0 mm (bad ±2)" on a WARNING: never again
        (1.94, (1.5, 2.0), 1, "1.9"),  # the usual one decimal when it separates
        (69.6, (70.0, 60.0), 0, "69.6"),  # "70 %" would not read as below the 70 % limit
        (12.14, (8.0, 10.0), 1, "12.1"),
        (-5.04, (5.0, -5.0), 1, "-5.04"),
    ],
)
def test_fmt_judged_keeps_the_usual_decimals_unless_they_mislead(
    value, limits, decimals, shown
) -> None:
    assert fmt_judged(value, *limits, decimals=decimals) == shown


@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=4),
)
def test_fmt_judged_never_puts_a_value_on_the_wrong_side_of_a_limit(value, limits) -> None:
    for decimals in (None, 0, 1):
        shown = float(fmt_judged(value, *limits, decimals=decimals))
        for t in limits:
            assert (shown > t) == (value > t) and (shown < t) == (value < t)


def test_a_beam_centroid_warning_never_prints_the_bad_limit_as_its_value() -> None:
    # Given a centroid 1.996 mm from nominal: WARNING (window 1.5 mm), not yet BAD (2 mm)
    context = CheckContext(summary={"beam_x_mean_ms1_0": 1.996, "beam_y_mean_ms1_0": 0.1})
    result = run_check(
        "beam_centroid", context, {"window_mm": 1.5, "bad_window_mm": 2.0, "min_entries": 0}
    )
    assert result.quality is Quality.WARNING
    assert "1.996 mm from nominal" in result.explanation and "bad ±2" in result.explanation
