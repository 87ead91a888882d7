"""The momentum checks share one reading of a spill mean: what is missing is named.

Given a summary that lacks one of the numbers a mean-shift check reads, when the check
runs, then it is NO_DATA naming exactly the missing key; a momentum mean without its
spread is still judged by ``p_scale`` (every shift then counts as significant).
"""

from __future__ import annotations

import pytest

from dqm.checks import CheckContext, Quality, run_check

FULL = {"dp_mean": 0.1, "dp_sigma": 6.0, "n_events": 20_000.0, "p_bms_mean": 160.0}


@pytest.mark.parametrize("missing", ["dp_mean", "dp_sigma", "n_events"])
def test_momentum_scale_names_the_missing_key(missing: str) -> None:
    summary = {k: v for k, v in FULL.items() if k != missing}
    result = run_check("momentum_scale", CheckContext(summary=summary), {})
    assert result.quality is Quality.NO_DATA
    assert f"'{missing}' missing from the summary" in result.explanation


def test_p_scale_judges_a_mean_without_its_spread() -> None:
    summary = {"p_bms_mean": 163.2, "n_events": 20_000.0}  # +2 %: BAD
    result = run_check("p_scale", CheckContext(summary=summary), {"nominal_gev": 160.0})
    assert result.quality is Quality.BAD
    assert "+2.00 % from nominal 160 GeV" in result.explanation
    empty = run_check("p_scale", CheckContext(summary={"p_bms_mean": 160.0}), {"nominal_gev": 160})
    assert empty.quality is Quality.NO_DATA and "'n_events' missing" in empty.explanation
