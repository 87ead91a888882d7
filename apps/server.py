"""Assemble the pages and serve them: one Panel server, one data refresher.

Pages: ``/`` (index), ``/control_room`` (the wall screen, read-only), ``/expert``
(drill-down; actions after ``/login``), ``/signoff`` (certify spill ranges), ``/summary``
(end of run or shift), ``/reports/<file>.pdf`` (the nightly reports another job writes
into ``<data_dir>/reports``) and ``/goodspills.json`` / ``.csv`` (the good-spill list).
Each page function builds fresh views for one browser session, bound to the process's single
:class:`~apps.datastore.DataStore`; nothing per-user lives at module level.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import panel as pn

from apps.auth import AuthConfig, current_user, make_auth_provider, remember_roles
from apps.control_room import ControlRoom
from apps.datastore import DataStore
from dqm.config import Settings

__all__ = ["build_pages", "make_server", "reports_dir"]

log = logging.getLogger("dqm.web")


def reports_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "reports"


def _arg(name: str, default: str = "") -> str:
    values = pn.state.session_args.get(name) if pn.state.session_args else None
    return values[0].decode("utf-8", "replace") if values else default


def _int_arg(name: str) -> int | None:
    try:
        return int(_arg(name))
    except ValueError:
        return None


def _index(auth: AuthConfig):
    def page():
        user = current_user()
        who = (
            f"logged in as <b>{user}</b> · <a href='./logout'>log out</a>"
            if user
            else (
                "<a href='./login'>expert log in</a>"
                if auth.enabled
                else "read-only server (no expert logins configured)"
            )
        )
        return pn.pane.HTML(
            f"""
<div style="font-family:'DejaVu Sans',Arial,sans-serif;font-size:20px;line-height:1.6">
<h1>NA64μ data-quality monitoring</h1>
<ul>
<li><a href="./control_room">Control room</a> — the wall screen
(add <code>?rotate=20</code> to cycle the plot tabs every 20 s)</li>
<li><a href="./expert">Expert pages</a> — histograms vs reference, cell maps, trends, flags,
audit trail, nightly reports</li>
<li><a href="./signoff">Sign-off</a> — certify spill ranges good or bad for physics</li>
<li><a href="./summary">Summary</a> — end of run or of shift: incidents, sign-off, good
fractions (<code>?run=N</code>)</li>
<li><a href="./goodspills.json">Good-spill list</a> (JSON, or
<a href="./goodspills.csv">CSV</a>) — what the analysis selects its data with</li>
</ul><p>{who}</p></div>""",
            sizing_mode="stretch_width",
        )

    return page


def _control_room(datastore: DataStore, settings: Settings):
    def page():
        try:
            rotate_s = float(_arg("rotate", "0") or 0)
        except ValueError:
            rotate_s = 0.0
        view = ControlRoom(
            datastore,
            stale_after_s=settings.stale_after_s,
            rotate_s=rotate_s,
            user=current_user(),
            alarm_repeat_s=settings.alarm_repeat_s,
        )
        view.start()
        return pn.Column(
            view,
            sizing_mode="stretch_width",
            styles={"background": "#0d0d0d", "min-height": "100vh"},
            stylesheets=[":host { margin: 0; }"],
        )

    return page


def _view_args() -> dict:
    """The expert view described by the query string (unreadable values left out)."""
    from apps.expert import VIEW_KEYS

    view: dict = {}
    for key in VIEW_KEYS:
        text = _arg(key)
        if not text:
            continue
        if key in ("histogram", "cmp_spills", "tab"):
            view[key] = text
        else:
            value = _int_arg(key)
            if value is not None:
                view[key] = value
    return view


def _expert(datastore: DataStore, settings: Settings, auth: AuthConfig):
    def page():
        from apps.expert import Expert

        # the Flags, audit and reference tables are Tabulators in tabs sent only when shown:
        # load its JavaScript with the page, or the first shown table is "not defined"
        pn.extension("tabulator")
        return Expert(
            datastore,
            reports_dir=reports_dir(settings),
            auth_enabled=auth.enabled,
            view=_view_args(),
        )

    return page


def _signoff(datastore: DataStore, auth: AuthConfig):
    def page():
        from apps.signoff import SignOff

        return SignOff(
            datastore, user=current_user(), auth_enabled=auth.enabled, run=_int_arg("run")
        )

    return page


def _summary(datastore: DataStore, auth: AuthConfig):
    def page():
        from apps.summary import Summary

        try:
            hours = float(_arg("hours", "8") or 8)
        except ValueError:
            hours = 8.0
        return Summary(
            datastore,
            user=current_user(),
            auth_enabled=auth.enabled,
            run=_int_arg("run"),
            since=_arg("since"),
            until=_arg("until"),
            hours=hours,
        )

    return page


def build_pages(datastore: DataStore, settings: Settings, auth: AuthConfig) -> dict:
    return {
        "/": _index(auth),
        "control_room": _control_room(datastore, settings),
        "expert": _expert(datastore, settings, auth),
        "signoff": _signoff(datastore, auth),
        "summary": _summary(datastore, auth),
    }


def make_server(
    datastore: DataStore, settings: Settings, auth: AuthConfig, *, host: str, port: int
):
    """A started-but-not-running Panel (bokeh/tornado) server for all pages."""
    from apps.goodspills_http import goodspill_routes

    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    remember_roles(auth)
    kwargs: dict = {"extra_patterns": goodspill_routes(datastore)}
    if auth.enabled:
        kwargs.update(auth_provider=make_auth_provider(auth), cookie_secret=auth.cookie_secret)
    # browsers may open the websocket only from these host:port (BOKEH_ALLOW_WS_ORIGIN overrides,
    # e.g. behind a proxy)
    names = {host, "localhost", "127.0.0.1"} | (
        {socket.gethostname(), socket.getfqdn()} if host in ("0.0.0.0", "::") else set()
    )
    origins = sorted(f"{name}:{port}" for name in names if name not in ("0.0.0.0", "::"))
    return pn.serve(
        build_pages(datastore, settings, auth),
        port=port,
        address=host,
        websocket_origin=origins,
        show=False,
        start=False,
        title={
            "/": "NA64μ DQM",
            "control_room": "NA64μ DQM — control room",
            "expert": "NA64μ DQM — expert",
            "signoff": "NA64μ DQM — sign-off",
            "summary": "NA64μ DQM — summary",
        },
        static_dirs={"reports": str(folder)},
        verbose=False,
        **kwargs,
    )
