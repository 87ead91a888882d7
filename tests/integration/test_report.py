"""The nightly report and the ROOT export on a real PostgreSQL.

Given a simulated period with injected anomalies, stored through the worker's store
functions and judged by the real close hook, the ``dqm report`` command writes a PDF
whose pages (turned into PNG by ``pdftoppm``) are not blank, whose text names every
flagged spill, and whose page count follows the spec files — a histogram added to
the specs folder appears without code. ``dqm export`` writes a ROOT file that uproot
reads back equal, bin by bin, to the stored histograms, and ``dqm reference import``
turns such a file back into the active reference.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import uproot
from matplotlib.image import imread
from sqlalchemy import select

from dqm.config import Settings
from dqm.core.fill import Filler
from dqm.core.roles import Actor
from dqm.core.specs import SUBSYSTEMS, load_specs
from dqm.report.data import Period, ReportData
from dqm.report.layout import TRENDS, plan_pages
from dqm.report.sample import store_simulated_spill
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store.actions import acknowledge_flag
from dqm.store.certification import certify
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.flags import make_close_hook
from dqm.store.models import Flag
from dqm.store.references import active_reference, reference_histograms, set_reference
from dqm.store.spills import run_histograms
from tests.helpers import ROOT

pytestmark = pytest.mark.integration

#: Extra spec histograms, in their own file, with checks that the injected anomalies trip.
#: (The shipped specs' own checks may change; these keep the test's flags predictable.)
CHECKED_SPECS = """
subsystem = "calorimeter"

[[histogram]]
name = "qa_ecal_occupancy"
title = "QA ECAL main occupancy (dead-cell check)"
kind = "cellmap"
values = "ecal_main"
stat = "occupancy"
threshold_gev = 0.1
instruction = "Dead ECAL cell: call the ECAL expert."
[[histogram.check]]
type = "dead_channels"

[[histogram]]
name = "qa_beam_x"
title = "QA beam x at MS1 station 2 (centroid check)"
kind = "h1"
subsystem = "beam"
x = { expr = "ms1_x[2]", bins = 60, lo = -60, hi = 60, label = "x [mm]" }
[[histogram.check]]
type = "beam_centroid"
instruction = "Beam moved at the target: call the beam-line physicist."
params = { x_key = "beam_x_mean_ms1_2", y_key = "beam_y_mean_ms1_2" }
"""

ANOMALIES = {(2, 4): "dead_cell@4:detector=ecal,cell=1/2/2", (2, 7): "beam_shift@7:dx_mm=6"}
LOST_BATCH = (2, 10)  # closed incomplete: flagged whatever the checks
NEVER_RECEIVED = (
    (2, 8),
    (2, 9),
)  # never reached the DQM: no row, only the gap in the numbers shows them


def _specs_dir(tmp_path: Path, extra: str = "") -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    for toml in (ROOT / "histograms").glob("*.toml"):
        shutil.copy(toml, folder / toml.name)
    (folder / "zz_qa.toml").write_text(CHECKED_SPECS + extra)
    return folder


def _store_period(settings: Settings, specs, runs=((1, 6), (2, 10))) -> None:
    """Run 1: 6 clean spills (made the reference); run 2: 10 spills, three of them bad."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    filler = Filler(specs)
    hook = make_close_hook(settings, specs)
    try:
        for run, n in runs:
            cfg = SimConfig(run=run, n_spills=n, events_per_spill=2500, batch_size=1000, seed=3)
            for spill in range(1, n + 1):
                if (run, spill) in NEVER_RECEIVED:
                    continue
                text = ANOMALIES.get((run, spill))
                data = simulate_spill(cfg, spill, [parse_anomaly(text)] if text else [])
                with sessions.begin() as session:
                    store_simulated_spill(
                        session, filler, data, [hook], lose_batches=int((run, spill) == LOST_BATCH)
                    )
            if run == 1:
                with sessions.begin() as session:
                    set_reference(session, 1, "test", comment="clean run")
    finally:
        engine.dispose()


