"""The end-of-run and end-of-shift summary page (``/summary``).

``/summary?run=N`` summarises one run; ``/summary?since=…&until=…`` (ISO, naive = UTC) every
run with a spill closed in that window; ``/summary`` alone the last ``hours`` (default 8,
one shift). Per run: whether it is signed off and by whom, each subsystem's certified good /
bad / unsigned spills, the fraction of spills and of muons on target (sampled events) that
are good — certified or, where nobody signed yet, judged GOOD by the flags — and each
incident with its spills, acknowledgements and annotations. Read-only; the same words as
the nightly report's section (:mod:`dqm.report.signoff_pages`).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime, timedelta

import panel as pn
from panel.viewable import Viewer

from apps.signoff import page_header
from apps.theme import QUALITY_COLOURS
from dqm.checks import quality_name
from dqm.store.signoff import RunSummary, run_summaries, runs_between

__all__ = ["Summary", "summary_html"]

_CSS = """
.dqm-summary { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 14px; }
.dqm-summary table { border-collapse: collapse; margin: 4px 0 14px 0; }
.dqm-summary th, .dqm-summary td { border: 1px solid #bbb; padding: 3px 8px; text-align: left;
  vertical-align: top; }
.dqm-summary th { background: #eee; }
.dqm-summary h2 { margin: 18px 0 4px 0; }
"""


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f} %"


def _esc(text: object) -> str:
    return html.escape(str(text))


def _run_html(s: RunSummary) -> str:
    f = s.fractions
    head = (
        f"<h2 class='dqm-run-summary'>Run {s.run} — {_esc(s.status)}</h2>"
        f"<p>spills {s.first_spill}–{s.last_spill} ({s.spills} closed, {s.n_events:,d} events"
        f" sampled) · signed by <b>{_esc(', '.join(s.signed_by) or 'nobody yet')}</b><br>"
        f"good spills <b>{_pct(f['good_spills'])}</b> (certified {_pct(f['certified_spills'])})"
        f" · good muons on target <b>{_pct(f['good_mot'])}</b> (certified "
        f"{_pct(f['certified_mot'])})</p>"
    )
    cert = "".join(
        f"<tr><td>{_esc(sub)}</td><td>{g}</td><td>{b}</td><td>{u}</td></tr>"
        for sub, (g, b, u) in s.certification.items()
    )
    cert_table = (
        "<table><tr><th>subsystem</th><th>certified good</th><th>certified bad</th>"
        f"<th>not certified</th></tr>{cert}</table>"
    )
    if s.incidents:
        rows = []
        for i in s.incidents:
            name = quality_name(i.quality)
            bg, fg = QUALITY_COLOURS.get(name, ("#fff", "#000"))
            ack = f"superseded: {i.superseded}" if i.superseded else i.acknowledgement
            rows.append(
                f"<tr data-incident='{i.id}'><td>{_esc(i.cause)}</td><td>{_esc(i.subsystem)}</td>"
                f"<td style='background:{bg};color:{fg}'>{name}</td>"
                f"<td>{i.first_spill}–{i.last_spill} ({i.spills})</td>"
                f"<td>{_esc(i.explanation)}</td><td>{_esc(ack)}</td>"
                f"<td>{_esc('; '.join(i.annotations))}</td></tr>"
            )
        incidents = (
            "<table class='dqm-incidents'><tr><th>incident (cause)</th><th>subsystem</th>"
            "<th>worst</th><th>spills</th><th>explanation</th><th>acknowledged</th>"
            f"<th>annotations</th></tr>{''.join(rows)}</table>"
        )
    else:
        incidents = "<p>No incident was opened in this run.</p>"
    return head + cert_table + "<h3>Incidents</h3>" + incidents


def summary_html(summaries: list[RunSummary], title: str) -> str:
    body = "".join(_run_html(s) for s in summaries) or "<p>No closed spill in this period.</p>"
    return f"<div class='dqm-summary'><h1>{_esc(title)}</h1>{body}</div>"


def _when(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Summary(Viewer):
    """The summary of one run, or of the runs of a shift."""

    def __init__(
        self,
        datastore,
        *,
        user,
        auth_enabled: bool,
        run: int | None = None,
        since: str = "",
        until: str = "",
        hours: float = 8.0,
    ) -> None:
        super().__init__()
        self.header = page_header("summary", user, auth_enabled, "summary")
        if run is not None:
            runs, title = [run], f"End of run {run}"
        else:
            end = _when(until) or datetime.now(UTC)
            start = _when(since) or end - timedelta(hours=hours)
            runs = datastore.read(lambda s: runs_between(s, start, end))
            title = f"Shift {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC: runs with spills"
        summaries = datastore.read(lambda s: run_summaries(s, runs))
        self.body = pn.pane.HTML(
            summary_html(summaries, title), stylesheets=[_CSS], sizing_mode="stretch_width"
        )

    def __panel__(self):
        return pn.Column(self.header, self.body, sizing_mode="stretch_width")
