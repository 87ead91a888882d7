"""Detection study: evidence that the flags can be trusted, on simulated spills.

Layer: pure core (simulator → fill → summary → :func:`dqm.core.evaluate.evaluate_spill`),
no Redis and no database, so the same study runs in the unit tests and behind
``dqm validate``. It judges spills exactly as the worker does: same specs, same
history window (:func:`dqm.core.evaluate.history_series`), a reference made of a clean
run's spills summed — as ``dqm reference set`` makes one.

What it measures:

* false alarms — the fraction of clean spills flagged BAD for any reason;
* per anomaly (the simulator's, injected at a spill in the middle of the clean run):
  after how many anomalous spills the expected subsystem is BAD, and whether the
  BAD flag's explanation names the channel or quantity that was changed;
* a slow drift (MS2 momentum scale +0.1 % per spill): the spill at which the change
  detection (CUSUM/EWMA) first says BAD, and the scale shift reached by then.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import boost_histogram as bh

from dqm.checks import Quality
from dqm.core.evaluate import (
    HISTORY_SPILLS,
    Judgement,
    Verdict,
    accumulated,
    evaluate_spill,
    history_series,
    record_quality,
)
from dqm.core.fill import Filler
from dqm.core.histio import add_into
from dqm.core.specs import SpecSet
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import Anomaly, parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill

__all__ = [
    "Scenario",
    "SCENARIOS",
    "DRIFT",
    "CHANGE_DETECTION",
    "StudyConfig",
    "Detection",
    "DriftResult",
    "StudyResult",
    "run_study",
    "format_report",
]


@dataclass(frozen=True)
class Scenario:
    """An injected anomaly, the subsystem that must go BAD and words its explanation must hold."""

    label: str
    anomaly: str
    subsystem: str
    names: tuple[str, ...]


#: The anomalies of the issue, with the channel/quantity each one changes.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "dead ECAL cell", "dead_cell:detector=ecal,cell=1/2/2", "calorimeter", ("ECAL cell (2,2)",)
    ),
    Scenario(
        "hot ECAL cell", "hot_cell:detector=ecal,cell=1/4/1", "calorimeter", ("ECAL cell (4,1)",)
    ),
    Scenario(
        "HCAL module gain −20 %",
        "hcal_gain_drop:module=1,factor=0.8",
        "calorimeter",
        ("HCAL module 1",),
    ),
    Scenario("beam shift 3 mm", "beam_shift:dx_mm=3", "beam", ("beam x",)),
    Scenario("beam width +30 %", "beam_width:factor=1.3", "beam", ("beam σ_x", "beam σ_y")),
    Scenario("intensity −50 %", "intensity_drop:factor=0.5", "beam", ("n_events",)),
    Scenario("BMS momentum scale +2 %", "bms_scale:factor=1.02", "momentum", ("p_bms",)),
    Scenario("MS2 momentum scale −2 %", "ms2_scale:factor=0.98", "momentum", ("p_ms2", "Δp")),
    Scenario("π/K fraction ×5", "pik_boost:factor=5", "pik", ("π/K",)),
    Scenario(
        "missing DAQ source (MS2, half the spill)",
        "missing_source:source=MS2,fraction=0.5",
        "daq",
        ("MS2",),
    ),
)
#: The slow drift the change detection must catch before the scale is 2 % off.
DRIFT = Scenario(
    "MS2 momentum scale drift +0.1 %/spill",
    "momentum_drift:per_spill=0.001",
    "momentum",
    ("dp_mean",),
)
CHANGE_DETECTION = frozenset({"cusum", "ewma"})


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of the study; every anomaly starts inside the clean run, after the trend baseline."""

    events_per_spill: int = 20_000
    clean_spills: int = 200
    reference_spills: int = 20
    first_anomaly_spill: int = 30
    watch_spills: int = 3
    drift_max_percent: float = 2.0
    seed: int = 42
    run: int = 500

    def sim(self, run: int) -> SimConfig:
        return SimConfig(
            run=run,
            events_per_spill=self.events_per_spill,
            batch_size=self.events_per_spill,
            seed=self.seed,
        )


@dataclass
class Detection:
    scenario: Scenario
    start_spill: int
    spills_to_bad: int | None
    names_it: bool
    check: str = ""
    explanation: str = ""
    also_bad: list[str] = field(default_factory=list)


@dataclass
class DriftResult:
    start_spill: int
    per_spill: float
    spills_to_bad: int | None
    check: str = ""
    explanation: str = ""
    first_bad_any: tuple[int, str] | None = None

    @property
    def percent_at_detection(self) -> float | None:
        # at spill start+k the scale is off by per_spill·k (k = 0 on the first drifting spill)
        return (
            None if self.spills_to_bad is None else 100 * self.per_spill * (self.spills_to_bad - 1)
        )