def _dqm(settings: Settings, specs_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DQM_DATABASE_URL": settings.database_url,
        "DQM_SPECS_DIR": str(specs_dir),
        "DQM_DATA_DIR": settings.data_dir,
        "HOME": settings.data_dir,
    }
    return subprocess.run(
        [sys.executable, "-m", "dqm", *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_report_of_a_period_with_anomalies(settings, tmp_path, artifacts):
    # Given a period of two runs on PostgreSQL with a dead ECAL cell, a beam shift and a lost batch
    specs_dir = _specs_dir(tmp_path)
    specs = load_specs(specs_dir)
    _store_period(settings, specs)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        flagged = sorted(
            {
                (f.run, f.spill)
                for f in session.scalars(
                    select(Flag).where(Flag.quality >= 2, Flag.check != "rollup")
                )
            }
        )
        # and at the end of the shift run 1 is signed off and one flag of run 2 acknowledged
        certify(session, 1, list(SUBSYSTEMS), 1, 6, "good", Actor("sam"), "clean reference run")
        dead = session.scalars(
            select(Flag).where(
                Flag.run == 2, Flag.spill == 4, Flag.quality == 4, Flag.check != "rollup"
            )
        ).first()
        acknowledge_flag(session, dead.id, Actor("sam"), annotation="known dead cell, ticket 42")
        session.commit()
    engine.dispose()
    assert {(2, 4), (2, 7), LOST_BATCH} <= set(flagged)
    # When the report of today is written by the command
    out = tmp_path / "report.pdf"
    res = _dqm(
        settings,
        specs_dir,
        "report",
        "--date",
        datetime.now().astimezone().date().isoformat(),
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    shutil.copy(out, artifacts / "report-test.pdf")
    assert "rendering pages" in res.stderr and "##########" in res.stderr  # the progress bar
    # Then every page, as PNG, has content (not a blank sheet)
    png_dir = tmp_path / "png"
    png_dir.mkdir()
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(out), str(png_dir / "page")],
        check=True,
        capture_output=True,
    )
    pngs = sorted(png_dir.glob("page-*.png"))
    for png in pngs:
        pixels = imread(png)[..., :3].mean(axis=2)
        assert pixels.std() > 0.02, f"{png.name} looks blank"
        assert (pixels < 0.5).mean() > 0.002, f"{png.name} has almost no ink"
    # and the text names every flagged spill, with its explanation and the shifter instruction
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True
    ).stdout
    pages = text.split("\f")[:-1]
    assert len(pages) == len(pngs)
    for run, spill in flagged:
        assert re.search(rf"(^|\s){run}\s*/\s*{spill}\s", text), (
            f"flagged spill {run}/{spill} missing from the report"
        )
    for phrase in (
        "Dead ECAL cell: call the ECAL expert",
        "Beam moved at the target",
        "1 dead cell(s): cell (2,2)",
        "spill closed incomplete",
    ):
        assert phrase in text, phrase
    assert "reference run 1" in text and "runs" in text.lower() and "Muons on target" in text
    # and the cover names the spills that never arrived
    assert re.search(r"Spills not received\s+run 2: 8–9 \(2\)", text), (
        "the gap in run 2 is not on the cover"
    )
    assert all(f"page {i} / {len(pages)}" in p for i, p in enumerate(pages, 1))
    # and the sign-off section lists each run's status, signers, fractions and incidents
    signoff = " ".join(" ".join(p.split()) for p in pages if "incidents and sign-off" in p)
    assert "Run 1 — signed off — signed by sam" in signoff
    assert "Run 2 — not signed — signed by nobody yet" in signoff
    assert "good spills 100.0 % (certified 100.0 %)" in signoff
    assert "by sam; notes: known dead cell, ticket 42" in signoff
    assert "NOT acknowledged" in signoff  # the beam shift nobody acknowledged
    # and the page count follows the specs: cover, sign-off, flag table, ⌈n/4⌉ pages per
    # subsystem, trends
    table_pages = sum("WARNING and BAD flags" in p for p in pages)
    signoff_pages = sum("Runs: incidents and sign-off" in p for p in pages)
    per_subsystem = sum(math.ceil(len(v) / 4) for v in specs.by_subsystem().values() if v)
    assert signoff_pages >= 1
    assert len(pages) == 1 + signoff_pages + table_pages + per_subsystem + math.ceil(
        len(TRENDS) / 6
    )
    # and a histogram that is only in the added spec file is drawn, with its title
    assert "QA ECAL main occupancy" in text and "QA beam x at MS1 station 2" in text
    meta = subprocess.run(["pdfinfo", str(out)], check=True, capture_output=True, text=True).stdout
    assert "NA64μ data-quality report" in meta and "CreationDate" in meta


