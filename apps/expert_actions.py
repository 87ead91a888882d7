"""The expert actions (login only), all writes through :mod:`dqm.store.actions`.

The flag list with its acknowledgements is :mod:`apps.expert_flags`.

Forms are shown only to a logged-in user, but hiding them is a convenience: every
button calls :meth:`DataStore.act` with ``dqm.store.actions`` functions that refuse an
anonymous or ``guest`` user themselves, and write the audit entry in the same
transaction as the change. The result (or the refusal) is shown next to the form.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import UTC, datetime

import panel as pn
from panel.viewable import Viewer

from apps import queries
from dqm.core.roles import EXPERT, role_of
from dqm.errors import DQMError
from dqm.store import actions
from dqm.store.signoff import run_contents

__all__ = ["ActionsPanel", "run_action", "message"]


def run_action(datastore, user: str | None, what: str, call: Callable) -> tuple[bool, str]:
    """Run ``call(session)`` as ``user``'s action; (ok, message for the page)."""
    try:
        datastore.act(call)
    except DQMError as exc:
        return False, f"{what} refused: {exc}"
    return True, f"{what}: done by {user} (recorded in the audit trail)"


def message(ok: bool, text: str) -> pn.pane.Alert:
    return pn.pane.Alert(
        html.escape(text), alert_type="success" if ok else "danger", sizing_mode="stretch_width"
    )


