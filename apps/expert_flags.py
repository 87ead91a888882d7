"""The flag list: coloured by quality, with time and full text, grouped by incident.

The shifter acts on incidents, not on flags: a beam shift trips three centroid checks
and two profile checks on the same spill, and acknowledging them one by one is five
clicks for one decision. Rows are grouped under their incident (one cause in one run
over consecutive spills, :func:`dqm.store.evidence.incident_frame`); one button
acknowledges every flag of the chosen incident, each written to the audit trail by
:func:`dqm.store.actions.acknowledge_flag` in one transaction. A click on a row opens
its evidence (the histogram at that spill) through ``on_open``.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import panel as pn
from panel.viewable import Viewer

from apps import queries
from apps.expert_actions import message, run_action
from apps.theme import QUALITY_COLOURS
from dqm.checks import Quality
from dqm.core.specs import SUBSYSTEMS
from dqm.store import actions
from dqm.store.acknowledgements import acknowledge_cause
from dqm.store.evidence import incident_frame

__all__ = ["FlagsPanel", "quality_style"]

_QUALITY_FILTERS = {
    "all": int(Quality.GOOD),
    "WARNING or worse": int(Quality.WARNING),
    "CHECK_ERROR or BAD": int(Quality.CHECK_ERROR),
    "BAD only": int(Quality.BAD),
}
_SHOWN = [
    "incident",
    "time",
    "quality",
    "run",
    "spill",
    "subsystem",
    "histogram",
    "check",
    "explanation",
    "instruction",
    "acknowledged_by",
    "annotation",
    "id",
]


def quality_style(value: str) -> str:
    """CSS of a quality cell: the quality's own colours (the word stays written)."""
    bg, fg = QUALITY_COLOURS.get(value, (None, None))
    return f"background-color: {bg}; color: {fg}; font-weight: 700" if bg else ""


