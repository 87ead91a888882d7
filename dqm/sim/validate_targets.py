"""The issue's targets over the whole matrix, and every figure as JSON.

Targets (issue 11, criterion 8): no crash anywhere; ≤ 0.5 % of clean spills BAD; one
incident naming its cause per single-cause anomaly; the π/K delay within 1.5× of the best
sequential test at the same false-alarm rate, and the flag up while the excess persists;
plus, per measure, the share of rows that passed. Rows not yet run are listed apart and
never counted as passed; a target that no row run applies to (e.g. "one incident" when only
clean rows were run) is N/A, stated as such, never a vacuous PASS or FAIL.

Layer: pure (reads a :class:`~dqm.sim.validate.MatrixResult`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import os
import platform
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dqm.sim.results import ChangeResult, CleanResult, DelayResult, GlitchResult, RowResult, Status
from dqm.sim.scenarios import Measure
from dqm.sim.validate import MatrixResult

__all__ = ["Target", "targets", "to_json", "machine", "NOT_APPLICABLE"]


#: The status of a target no row run applies to (e.g. no anomaly among ``--only "clean"``):
#: shown as such, counted neither as met nor as failed.
NOT_APPLICABLE = "N/A (no row run applies)"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    status: str  # PASS | FAIL | provisional PASS/FAIL | N/A (NOT_APPLICABLE) | not yet run


def _one_incident(r: RowResult) -> bool | None:
    """Did the detected single-cause anomaly give one incident? None: not applicable."""
    d = r.detail
    if not r.scenario.single_cause:
        return None
    if isinstance(d, ChangeResult):
        return None if d.delay is None else d.one_incident
    if isinstance(d, GlitchResult):
        return d.one_incident if d.flagged_by else None
    if isinstance(d, DelayResult):
        return d.one_incident == len(d.detected) if d.detected else None
    return None


def targets(result: MatrixResult) -> list[Target]:
    """The issue's targets over the whole matrix, each with what was measured."""
    rows = result.rows
    ran = [r for r in rows if r.status != Status.NOT_RUN]
    errors = [r for r in ran if r.status == Status.ERROR]
    study = result.study
    check_errors = study.check_errors if study is not None else Counter()
    judged = study.spills_judged if study is not None else 0
    crashed = "; ".join(f"{r.scenario.label} ({r.reasons[0]})" for r in errors[:4])
    failed = ", ".join(f"{name} ×{n}" for name, n in check_errors.most_common(4))
    out = [
        Target(
            "no crash anywhere",
            f"{len(errors)} of {len(ran)} rows raised"
            + (f": {crashed}" if errors else "")
            + f"; {sum(check_errors.values())} check errors in {judged} judged spills"
            + (f": {failed}" if check_errors else ""),
            "FAIL" if errors or check_errors else "PASS",
        )
    ]
    clean = [r for r in result.by_measure(Measure.CLEAN) if isinstance(r.detail, CleanResult)]
    bad = sum(len(r.detail.bad_spills) for r in clean)
    spills = sum(r.detail.spills for r in clean)
    worst = max((r.detail.bad_fraction - r.scenario.max_bad for r in clean), default=0.0)
    out.append(
        Target(
            "≤ 0.5 % of clean spills BAD",
            f"{bad} of {spills} clean spills BAD ({100 * bad / spills:.2f} %)"
            if spills
            else "no clean row was run",
            ("FAIL" if worst > 0 else "PASS") if clean else NOT_APPLICABLE,
        )
    )
    judged = [(r, ok) for r in ran if (ok := _one_incident(r)) is not None]
    ones = sum(ok for _, ok in judged)
    provisional = any(r.provisional for r, _ in judged)
    if judged:
        status = "PASS" if ones == len(judged) else "FAIL"
        status = f"provisional {status}" if provisional else status
        measured = f"{ones} of {len(judged)} detected single-cause anomalies" + (
            " (provisional: incidents counted as subsystems BAD; no cause grouping yet)"
            if provisional
            else ""
        )
    else:  # nothing to count: a target with no case is not met, nor failed
        status = NOT_APPLICABLE
        measured = "no single-cause anomaly was run and detected (only clean rows, or none)"
    out.append(Target("one incident naming its cause per single-cause anomaly", measured, status))
    delays = [r for r in result.by_measure(Measure.DELAY) if isinstance(r.detail, DelayResult)]
    with_bound = [r for r in delays if r.detail.ratio is not None and r.scenario.bound]
    if with_bound:
        ok = all(
            r.detail.ratio <= r.scenario.bound.max_ratio and not r.detail.undetected
            for r in with_bound
        )
        text = ", ".join(f"{r.scenario.label}: {r.detail.ratio:.2f}×" for r in with_bound)
        out.append(
            Target("π/K delay ≤ 1.5× the best sequential test", text, "PASS" if ok else "FAIL")
        )
        ups = ", ".join(f"{r.scenario.label}: {_pct(r.detail.mean_up)}" for r in delays)
        ok = all(
            r.detail.mean_up is not None and r.detail.mean_up >= r.scenario.min_up for r in delays
        )
        out.append(
            Target("π/K flag stays up while the excess persists", ups, "PASS" if ok else "FAIL")
        )
    for measure, name in (
        # a detect row passes when BAD within its max_delay, named, and one incident: the
        # target says all three (the one FAIL of the 19:53 run was two incidents, not a delay)
        (Measure.DETECT, "each change BAD on its first spill, named, one incident"),
        (Measure.GLITCH, "one-spill glitches flagged, no trail of flags"),
        (Measure.PERSIST, "persistent steps stay flagged"),
        (Measure.RAMP, "slow ramps caught before their limit, stay flagged"),
    ):
        rs = [r for r in result.by_measure(measure) if r.status != Status.NOT_RUN]
        if rs:
            passed = sum(r.status == Status.PASS for r in rs)
            failed_rows = "; ".join(
                f"{r.scenario.label}: {r.reasons[0] if r.reasons else r.status.value}"
                for r in rs
                if r.status != Status.PASS
            )
            out.append(
                Target(
                    name,
                    f"{passed} of {len(rs)} rows"
                    + (f" (not: {failed_rows})" if failed_rows else ""),
                    "PASS" if passed == len(rs) else "FAIL",
                )
            )
    waiting = Counter(reason for r in rows if r.status == Status.NOT_RUN for reason in r.reasons)
    if waiting:
        text = "; ".join(f"{n} rows {why}" for why, n in waiting.items())
        out.append(Target("rows not yet run (never counted as passed)", text, "not yet run"))
    return out


