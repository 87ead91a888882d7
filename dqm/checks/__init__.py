"""Data-quality checks: pure functions from one spill's data to a quality.

Layer: pure core. A check reads a :class:`CheckContext` (histogram, reference,
spill summary, run history, masked channels) and returns a :class:`CheckResult`
(quality, value, thresholds, explanation naming the bins/channels that drove it).
This package must not do I/O, plotting, or database access, and must not import
from the I/O shells; the worker, the apps and the report call :func:`run_check`.

Checks are registered by name with their parameters declared as data, so the
TOML specs in ``histograms/`` are validated (:func:`validate_check_params`) with
"did you mean …" suggestions before anything runs.
"""

from __future__ import annotations

# Importing the check modules registers their checks.
from dqm.checks import (  # noqa: F401
    basic,
    beam,
    channels,
    gain,
    learned,
    physics,
    profile,
    sequential,
    shape,
    trend,
)
from dqm.checks._core import (
    ROLLUP,
    CheckContext,
    CheckResult,
    Quality,
    judged_worst,
    quality_name,
    rollup,
    worst,
)
from dqm.checks._registry import (
    CHECKS,
    REQUIRED,
    CheckDefinition,
    ParamSpec,
    register_check,
    run_check,
    validate_check_params,
)
from dqm.checks.compare import compare

__all__ = [
    "Quality",
    "quality_name",
    "ROLLUP",
    "CheckResult",
    "CheckContext",
    "CheckDefinition",
    "ParamSpec",
    "REQUIRED",
    "CHECKS",
    "register_check",
    "run_check",
    "validate_check_params",
    "worst",
    "rollup",
    "judged_worst",
    "compare",
]
