"""The explorer's view of a selection: the flag's evidence, then the plots an expert expects.

From :func:`apps.expert_load.load_view`'s dict to panes: the flag's quality, explanation
and the instruction the wall shows for it, the check's own number over the run with its
thresholds (:func:`apps.expert_plots.check_series_figure`), and the histogram drawn by
kind — 1D overlay/ratio/significance with statistics box, 2D this/reference/significance,
cell maps by significance — with the bins or cells that drove the flag highlighted.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

import numpy as np
import panel as pn

from apps.expert_figures import H1Figures, SeriesFigure
from apps.expert_maps import CellMap, MapTriple, map_size, usable_reference
from apps.expert_plots import (
    history_figure,
    overlay_ratio_pull,
    rebinned,
    statistics,
    statistics_html,
)
from apps.plots import make_plot, plot_data, trimmed
from apps.theme import EXPERT_CSS
from dqm.checks.compare import compare

__all__ = ["show_view", "show_cell", "highlighted_bins", "flag_html"]


def _note(text: str, css: str = "dqm-note") -> pn.pane.HTML:
    return pn.pane.HTML(
        f'<div class="{css}">{text}</div>', stylesheets=[EXPERT_CSS], sizing_mode="stretch_width"
    )


def highlighted_bins(details: dict, edges: np.ndarray) -> list[tuple[float, float]]:
    """x ranges of the bins a flag's details name: the significant ones of ``bins`` (all
    of them when none is), and the bin of a KS ``location``."""
    bins = [
        b for b in details.get("bins") or [] if isinstance(b, dict) and len(b.get("index", [])) == 1
    ]
    strong = [b for b in bins if abs(b.get("significance") or 0) >= 3] or bins
    ranges = []
    for b in strong:
        i = int(b["index"][0])
        if 0 <= i < len(edges) - 1:
            ranges.append((float(edges[i]), float(edges[i + 1])))
    loc = details.get("location")
    if isinstance(loc, (int, float)) and edges[0] <= loc <= edges[-1]:
        i = int(np.clip(np.searchsorted(edges, loc, side="right") - 1, 0, len(edges) - 2))
        ranges.append((float(edges[i]), float(edges[i + 1])))
    return ranges


def _on_axis(details: dict, key: str, edges: np.ndarray) -> float | None:
    """``details[key]`` when it is a number on the histogram's axis (a mean vs its nominal)."""
    v = details.get(key)
    return float(v) if isinstance(v, (int, float)) and edges[0] <= v <= edges[-1] else None


def _cached(x, key: tuple, make):
    """The session's figure set ``key``, built on first use and refilled afterwards."""
    if key not in x.figures:
        x.figures[key] = make()
    return x.figures[key]


def _pane(x, fig, **kw) -> pn.pane.Bokeh:
    """One Panel pane per figure: showing it again sends only the changed data."""
    key = id(fig)
    if key not in x.panes:
        x.panes[key] = pn.pane.Bokeh(fig, **kw)
    return x.panes[key]


def _switch(area, key, objects_fn) -> None:
    """Show layout ``key`` in ``area``: built and appended on its first use, afterwards only
    made visible (the others hidden); ``key`` None replaces everything (shown once).

    Why: replacing an area's children costs the server a walk over the whole document
    (0.1–0.2 s of CPU) and the browser new views; switching between a 1D view, a 2D map
    and a cell map the session has shown before is one ``visible`` flag each.
    """
    layouts = area.__dict__.setdefault("_dqm_layouts", {})
    if key is None:
        layouts.clear()
        area[:] = objects_fn()
        return
    if key not in layouts:
        layouts[key] = pn.Column(*objects_fn(), sizing_mode="stretch_width")
        before = list(layouts.values())[:-1]
        if [id(o) for o in area.objects] != [id(o) for o in before]:  # others there: drop them
            area[:] = list(layouts.values())
        else:
            area.append(layouts[key])
    for other, layout in layouts.items():
        if layout.visible != (other == key):
            layout.visible = other == key


