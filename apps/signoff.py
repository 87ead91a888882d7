"""The sign-off page (``/signoff``): certify spill ranges per subsystem, good or bad for physics.

What the shifter sees, top to bottom: the ranges the DQM proposes for the run (from the
flags and incidents, :func:`dqm.store.signoff.propose_signoff`), each with why; the form
(clicking a proposal fills it: subsystems, spill range, verdict; the comment is theirs to
write); and every certification of the run, oldest first, with who, role and when — an
expert's correction is a new line, the history stays.

Writes go through :func:`dqm.store.certification.certify` with the session's
:class:`~dqm.core.roles.Actor`, which refuses guests and a shifter overwriting another
person's sign-off on the server side; the form is hidden from guests only for comfort.
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn
from panel.viewable import Viewer

from apps import queries
from apps.expert_actions import run_action
from apps.theme import EXPERT_CSS
from dqm.core.signoff import VERDICTS
from dqm.core.specs import SUBSYSTEMS
from dqm.store.certification import certify
from dqm.store.signoff import certification_history, propose_signoff, run_summaries

__all__ = ["SignOff", "page_header"]


def page_header(title: str, user, auth_enabled: bool, here: str) -> pn.pane.HTML:
    """The pages' header: title, links, who is logged in (and as what)."""
    if user:
        who = (
            f"logged in as <b>{html.escape(user)}</b> ({html.escape(getattr(user, 'role', ''))})"
            " · <a href='./logout'>log out</a>"
        )
    elif auth_enabled:
        who = f"guest (read-only) · <a href='./login?next=/{here}'>log in to sign off</a>"
    else:
        who = "read-only server"
    links = " ".join(
        f'<a href="./{p}">{label}</a>'
        for p, label in (
            ("control_room", "control room"),
            ("expert", "expert"),
            ("signoff", "sign-off"),
            ("summary", "summary"),
        )
        if p != here
    )
    return pn.pane.HTML(
        f'<div class="dqm-expert-header"><span class="title">NA64μ DQM — {title}</span>{links}'
        f'<span class="dqm-user">{who}</span></div>',
        stylesheets=[EXPERT_CSS],
        sizing_mode="stretch_width",
    )


def _history_frame(session, run: int) -> pd.DataFrame:
    rows = [
        {
            "id": c.id,
            "subsystem": c.subsystem,
            "spills": f"{c.first_spill}–{c.last_spill}",
            "verdict": c.verdict,
            "by": c.certified_by,
            "role": c.role,
            "at (UTC)": c.certified_at.strftime("%Y-%m-%d %H:%M:%S"),
            "comment": c.comment,
        }
        for c in certification_history(session, run)
    ]
    return pd.DataFrame(
        rows, columns=["id", "subsystem", "spills", "verdict", "by", "role", "at (UTC)", "comment"]
    )


def _proposal_frame(session, run: int) -> pd.DataFrame:
    rows = [
        {
            "subsystem": p.subsystem,
            "first": p.first_spill,
            "last": p.last_spill,
            "spills": p.spills,
            "proposed": p.verdict,
            "why": p.reason,
        }
        for p in propose_signoff(session, run)
    ]
    return pd.DataFrame(rows, columns=["subsystem", "first", "last", "spills", "proposed", "why"])


