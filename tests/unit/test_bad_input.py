"""Bad input, property-based: 10 000+ malformed batches and markers, 0 crashes.

Three layers, each asked the same question — does anything but a named refusal ever
come out?

* the wire format (:func:`dqm.events.decode_batch`): every kind of corruption of a
  valid batch is refused with *its* reason (not just "some" error);
* end-of-spill markers (:func:`dqm.stream.parse_eos`): accepted only within limits;
* the worker's message handling (``Worker._process``, the code every stream message
  goes through before the database): random messages never raise, each lands either
  in the group or among the dead letters with a reason; duplicated and out-of-order
  batches and markers give the histograms of the distinct batches, whatever the order.

Volume: Hypothesis picks the kind of corruption, the batch and a seed; numpy makes 8
corruptions of that kind per example, so 1 300 examples decode 10 400 malformed
batches in seconds. Add 1 200 markers, 800 random payloads and ~2 000 random stream
messages through the worker's handling (tests/unit/test_events.py fuzzes 2 000 more).
The worker end to end on real Redis and PostgreSQL with malformed messages
interleaved: tests/integration/test_bad_input_worker.py.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dqm.config import Settings
from dqm.errors import BatchError
from dqm.events import COLUMN_BY_NAME, COLUMNS, MAGIC, MAX_ID, SCHEMA_VERSION, decode_batch, empty_columns, encode_batch
from dqm.fill import Filler
from dqm.stream import EndOfSpill, Message, parse_eos
from dqm.variables import BatchView
from dqm.worker import Worker
from tests.helpers import assert_identical

FUZZ = dict(deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck))
HEADER = struct.Struct("<4sHHIIIII4x")
CALORIMETERS = ("ecal", "veto", "hcal", "vhcal")
FLOAT_COLUMNS = tuple(c.name for c in COLUMNS if c.np_dtype.kind == "f")
POSITIONS = ("ms1_x", "ms1_y", "ms2_x", "ms2_y")
BIT_COLUMNS = ("trigger_bits", "daq_sources")
F32_BIG, F32_TINY, F32_500 = (float(np.float32(v)) for v in (3e38, 1e-30, 500.001))  # exact float32 bounds
#: every reason a decoder may give; anything else (or any other exception) is a bug
REASONS = {"truncated", "bad-magic", "unknown-version", "bad-count", "trailing-bytes", "non-finite",
           "out-of-range", "bad-header", "bad-marker", "missing-payload", "unknown-type",
           "duplicate-batch", "duplicate-marker"}


def valid_columns(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random values spanning each column's whole allowed range (edges included)."""
    rng = np.random.default_rng(seed)
    cols = empty_columns(n)
    for col in COLUMNS:
        shape = (n, *col.shape)
        if col.np_dtype.kind == "f":
            values = rng.uniform(col.lo, col.hi, shape).astype(col.np_dtype)
            values.flat[0] = col.hi  # the limits themselves are valid
            cols[col.name][...] = values
        else:
            cols[col.name][...] = rng.integers(int(col.lo), int(col.hi), shape, endpoint=True)
    return cols


batch_shapes = st.tuples(st.integers(1, 6), st.integers(0, 2**32 - 1))
#: valid batches of 1..6 events, made once: drawing from them keeps 10 000 examples fast
POOL = [valid_columns(1 + i % 6, seed=i) for i in range(48)]


KINDS = ("version", "magic", "truncate", "trailing", "count", "non-finite", "negative", "channel",
         "position", "header-id")
VARIANTS = 8  # corruptions per example: Hypothesis picks kind, batch and seed; numpy makes 8 of that kind