@dataclass
class StudyResult:
    config: StudyConfig
    specs_version: str
    clean_bad: list[tuple[int, list[str]]]
    detections: list[Detection]
    drift: DriftResult | None
    seconds: float

    @property
    def false_alarm_rate(self) -> float:
        return len(self.clean_bad) / self.config.clean_spills

    def failures(self, max_false_alarm: float = 0.01, max_delay: int = 2) -> list[str]:
        """What falls short of the issue's requirements (empty: all met)."""
        out = []
        if self.false_alarm_rate > max_false_alarm:
            out.append(
                f"false-alarm rate {100 * self.false_alarm_rate:.1f} % > {100 * max_false_alarm:g} "
                "%"
            )
        for d in self.detections:
            if d.spills_to_bad is None or d.spills_to_bad > max_delay:
                out.append(
                    f"{d.scenario.label}: {d.scenario.subsystem} not BAD within {max_delay} spills"
                )
            elif not d.names_it:
                out.append(
                    f"{d.scenario.label}: explanation does not name {' or '.join(d.scenario.names)}"
                )
        pct = self.drift.percent_at_detection if self.drift else None
        if self.drift and (pct is None or pct >= self.config.drift_max_percent):
            out.append(
                f"drift not caught by change detection before {self.config.drift_max_percent:g} %"
            )
        return out


class _Judge:
    """Simulate, fill, summarise and judge spills as the worker would."""

    def __init__(self, specs: SpecSet, config: StudyConfig) -> None:
        self.specs, self.config = specs, config
        self.filler = Filler(specs)
        self.reference: dict[str, bh.Histogram] = {}
        #: the reference run's spill summaries (change detection anchors on them, as live)
        self.reference_summaries: list[Mapping] = []
        #: histograms whose checks add up spills, and how many earlier spills they need
        self.accumulate, self.n_recent = accumulated(specs)

    def kept(self, hists: Mapping[str, bh.Histogram]) -> dict[str, bh.Histogram]:
        """What a later spill's judge needs of this spill's histograms."""
        return {name: hists[name] for name in self.accumulate if name in hists}

    def spill(
        self, run: int, spill: int, anomalies: tuple[Anomaly, ...] = ()
    ) -> tuple[dict[str, bh.Histogram], dict]:
        data = simulate_spill(self.config.sim(run), spill, anomalies)
        assert data is not None, "the study injects no 'stale' anomaly"
        view = BatchView(data.columns)
        hists, moments = self.filler.book(), {}
        self.filler.fill(hists, view)
        accumulate(moments, view)
        return hists, finalize(moments)

    def judge(
        self,
        hists: Mapping[str, bh.Histogram],
        summary: dict,
        past: list[Mapping],
        recent: list[Mapping[str, bh.Histogram]] | None = None,
    ) -> Verdict:
        """Judge a spill whose run's earlier spills are ``past`` (spill s at index s).

        ``recent`` is :meth:`kept` of the same earlier spills (cell checks add them up).
        As the store does, the verdict's roll-up is recorded in ``summary`` so that later
        spills' change detection knows which spills were certified.
        """
        recent = past[-HISTORY_SPILLS:]
        verdict = evaluate_spill(
            self.specs,
            hists,
            summary,
            history=history_series(recent, spills=range(len(past) - len(recent), len(past))),
            reference=self.reference,
            run_start=history_series(
                past[:HISTORY_SPILLS], spills=range(len(past[:HISTORY_SPILLS]))
            ),
            reference_history=history_series(
                self.reference_summaries, spills=range(len(self.reference_summaries))
            ),
            recent=(recent or [])[len(recent or []) - self.n_recent :] if self.n_recent else (),
        )
        summary.update(record_quality(summary, verdict))
        return verdict


def _bad(verdict: Verdict, subsystem: str | None = None) -> list[Judgement]:
    return [
        j
        for j in verdict.judgements
        if j.result.quality == Quality.BAD and (subsystem is None or j.subsystem == subsystem)
    ]


def _name(j: Judgement) -> str:
    return f"{j.histogram}/{j.check}" if j.histogram else j.check


def _from(scenario: Scenario, start: int) -> Anomaly:
    """The scenario's anomaly, active from spill ``start`` on."""
    return dataclasses.replace(parse_anomaly(scenario.anomaly), first_spill=start, last_spill=None)


def _detect(
    judge: _Judge, scenario: Scenario, start: int, clean: tuple[list[dict], list[dict]]
) -> Detection:
    cfg = judge.config
    anomaly = _from(scenario, start)
    past, cells = list(clean[0][:start]), list(clean[1][:start])
    for k in range(1, cfg.watch_spills + 1):
        hists, summary = judge.spill(cfg.run, start + k - 1, (anomaly,))
        verdict = judge.judge(hists, summary, past, cells)
        past.append(summary)
        cells.append(judge.kept(hists))
        bad = _bad(verdict, scenario.subsystem)
        if bad:
            naming = [j for j in bad if any(n in j.result.explanation for n in scenario.names)]
            shown = (naming or bad)[0]
            also = sorted({j.subsystem for j in _bad(verdict)} - {scenario.subsystem})
            return Detection(
                scenario, start, k, bool(naming), _name(shown), shown.result.explanation, also
            )
    return Detection(scenario, start, None, False)


