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
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from dqm.core.evaluate import evaluate_spill
from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.histio import FORMAT_VERSION, add_into, encode_histograms
from dqm.core.specs import SpecSet
from dqm.core.summary import accumulate, finalize
from dqm.core.variables import BatchView
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, SpillData, simulate_spill
from dqm.store.models import Flag, Run, Spill, SpillHistograms
from dqm.store.references import set_reference
from dqm.store.spills import SUMMARY_COLUMNS, ClosedSpill, Contribution, commit_group, try_close

__all__ = ["store_simulated_spill", "store_simulated_day", "DAY_ANOMALIES", "fill_spill"]

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
        session.get(Run, data.run).beam_config = beam_config
    closed = try_close(session, outcome.spill_ids.pop(), filler.book, incomplete=bool(lose_batches))
    if closed is None:
        raise RuntimeError(f"run {data.run} spill {data.spill} did not close")
    for hook in hooks:
        hook(session, closed)
    return closed


def _utc_naive(ts: datetime, dialect: str) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if dialect == "sqlite" else ts


def store_simulated_day(
    sessions: sessionmaker[Session],
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
) -> int:
    """≈``n_spills`` spills closing evenly over the 24 h from ``start``; returns spills stored.

    The first run's distinct spills are the reference (set as an audited reference
    before the verdicts are computed), so the shape checks have something to compare to.
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
    status = ["incomplete" if k in INCOMPLETE_TEMPLATES else "complete" for k in range(distinct)]
    conditions = cfg.conditions()
    verdicts = [
        evaluate_spill(
            specs, h, s, reference=reference, status=st, batches=(1, 2), conditions=conditions
        )
        for (_, h, s), st in zip(templates, status, strict=False)
    ]
    step = timedelta(days=1) / n_spills
    with sessions.begin() as session:
        dialect = session.get_bind().dialect.name
        runs = sorted({first_run + i // spills_per_run for i in range(n_spills)})
        session.execute(
            insert(Run),
            [
                {
                    "run": r,
                    "beam_config": conditions.beam_config,
                    "conditions": {**conditions.to_dict(), "run": r},
                    "started_at": start,
                    "comment": "simulated",
                }
                for r in runs
            ],
        )
        rows = []
        for i in range(n_spills):
            _, _, summary = templates[i % distinct]
            closed = start + (i + 0.5) * step
            row = {
                "run": first_run + i // spills_per_run,
                "spill": i % spills_per_run + 1,
                "status": status[i % distinct],
                "opened_at": _utc_naive(closed - timedelta(seconds=5), dialect),
                "updated_at": _utc_naive(closed, dialect),
                "closed_at": _utc_naive(closed, dialect),
                "expected_batches": 2,
                "received_batches": 2,
                "n_events": int(summary["n_events"]),
                "summary": {
                    **summary,
                    "quality": {s: int(q) for s, q in verdicts[i % distinct].subsystems.items()},
                },
                "quality": int(verdicts[i % distinct].overall),
                "config_version": f"{specs.version}+0",
            }
            row.update({c: summary.get(c) for c in SUMMARY_COLUMNS})
            rows.append(row)
        session.execute(insert(Spill), rows)
        ids = dict(
            ((r, s), i)
            for i, r, s in session.execute(
                select(Spill.id, Spill.run, Spill.spill).where(Spill.run.in_(runs))
            )
        )
        session.execute(
            insert(SpillHistograms),
            [
                {
                    "spill_id": ids[(r["run"], r["spill"])],
                    "format_version": FORMAT_VERSION,
                    "size_bytes": len(blobs[k % distinct]),
                    "blob": blobs[k % distinct],
                }
                for k, r in enumerate(rows)
            ],
        )
        flags = []
        for k, r in enumerate(rows):
            for j in verdicts[k % distinct].judgements:
                res = j.result
                flags.append(
                    {
                        "run": r["run"],
                        "spill": r["spill"],
                        "spill_id": ids[(r["run"], r["spill"])],
                        "subsystem": j.subsystem,
                        "histogram": j.histogram,
                        "check": j.check,
                        "quality": int(res.quality),
                        "value": res.value,
                        "explanation": res.explanation,
                        "instruction": j.instruction,
                        "config_version": r["config_version"],
                        "reference_run": first_run,
                        "created_at": r["closed_at"],
                    }
                )
        if flags:
            session.execute(insert(Flag), flags)
        set_reference(session, first_run, "bench", comment="first run of the simulated day")
    return n_spills
