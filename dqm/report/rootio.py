"""ROOT files in and out (uproot): the DQM's histograms as TH1/TH2 for physicists' ROOT
macros, and references made elsewhere read back onto the specs' binning.

Layer: I/O shell (files). Writing: every stored histogram becomes a ``TH1D``/``TH2D``
named after its spec, titled with the spec's title and its axes' labels. The store
keeps integer counts (``Int64``), which uproot cannot write, so each histogram is
copied into ``Weight`` storage (values = variances = counts: Poisson errors, as ROOT's
``Sumw2`` of unit-weight fills). Cell maps and channel axes are integer axes without
flow bins; ROOT has no such thing, so they are written as regular axes from 0 to n
with empty flow bins.

Reading (:func:`read_root_histograms`): each key named like a spec is mapped onto
that spec's booked histogram after checking the bin count and range agree, so an
imported reference is comparable bin by bin with what the workers fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import boost_histogram as bh
import numpy as np
import uproot

from dqm import __version__
from dqm.core.fill import book_histogram
from dqm.core.specs import SpecSet
from dqm.errors import ConfigError, StorageError
from dqm.store import Session
from dqm.store.queries import closed_spill_histograms, closed_spills, count_closed_spills
from dqm.store.rollup import histograms_deleted, run_sum_blobs

__all__ = [
    "to_root_histogram",
    "write_root",
    "read_root_histograms",
    "unknown_errors",
    "export_run",
]


def _root_axis(axis: bh.axis.Axis) -> bh.axis.Axis:
    """A flow-carrying axis for ROOT: integer axes become regular 0..n with the same label."""
    label = getattr(axis, "label", "") or ""
    if isinstance(axis, bh.axis.Regular):
        out = bh.axis.Regular(axis.size, axis.edges[0], axis.edges[-1])
    else:
        out = bh.axis.Variable(np.asarray(axis.edges, dtype=float))
    out.label = label
    return out


def to_root_histogram(h: bh.Histogram, title: str = "") -> bh.Histogram:
    """A ``Weight``-storage copy of ``h`` that uproot writes as TH1D/TH2D (errors = √counts)."""
    out = bh.Histogram(*(_root_axis(a) for a in h.axes), storage=bh.storage.Weight())
    counts = np.asarray(h.values(flow=True), dtype=float)
    view = out.view(flow=True)
    # place h's bins (with or without flow) into the flow-carrying view
    index = tuple(
        slice(0, None) if (a.traits.underflow and a.traits.overflow) else slice(1, -1)
        for a in h.axes
    )
    view.value[index] = counts
    view.variance[index] = counts
    out.title = title or getattr(h, "title", "") or getattr(h, "name", "")
    out.name = getattr(h, "name", "")
    return out


def write_root(
    path: Path | str,
    hists: Mapping[str, bh.Histogram],
    specs: SpecSet | None = None,
    directory: str = "",
    *,
    append: bool = False,
    info: str = "",
) -> int:
    """Write ``hists`` (name -> histogram) into a ROOT file; returns how many were written.

    A new file unless ``append``; ``directory`` (e.g. ``"spill_0012"``) puts them in a
    ROOT sub-directory; ``info`` is stored as a ``TObjString`` named ``dqm_info`` there.
    """
    titles = {s.name: s.title for s in specs} if specs is not None else {}
    prefix = f"{directory}/" if directory else ""
    n = 0
    with (uproot.update if append else uproot.recreate)(str(path)) as f:
        for name, h in hists.items():
            f[prefix + name] = to_root_histogram(h, titles.get(name, ""))
            n += 1
        if info:
            f[prefix + "dqm_info"] = info
    return n


def _matches(spec_axis: bh.axis.Axis, root_edges: np.ndarray) -> bool:
    edges = np.asarray(spec_axis.edges, dtype=float)
    return edges.shape == root_edges.shape and bool(np.allclose(edges, root_edges))


def read_root_histograms(
    path: Path | str, specs: SpecSet, *, directory: str = ""
) -> dict[str, bh.Histogram]:
    """The file's histograms whose names are specs, on the specs' own axes.

    Keys that are not specs are ignored (a file may carry anything else); a spec
    histogram whose binning differs from the spec raises :class:`ConfigError` naming
    both. Integral contents (counts) are stored as ``Int64`` like the workers' fills;
    weighted or normalised contents with ROOT's ``Sumw2`` keep their errors in
    ``Weight`` storage (the χ²/KS checks then use ROOT's weighted formulae); weighted
    contents without ``Sumw2`` keep ``Double`` storage (:func:`unknown_errors`).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("FILE.root", str(path), "an existing ROOT file")
    try:
        f = uproot.open(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError("FILE.root", str(path), f"a ROOT file ({exc})") from None
    out: dict[str, bh.Histogram] = {}
    with f:
        folder = f[directory] if directory else f
        names = {k.split(";")[0]: k for k in folder.keys(recursive=False)}
        for spec in specs:
            if spec.name not in names:
                continue
            obj = folder[names[spec.name]]
            if not hasattr(obj, "axes") or not hasattr(obj, "values"):
                continue
            booked = book_histogram(spec)
            root_axes = obj.axes
            if len(root_axes) != booked.ndim or not all(
                _matches(a, np.asarray(r.edges(), dtype=float))
                for a, r in zip(booked.axes, root_axes, strict=False)
            ):
                got = [
                    f"{len(r.edges()) - 1} bins {r.edges()[0]:g}..{r.edges()[-1]:g}"
                    for r in root_axes
                ]
                want = [f"{a.size} bins {a.edges[0]:g}..{a.edges[-1]:g}" for a in booked.axes]
                raise ConfigError(
                    f"{path.name}:{spec.name}",
                    "; ".join(got),
                    f"the spec's binning {'; '.join(want)}",
                )
            values = np.asarray(obj.values(flow=True), dtype=float)
            index = tuple(
                slice(0, None) if (a.traits.underflow and a.traits.overflow) else slice(1, -1)
                for a in booked.axes
            )
            values = values[index]
            sumw2 = _sumw2(obj)
            variances = None if sumw2 is None else sumw2[index]
            counts = bool(np.all(values == np.rint(values)) and np.all(values >= 0))
            if counts and (variances is None or np.array_equal(variances, values)):
                booked.view(flow=True)[...] = values.astype(np.int64)
                h = booked
            elif variances is not None:  # weighted or normalised with Sumw2: keep the errors
                h = bh.Histogram(*booked.axes, storage=bh.storage.Weight())
                h.view(flow=True).value = values
                h.view(flow=True).variance = variances
                h.name, h.title = spec.name, spec.title
            else:  # weighted without Sumw2: errors unknown, the shape checks will refuse it
                h = bh.Histogram(*booked.axes, storage=bh.storage.Double())
                h.view(flow=True)[...] = values
                h.name, h.title = spec.name, spec.title
            out[spec.name] = h
    return out


def _sumw2(obj) -> np.ndarray | None:
    """The histogram's per-bin Σw² with flow bins (ROOT's ``fSumw2``), None without Sumw2."""
    try:
        sumw2 = obj.member("fSumw2")
    except (KeyError, AttributeError):
        return None
    if sumw2 is None or len(sumw2) == 0:
        return None
    return np.asarray(obj.variances(flow=True), dtype=float)


def unknown_errors(hists: Mapping[str, bh.Histogram]) -> list[str]:
    """Names of histograms with non-integer contents and no errors (no Sumw2 in the file).

    The shape checks refuse such a reference (its statistical errors are unknown);
    ``dqm reference import`` says so when it imports one.
    """
    return sorted(name for name, h in hists.items() if h.storage_type is bh.storage.Double)


def export_run(
    session: Session,
    specs: SpecSet,
    path: Path | str,
    run: int,
    *,
    spill: int | None = None,
    per_spill: bool = False,
) -> dict[str, int]:
    """Export a run's stored histograms: run-integrated (or one spill's) at the top level,
    and with ``per_spill`` every closed spill's in a ``spill_NNNN`` directory.

    Returns counts (``spills``, ``histograms``) for the caller to report.
    """
    from dqm.core.histio import decode_histograms
    from dqm.report.integrate import Integrator

    rows = list(closed_spill_histograms(session, run, spill))
    n_closed = count_closed_spills(session, run)
    n_summed = len(rows)
    if spill is None and histograms_deleted(session, [sp.id for sp in closed_spills(session, run)]):
        # some spills' own histograms were deleted by the retention: the run's sum holds them
        blobs, n_summed = list(run_sum_blobs(session, run)), n_closed
    else:
        blobs = [blob for _, blob in rows]
    if not blobs:
        what = f"run {run} spill {spill}" if spill is not None else f"run {run}"
        gone = spill is not None and histograms_deleted(
            session, [sp.id for sp in closed_spills(session, run) if sp.spill == spill]
        )
        why = " (deleted by the histogram retention policy)" if gone else ""
        raise StorageError(f"{what} has no closed spill with stored histograms{why}")
    acc = Integrator()
    acc.add_many(blobs)
    label = f"run {run}" + (
        f" spill {spill}" if spill is not None else f", {n_summed} closed spills summed"
    )
    info = f"NA64mu DQM export: {label}; specs {specs.version}; dqm {__version__}"
    n = write_root(path, acc.histograms(), specs, info=info)
    if per_spill:
        for number, blob in rows:
            n += write_root(
                path,
                decode_histograms(blob)[0],
                specs,
                f"spill_{number:04d}",
                append=True,
                info=f"run {run} spill {number}",
            )
    return {"spills": n_summed, "histograms": n}