def _drift(judge: _Judge, start: int, clean: tuple[list[dict], list[dict]]) -> DriftResult:
    cfg = judge.config
    anomaly = _from(DRIFT, start)
    per_spill = float(anomaly.params["per_spill"])
    result = DriftResult(start, per_spill, None)
    past, cells = list(clean[0][:start]), list(clean[1][:start])
    k = 0
    while 100 * per_spill * k < cfg.drift_max_percent + 1e-9:
        hists, summary = judge.spill(cfg.run, start + k, (anomaly,))
        verdict = judge.judge(hists, summary, past, cells)
        past.append(summary)
        cells.append(judge.kept(hists))
        k += 1
        bad = _bad(verdict, DRIFT.subsystem)
        if bad and result.first_bad_any is None:
            result.first_bad_any = (k, _name(bad[0]))
        trend = [j for j in bad if j.check in CHANGE_DETECTION]
        if trend:
            result.spills_to_bad, result.check, result.explanation = (
                k,
                _name(trend[0]),
                trend[0].result.explanation,
            )
            break
    return result


def run_study(
    specs: SpecSet,
    config: StudyConfig | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    drift: bool = True,
) -> StudyResult:
    """Run the study (every scenario and the drift by default); ``progress`` gets a line a stage."""
    config = config or StudyConfig()
    say = progress or (lambda _line: None)
    t0 = time.perf_counter()
    judge = _Judge(specs, config)
    say(f"reference: {config.reference_spills} clean spills of run {config.run + 1}")
    for s in range(config.reference_spills):
        ref_hists, ref_summary = judge.spill(config.run + 1, s)
        add_into(judge.reference, ref_hists)
        judge.reference_summaries.append(ref_summary)
    say(f"clean run {config.run}: {config.clean_spills} spills of {config.events_per_spill} events")
    summaries: list[dict] = []
    cells: list[dict] = []
    clean_bad: list[tuple[int, list[str]]] = []
    for s in range(config.clean_spills):
        hists, summary = judge.spill(config.run, s)
        verdict = judge.judge(hists, summary, summaries, cells)
        summaries.append(summary)
        cells.append(judge.kept(hists))
        if verdict.overall == Quality.BAD:
            clean_bad.append((s, [_name(j) for j in _bad(verdict)]))
    room = max(1, config.clean_spills - config.first_anomaly_spill - config.watch_spills)
    spacing = max(1, room // max(1, len(scenarios)))
    detections = []
    for i, scenario in enumerate(scenarios):
        start = config.first_anomaly_spill + (i * spacing) % room
        say(f"anomaly {scenario.label} from spill {start}")
        detections.append(_detect(judge, scenario, start, (summaries, cells)))
    drift_result = None
    if drift:
        say(f"drift {DRIFT.label} from spill {config.first_anomaly_spill}")
        drift_result = _drift(judge, config.first_anomaly_spill, (summaries, cells))
    return StudyResult(
        config, specs.version, clean_bad, detections, drift_result, time.perf_counter() - t0
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_report(result: StudyResult) -> str:
    """The study as Markdown: the table for the README and the terminal alike."""
    c = result.config
    lines = [
        f"Detection study (specs {result.specs_version}): {c.events_per_spill} events/spill, seed "
        f"{c.seed}, "
        f"reference = {c.reference_spills} clean spills, {result.seconds:.0f} s",
        "",
        f"False alarms: {len(result.clean_bad)} of {c.clean_spills} clean spills BAD "
        f"({100 * result.false_alarm_rate:.2f} %)"
        + (
            ": " + "; ".join(f"spill {s}: {', '.join(n)}" for s, n in result.clean_bad[:5])
            if result.clean_bad
            else ""
        ),
        "",
        "| anomaly (injected) | subsystem | BAD on anomalous spill # | explanation names it | "
        "flagged by | explanation |",
        "|---|---|---|---|---|---|",
    ]
    for d in result.detections:
        when = f"not within {c.watch_spills}" if d.spills_to_bad is None else str(d.spills_to_bad)
        lines.append(
            f"| {d.scenario.label} (`{d.scenario.anomaly}`) | {d.scenario.subsystem} | {when} | "
            f"{'yes' if d.names_it else 'no'} | {d.check} | {_cell(d.explanation)} |"
        )
    dr = result.drift
    if dr is None:
        return "\n".join(lines)
    if dr.spills_to_bad is None:
        drift_line = (
            f"Drift ({DRIFT.label}, from spill {dr.start_spill}): NOT caught by change "
            f"detection before {c.drift_max_percent:g} %"
        )
    else:
        drift_line = (
            f"Drift ({DRIFT.label}, from spill {dr.start_spill}): change detection BAD on drifting "
            "spill "
            f"#{dr.spills_to_bad}, at a scale shift of {dr.percent_at_detection:.1f} % "
            f"({dr.check}: {dr.explanation})"
        )
    if dr.first_bad_any is not None:
        spill, check = dr.first_bad_any
        drift_line += f"; first BAD of any momentum check: spill #{spill} ({check})"
    lines += ["", drift_line]
    return "\n".join(lines)
