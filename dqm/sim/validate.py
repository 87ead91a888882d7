"""The validation study: run the scenario matrix through the real judging path.

``dqm validate`` and the unit tests call :func:`run_matrix`: each row of
:data:`dqm.sim.matrix.MATRIX` (or any rows given) is measured by the function of its
:class:`~dqm.sim.scenarios.Measure` (:mod:`dqm.sim.measures`) on a shared
:class:`~dqm.sim.study.Study` (references and clean runs are made once). Clean samples run
first, since every change starts from their history. A row that raises is an ERROR row
carrying the error, and the study goes on; a row whose needs are not met is *not yet run*.

Layer: pure (no Redis, no database). Must not: print (progress goes to a callback).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dqm.core.specs import SpecSet
from dqm.sim.matrix import MATRIX
from dqm.sim.measures import MEASURES
from dqm.sim.results import RowResult, Status
from dqm.sim.scenarios import Scenario
from dqm.sim.study import QUICK, SpillJudge, Study, StudyConfig, missing_features

__all__ = [
    "StudyConfig",
    "QUICK",
    "SpillJudge",
    "Status",
    "RowResult",
    "MatrixResult",
    "missing_features",
    "run_matrix",
]

_Judge = SpillJudge  # the name the earlier study (and tests written against it) used


@dataclass
class MatrixResult:
    config: StudyConfig
    specs_version: str
    rows: list[RowResult]
    seconds: float
    study: Study = field(repr=False, default=None)  # type: ignore[assignment]

    def by_measure(self, measure: str) -> list[RowResult]:
        return [r for r in self.rows if r.scenario.measure == measure]


def run_matrix(
    specs: SpecSet,
    config: StudyConfig | None = None,
    rows: Sequence[Scenario] = MATRIX,
    progress: Callable[[str], None] | None = None,
) -> MatrixResult:
    """Run ``rows`` (the whole matrix by default); one row's failure never stops the others."""
    config = config or StudyConfig()
    study = Study(specs, config, progress)
    t0 = time.perf_counter()
    results = []
    ordered = sorted(rows, key=lambda r: r.measure != "clean")  # clean samples first
    stable = {id(r): i for i, r in enumerate(MATRIX)}  # a row starts where it would in the full run
    for position, row in enumerate(ordered):
        index = stable.get(id(row), len(MATRIX) + position)
        missing = missing_features(row)
        if missing:
            results.append(RowResult(row, Status.NOT_RUN, missing))
            continue
        study.say(f"[{position + 1}/{len(ordered)}] {row.measure}: {row.label}")
        t_row = time.perf_counter()
        try:
            result = MEASURES[row.measure](study, row, index)
        except Exception as error:  # noqa: BLE001 — a crash is a FAIL row, the study goes on
            trace = traceback.format_exc(limit=6)
            result = RowResult(row, Status.ERROR, [f"{type(error).__name__}: {error}"], error=trace)
        result.seconds = time.perf_counter() - t_row
        results.append(result)
    order = {id(row): i for i, row in enumerate(rows)}
    results.sort(key=lambda r: order[id(r.scenario)])
    return MatrixResult(config, specs.version, results, time.perf_counter() - t0, study)