def corrupt(cols: dict[str, np.ndarray], kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """One corruption of ``kind`` of a valid batch, and the reason the decoder must give."""
    n = len(cols["event"])
    if kind in ("non-finite", "negative", "channel", "position"):
        cols = {k: v.copy() for k, v in cols.items()}
        names = {"non-finite": FLOAT_COLUMNS, "negative": CALORIMETERS, "channel": BIT_COLUMNS, "position": POSITIONS}[kind]
        name = names[rng.integers(len(names))]
        col = COLUMN_BY_NAME[name]
        where = (rng.integers(n), *(rng.integers(d) for d in col.shape))
        if kind == "non-finite":
            value = [math.nan, math.inf, -math.inf][rng.integers(3)]
        elif kind == "negative":  # any strictly negative float32, from -1e-30 down to -3e38
            value = -float(np.float32(10 ** rng.uniform(-30, 38.4)))
        elif kind == "channel":
            value = int(rng.integers(int(col.hi) + 1, 2**16))
        else:  # beyond +-500 mm, finite
            value = float(np.float32(500.001 * 10 ** rng.uniform(0, 35.7))) * (1 if rng.integers(2) else -1)
        cols[name][where] = value
        return encode_batch(1, 2, 3, cols), "non-finite" if kind == "non-finite" else "out-of-range"
    payload = bytearray(encode_batch(1, 2, 3, cols))
    magic, version, flags, run, spill, batch, n_hdr, res = HEADER.unpack_from(payload)
    if kind == "version":
        version = int(rng.choice([0, *range(2, 9), *rng.integers(2, 2**16, 4)]))
        expected = "unknown-version"
    elif kind == "magic":
        magic = bytes(rng.integers(0, 256, 4, dtype=np.uint8))
        if magic == MAGIC:
            magic = b"N64C"
        expected = "bad-magic"
    elif kind == "truncate":
        return bytes(payload[: int(rng.integers(len(payload)))]), "truncated"
    elif kind == "trailing":
        return bytes(payload) + bytes(rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8)), "trailing-bytes"
    elif kind == "count":
        n_hdr = int(rng.choice([0, int(rng.integers(10_000_001, 2**32)), int(rng.integers(1, 10_000_001)), n + 1, max(n - 1, 0)]))
        if n_hdr == n:
            n_hdr = n + 1
        expected = "bad-count" if n_hdr == 0 or n_hdr > 10_000_000 else ("truncated" if n_hdr > n else "trailing-bytes")
    else:  # header-id: a run, spill or batch number the store cannot keep
        big = int(rng.integers(MAX_ID + 1, 2**32))
        which = int(rng.integers(3))
        run, spill, batch = (big if which == 0 else run, big if which == 1 else spill, big if which == 2 else batch)
        expected = "bad-header"
    HEADER.pack_into(payload, 0, magic, version, flags, run, spill, batch, n_hdr, res)
    return bytes(payload), expected


corruptions = st.tuples(st.sampled_from(KINDS), st.integers(0, len(POOL) - 1), st.integers(0, 2**32 - 1))


@settings(max_examples=1300, **FUZZ)
@given(corruptions)
def test_every_corruption_of_a_valid_batch_is_refused_with_its_reason(case):
    kind, index, seed = case
    rng = np.random.default_rng(seed)
    for _ in range(VARIANTS):
        payload, expected = corrupt(POOL[index], kind, rng)
        with pytest.raises(BatchError) as info:
            decode_batch(payload)
        assert info.value.reason == expected, info.value.detail


@settings(max_examples=200, **FUZZ)
@given(batch_shapes)
def test_valid_batches_spanning_every_range_are_accepted(shape):
    # the other side of the property: the limits refuse nothing that is valid
    n, seed = shape
    cols = valid_columns(n, seed)
    batch = decode_batch(encode_batch(MAX_ID, MAX_ID, MAX_ID, cols))
    for name, arr in cols.items():
        assert np.array_equal(batch[name], arr)


@settings(max_examples=800, **FUZZ)
@given(st.one_of(st.binary(max_size=2048), st.binary(max_size=64).map(lambda b: MAGIC + struct.pack("<H", SCHEMA_VERSION) + b)))
def test_random_bytes_are_refused_with_a_known_reason(payload):
    try:
        decode_batch(payload)
    except BatchError as exc:
        assert exc.reason in REASONS


ints_as_bytes = st.integers(-2**70, 2**70).map(lambda v: str(v).encode())
field_values = st.one_of(ints_as_bytes, st.binary(max_size=30), st.sampled_from([b"", b" 7 ", b"1e3", b"0x10", b"nan", b"7.0", b"1_000"]))


@st.composite
def markers(draw) -> dict[bytes, bytes]:
    fields = {b"type": b"eos"}
    for key in (b"run", b"spill", b"n_batches", b"n_events"):
        if draw(st.integers(0, 9)):  # sometimes missing
            fields[key] = draw(field_values)
    return fields