class FlagsPanel(Viewer):
    """Flags by incident with explanations, filterable by run, subsystem and quality."""

    def __init__(
        self, datastore, *, user: str | None, on_open: Callable | None = None, **params
    ) -> None:
        super().__init__(**params)
        self._store = datastore
        self.user = user
        self._on_open = on_open
        self.run = pn.widgets.Select(
            label="Run", options=["all", *datastore.read(queries.runs)], value="all", width=140
        )
        self.subsystem = pn.widgets.Select(
            label="Subsystem", options=["all", *SUBSYSTEMS], value="all", width=160
        )
        self.quality = pn.widgets.Select(
            label="Quality", options=list(_QUALITY_FILTERS), value="WARNING or worse", width=180
        )
        self.frame = pd.DataFrame(columns=_SHOWN)  # queried when the tab is first shown
        self._loaded = False
        self.table = pn.widgets.Tabulator(
            self.frame[_SHOWN],
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            height=520,
            selectable=1,
            layout="fit_data_stretch",
            css_classes=["dqm-flags"],
            groupby=["incident"],
            hidden_columns=["incident"],
            formatters={"explanation": {"type": "textarea"}, "instruction": {"type": "textarea"}},
            widths={"explanation": 460, "instruction": 300},
        )
        self._style()
        self.incident = pn.widgets.Select(
            label="Incident", options=self._incidents(), width=620, css_classes=["dqm-incident"]
        )
        self.flag_id = pn.widgets.IntInput(
            label="Flag id", value=0, width=120, css_classes=["dqm-flag-id"]
        )
        self.note = pn.widgets.TextInput(
            label="Annotation", placeholder="e.g. known: HV trip, fixed 14:05", width=420
        )
        self.ack = pn.widgets.Button(
            label="Acknowledge flag", color="primary", width=150, css_classes=["dqm-ack"]
        )
        self.ack_incident = pn.widgets.Button(
            label="Acknowledge incident",
            color="primary",
            width=190,
            css_classes=["dqm-ack-incident"],
        )
        self.annotate = pn.widgets.Button(label="Annotate", width=120)
        self.result = pn.Column(sizing_mode="stretch_width")
        for w in (self.run, self.subsystem, self.quality):
            w.param.watch(lambda _e: self.reload(), "value")
        self.table.param.watch(self._on_select, "selection")
        self.table.on_click(self._on_click)
        self.ack.on_click(lambda _e: self.acknowledge())
        self.ack_incident.on_click(lambda _e: self.acknowledge_incident())
        self.annotate.on_click(lambda _e: self.annotate_flag())

    def _frame(self) -> pd.DataFrame:
        run = None if self.run.value == "all" else int(self.run.value)
        sub = None if self.subsystem.value == "all" else self.subsystem.value
        q = _QUALITY_FILTERS[self.quality.value]
        return self._store.read(lambda s: incident_frame(s, run=run, subsystem=sub, min_quality=q))

    def _incidents(self) -> list[str]:
        return list(dict.fromkeys(self.frame["incident"]))

    def _style(self) -> None:
        self.table.style.map(quality_style, subset=["quality"])

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.reload()

    def reload(self) -> None:
        self._loaded = True
        self.frame = self._frame()
        self.table.value = self.frame[_SHOWN]
        self._style()
        self.incident.options = self._incidents()

    def _row(self, index: int) -> pd.Series:
        return self.table.value.iloc[index]

    def _on_select(self, event) -> None:
        if event.new:
            row = self._row(event.new[0])
            self.flag_id.value = int(row["id"])
            self.incident.value = row["incident"]

    def _on_click(self, event) -> None:
        """A click on a row opens its evidence: that histogram at that spill."""
        if self._on_open is None or event.row is None:
            return
        row = self._row(int(event.row))
        self._on_open(int(row["run"]), int(row["spill"]), row["histogram"] or None, int(row["id"]))

    def acknowledge(self) -> None:
        fid, note = int(self.flag_id.value or 0), self.note.value.strip() or None
        ok, text = run_action(
            self._store,
            self.user,
            f"acknowledge flag {fid}",
            lambda s: actions.acknowledge_flag(s, fid, self.user, annotation=note),
        )
        self.result[:] = [message(ok, text)]
        self.reload()

    def acknowledge_incident(self) -> None:
        """The chosen incident, in the store: every flag of its cause over its spills, those
        stored after this table was read included (:func:`dqm.store.acknowledgements.
        acknowledge_cause`), and its stored incident (the wall's alarm stops)."""
        label, note = self.incident.value, self.note.value.strip() or None
        members = self.frame[self.frame["incident"] == label] if label else self.frame.iloc[:0]
        if members.empty:
            self.result[:] = [message(False, "nothing to acknowledge in that incident")]
            return
        cause = str(members["cause"].iloc[0] or "")
        spills = [int(s) for s in members["spill"]]

        def ack(session) -> None:
            acknowledge_cause(
                session,
                self.user,
                run=int(members["run"].iloc[0]),
                cause=cause or None,
                first_spill=min(spills),
                last_spill=max(spills),
                flag_ids=[] if cause else [int(i) for i in members["id"]],
                annotation=note,
            )

        ok, text = run_action(self._store, self.user, f"acknowledge {label}", ack)
        self.result[:] = [message(ok, text)]
        self.reload()

    def annotate_flag(self) -> None:
        fid, note = int(self.flag_id.value or 0), self.note.value
        ok, text = run_action(
            self._store,
            self.user,
            f"annotate flag {fid}",
            lambda s: actions.annotate_flag(s, fid, self.user, note),
        )
        self.result[:] = [message(ok, text)]
        self.reload()

    def __panel__(self):
        controls = (
            pn.Column(
                pn.Row(self.incident, self.ack_incident),
                pn.Row(self.flag_id, self.note, self.ack, self.annotate),
            )
            if self.user
            else pn.pane.HTML(
                '<div class="dqm-note">Log in (<a href="./login?next=/expert">/login</a>) to '
                "acknowledge or annotate flags.</div>"
            )
        )
        return pn.Column(
            pn.Row(self.run, self.subsystem, self.quality),
            pn.pane.Markdown(
                "Rows are grouped by incident (one cause over consecutive spills); click a row "
                "to open its evidence."
            ),
            self.table,
            controls,
            self.result,
            sizing_mode="stretch_width",
        )