def test_added_spec_histogram_adds_a_page(settings, tmp_path):
    # Given a specs folder, and a copy with just enough beam histograms added to need one more beam
    # page
    base_dir = _specs_dir(tmp_path)
    n_beam = len(load_specs(base_dir).by_subsystem()["beam"])  # drawn 4 to a page
    extra = "".join(
        f"""
[[histogram]]
name = "qa_extra_{i}"
title = "QA extra beam histogram {i}"
kind = "h1"
subsystem = "beam"
x = {{ expr = "ms1_y[1]", bins = 40, lo = -60, hi = 60, label = "y [mm]" }}
"""
        for i in range((4 - n_beam % 4) % 4 + 1)
    )
    more_dir = tmp_path / "more"
    shutil.copytree(base_dir, more_dir)
    (more_dir / "zz_qa.toml").write_text(CHECKED_SPECS + extra)
    # When a day is reported with the extended folder (a day without beam: every planned page, quick
    # to draw)
    out = tmp_path / "more.pdf"
    res = _dqm(settings, more_dir, "report", "--date", "2001-01-01", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    info = subprocess.run(["pdfinfo", str(out)], check=True, capture_output=True, text=True).stdout
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    # Then it has one page more than the plan of the same day with the original folder, and draws
    # the additions
    start = datetime(2001, 1, 1, tzinfo=UTC)
    empty = ReportData(
        Period("empty", start, start + timedelta(days=1)),
        load_specs(base_dir),
        start,
        [],
        [],
        [],
        {},
    )
    assert pages == len(plan_pages(empty)) + 1
    text = subprocess.run(
        ["pdftotext", str(out), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "QA extra beam histogram 0" in text


def test_root_export_reproduces_stored_histograms_and_imports_as_reference(settings, tmp_path):
    # Given two short runs stored on PostgreSQL
    specs_dir = _specs_dir(tmp_path)
    specs = load_specs(specs_dir)
    _store_period(settings, specs, runs=((1, 2), (2, 4)))
    out = tmp_path / "run2.root"
    # When run 2 is exported with its per-spill histograms
    res = _dqm(settings, specs_dir, "export", "--run", "2", "--per-spill", "--out", str(out))
    assert res.returncode == 0, res.stderr
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        stored = run_histograms(session, 2)
    # Then uproot reads back every spec histogram as TH1D/TH2D equal to the stored sum, bin by bin
    with uproot.open(out) as f:
        classes = f.classnames()
        for spec in specs:
            h = stored[spec.name]
            th = f[spec.name]
            assert classes[f"{spec.name};1"] == ("TH1D" if h.ndim == 1 else "TH2D")
            assert th.title == spec.title
            inner = tuple(
                slice(1, -1) if not (a.traits.underflow and a.traits.overflow) else slice(None)
                for a in h.axes
            )
            values = th.values(flow=True)[inner]
            assert np.array_equal(values, h.values(flow=True)), spec.name
            assert np.array_equal(th.variances(flow=True)[inner], h.values(flow=True)), (
                spec.name
            )  # Poisson errors
            assert th.member("fXaxis").member("fTitle") == (h.axes[0].label or "")
        # and the per-spill directories hold each spill's own histograms
        assert f["spill_0003/p_bms"].values().sum() > 0
        assert "run 2" in str(f["dqm_info"])
    # When that file is imported as the reference of run 2
    res = _dqm(
        settings, specs_dir, "reference", "import", str(out), "--run", "2", "--user", "tester"
    )
    assert res.returncode == 0, res.stderr
    # Then it is the active reference, with the same histograms bin by bin, and it was audited
    with sessions() as session:
        ref = active_reference(session)
        assert (ref.run, ref.set_by) == (2, "tester") and ref.blob is not None
        imported = reference_histograms(session, ref)
    engine.dispose()
    assert set(imported) == set(specs.names)
    for name, h in stored.items():
        assert np.array_equal(imported[name].view(flow=True), h.view(flow=True)), name
