"""The validation matrix as a person reads it: Markdown tables, targets, and JSON.

The issue's targets with PASS/FAIL (:mod:`dqm.sim.validate_targets`), then one table per
measure (their columns differ), under a header with what a reader needs to reproduce the
figures: the date, the command, the machine and the time the run took. The Markdown goes to
the terminal and, between two marker lines, into ``docs/validation.md``
(:func:`replace_block`), so the prose around it stays hand-written while the numbers stay
the command's.

Layer: pure formatting of a :class:`~dqm.sim.validate.MatrixResult`; no simulation.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from dqm.sim.results import ChangeResult, CleanResult, DelayResult, GlitchResult
from dqm.sim.scenarios import Measure
from dqm.sim.validate import MatrixResult
from dqm.sim.validate_targets import RowResult, Status, machine, targets

__all__ = ["format_markdown", "replace_block", "BEGIN", "END"]

BEGIN = "<!-- dqm validate: begin (generated; edit the prose outside these markers) -->"
END = "<!-- dqm validate: end -->"


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
        base = [s.label, s.reference_beam.label]
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
            extra = f"flagged {_pct(d.flag_up)} (BAD {_pct(d.bad_up)}) of {len(d.after)}"
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
                f"{_pct(d.mean_up)} (BAD {_pct(d.mean_bad_up)})",
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
                    "flagged while it persists (BAD)",
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


def replace_block(document: str, block: str) -> str:
    """``document`` with the text between the markers replaced by ``block`` (appended if none)."""
    generated = f"{BEGIN}\n\n{block.rstrip()}\n\n{END}"
    if BEGIN in document and END in document:
        head, _, rest = document.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + generated + tail
    return document.rstrip() + "\n\n" + generated + "\n"
