"""Shifter instructions stored once (issue 15, item 5): every reader shows the same words.

Given the same spills stored twice by the live path on real PostgreSQL — once with each
flag row keeping its own copy of the check's instruction (as before), once with the texts
written once into ``check_texts`` — then the flagged rows of the second store leave the text
out, and the flags read back (ORM rows, the expert page's table, a flag's evidence, the
report's flags and ``dqm flags``) give the same text in both.
"""

from __future__ import annotations

import contextlib
import io
from argparse import Namespace

import pytest
from sqlalchemy import func, select, text

from dqm.commands import flags as flags_command
from dqm.core.fill import Filler
from dqm.report.data import Period, gather
from dqm.report.sample import store_simulated_spill
from dqm.sim.anomalies import parse_anomaly
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store import flag_texts, flags
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.evidence import flag_evidence
from dqm.store.frames import flags_frame
from dqm.store.models import CheckText, Flag
from dqm.store.references import set_reference
from tests.conftest import migrated_database

ANOMALIES = {3: "dead_cell@3:detector=ecal,cell=1/2/2", 5: "beam_shift@5:dx_mm=6"}


def _store(url: str, settings, specs) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    filler = Filler(specs)
    hook = flags.make_close_hook(settings.with_(database_url=url), specs)
    try:
        cfg = SimConfig(run=1, n_spills=3, events_per_spill=2000, batch_size=1000, seed=3)
        for spill in range(1, 4):
            with sessions.begin() as session:
                store_simulated_spill(session, filler, simulate_spill(cfg, spill, []), [hook])
        with sessions.begin() as session:
            set_reference(session, 1, "test", comment="clean run")
        cfg = SimConfig(run=2, n_spills=6, events_per_spill=2000, batch_size=1000, seed=4)
        for spill in range(1, 7):
            anomaly = [parse_anomaly(ANOMALIES[spill])] if spill in ANOMALIES else []
            with sessions.begin() as session:
                store_simulated_spill(session, filler, simulate_spill(cfg, spill, anomaly), [hook])
    finally:
        engine.dispose()


def _shown(url: str, settings, specs) -> dict:
    """What each reader shows of every flag's instruction."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            rows = session.scalars(select(Flag).order_by(Flag.run, Flag.spill, Flag.id)).all()
            orm = [(f.run, f.spill, f.histogram, f.check, f.quality, f.instruction) for f in rows]
            frame = flags_frame(session, min_quality=0, limit=100_000)
            table = sorted(
                zip(
                    frame["run"],
                    frame["spill"],
                    frame["histogram"],
                    frame["check"],
                    frame["instruction"],
                    strict=True,
                )
            )
            evidence = [flag_evidence(session, f.id)["instruction"] for f in rows]
            report = [
                (f.run, f.spill, f.check, f.instruction)
                for f in gather(session, specs, Period.for_run(2)).flags
            ]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            flags_command.run(
                Namespace(run=2, spill=None, subsystem=None, quality="GOOD"),
                settings.with_(database_url=url),
            )
    finally:
        engine.dispose()
    return {
        "orm": orm,
        "table": table,
        "evidence": evidence,
        "report": report,
        "cli": out.getvalue(),
    }


def test_flags_read_back_give_the_same_text(pg_url, pg_admin_url, settings, specs, monkeypatch):
    # Given the spills stored with the texts written once
    _store(pg_url, settings, specs)
    compact = _shown(pg_url, settings, specs)
    # and the same spills stored with every row keeping its copy (the writer before this)
    with migrated_database(pg_admin_url) as full_url:
        with monkeypatch.context() as m:
            m.setattr(flags, "compact_instructions", lambda *a, **k: None)
            _store(full_url, settings, specs)
        flag_texts._CACHE.clear()
        full = _shown(full_url, settings, specs)
        engine = make_engine(full_url)
        with make_sessionmaker(engine)() as session:
            assert session.scalar(select(func.count()).select_from(CheckText)) == 0
        engine.dispose()
    engine = make_engine(pg_url)
    try:
        with make_sessionmaker(engine)() as session:
            # Then the second store's flagged check rows left the text out, written once instead
            blank = session.scalar(
                text("SELECT count(*) FROM flags WHERE quality > 0 AND instruction = ''")
            )
            assert blank and blank > 10
            assert session.scalar(select(func.count()).select_from(CheckText)) > 0
    finally:
        engine.dispose()
    # And every reader shows the same text as with the copies
    assert any(row[-1] for row in full["orm"])  # the comparison is about real texts
    for reader in ("orm", "table", "evidence", "report", "cli"):
        assert compact[reader] == full[reader], reader


@pytest.fixture(autouse=True)
def _fresh_cache():
    flag_texts._CACHE.clear()
    yield
    flag_texts._CACHE.clear()