class SignOff(Viewer):
    """One browser session's sign-off page, bound to the process's data store."""

    def __init__(self, datastore, *, user, auth_enabled: bool, run: int | None = None) -> None:
        super().__init__()
        self._store = datastore
        self.user = user
        runs = datastore.read(queries.runs)
        self.run = pn.widgets.Select(
            label="Run",
            options=runs,
            value=run if run in runs else (runs[0] if runs else None),
            width=140,
        )
        self.status = pn.pane.HTML(sizing_mode="stretch_width", css_classes=["dqm-signoff-status"])
        self.proposals = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            show_index=False,
            selectable=1,
            sizing_mode="stretch_width",
            height=300,
            layout="fit_data_stretch",
            css_classes=["dqm-proposals"],
        )
        self.subsystems = pn.widgets.MultiChoice(
            label="Subsystems", options=list(SUBSYSTEMS), value=list(SUBSYSTEMS), width=420
        )
        self.first = pn.widgets.IntInput(
            label="First spill", value=1, start=1, width=120, css_classes=["dqm-first"]
        )
        self.last = pn.widgets.IntInput(
            label="Last spill", value=1, start=1, width=120, css_classes=["dqm-last"]
        )
        self.verdict = pn.widgets.RadioButtonGroup(
            label="Verdict", options=list(VERDICTS), value=VERDICTS[0], css_classes=["dqm-verdict"]
        )
        self.comment = pn.widgets.TextInput(
            label="Comment",
            placeholder="what you looked at, or why bad for physics",
            width=460,
            css_classes=["dqm-comment"],
        )
        self.certify = pn.widgets.Button(
            label="Certify", color="primary", width=140, css_classes=["dqm-certify"]
        )
        self.result = pn.Column(sizing_mode="stretch_width")
        self.history = pn.widgets.Tabulator(
            pd.DataFrame(),
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            height=260,
            layout="fit_data_stretch",
            css_classes=["dqm-history"],
        )
        self.header = page_header("sign-off", user, auth_enabled, "signoff")
        self.auth_enabled = auth_enabled
        self.run.param.watch(lambda _e: self.reload(fill_form=True), "value")
        self.proposals.param.watch(self._on_select, "selection")
        self.certify.on_click(lambda _e: self.sign())
        self.reload(fill_form=True)

    def reload(self, *, fill_form: bool = False) -> None:
        """Re-read the run; ``fill_form`` (a newly chosen run) also sets the spill range to it."""
        run = self.run.value
        if run is None:
            self.status.object = "<p>No closed spill yet: nothing to sign off.</p>"
            return
        proposals, history, summary = self._store.read(
            lambda s: (
                _proposal_frame(s, run),
                _history_frame(s, run),
                run_summaries(s, [run])[0],
            )
        )
        self.proposals.value = proposals
        self.history.value = history
        signed = ", ".join(summary.signed_by) or "nobody yet"
        self.status.object = (
            f"<p style='font-size:16px'>Run <b>{run}</b>: spills {summary.first_spill}–"
            f"{summary.last_spill} ({summary.spills} closed) · <b>{summary.status}</b> · "
            f"signed by {html.escape(signed)}</p>"
        )
        if fill_form and len(proposals):
            self.first.value = int(proposals["first"].min())
            self.last.value = int(proposals["last"].max())

    def _on_select(self, event) -> None:
        if not event.new:
            return
        row = self.proposals.value.iloc[event.new[0]]
        self.subsystems.value = [row["subsystem"]]
        self.first.value, self.last.value = int(row["first"]), int(row["last"])
        if row["proposed"] in VERDICTS:
            self.verdict.value = row["proposed"]

    def sign(self) -> None:
        run, subsystems = self.run.value, list(self.subsystems.value)
        first, last, verdict = int(self.first.value), int(self.last.value), self.verdict.value
        comment, user = self.comment.value, self.user
        ok, text = run_action(
            self._store,
            user,
            f"certify run {run} spills {first}–{last} {verdict} ({', '.join(subsystems)})",
            lambda s: certify(s, int(run), subsystems, first, last, verdict, user, comment),
        )
        self.result[:] = [
            pn.pane.Alert(
                html.escape(text),
                alert_type="success" if ok else "danger",
                sizing_mode="stretch_width",
            )
        ]
        if ok:
            self.comment.value = ""
        self.reload()

    def __panel__(self):
        if self.user:
            form = pn.Column(
                "### Certify",
                pn.Row(self.subsystems, self.first, self.last),
                pn.Row(self.verdict, self.comment, self.certify),
                self.result,
                sizing_mode="stretch_width",
            )
        else:
            how = (
                "<a href='./login?next=/signoff'>Log in</a> to sign off."
                if self.auth_enabled
                else "This server has no logins (set DQM_WEB_USERS and DQM_COOKIE_SECRET)."
            )
            form = pn.pane.HTML(
                f'<div class="dqm-note dqm-guest" style="font-size:16px">Certifying spills for '
                f"physics needs a named person. {how}</div>",
                sizing_mode="stretch_width",
            )
        return pn.Column(
            self.header,
            pn.Row(self.run),
            self.status,
            "### Proposed by the DQM (click a line to fill the form)",
            self.proposals,
            form,
            "### Certifications (oldest first; the newest covering a spill is in force)",
            self.history,
            sizing_mode="stretch_width",
        )
