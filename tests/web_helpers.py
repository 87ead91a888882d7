"""Helpers of the web-app tests: a specs folder with known checks, spills closed by a worker.

The shipped specs' checks belong to another piece of work and may change; the web
tests need a check whose verdict they control. So they run on a copy of
``histograms/`` plus one extra file declaring a beam-centroid check (BAD when the
beam moves > 3 mm: injected with ``beam_shift:dx_mm=5``) and a dead-cell check.
"""

from __future__ import annotations

import re
from pathlib import Path

from dqm.pipeline.stream import publish_spill
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill

ROOT = Path(__file__).resolve().parents[1]

WEBTEST_SPECS = """
subsystem = "beam"

[[histogram]]
name = "webtest_beam_x"
title = "Beam x at MS1 station 0 (centroid watched)"
kind = "h1"
x = { expr = "ms1_x[0]", bins = 120, lo = -60, hi = 60, label = "x [mm]" }
control_room = true
instruction = "Beam off centre: call the SPS operator (CCC) to steer the beam back."

[[histogram.check]]
type = "beam_centroid"
params = { window_mm = 1.5, bad_window_mm = 3.0 }

[[histogram]]
name = "webtest_ecal_cells"
title = "ECAL cells (dead-cell check)"
subsystem = "calorimeter"
kind = "cellmap"
values = "ecal_main"
stat = "occupancy"
threshold_gev = 0.1
x_label = "ECAL cell x"
y_label = "ECAL cell y"
instruction = "Dead ECAL cell: call the ECAL expert."

[[histogram.check]]
type = "dead_channels"
params = { channel_name = "ECAL cell" }
"""

#: the anomaly that turns the beam tile BAD
BEAM_SHIFT = "beam_shift:dx_mm=5"


#: true once every Bokeh document of the page has rendered all its roots (BokehJS's
#: ``Document.is_idle``, the moment it sends ``DocumentReady``): the page a shifter sees once
#: it has opened, rather than one still drawing its tabs
DOCUMENTS_IDLE = (
    "() => window.Bokeh !== undefined && Bokeh.documents.length > 0"
    " && Bokeh.documents.every((d) => d.is_idle)"
)


def specs_with_checks(folder: Path, *, wall_plots: bool = True) -> Path:
    """Copy of the shipped specs plus the web-test checks; ``wall_plots=False`` keeps only
    the test's own control-room plot (building bokeh figures is what makes views slow)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "histograms").glob("*.toml"):
        text = f.read_text(encoding="utf-8")
        if not wall_plots:
            text = text.replace("control_room = true", "control_room = false")
        (folder / f.name).write_text(text, encoding="utf-8")
    (folder / "zz_webtest.toml").write_text(WEBTEST_SPECS, encoding="utf-8")
    return folder


def publish_one(
    r, stream: str, run: int, spill: int, anomaly: str | None = None, events: int = 3000
) -> None:
    cfg = SimConfig(run=run, events_per_spill=events, batch_size=1000)
    anomalies = (
        [
            parse_anomaly(
                f"{anomaly.split(':')[0]}@{spill}:{anomaly.split(':', 1)[1]}"
                if ":" in anomaly
                else f"{anomaly}@{spill}"
            )
        ]
        if anomaly
        else []
    )
    data = simulate_spill(cfg, spill, anomalies)
    assert data is not None
    publish_spill(r, stream, data, conditions=data.conditions)  # a repeat is harmless


#: warnings raised by a library's own code about another library, not by ours
KNOWN_WARNINGS = (
    (
        "/site-packages/bokeh/",
        "Pandas4Warning",
    ),  # bokeh 3.9 calls DataFrame.reset_index(inplace=True)
)
#: logged errors that are not faults: Tornado's write to a browser tab that just closed
# : (an unawaited write task; the same record in holoviz/panel#3341,
# perspective-dev/perspective#2969)
KNOWN_ERRORS = ("tornado.websocket.WebSocketClosedError",)


def server_log_problems(text: str) -> list[str]:
    """Tracebacks, ERROR records and Python warnings in a server's stderr (known library ones
    left out).

    The served app runs in its own process, so pytest's ``filterwarnings = error`` does
    not reach it, and an exception in a session callback only reaches the log. A record is
    a line that starts with a time stamp or is a warning, with the lines that follow it.
    """
    records: list[list[str]] = []
    for line in text.splitlines():
        if re.match(r"^\d{4}-\d\d-\d\dT|^\S.*?:\d+: \w+Warning: ", line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    problems = []
    for record in records:
        head, body = record[0], "\n".join(record)
        warning = re.match(r"^(.*?):\d+: (\w+Warning): ", head)
        if warning:
            if not any(
                where in warning.group(1) and kind == warning.group(2)
                for where, kind in KNOWN_WARNINGS
            ):
                problems.append(head)
        elif ("Traceback" in body or re.search(r"\bERROR\b", head)) and not any(
            k in body for k in KNOWN_ERRORS
        ):
            problems.append(head)
    return problems
