"""What the explorer draws, loaded: pure data (database reads, decoding, sums), no widget.

In a served session these run in a worker thread (see
:class:`apps.expert_explorer.LatestOnly`). A view is the selected spills' histogram
summed, the histogram it is compared with (the active reference, or any run or spill
range the expert chose — the active reference is not changed), the flag that is the
evidence for this spill and histogram, and that check's number over the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps import queries
from dqm.store.evidence import check_series, evidence_flag_id, flag_evidence
from dqm.store.references import active_reference
from dqm.store.rollup import histograms_deleted, run_histogram
from dqm.store.runs import run_conditions

__all__ = ["ViewRequest", "load_view", "cell_data", "parse_spill_range"]


@dataclass(frozen=True)
class ViewRequest:
    histogram: str
    run: int
    lo: int
    hi: int
    flag: int | None = None
    log: bool = False
    rebin: int = 1
    compare_run: int | None = None
    compare_spills: str = ""


def parse_spill_range(text: str) -> tuple[int, int] | None:
    """``"5-40"``, ``"5–40"`` or ``"7"`` → (first, last); empty or unreadable → None (all)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[-–:]\s*(\d+))?\s*", text or "")
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    return (min(lo, hi), max(lo, hi))


def _same_binning(a, b) -> bool:
    return a.ndim == b.ndim and all(
        len(x) == len(y) and np.allclose(x.edges, y.edges)
        for x, y in zip(a.axes, b.axes, strict=True)
    )


def _comparison(store, session, request: ViewRequest, cond) -> tuple[Any, str]:
    """The histogram to compare with and how to name it."""
    name = request.histogram
    if request.compare_run is None:
        ref = active_reference(session, cond.beam_config if cond else None)
        if ref is None:
            why = f"no reference for {cond.beam_config}" if cond else "no run conditions"
            return None, why
        h = store.reference_hists(session, ref).get(name)
        return h, f"reference run {ref.run} (set by {ref.set_by})"
    wanted = parse_spill_range(request.compare_spills)
    infos = [
        i
        for i in queries.spills_of_run(session, request.compare_run)
        if wanted is None or wanted[0] <= i.spill <= wanted[1]
    ]
    h = queries.sum_hists(store.spill_histogram(session, [i.id for i in infos], name))
    if not infos:
        return None, f"run {request.compare_run} has no closed spill in {request.compare_spills}"
    span = (
        f"spill {infos[0].spill}"
        if len(infos) == 1
        else (f"spills {infos[0].spill}–{infos[-1].spill}")
    )
    return h, f"run {request.compare_run} {span} (chosen for comparison)"


def load_view(store, request: ViewRequest) -> dict:
    """Everything :func:`apps.expert_views.show_view` draws for ``request``."""
    spec = store.specs[request.histogram]

    def load(session):
        run_infos = queries.spills_of_run(session, request.run)
        infos = [i for i in run_infos if request.lo <= i.spill <= request.hi]
        h = queries.sum_hists(store.spill_histogram(session, [i.id for i in infos], spec.name))
        deleted = histograms_deleted(session, [i.id for i in infos])
        note = ""
        if deleted and len(infos) == len(run_infos):
            h = run_histogram(session, request.run, spec.name)
            note = (
                f"{len(deleted)} of these spills' own histograms were deleted by the retention "
                "policy; drawn from the run's summed histograms, which hold them"
            )
        elif deleted:
            note = (
                f"{len(deleted)} of these {len(infos)} spills' own histograms were deleted by the "
                "retention policy and are not in this sum (select the whole run: its summed "
                "histograms hold them)"
            )
        cond = run_conditions(session, request.run)
        ref_h, ref_text = _comparison(store, session, request, cond)
        flag = flag_evidence(session, request.flag) if request.flag else None
        if flag is not None and (flag["run"], flag["histogram"]) != (request.run, spec.name):
            flag = None
        if flag is not None and not (request.lo <= (flag["spill"] or -1) <= request.hi):
            flag = None
        if flag is None:
            fid = evidence_flag_id(session, request.run, request.hi, spec.name)
            flag = flag_evidence(session, fid) if fid else None
        series = (
            check_series(session, request.run, flag["histogram"], flag["check"]) if flag else None
        )
        return infos, h, cond, ref_h, ref_text, flag, series, note

    infos, h, cond, ref_h, ref_text, flag, series, note = store.read(load)
    if h is not None and ref_h is not None and not _same_binning(h, ref_h):
        ref_h, ref_text = None, ref_text + " — binning differs, not drawn"
    return {
        "request": request,
        "spec": spec,
        "infos": infos,
        "h": h,
        "ref_h": ref_h,
        "ref_text": ref_text,
        "conditions": cond,
        "flag": flag,
        "series": series,
        "n_events": float(sum(i.n_events for i in infos)),
        "retention_note": note,
    }


def cell_data(store, st: dict, index: int) -> dict:
    """The tapped cell's history over the whole run and its value in the sibling maps."""
    spec, src = st["spec"], st["source"]
    cell = (int(src.data["x"][index]), int(src.data["y"][index]))

    def all_spills(session):
        infos = queries.spills_of_run(session, st["run"])
        out = []
        for i in infos:
            hs = store.spill_histogram(session, [i.id], spec.name)
            out.append((i, {spec.name: hs[0]} if hs else {}))
        siblings = []
        for other in store.specs:
            if other.kind != "cellmap" or other.subsystem != spec.subsystem or other is spec:
                continue
            h = queries.sum_hists(store.spill_histogram(session, st["spill_ids"], other.name))
            if h is not None and h.values().shape == st["shape"]:
                siblings.append(f"{other.title}: {float(np.asarray(h.values())[cell]):,.0f}")
        return out, siblings

    history, siblings = store.read(all_spills)
    return {
        "spec": spec,
        "cell": cell,
        "history": queries.cell_history(history, spec.name, cell),
        "siblings": siblings,
        "count": float(src.data["count"][index]),
        "expected": float(src.data["expected"][index]),
        "significance": float(src.data["significance"][index]),
        "run": st["run"],
    }