def machine() -> str:
    """One line: host, CPU, cores, Python and numpy versions, BLAS threads if pinned."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}" + (f", OPENBLAS_NUM_THREADS={blas}" if blas else "")
    )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, int) else value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None  # JSON has no NaN/inf
    if isinstance(value, np.integer):
        return int(value)
    return value


_DERIVED: dict[type, Callable[[Any], dict[str, Any]]] = {
    CleanResult: lambda d: {"bad_fraction": d.bad_fraction},
    ChangeResult: lambda d: {"bad_up": d.bad_up, "flag_up": d.flag_up},
    DelayResult: lambda d: {
        "mean": d.mean,
        "median": d.quantile(0.5),
        "p90": d.quantile(0.9),
        "undetected": d.undetected,
        "mean_up": d.mean_up,
        "ratio": d.ratio,
        "bound_delay": d.bound.delay if d.bound else None,
        "bound_worst_case_delay": d.bound.worst_case_delay if d.bound else None,
    },
}


def to_json(result: MatrixResult, command: str = "dqm validate") -> dict[str, Any]:
    """Everything measured, for machines: config, targets, and each row with its figures."""
    rows = []
    for r in result.rows:
        derive = _DERIVED.get(type(r.detail))
        rows.append(
            {
                "scenario": _jsonable(r.scenario),
                "status": r.status.value,
                "reasons": r.reasons,
                "provisional": r.provisional,
                "seconds": r.seconds,
                "error": r.error,
                "detail": _jsonable(r.detail),
                "figures": derive(r.detail) if derive else {},
            }
        )
    return {
        "command": command,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "specs_version": result.specs_version,
        "seconds": result.seconds,
        "config": _jsonable(result.config),
        "targets": [_jsonable(t) for t in targets(result)],
        "rows": rows,
    }
