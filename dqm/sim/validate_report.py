"""The validation matrix as a person reads it: Markdown tables, targets, and JSON.

One table per measure (their columns differ), then the issue's targets with PASS/FAIL, and
a header with what a reader needs to reproduce the figures: the date, the command, the
machine and the time the run took. The Markdown goes to the terminal and, between two
marker lines, into ``docs/validation.md`` (:func:`replace_block`), so the prose around it
stays hand-written while the numbers stay the command's.

Layer: pure formatting of a :class:`~dqm.sim.validate.MatrixResult`; no simulation.
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

from dqm.sim.measures import ChangeResult, CleanResult, DelayResult, GlitchResult
from dqm.sim.scenarios import Measure
from dqm.sim.validate import MatrixResult, RowResult, Status

__all__ = ["Target", "targets", "format_markdown", "to_json", "machine", "replace_block"]

BEGIN = "<!-- dqm validate: begin (generated; edit the prose outside these markers) -->"
END = "<!-- dqm validate: end -->"


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    status: str  # PASS | FAIL | provisional PASS/FAIL | not yet run


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict(r: RowResult) -> str:
    if r.status == Status.PASS:
        return "PASS"
    if r.status == Status.NOT_RUN:
        return f"not yet run ({'; '.join(r.reasons)})"
    head = "ERROR" if r.status == Status.ERROR else "FAIL"
    return f"**{head}**: " + "; ".join(r.reasons)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
        "",
    ]


def _clean_rows(result: MatrixResult) -> list[list[Any]]:
    out = []
    for r in result.by_measure(Measure.CLEAN):
        s, d = r.scenario, r.detail
        base = [s.beam.label, s.reference_beam.label]
        if not isinstance(d, CleanResult):
            out.append([*base, "–", "–", "–", "–", _verdict(r)])
            continue
        top = ", ".join(f"{n} ×{c}" for n, c in d.bad_by_check.most_common(3)) or "–"
        out.append(
            [
                *base,
                d.spills,
                f"{len(d.bad_spills)} ({100 * d.bad_fraction:.2f} %)",
                d.warning_spills,
                top,
                _verdict(r),
            ]
        )
    return out


def _change_rows(result: MatrixResult, measure: Measure) -> list[list[Any]]:
    out = []
    for r in result.by_measure(measure):
        s, d = r.scenario, r.detail
        what = f"{s.label} (`{s.anomaly}`)" if s.anomaly else s.label
        if not isinstance(d, ChangeResult):
            out.append([what, s.subsystem, *["–"] * 4, _verdict(r)])
            continue
        when = f"not within {d.watched}" if d.delay is None else str(d.delay)
        if measure == Measure.RAMP and d.change_at_detection is not None and s.ramp:
            when += f" ({d.change_at_detection:g} {s.ramp.unit}; limit {s.limit:g})"
        if measure in (Measure.PERSIST, Measure.RAMP):
            extra = f"{_pct(d.bad_up)} BAD, {_pct(d.flag_up)} ≥ WARNING of {len(d.after)}"
        else:
            extra = f"{len(d.incidents)}" + ("*" if r.provisional else "")
        explanation = f"{d.flagged_by}: {d.explanation}" if d.flagged_by else "–"
        named = "yes" if d.named else "no"
        out.append([what, s.subsystem, when, named, extra, explanation, _verdict(r)])
    return out


def _delay_rows(result: MatrixResult) -> tuple[list[list[Any]], list[str]]:
    rows, notes = [], []
    for r in result.by_measure(Measure.DELAY):
        s, d = r.scenario, r.detail
        if not isinstance(d, DelayResult):
            rows.append([f"{s.label} ({s.beam.label})", *["–"] * 6, _verdict(r)])
            continue
        b = d.bound
        mean = _num(d.mean) + (" (≥)" if d.undetected else "")
        q50, q90 = _num(d.quantile(0.5), 0), _num(d.quantile(0.9), 0)
        quantiles = f"{q50} / {q90} / {max(d.detected, default=0)}"
        rows.append(
            [
                f"{s.label} ({s.beam.label})",
                f"{d.trials} ({d.undetected} not within {d.horizon})",
                mean,
                quantiles,
                _num(b.delay) if b else "–",
                (_num(d.ratio) + "×") if d.ratio is not None else "–",
                _pct(d.mean_up),
                _verdict(r),
            ]
        )
        if b:
            notes.append(
                f"- {s.label}: λ0 = {b.lambda0:.2f} → λ1 = {b.lambda1:.2f} tagged per spill "
                f"(measured on clean spills: {_num(b.tagged_mean)}); false-alarm rate "
                f"α = {b.rate:.2e} per spill ({b.rate_source}; exact rate of the rule "
                f"{b.model_rate:.2e}); Page CUSUM k = {b.bound.upper.k:.2f}, "
                f"h = {b.bound.lower.h:.2f}/{b.bound.upper.h:.2f} counts (randomised, "
                f"ARL0 = {b.bound.achieved_arl0:.0f} spills); delay "
                f"{b.delay:.2f} spills (from S = 0, Lorden's worst case: {b.worst_case_delay:.2f})"
            )
    return rows, notes


def _glitch_rows(result: MatrixResult) -> list[list[Any]]:
    out = []
    for r in result.by_measure(Measure.GLITCH):
        s, d = r.scenario, r.detail
        what = f"{s.label} (`{s.anomaly}`)"
        if not isinstance(d, GlitchResult):
            out.append([what, *["–"] * 4, _verdict(r)])
            continue
        flagged = f"{d.flagged_by}: {d.explanation}" if d.flagged_by else "not BAD"
        trail = "; ".join(f"+{k}: {', '.join(n)}" for k, n in d.trailing[:3]) or "none"
        incidents = f"{len(d.incidents)}" + ("*" if r.provisional else "")
        out.append(
            [what, flagged, incidents, f"{len(d.trailing)} of {d.followed}", trail, _verdict(r)]
        )
    return out


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
    out = [
        Target(
            "no crash anywhere",
            f"{len(errors)} of {len(ran)} rows raised"
            + (
                ": " + "; ".join(f"{r.scenario.label} ({r.reasons[0]})" for r in errors[:4])
                if errors
                else ""
            ),
            "FAIL" if errors else "PASS",
        )
    ]
    clean = [r for r in result.by_measure(Measure.CLEAN) if isinstance(r.detail, CleanResult)]
    bad = sum(len(r.detail.bad_spills) for r in clean)
    spills = sum(r.detail.spills for r in clean)
    worst = max((r.detail.bad_fraction - r.scenario.max_bad for r in clean), default=0.0)
    out.append(
        Target(
            "≤ 0.5 % of clean spills BAD",
            f"{bad} of {spills} clean spills BAD ({100 * bad / spills:.2f} %)" if spills else "–",
            ("FAIL" if worst > 0 else "PASS") if clean else "not yet run",
        )
    )
    judged = [(r, ok) for r in ran if (ok := _one_incident(r)) is not None]
    ones = sum(ok for _, ok in judged)
    provisional = any(r.provisional for r, _ in judged)
    status = "PASS" if judged and ones == len(judged) else "FAIL"
    out.append(
        Target(
            "one incident naming its cause per single-cause anomaly",
            f"{ones} of {len(judged)} detected single-cause anomalies"
            + (
                " (provisional: incidents counted as subsystems BAD; no cause grouping yet)"
                if provisional
                else ""
            ),
            f"provisional {status}" if provisional else status,
        )
    )
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
        (Measure.DETECT, "each change BAD on its first spill and named"),
        (Measure.GLITCH, "one-spill glitches flagged, no trail of flags"),
        (Measure.PERSIST, "persistent steps stay flagged"),
        (Measure.RAMP, "slow ramps caught before their limit, stay flagged"),
    ):
        rs = [r for r in result.by_measure(measure) if r.status != Status.NOT_RUN]
        if rs:
            passed = sum(r.status == Status.PASS for r in rs)
            out.append(
                Target(name, f"{passed} of {len(rs)} rows", "PASS" if passed == len(rs) else "FAIL")
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


def format_markdown(result: MatrixResult, command: str = "dqm validate") -> str:
    """The whole matrix as Markdown: run header, targets, one table per measure."""
    c = result.config
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {when} · `{command}` · specs {result.specs_version} · {machine()}",
        "",
        f"{c.events_per_spill} events per spill; reference = {c.reference_spills} clean spills; "
        f"clean beam wander {c.wander.describe()}; history {c.history_spills} spills; "
        f"{c.seeds} seeds per delay distribution. Whole run: {result.seconds:.0f} s.",
        "",
        "### Targets",
        "",
        *_table(
            ["target", "measured", "result"],
            [[t.name, t.measured, t.status] for t in targets(result)],
        ),
        "### Clean samples (false alarms)",
        "",
        *_table(
            [
                "run",
                "reference",
                "spills",
                "BAD spills",
                "WARNING-only",
                "checks behind BAD",
                "result",
            ],
            _clean_rows(result),
        ),
    ]
    change_head = [
        "anomaly (injected)",
        "subsystem",
        "BAD on anomalous spill #",
        "named",
        "incidents",
        "flagged by",
        "result",
    ]
    sections: list[tuple[str, Measure, list[str]]] = [
        ("Single changes: detection, naming, incidents", Measure.DETECT, change_head),
        (
            "Persistent steps: does the flag stay up?",
            Measure.PERSIST,
            [*change_head[:4], "after the first BAD", "flagged by", "result"],
        ),
        (
            "Slow ramps",
            Measure.RAMP,
            [*change_head[:4], "after the first BAD", "flagged by", "result"],
        ),
    ]
    for title, measure, head in sections:
        rows = _change_rows(result, measure)
        if rows:
            lines += [f"### {title}", "", *_table(head, rows)]
    if any(r.provisional for r in result.rows):
        lines += [
            "\\* provisional: incidents counted as subsystems with a BAD roll-up "
            "(no cause grouping yet).",
            "",
        ]
    delay_rows, notes = _delay_rows(result)
    if delay_rows:
        lines += [
            "### π/K excess: detection delay over many seeds vs the best sequential test",
            "",
            *_table(
                [
                    "change",
                    "trials",
                    "mean delay [spills]",
                    "median / 90 % / max",
                    "best test",
                    "ratio",
                    "BAD while it persists",
                    "result",
                ],
                delay_rows,
            ),
            *notes,
            "",
        ]
    glitch = _glitch_rows(result)
    if glitch:
        lines += [
            "### One-spill glitches (trailing = flags the clean run lacks on the same spills)",
            "",
            *_table(
                [
                    "glitch",
                    "flagged on the glitch spill",
                    "incidents",
                    "spills with trailing flags",
                    "first trailing flags",
                    "result",
                ],
                glitch,
            ),
        ]
    return "\n".join(lines).rstrip() + "\n"


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


def replace_block(document: str, block: str) -> str:
    """``document`` with the text between the markers replaced by ``block`` (appended if none)."""
    generated = f"{BEGIN}\n\n{block.rstrip()}\n\n{END}"
    if BEGIN in document and END in document:
        head, _, rest = document.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + generated + tail
    return document.rstrip() + "\n\n" + generated + "\n"