@settings(max_examples=1200, **FUZZ)
@given(markers())
def test_end_of_spill_markers_are_accepted_only_within_limits(fields):
    limits = {"run": MAX_ID, "spill": MAX_ID, "n_batches": 1_000_000, "n_events": MAX_ID}
    try:
        eos = parse_eos(fields)
    except BatchError as exc:
        assert exc.reason == "bad-marker" and len(exc.detail) < 300
        return
    assert isinstance(eos, EndOfSpill)
    for name, hi in limits.items():
        assert 0 <= getattr(eos, name) <= hi


# ------------------------------------------------------------------ the worker's handling


@pytest.fixture(scope="module")
def worker(specs):
    # no Redis, no database: with check_seen=False, _process touches neither
    return Worker(Settings(stream="fuzz"), redis_client=None, sessions=None, specs=specs, consumer="fuzz")  # type: ignore[arg-type]


@st.composite
def messages(draw) -> Message:
    kind = draw(st.sampled_from([b"batch", b"eos", b"", b"junk", None]))
    fields: dict[bytes, bytes] = {} if kind is None else {b"type": kind if kind != b"junk" else draw(st.binary(max_size=50))}
    if kind == b"batch":
        choice = draw(st.integers(0, 3))
        if choice == 0:
            kind, index, seed = draw(corruptions)
            fields[b"payload"] = corrupt(POOL[index], kind, np.random.default_rng(seed))[0]
        elif choice == 1:
            fields[b"payload"] = draw(st.binary(max_size=256))
        elif choice == 2:
            fields[b"payload"] = encode_batch(draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.sampled_from(POOL)))
    elif kind == b"eos":
        fields.update(draw(markers()))
    extra = draw(st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=3))
    for k, v in extra.items():
        fields.setdefault(k, v)
    return Message("0-0", fields)


@settings(max_examples=700, **FUZZ)
@given(st.lists(messages(), min_size=1, max_size=5))
def test_worker_handles_any_message_without_raising(worker, drawn):
    msgs = [Message(f"{i + 1}-0", m.fields) for i, m in enumerate(drawn)]
    worker._reset_group()
    worker._process(msgs, check_seen=False)
    # each message is either taken into the group or dead-lettered with a known reason
    for m in msgs:
        assert m.id in worker._held
        dead = [(reason, detail) for msg, reason, detail in worker._dead if msg.id == m.id]
        taken = [c for c in worker._open.values() if m.id in c.message_ids]
        assert len(dead) + len(taken) == 1
        if dead:
            assert dead[0][0] in REASONS and dead[0][1]
        elif m.type == b"batch":
            decode_batch(m.fields[b"payload"])  # only valid batches are filled


def _good_batches(spill: int, n_batches: int) -> list[bytes]:
    return [encode_batch(9, spill, b, valid_columns(3, 100 * spill + b)) for b in range(n_batches)]


GOOD = {spill: _good_batches(spill, 3) for spill in (1, 2)}


@settings(max_examples=100, **FUZZ)
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.sampled_from(["b0", "b1", "b2", "eos"])), min_size=1, max_size=10))
def test_duplicated_and_out_of_order_messages_count_each_batch_once(worker, specs, sequence):
    # Given any order of the batches and markers of two spills, with any repetitions
    worker._reset_group()
    msgs = []
    for i, (spill, what) in enumerate(sequence):
        if what == "eos":
            fields = {b"type": b"eos", b"run": b"9", b"spill": str(spill).encode(), b"n_batches": b"3", b"n_events": b"9"}
        else:
            fields = {b"type": b"batch", b"payload": GOOD[spill][int(what[1])]}
        msgs.append(Message(f"{i + 1}-0", fields))
    # When the worker processes them as one group
    worker._process(msgs, check_seen=False)
    # Then each distinct batch is filled once, each repeat is dead-lettered as a duplicate
    seen = set(sequence)
    n_dupes = len(sequence) - len(seen)
    assert len(worker._dead) == n_dupes
    assert {reason for _, reason, _ in worker._dead} <= {"duplicate-batch", "duplicate-marker"}
    filler = Filler(specs)
    for spill in (1, 2):
        indexes = sorted(int(w[1]) for s, w in seen if s == spill and w != "eos")
        c = worker._open.get((9, spill))
        if not indexes:
            assert c is None or c.hists is None
            continue
        truth = filler.book()
        for b in indexes:
            filler.fill(truth, BatchView(decode_batch(GOOD[spill][b]).columns))
        assert sorted(b for _, b in c.batches) == indexes
        assert_identical(truth, c.hists, where=f"spill {spill}")
