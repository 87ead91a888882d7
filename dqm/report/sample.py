"""Put simulated spills into a store without Redis: for the report's tests and benchmark.

Layer: I/O shell over the SQL store (writes). Two ways, for two needs:

* :func:`store_simulated_spill` — the worker's own store path (``commit_group`` then
  ``try_close``) and its close hooks (the real checks → flags), one spill at a time.
  Faithful, ~50 ms a spill: what the report tests use.
* :func:`store_simulated_day` — a day of ≈2000 spills for the render benchmark. A few
  dozen distinct spills are simulated, filled and judged for real; the day's rows are
  then bulk-inserted, each spill reusing one of those histogram blobs and verdicts
  with its own run/spill number and closing time. The report cannot tell the
  difference (it reads rows and blobs), and filling 40 M events is not what is timed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from dqm.core.conditions import RunConditions
from dqm.core.evaluate import evaluate_spill
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.histio import add_into, encode_histograms
from dqm.core.specs import SpecSet
from dqm.core.status import SPILL_COMPLETE, SPILL_INCOMPLETE
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, SpillData, simulate_spill
from dqm.store import Session
from dqm.store.bulk import JudgedSpill, insert_judged_spills
from dqm.store.engine import sessionmaker
from dqm.store.flags import stored_instruction
from dqm.store.references import set_reference
from dqm.store.runs import set_beam_config
from dqm.store.spills import ClosedSpill, Contribution, commit_group, try_close

__all__ = [
    "store_simulated_spill",
    "store_simulated_day",
    "judged_day",
    "DAY_ANOMALIES",
    "fill_spill",
]

#: anomalies injected into the benchmark day's distinct spills (spill numbers of the templates)
INCOMPLETE_TEMPLATES = (5, 17)
DAY_ANOMALIES = (
    "dead_cell@3:detector=ecal,cell=1/2/2",
    "hot_cell@7:detector=ecal,cell=1/4/1",
    "hcal_gain_drop@11:module=1,factor=0.8",
    "beam_shift@15:dx_mm=6",
    "bms_scale@19:factor=1.03",
)

CloseHook = Callable[[Session, ClosedSpill], dict | None]


def fill_spill(filler: Filler, data: SpillData) -> tuple[dict, dict[str, float], int]:
    """Histograms, summary accumulators and batch count of one spill, through the wire format."""
    hists = filler.book()
    moments: dict[str, float] = {}
    n = 0
    for payload in data.batches():
        view = BatchView(decode_batch(payload).columns)
        filler.fill(hists, view)
        accumulate(moments, view)
        n += 1
    return hists, moments, n


def store_simulated_spill(
    session: Session,
    filler: Filler,
    data: SpillData,
    hooks: Sequence[CloseHook] = (),
    *,
    stream: str = "sim",
    beam_config: str | None = None,
    lose_batches: int = 0,
) -> ClosedSpill:
    """Store one spill as a worker would (one commit group, then close + hooks); caller commits.

    ``lose_batches`` drops that many of the spill's last batches: the spill is then
    closed as *incomplete*, as the worker does after its timeout.
    """
    if lose_batches:
        keep = max(data.n_batches - lose_batches, 1) * data.batch_size
        expected = data.n_batches
        data = SpillData(
            data.run,
            data.spill,
            min(keep, data.n_events),
            {k: v[:keep] for k, v in data.columns.items()},
            batch_size=data.batch_size,
        )
    hists, moments, n_batches = fill_spill(filler, data)
    tag = f"{data.run}-{data.spill}"
    contribution = Contribution(
        run=data.run,
        spill=data.spill,
        hists=hists,
        moments=moments,
        n_events=data.n_events,
        batches=[(f"{tag}-{b}", b) for b in range(n_batches)],
        marker=(f"{tag}-eos", expected if lose_batches else n_batches, data.n_events),
    )
    announced = [(f"{tag}-conditions", data.conditions)] if data.conditions else []
    outcome = commit_group(session, stream, "sample", [contribution], conditions=announced)
    if beam_config is not None:
        set_beam_config(session, data.run, beam_config)
    closed = try_close(session, outcome.spill_ids.pop(), filler.book, incomplete=bool(lose_batches))
    if closed is None:
        raise RuntimeError(f"run {data.run} spill {data.spill} did not close")
    for hook in hooks:
        hook(session, closed)
    return closed


def judged_day(
    specs: SpecSet,
    start: datetime,
    *,
    n_spills: int = 2000,
    spills_per_run: int = 200,
    distinct: int = 24,
    events_per_spill: int = 4000,
    first_run: int = 5000,
    anomalies: Iterable[str] = DAY_ANOMALIES,
    seed: int = 5,
) -> tuple[list[JudgedSpill], RunConditions]:
    """``n_spills`` judged spills closing evenly over the 24 h from ``start``, and their
    conditions: ``distinct`` of them simulated, filled and judged for real, then repeated.

    The first run's distinct spills are the reference (the caller sets it), so the shape
    checks have something to compare to.
    """
    filler = Filler(specs)
    cfg = SimConfig(
        run=first_run,
        n_spills=distinct,
        events_per_spill=events_per_spill,
        batch_size=2000,
        seed=seed,
    )
    parsed = [parse_anomaly(a) for a in anomalies]
    templates = []
    reference: dict = {}
    for spill in range(1, distinct + 1):
        data = simulate_spill(cfg, spill, parsed)
        hists, moments, _ = fill_spill(filler, data)
        templates.append((data.anomalies, hists, finalize(moments)))
        if not data.anomalies:
            add_into(reference, hists)
    blobs = [encode_histograms(h) for _, h, _ in templates]
    # a couple of spills closed incomplete (a lost batch): BAD whatever checks the specs declare
    status = [
        SPILL_INCOMPLETE if k in INCOMPLETE_TEMPLATES else SPILL_COMPLETE for k in range(distinct)
    ]
    conditions = cfg.conditions()
    verdicts = [
        evaluate_spill(
            specs, h, s, reference=reference, status=st, batches=(2, 2), conditions=conditions
        )
        for (_, h, s), st in zip(templates, status, strict=False)
    ]
    step = timedelta(days=1) / n_spills
    spills = []
    for i in range(n_spills):
        _, _, summary = templates[i % distinct]
        verdict = verdicts[i % distinct]
        closed = start + (i + 0.5) * step
        spills.append(
            JudgedSpill(
                run=first_run + i // spills_per_run,
                spill=i % spills_per_run + 1,
                status=status[i % distinct],
                opened_at=closed - timedelta(seconds=5),
                closed_at=closed,
                batches=2,
                summary={
                    **summary,
                    "quality": {s: int(q) for s, q in verdict.subsystems.items()},
                },
                blob=blobs[i % distinct],
                quality=int(verdict.overall),
                config_version=f"{specs.version}+0",
                flags=[
                    {
                        "subsystem": j.subsystem,
                        "histogram": j.histogram,
                        "check": j.check,
                        "quality": int(j.result.quality),
                        "value": j.result.value,
                        "explanation": j.result.explanation,
                        "instruction": stored_instruction(j.result.quality, j.instruction),
                        "reference_run": first_run,
                    }
                    for j in verdict.judgements
                ],
            )
        )
    return spills, conditions


def store_simulated_day(
    sessions: sessionmaker[Session],
    specs: SpecSet,
    start: datetime,
    *,
    n_spills: int = 2000,
    first_run: int = 5000,
    **kw,
) -> int:
    """≈``n_spills`` spills closing evenly over the 24 h from ``start``; returns spills stored.

    The first run's distinct spills are the reference (set as an audited reference
    before the verdicts are computed), so the shape checks have something to compare to.
    """
    spills, conditions = judged_day(specs, start, n_spills=n_spills, first_run=first_run, **kw)
    with sessions.begin() as session:
        insert_judged_spills(session, spills, conditions=conditions)
        set_reference(session, first_run, "bench", comment="first run of the simulated day")
    return n_spills