class ActionsPanel(Viewer):
    """Set a reference run, mask a channel until a date, change a check's thresholds."""

    def __init__(
        self,
        datastore,
        *,
        user: str | None,
        auth_enabled: bool,
        selected_cell: Callable[[], tuple | None],
        **params,
    ) -> None:
        super().__init__(**params)
        self._store = datastore
        self.user = user
        self.auth_enabled = auth_enabled
        self._selected_cell = selected_cell
        specs = datastore.specs
        # no default: the live run (anomalies and all) must never become the reference by a
        # click on a pre-filled form; the expert picks a run and sees what it contains first
        self.ref_run = pn.widgets.Select(
            label="Reference run",
            options={"— choose a run —": None, **{str(r): r for r in datastore.read(queries.runs)}},
            value=None,
            width=160,
            css_classes=["dqm-ref-run"],
        )
        self.ref_contents = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["dqm-ref-contents"]
        )
        self.ref_comment = pn.widgets.TextInput(label="Comment", width=360)
        self.ref_reason = pn.widgets.TextInput(
            label="Reason (needed when the run has BAD spills)", width=360
        )
        self.set_ref = pn.widgets.Button(label="Set reference", color="primary", width=160)
        self.ref_run.param.watch(lambda _e: self._show_contents(), "value")
        channel_hists = [s.name for s in specs if s.kind in ("cellmap", "channels")]
        self.mask_hist = pn.widgets.Select(label="Histogram", options=channel_hists, width=220)
        self.mask_channel = pn.widgets.TextInput(label="Channel (indices, e.g. 2,3)", width=180)
        self.mask_until = pn.widgets.TextInput(label="Until (UTC, YYYY-MM-DD HH:MM)", width=220)
        self.mask_reason = pn.widgets.TextInput(label="Reason", width=300)
        self.mask = pn.widgets.Button(label="Mask channel", color="warning", width=160)
        self.use_cell = pn.widgets.Button(label="Use clicked cell", width=150)
        checked = [s.name for s in specs if s.checks]
        self.th_hist = pn.widgets.Select(label="Histogram", options=checked, width=220)
        self.th_check = pn.widgets.Select(label="Check", options=[], width=200)
        self.th_params = pn.widgets.TextAreaInput(
            label="Parameters (JSON; only changed keys needed)", height=120, width=480
        )
        self.th_comment = pn.widgets.TextInput(label="Comment", width=300)
        self.th_save = pn.widgets.Button(label="Save thresholds", color="primary", width=160)
        self.result = pn.Column(sizing_mode="stretch_width")
        self.th_hist.param.watch(self._on_th_hist, "value")
        self.th_check.param.watch(self._on_th_check, "value")
        self.set_ref.on_click(lambda _e: self.set_reference())
        self.mask.on_click(lambda _e: self.mask_cell())
        self.use_cell.on_click(lambda _e: self._fill_cell())
        self.th_save.on_click(lambda _e: self.save_thresholds())
        self._on_th_hist()

    def _on_th_hist(self, _event=None) -> None:
        spec = self._store.specs[self.th_hist.value] if self.th_hist.value else None
        self.th_check.options = [c.type for c in spec.checks] if spec else []
        self._on_th_check()

    def _on_th_check(self, _event=None) -> None:
        if not self.th_hist.value or not self.th_check.value:
            self.th_params.value = ""
            return
        check = next(
            c for c in self._store.specs[self.th_hist.value].checks if c.type == self.th_check.value
        )
        self.th_params.value = json.dumps(dict(check.params), indent=1, default=str)

    def _fill_cell(self) -> None:
        picked = self._selected_cell()
        if picked:
            self.mask_hist.value, cell = picked
            self.mask_channel.value = ",".join(str(c) for c in cell)

    def _show(self, ok: bool, text: str) -> None:
        self.result[:] = [message(ok, text)]

    def _show_contents(self) -> None:
        """What the chosen run contains (its spills by quality, its BAD spills)."""
        run = self.ref_run.value
        if run is None:
            self.ref_contents.object = ""
            return
        contents = self._store.read(lambda s: run_contents(s, int(run)))
        colour = "#c4161c" if contents.bad_spills else "#1b7f3b"
        self.ref_contents.object = (
            f'<div style="color:{colour};font-size:15px">run {run}: '
            f"{html.escape(contents.describe())}</div>"
        )

    def set_reference(self) -> None:
        run = self.ref_run.value
        if run is None:
            self._show(False, "set reference refused: choose the run to certify first")
            return
        self._show(
            *run_action(
                self._store,
                self.user,
                f"set reference run {run}",
                lambda s: actions.set_reference(
                    s,
                    int(run),
                    self.user,
                    comment=self.ref_comment.value,
                    bad_spills_reason=self.ref_reason.value,
                ),
            )
        )

    def mask_cell(self) -> None:
        try:
            cell = [
                int(c) for c in self.mask_channel.value.replace("/", ",").split(",") if c.strip()
            ]
            until = datetime.fromisoformat(self.mask_until.value.strip())
        except ValueError:
            self._show(
                False,
                "mask refused: channel must be integers like 2,3 "
                "and the date like 2026-12-01 08:00",
            )
            return
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        self._show(
            *run_action(
                self._store,
                self.user,
                f"mask {self.mask_hist.value} {cell}",
                lambda s: actions.mask_channel(
                    s,
                    self._store.specs,
                    self.mask_hist.value,
                    cell,
                    until,
                    self.user,
                    reason=self.mask_reason.value,
                ),
            )
        )

    def save_thresholds(self) -> None:
        try:
            params = json.loads(self.th_params.value or "{}")
            if not isinstance(params, dict):
                raise ValueError
        except ValueError:
            self._show(
                False,
                'thresholds refused: parameters must be a JSON object such as {"window_mm": 2.0}',
            )
            return
        self._show(
            *run_action(
                self._store,
                self.user,
                f"thresholds of {self.th_hist.value}/{self.th_check.value}",
                lambda s: actions.edit_check_thresholds(
                    s,
                    self._store.specs,
                    self.th_hist.value,
                    self.th_check.value,
                    params,
                    self.user,
                    comment=self.th_comment.value,
                ),
            )
        )

    def __panel__(self):
        if not self.user:
            how = (
                "<a href='./login?next=/expert'>Log in</a> to act."
                if self.auth_enabled
                else "This server has no expert logins (set DQM_WEB_USERS and DQM_COOKIE_SECRET)."
            )
            return pn.pane.HTML(
                '<div class="dqm-note dqm-guest" style="font-size:16px">Actions change what every '
                "later spill is "
                f"judged against, so they need a named person. {how}</div>",
                sizing_mode="stretch_width",
            )
        if role_of(self.user) != EXPERT:
            return pn.pane.HTML(
                '<div class="dqm-note dqm-shifter" style="font-size:16px">Logged in as a '
                f"{role_of(self.user)}: you acknowledge, annotate and "
                "<a href='./signoff'>sign off</a>. Reference runs, masks and thresholds change "
                "how every later spill is judged: the subsystem expert sets them.</div>",
                sizing_mode="stretch_width",
            )
        return pn.Column(
            "### Reference run",
            pn.Row(self.ref_run, self.ref_comment, self.set_ref),
            self.ref_contents,
            pn.Row(self.ref_reason),
            "### Mask a channel until a date",
            pn.Row(self.mask_hist, self.mask_channel, self.use_cell),
            pn.Row(self.mask_until, self.mask_reason, self.mask),
            "### Check thresholds (a new configuration version)",
            pn.Row(self.th_hist, self.th_check),
            pn.Row(self.th_params, pn.Column(self.th_comment, self.th_save)),
            self.result,
            sizing_mode="stretch_width",
        )