def flag_html(flag: dict) -> str:
    q = flag["quality"]
    when = flag["time"].strftime("%Y-%m-%d %H:%M:%S UTC") if flag.get("time") else ""
    ack = (
        f"<br><i>acknowledged by {html.escape(flag['acknowledged_by'])}</i>"
        if flag.get("acknowledged_by")
        else ""
    )
    instruction = (
        f'<div class="dqm-instruction">▶ {html.escape(flag["instruction"])}</div>'
        if flag.get("instruction")
        else ""
    )
    named = named_histogram_links(flag)
    return (
        f'<div class="dqm-evidence" data-flag="{flag["id"]}" data-quality="{q}">'
        f'<span class="dqm-badge q-{q}">{html.escape(q.replace("_", " "))}</span> '
        f"<b>{html.escape(flag['check'])}</b> on "
        f"{html.escape(flag['histogram'] or flag['subsystem'])}"
        f" — run {flag['run']}, spill {flag['spill']}, {when} (flag {flag['id']})"
        f'<div class="dqm-explanation">{html.escape(flag["explanation"])}</div>'
        f"{instruction}{named}{ack}</div>"
    )


def named_histogram_links(flag: dict) -> str:
    """Links to the histograms a flag's explanation names as driving it (a learned check's
    ``contributions``: its evidence is the subsystem's vector, so the histograms that make
    up the score are the ones to open next), each at the flag's run and spill."""
    contributions = (flag.get("details") or {}).get("contributions") or []
    links = []
    for c in contributions:
        name = c.get("histogram") if isinstance(c, dict) else None
        if not isinstance(name, str) or not name or name == flag.get("histogram"):
            continue
        share = c.get("share")
        pct = f" ({100 * share:.0f} %)" if isinstance(share, (int, float)) else ""
        query = urlencode({"run": flag["run"], "spill": flag["spill"], "histogram": name})
        links.append(
            f'<a class="dqm-named" href="?{html.escape(query)}">{html.escape(name)}</a>{pct}'
        )
    if not links:
        return ""
    return f'<div class="dqm-named-histograms">Open what drives it: {", ".join(links)}</div>'


def _evidence(x, loaded: dict) -> None:
    flag, series, request = loaded["flag"], loaded["series"], loaded["request"]
    if flag is None:
        spec = loaded["spec"]
        text = (
            f"No check result of {html.escape(spec.name)} stored for spill {request.hi}."
            if spec.checks
            else f"{html.escape(spec.name)} has no check: shown for inspection."
        )
        x.evidence_note.object = f'<div class="dqm-note">{text}</div>'
        _switch(x.series_area, "none", lambda: [])
        return
    x.evidence_note.object = f'<div class="dqm-note dqm-flag-evidence">{flag_html(flag)}</div>'
    if series is None or not len(series):
        _switch(x.series_area, "none", lambda: [])
        return
    log = SeriesFigure.wants_log(series)
    fig = _cached(x, ("series", log), lambda: SeriesFigure(log=log))
    fig.update(
        series,
        f"{flag['check']} on {flag['histogram']}: the number judged per spill, run "
        f"{flag['run']} (bands: WARNING and BAD)",
        current=flag["spill"],
    )
    pane = _pane(x, fig.fig, sizing_mode="stretch_width")
    _switch(x.series_area, ("series", log), lambda: [pane])


def _info(loaded: dict) -> str:
    spec, request, cond = loaded["spec"], loaded["request"], loaded["conditions"]
    n = len(loaded["infos"])
    cond_text = html.escape(cond.describe()) if cond else "no run conditions received from the DAQ"
    span = (
        f"spill {request.lo}" if request.lo == request.hi else f"spills {request.lo}–{request.hi}"
    )
    return (
        f"<b>{html.escape(spec.title)}</b> — {html.escape(spec.description)}<br>"
        f"run {request.run}, {span} ({n} spills, {loaded['n_events']:,.0f} events); compared "
        f"with {html.escape(loaded['ref_text'])}<br>conditions: {cond_text}"
        + (
            f"<br><b>retention:</b> {html.escape(loaded['retention_note'])}"
            if loaded.get("retention_note")
            else ""
        )
    )


