"""End-of-spill markers that disagree with what arrived: one rule, whatever the read size.

Given spills whose markers announce fewer or more batches or events than were sent,
a batch beyond its marker's count, a marker before its batches and a second marker,
when a real worker process consumes them reading one message at a time
(``DQM_READ_COUNT=1``) and when it reads many at once (``DQM_READ_COUNT=64``), then both
store identical spills, histograms and flags: every disagreement is a BAD DAQ flag that
says both sides, and every dead letter keeps its original fields.
"""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from dqm.checks import Quality
from dqm.pipeline.stream import publish_batches, publish_spill
from dqm.sim.simulate import SimConfig, simulate_spill
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import Flag, Spill
from dqm.store.spills import spill_histograms
from tests.conftest import migrated_database
from tests.helpers import assert_identical, closed_count, start_worker, wait_until

pytestmark = pytest.mark.integration

RUN = 61
CFG = SimConfig(run=RUN, events_per_spill=5000, intensity_jitter=0.0, batch_size=1000)


def _marker(r, stream: str, spill: int, n_batches: int, n_events: int) -> None:
    r.xadd(
        stream,
        {
            b"type": b"eos",
            b"run": RUN,
            b"spill": spill,
            b"n_batches": n_batches,
            b"n_events": n_events,
        },
    )


def _publish_scenarios(r, stream: str) -> dict[int, str]:
    """The stream both workers read; returns what each spill is."""
    s = {n: simulate_spill(CFG, n) for n in range(1, 9)}
    b = {n: s[n].batches() for n in s}  # 5 batches of 1000 events each
    # 1: as it should be, after the run's conditions (as the DAQ announces them)
    publish_spill(r, stream, s[1], conditions=CFG.conditions())
    # 2: five batches before a marker that announces four (and 4000 events)
    publish_batches(r, stream, RUN, 2, b[2], 5000, marker=False)
    _marker(r, stream, 2, 4, 4000)
    # 3: four batches, a marker saying four, then a fifth batch (index 4: beyond the count)
    publish_batches(r, stream, RUN, 3, b[3][:4], 4000, marker=False)
    _marker(r, stream, 3, 4, 4000)
    publish_batches(r, stream, RUN, 3, b[3][4:], 1000, marker=False)
    # 4: three batches and a marker announcing four: incomplete after the timeout
    publish_batches(r, stream, RUN, 4, b[4][:3], 3000, marker=False)
    _marker(r, stream, 4, 4, 4000)
    # 5: batches as announced, events not (the marker says 4990)
    publish_batches(r, stream, RUN, 5, b[5], 5000, marker=False)
    _marker(r, stream, 5, 5, 4990)
    # 6: as it should be, then a second marker for it
    publish_spill(r, stream, s[6])
    _marker(r, stream, 6, 5, 5000)
    # 7: the marker first, then its five batches: as good as the other order
    _marker(r, stream, 7, 5, 5000)
    publish_batches(r, stream, RUN, 7, b[7], 5000, marker=False)
    # 8: as it should be
    publish_spill(r, stream, s[8])
    return {
        1: "fine",
        2: "more",
        3: "beyond",
        4: "incomplete",
        5: "events",
        6: "second marker",
        7: "marker first",
        8: "fine",
    }


def _stored(url: str) -> tuple[dict, dict, dict]:
    engine = make_engine(url, writer=False)
    try:
        with make_sessionmaker(engine)() as session:
            spills = {
                sp.spill: (
                    sp.status,
                    sp.received_batches,
                    sp.n_events,
                    sp.expected_batches,
                    sp.expected_events,
                    sp.late_batches,
                    sp.late_events,
                    sp.quality,
                )
                for sp in session.scalars(select(Spill).where(Spill.run == RUN))
            }
            hists = {
                sp.spill: spill_histograms(session, sp.id)
                for sp in session.scalars(select(Spill).where(Spill.run == RUN))
            }
            flags = {
                (f.spill, f.subsystem, f.histogram, f.check): (f.quality, f.value, f.explanation)
                for f in session.scalars(select(Flag).where(Flag.run == RUN))
            }
            return spills, hists, flags
    finally:
        engine.dispose()


def _dead_letters(r, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in r.xrange(stream)]


