"""Closing a spill from the partials a worker holds in memory gives what decoding them gives.

Given one spill's batches stored as three partial rows — two by the closing worker (held
in its memory, :class:`~dqm.store.closing.HeldPartials`) and one by another worker, in
between — and a twin spill with the same batches closed without that memory, when both
are closed, then the stored histograms are identical bin by bin and the summaries equal;
a memory that names a row the spill does not have is not used (the rows are decoded).
"""

from __future__ import annotations

import pytest

from dqm.core.events import decode_batch
from dqm.core.fill import Filler
from dqm.core.histio import decode_histograms
from dqm.core.specs import load_specs
from dqm.core.summary import accumulate
from dqm.core.variables import BatchView
from dqm.sim.settings import SimConfig
from dqm.sim.simulate import simulate_spill
from dqm.store.closing import HeldPartials, try_close
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import SpillHistograms
from dqm.store.spills import Contribution, commit_group
from tests.helpers import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def filler():
    return Filler(load_specs(ROOT / "histograms"))


@pytest.fixture(params=["postgresql", "sqlite"])
def sessions(request):
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _group(filler, run, batches, first_index, prefix, marker=None):
    """One commit group's contribution: these batches filled into fresh histograms."""
    c = Contribution(run=run, spill=1, hists=filler.book())
    for i, payload in enumerate(batches):
        view = BatchView(decode_batch(payload).columns)
        filler.fill(c.hists, view)
        accumulate(c.moments, view)
        c.n_events += view.n_events
        c.batches.append((f"{prefix}-{i}", first_index + i))
    c.marker = marker
    return c


def _store(sessions, consumer, c):
    with sessions.begin() as session:
        out = commit_group(session, "s", consumer, [c])
    return out.partials[(c.run, 1)]


def _close(sessions, filler, spill_id, held=None):
    with sessions.begin() as session:
        closed = try_close(session, spill_id, filler.book, held=held)
        assert closed is not None
        blob = session.get(SpillHistograms, spill_id).blob
        return decode_histograms(blob)[0], dict(closed.summary)


def _two_twins(sessions, filler):
    """Runs 1 and 2: the same 6 batches as partials A (2), B (2, other worker), A (2)."""
    cfg = SimConfig(n_spills=1, events_per_spill=6000, batch_size=1000, seed=5)
    batches = simulate_spill(cfg, 1).batches()
    held = {}
    spill_ids = {}
    for run in (1, 2):
        mine = HeldPartials()
        for k, consumer in enumerate(("A", "B", "A")):
            marker = (f"{run}-eos", 6, 6000) if k == 2 else None
            c = _group(filler, run, batches[2 * k : 2 * k + 2], 2 * k, f"{run}-{k}", marker)
            hists, moments = c.hists, dict(c.moments)
            spill_ids[run], partial_id = _store(sessions, consumer, c)
            if consumer == "A":
                mine.add(partial_id, hists, moments)
        held[run] = mine
    return spill_ids, held


def test_held_partials_close_like_decoded_ones(sessions, filler):
    # Given twin spills, each stored as partials A, B, A; A's held in memory for run 1 only
    spill_ids, held = _two_twins(sessions, filler)
    # When run 1 closes with its held partials and run 2 by decoding every row
    with_memory = _close(sessions, filler, spill_ids[1], held=held[1])
    decoded = _close(sessions, filler, spill_ids[2])
    # Then every histogram is identical bin by bin and the summaries agree
    assert set(with_memory[0]) == set(decoded[0])
    for name, h in decoded[0].items():
        assert (with_memory[0][name].view(flow=True) == h.view(flow=True)).all(), name
    assert with_memory[1]["n_events"] == decoded[1]["n_events"] == 6000
    for key, value in decoded[1].items():
        assert with_memory[1][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    # and the held sums were not changed by the close (a rolled-back close may retry)
    assert sum(h.sum() for h in held[1].hists.values()) < sum(
        h.sum() for h in with_memory[0].values()
    )


def test_memory_naming_a_missing_row_is_not_used(sessions, filler):
    # Given twin spills and a memory for run 1 that names a partial row it does not have
    spill_ids, held = _two_twins(sessions, filler)
    stale = held[1]
    stale.partial_ids.append(10**9)
    # When run 1 closes with it
    with_memory = _close(sessions, filler, spill_ids[1], held=stale)
    decoded = _close(sessions, filler, spill_ids[2])
    # Then the close decoded the rows instead: the same histograms as the twin's
    for name, h in decoded[0].items():
        assert (with_memory[0][name].view(flow=True) == h.view(flow=True)).all(), name