def show_view(x, loaded: dict) -> dict | None:
    """Fill the explorer's panes; returns the cell map's tap context (None for other kinds)."""
    spec, request, h, ref_h = loaded["spec"], loaded["request"], loaded["h"], loaded["ref_h"]
    shown = html.escape(f"{spec.name} {request.run} {request.lo}-{request.hi}")
    x.info.object = f'<div class="dqm-note dqm-view" data-view="{shown}">{_info(loaded)}</div>'
    _evidence(x, loaded)
    _switch(x.cell_area, "empty", lambda: [])
    if h is None:
        why = loaded.get("retention_note") or ""
        text = "No data for this histogram in the selected spills." + (f" {why}." if why else "")
        _switch(x.plot_area, None, lambda: [pn.pane.Markdown(text)])
        return None
    details = (loaded["flag"] or {}).get("details") or {}
    label = loaded["ref_text"].split(" (")[0]
    if spec.kind == "h1":
        edges = np.asarray(h.axes[0].edges)
        c = trimmed(compare(rebinned(h, request.rebin), rebinned(ref_h, request.rebin)))
        figs = _cached(x, ("h1", request.log), lambda: H1Figures(log=request.log))
        figs.update(
            c,
            f"{spec.title} — compared with {label}",
            highlight=highlighted_bins(details, edges),
            observed=_on_axis(details, "observed", edges),
            expected=_on_axis(details, "expected", edges),
        )
        unit = spec.x.label.split("[")[-1].rstrip("]") if spec.x and "[" in spec.x.label else ""
        x.stats.object = statistics_html(statistics(h), unit)
        panes = [_pane(x, f, sizing_mode="stretch_width") for f in figs.figures]
        _switch(
            x.plot_area,
            ("h1", request.log),
            lambda: [pn.Row(panes[0], x.stats, sizing_mode="stretch_width"), *panes[1:]],
        )
        return None
    if spec.kind == "cellmap" and h.ndim == 2:
        with_ref = CellMap.has_reference(h, ref_h)
        key = ("cellmap", h.values().shape, with_ref)
        cells = _cached(x, key, lambda: CellMap(h.values().shape, with_reference=with_ref))
        src = cells.update(
            h,
            ref_h,
            f"{spec.title}: {label}",
            x_label=spec.x_label,
            y_label=spec.y_label,
            n_events=loaded["n_events"] or None,
            highlight=details.get("channels") or [],
        )
        # the class on a Column (a Bokeh pane renders the figure itself, without its classes)
        pane = _pane(x, cells.fig)
        _switch(x.plot_area, key, lambda: [pn.Column(pane, css_classes=["dqm-cellmap"])])
        _switch(
            x.cell_area,
            "cell hint",
            lambda: [pn.pane.Markdown("*Click a cell to see that channel's history.*")],
        )
        return {
            "spec": spec,
            "source": src,
            "spill_ids": [i.id for i in loaded["infos"]],
            "shape": h.values().shape,
            "run": request.run,
        }
    if spec.kind in ("h2", "channels"):
        this, ref = rebinned(h, request.rebin), rebinned(ref_h, request.rebin)
        assert this is not None
        with_ref = usable_reference(this, ref) is not None
        key = ("h2", map_size(this), with_ref, request.log)
        maps = _cached(
            x, key, lambda: MapTriple(map_size(this), with_reference=with_ref, log_z=request.log)
        )
        maps.update(this, ref, spec.title, reference_label=label)
        panes = [_pane(x, f) for f in maps.figures]
        _switch(x.plot_area, key, lambda: [pn.Row(*panes)])
        named = [int(ch[0]) for ch in details.get("channels") or [] if ch]
        if spec.kind == "channels" and named:  # the channels the flag names, projected (<= 4)
            x.cell_area.__dict__.pop("_dqm_layouts", None)  # shown once
            x.cell_area[:] = [
                pn.pane.Bokeh(
                    overlay_ratio_pull(
                        trimmed(compare(h[i, :], ref_h[i, :] if ref_h is not None else None)),
                        f"{spec.title}: {spec.channel_label} {i}",
                    )[0],
                    sizing_mode="stretch_width",
                )
                for i in named[:4]
                if 0 <= i < len(h.axes[0])
            ]
        return None
    handle = make_plot(
        spec,
        plot_data(spec, h, ref_h, n_events=loaded["n_events"] or None),
        theme="light",
        height=420,
    )
    _switch(x.plot_area, None, lambda: [pn.pane.Bokeh(handle.figure, sizing_mode="stretch_width")])
    return None


def show_cell(x, d: dict) -> None:
    spec, cell = d["spec"], d["cell"]
    sig = d["significance"]
    text = (
        f"<b>{html.escape(spec.name)} cell {list(cell)}</b>: {d['count']:,.0f} hits in the "
        "selection"
        + (
            f", {d['expected']:,.1f} expected from the reference ({sig:+.1f}σ)"
            if sig == sig
            else ""
        )
        + ("<br>" + "; ".join(html.escape(s) for s in d["siblings"]) if d["siblings"] else "")
    )
    x.cell_area.__dict__.pop("_dqm_layouts", None)  # shown once
    x.cell_area[:] = [
        _note(text),
        pn.pane.Bokeh(
            history_figure(
                d["history"], f"{spec.name} cell {list(cell)}: hits per event, run {d['run']}"
            ),
            sizing_mode="stretch_width",
        ),
    ]
    x.selected_cell = (spec.name, cell)