def _consume(settings, redis_client, read_count: int):
    """Publish the scenarios to a fresh stream and let one worker process judge them."""
    scenarios = _publish_scenarios(redis_client, settings.stream)
    proc = start_worker(
        settings, f"r{read_count}", DQM_READ_COUNT=str(read_count), DQM_SPILL_TIMEOUT_S="2"
    )
    try:
        wait_until(
            lambda: closed_count(settings.database_url, RUN) == len(scenarios),
            90,
            what="every spill closed",
        )
        wait_until(  # the late batch of spill 3 may come after its close: it is judged again
            lambda: _stored(settings.database_url)[0][3][5] == 1, 30, what="spill 3's late batch"
        )
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    return _stored(settings.database_url), _dead_letters(redis_client, settings.dead_letter_stream)


def test_marker_disagreements_are_flagged_alike_whatever_the_read_count(
    settings, redis_client, pg_admin_url
):
    # Given the same stream of spills read one message at a time ...
    one = _consume(settings, redis_client, 1)
    # ... and many at once, on another database and stream
    with migrated_database(pg_admin_url) as url:
        other = settings.with_(
            database_url=url,
            stream=settings.stream + ":b",
            group=settings.group + ":b",
            dead_letter_stream=settings.dead_letter_stream + ":b",
            channel=settings.channel + ":b",
        )
        many = _consume(other, redis_client, 64)
    (spills, hists, flags), dead = one
    (spills_many, hists_many, flags_many), dead_many = many
    # Then spills, histograms and flags are identical
    assert spills == spills_many
    for n, h in hists.items():
        assert_identical(h, hists_many[n], where=f"spill {n}")
    # (values to rounding: the summaries' float moments are summed over however many
    # partials the grouping made; the histograms are integers and bit-identical)
    assert flags.keys() == flags_many.keys()
    for key, (quality, value, text) in flags.items():
        other_quality, other_value, other_text = flags_many[key]
        assert (quality, text) == (other_quality, other_text), key
        assert (value is None) == (other_value is None), key
        assert value is None or value == pytest.approx(other_value, rel=1e-9, abs=1e-12), key
    # and each disagreement is one BAD DAQ flag saying what was announced and what arrived
    daq = {
        spill: (check, quality, text)
        for (spill, subsystem, histogram, check), (quality, _, text) in flags.items()
        if subsystem == "daq" and histogram is None and check != "rollup"
    }
    assert set(daq) == {2, 3, 4, 5}  # 7 (marker first) is not one
    assert all(q == Quality.BAD for _, q, _ in daq.values())
    assert daq[2][0] == "marker_mismatch"
    assert "announced 4 batches / 4 000 events, 5 batches / 5 000 events arrived" in daq[2][2]
    assert daq[3][0] == "marker_mismatch"
    assert "1 batch / 1 000 events more arrived beyond the marker's count" in daq[3][2]
    assert daq[4][0] == "spill_complete" and "3 of 4 batches (3 000 of 4 000 events)" in daq[4][2]
    assert daq[5][0] == "marker_mismatch" and "5 000 events arrived" in daq[5][2]
    assert spills[2][:3] == ("complete", 5, 5000)  # what came before the marker counts
    assert spills[3][:3] == ("complete", 4, 4000) and spills[3][5:7] == (1, 1000)
    assert spills[4][:2] == ("incomplete", 3)
    assert spills[7][:3] == ("complete", 5, 5000)  # marker first: every batch counted
    for n in (1, 7, 8):
        assert spills[n][5:7] == (0, 0)  # nothing late where all was right
    # and every dead letter keeps its original fields (a second marker read in a later
    # commit group too), with the same reasons in both
    for letters in (dead, dead_many):
        reasons = sorted(f[b"reason"].decode() for f in letters)
        assert reasons == ["beyond-marker", "duplicate-marker"]
        for fields in letters:
            if fields[b"type"] == b"eos":
                assert fields[b"run"] == str(RUN).encode() and fields[b"spill"] == b"6"
                assert fields[b"n_batches"] == b"5" and fields[b"n_events"] == b"5000"
            else:
                assert fields[b"type"] == b"batch" and len(fields[b"payload"]) > 1000
