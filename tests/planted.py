"""A check planted to fail, for the tests that judging never stops the DQM.

``planted_failure`` raises ``ValueError`` on spills with fewer events than its
``fail_below_events`` parameter, and is GOOD otherwise: the tests publish a small spill
(the check fails) followed by normal ones (it passes), through a real worker process
started as ``python -m tests.planted worker …`` — the ``dqm`` command with this check
registered. :func:`planted_specs` writes the shipped specs plus one histogram using it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dqm.checks import CheckContext, CheckResult, Quality, register_check
from dqm.checks._registry import CHECKS

ROOT = Path(__file__).resolve().parents[1]

PLANTED_SPEC = """
[[histogram]]
name = "planted_p_bms"
title = "p_BMS, judged by a check planted to fail"
kind = "h1"
x = { expr = "p_bms", bins = 80, lo = 120, hi = 200, label = "p_BMS [GeV]" }
instruction = "Planted for a test."

[[histogram.check]]
type = "planted_failure"
params = { fail_below_events = %d }
"""

if "planted_failure" not in CHECKS:

    @register_check(
        "planted_failure",
        params={"fail_below_events": (float, 0.0, "raise on spills with fewer events")},
        min_entries=0,
    )
    def check_planted_failure(context: CheckContext, *, fail_below_events: float) -> CheckResult:
        """Raises ValueError on small spills (a stand-in for any bug in a check)."""
        n = float((context.summary or {}).get("n_events", 0.0))
        if n < fail_below_events:
            raise ValueError(f"planted failure on a spill of {n:.0f} events")
        return CheckResult(Quality.GOOD, n, {}, f"{n:.0f} events: the planted check passes")


def planted_specs(folder: Path, fail_below_events: int) -> Path:
    """The shipped specs plus a momentum histogram judged by ``planted_failure``."""
    folder.mkdir(parents=True, exist_ok=True)
    for toml in (ROOT / "histograms").glob("*.toml"):
        shutil.copy(toml, folder / toml.name)
    momentum = folder / "momentum.toml"
    momentum.write_text(momentum.read_text() + PLANTED_SPEC % fail_below_events)
    return folder


if __name__ == "__main__":
    from dqm.cli import main

    sys.exit(main())
