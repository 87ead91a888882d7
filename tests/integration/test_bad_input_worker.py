"""Malformed messages interleaved with good spills, through real workers on real services.

Given six good spills and 300 bad messages between them on one stream — every kind of
corrupted batch, random bytes, missing fields, unknown types, bad and duplicate
end-of-spill markers, a re-published batch, a whole spill published twice, one spill
with its marker first — when two worker processes consume the stream, then neither
crashes, each bad message is in the dead-letter stream exactly once with a reason, and
the good spills are stored identical to a one-process fill.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from sqlalchemy import func, select

from dqm.pipeline.stream import publish_batches, publish_spill
from dqm.store.engine import make_engine, make_sessionmaker
from dqm.store.models import Spill
from tests.helpers import (
    assert_identical,
    closed_count,
    one_process_fill,
    small_run,
    start_worker,
    stored,
    wait_until,
)
from tests.malformed import KINDS, POOL, REASONS, corrupt

pytestmark = pytest.mark.integration

RUN = 31


def bad_messages(rng: np.random.Generator, count: int) -> list[dict[bytes, bytes]]:
    """``count`` malformed stream entries of every sort, in random order."""
    out: list[dict[bytes, bytes]] = []
    while len(out) < count:
        sort = int(rng.integers(8))
        if sort <= 3:  # a corrupted batch (the header-id kind used to crash the commit)
            payload, _ = corrupt(
                POOL[int(rng.integers(len(POOL)))], KINDS[int(rng.integers(len(KINDS)))], rng
            )
            out.append({b"type": b"batch", b"payload": payload})
        elif sort == 4:
            out.append(
                {
                    b"type": b"batch",
                    b"payload": bytes(
                        rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8)
                    ),
                }
            )
        elif sort == 5:
            out.append(
                {b"type": b"batch"}
                if rng.integers(2)
                else {b"type": bytes(rng.integers(0, 256, 5, dtype=np.uint8))}
            )
        else:
            # an end-of-spill marker with a bad field: not a number, negative, or beyond the store
            fields = {
                b"type": b"eos",
                b"run": str(RUN + 100).encode(),
                b"spill": b"1",
                b"n_batches": b"4",
                b"n_events": b"4000",
            }
            key = [b"run", b"spill", b"n_batches", b"n_events"][int(rng.integers(4))]
            fields[key] = [b"many", b"-1", b"99999999999", b"", b"4.5"][int(rng.integers(5))]
            out.append(fields)
    return out


def test_malformed_messages_between_good_spills(settings, redis_client, specs, tmp_path):
    # Given six good spills with 300 bad messages between them, and duplicates of good data
    rng = np.random.default_rng(7)
    spills = small_run(run=RUN, n_spills=6)
    bad_ids: list[str] = []
    twin: dict[
        str, str
    ] = {}  # a copy of good data -> the original (whichever comes second is refused)

    def add(fields: dict[bytes, bytes], original: str | None = None) -> None:
        bad_ids.append(redis_client.xadd(settings.stream, fields).decode())
        if original:
            twin[bad_ids[-1]] = original

    r = redis_client

    def marker_fields(sp) -> dict[bytes, bytes]:
        return {
            b"type": b"eos",
            b"run": str(RUN).encode(),
            b"spill": str(sp.spill).encode(),
            b"n_batches": str(sp.n_batches).encode(),
            b"n_events": str(sp.n_events).encode(),
        }

    ids: dict[int, list[str]] = {}
    for i, spill in enumerate(spills):
        if i == 2:  # out of order: the marker before the batches (valid, must be stored);
            # it announces the spill's batches (a marker of 0 batches, as publish_batches([])
            # wrote here before, closed the spill empty unless one read happened to hold both)
            marker = r.xadd(settings.stream, marker_fields(spill))
            ids[i] = [
                x.decode()
                for x in publish_batches(
                    r,
                    settings.stream,
                    spill.run,
                    spill.spill,
                    spill.batches(),
                    spill.n_events,
                    marker=False,
                )
                + [marker]
            ]
        else:
            ids[i] = [x.decode() for x in publish_spill(r, settings.stream, spill)]
        for fields in bad_messages(rng, 50):
            add(fields)
        if i == 1:  # a batch of the previous spill published again
            add({b"type": b"batch", b"payload": spills[0].batches()[1]}, ids[0][1])

    # and at the end a second marker for a good spill, and the first spill published again
    add(marker_fields(spills[3]), ids[3][-1])
    for k, payload in enumerate(spills[0].batches()):
        add({b"type": b"batch", b"payload": payload}, ids[0][k])
    add(marker_fields(spills[0]), ids[0][-1])
    assert len(bad_ids) >= 300
    # When two worker processes consume the stream
    logs = [open(tmp_path / f"w{i}.log", "wb") for i in range(2)]
    procs = [start_worker(settings, f"w{i}", stderr=logs[i]) for i in range(2)]
    try:
        wait_until(
            lambda: (
                closed_count(settings.database_url, RUN) == 6
                and r.xlen(settings.dead_letter_stream) >= len(bad_ids)
                and r.xpending(settings.stream, settings.group)["pending"] == 0
            ),
            60,
            what="6 closed spills, every bad message dead-lettered, every message acknowledged",
        )
        # Then no worker crashed
        assert [p.poll() for p in procs] == [None, None], "a worker died on bad input"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
        for f in logs:
            f.close()
    assert codes == [0, 0]
    text = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert "Traceback" not in text
    # and each bad message is in the dead-letter stream exactly once, with a reason
    dead = r.xrange(settings.dead_letter_stream)
    sources = [f[b"source_id"].decode() for _, f in dead]
    assert len(sources) == len(set(sources)) == len(bad_ids)
    for mid in bad_ids:  # of a good message and its copy, either one may be refused (not both)
        assert mid in sources or twin.get(mid) in sources, f"bad message {mid} not dead-lettered"
    reasons = {f[b"reason"].decode() for _, f in dead}
    assert reasons <= REASONS | {"late"} and all(f[b"detail"] for _, f in dead)
    assert {
        "bad-header",
        "bad-marker",
        "truncated",
        "non-finite",
        "out-of-range",
        "late",
    } <= reasons
    # and each keeps the message as it was published (a late copy of a closed spill included),
    # so nothing is lost: an expert can inspect or replay it
    published = {mid.decode(): fields for mid, fields in r.xrange(settings.stream)}
    for _, f in dead:
        original = published[f[b"source_id"].decode()]
        kept = {
            k: v for k, v in f.items() if k not in (b"reason", b"detail", b"source_id", b"consumer")
        }
        assert kept == original, (
            f"dead letter {f[b'source_id']!r} ({f[b'reason']!r}) lost its fields"
        )
    # and the good spills, and only they, are stored identical to the one-process fill
    expected = one_process_fill(specs, spills)
    got = stored(settings.database_url, RUN)
    assert {k: v[0] for k, v in got.items()} == {k: "complete" for k in expected}
    for key, hists in expected.items():
        assert_identical(hists, got[key][1], where=f"spill {key}")
    engine = make_engine(settings.database_url, writer=False)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Spill)) == 6
    engine.dispose()
