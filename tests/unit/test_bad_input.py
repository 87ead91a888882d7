"""Bad input, property-based: 10 000+ malformed batches and markers, 0 crashes.

Three layers, each asked the same question — does anything but a named refusal ever
come out?

* the wire format (:func:`dqm.core.events.decode_batch`): every kind of corruption of a
  valid batch is refused with *its* reason (not just "some" error);
* end-of-spill markers (:func:`dqm.pipeline.stream.parse_eos`): accepted only within limits;
  run conditions (:func:`dqm.core.conditions.decode_conditions`): valid ones, and the same
  with a field missing, replaced by any JSON value or added, or any bytes;
* the worker's message handling (``Worker.intake.process``, the code every stream message
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

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dqm.config import Settings
from dqm.core.conditions import decode_conditions
from dqm.core.events import MAGIC, MAX_ID, SCHEMA_VERSION, decode_batch, encode_batch
from dqm.core.fill import Filler
from dqm.core.variables import BatchView
from dqm.errors import BatchError
from dqm.pipeline.stream import EndOfSpill, Message, parse_eos
from dqm.pipeline.worker import Worker
from tests.helpers import assert_identical
from tests.malformed import KINDS, POOL, REASONS, corrupt, valid_columns

FUZZ = dict(
    deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
)
batch_shapes = st.tuples(st.integers(1, 6), st.integers(0, 2**32 - 1))
VARIANTS = (
    8  # corruptions per example: Hypothesis picks kind, batch and seed; numpy makes 8 of that kind
)


corruptions = st.tuples(
    st.sampled_from(KINDS), st.integers(0, len(POOL) - 1), st.integers(0, 2**32 - 1)
)


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
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=64).map(lambda b: MAGIC + struct.pack("<H", SCHEMA_VERSION) + b),
    )
)
def test_random_bytes_are_refused_with_a_known_reason(payload):
    try:
        decode_batch(payload)
    except BatchError as exc:
        assert exc.reason in REASONS


ints_as_bytes = st.integers(-(2**70), 2**70).map(lambda v: str(v).encode())
field_values = st.one_of(
    ints_as_bytes,
    st.binary(max_size=30),
    st.sampled_from([b"", b" 7 ", b"1e3", b"0x10", b"nan", b"7.0", b"1_000"]),
)


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


@pytest.mark.parametrize(
    "raw",
    [b" 7", b"7 ", b"+7", b"-0", b"1_000", b"7.0", b"1e3", b"0x10", b"", "7".encode("utf-16")],
)
def test_marker_integers_are_ascii_decimal_digits_only(raw):
    # Given a marker whose run is written in any other way than ASCII decimal digits
    fields = {b"type": b"eos", b"run": raw, b"spill": b"2", b"n_batches": b"3", b"n_events": b"9"}
    # Then it is refused, naming the field (docs/wire-format.md: the marker)
    with pytest.raises(BatchError) as info:
        parse_eos(fields)
    assert info.value.reason == "bad-marker" and "'run'" in info.value.detail
    # while the same marker written as redis-py writes an int is accepted
    assert parse_eos({**fields, b"run": str(7).encode()}).run == 7


# ------------------------------------------------------------------ the worker's handling


@pytest.fixture(scope="module")
def worker(specs):
    # no Redis, no database: with check_seen=False, _process touches neither
    return Worker(
        Settings(stream="fuzz"), redis_client=None, sessions=None, specs=specs, consumer="fuzz"
    )  # type: ignore[arg-type]


VALID_CONDITIONS = {
    "version": 1,
    "run": 7,
    "beam_particle": "mu-",
    "p_beam_gev": 160.0,
    "polarity": "-",
    "mbpl_field_integral_tm": 1.5,
    "trigger": "physics",
    "setup": "fuzz",
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@st.composite
def conditions_payloads(draw) -> bytes:
    """Valid conditions, the same with one field removed, replaced or added, or any bytes."""
    choice = draw(st.integers(0, 3))
    doc = dict(VALID_CONDITIONS)
    if choice == 0:
        return draw(st.binary(max_size=200))
    if choice == 1:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif choice == 2:
        doc[draw(st.sampled_from(sorted(doc)))] = draw(JSON_VALUES)
    elif choice == 3:
        doc[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return json.dumps(doc).encode()


@st.composite
def messages(draw) -> Message:
    kind = draw(st.sampled_from([b"batch", b"eos", b"conditions", b"", b"junk", None]))
    fields: dict[bytes, bytes] = (
        {} if kind is None else {b"type": kind if kind != b"junk" else draw(st.binary(max_size=50))}
    )
    if kind == b"batch":
        choice = draw(st.integers(0, 3))
        if choice == 0:
            kind, index, seed = draw(corruptions)
            fields[b"payload"] = corrupt(POOL[index], kind, np.random.default_rng(seed))[0]
        elif choice == 1:
            fields[b"payload"] = draw(st.binary(max_size=256))
        elif choice == 2:
            fields[b"payload"] = encode_batch(
                draw(st.integers(0, 5)),
                draw(st.integers(0, 5)),
                draw(st.integers(0, 5)),
                draw(st.sampled_from(POOL)),
            )
    elif kind == b"eos":
        fields.update(draw(markers()))
    elif kind == b"conditions" and draw(st.booleans()):
        fields[b"payload"] = draw(conditions_payloads())
    extra = draw(st.dictionaries(st.binary(max_size=8), st.binary(max_size=16), max_size=3))
    for k, v in extra.items():
        fields.setdefault(k, v)
    return Message("0-0", fields)


@settings(max_examples=700, **FUZZ)
@given(st.lists(messages(), min_size=1, max_size=5))
def test_worker_handles_any_message_without_raising(worker, drawn):
    msgs = [Message(f"{i + 1}-0", m.fields) for i, m in enumerate(drawn)]
    worker.hand.clear()
    worker.markers.clear()  # a fresh stream: no end-of-spill marker known yet
    worker.intake.process(msgs, check_seen=False)
    # each message is taken into the group, set aside as late (a batch beyond the count its
    # spill's end-of-spill marker announced) or dead-lettered with a known reason
    for m in msgs:
        assert m.id in worker.hand.held
        dead = [(reason, detail) for msg, reason, detail in worker.hand.dead if msg.id == m.id]
        taken = [c for c in worker.hand.spills.values() if m.id in c.message_ids]
        taken += [c for mid, c in worker.hand.conditions if mid == m.id]
        late = [c for c in worker.hand.spills.values() if m.id in {i for i, _ in c.late}]
        assert len(dead) + len(taken) + len(late) == 1
        if dead:
            assert dead[0][0] in REASONS and dead[0][1]
        elif m.type == b"batch":
            decode_batch(m.fields[b"payload"])  # only valid batches are filled
        elif m.type == b"conditions":
            decode_conditions(m.fields[b"payload"])  # only valid conditions are taken


def _good_batches(spill: int, n_batches: int) -> list[bytes]:
    return [encode_batch(9, spill, b, valid_columns(3, 100 * spill + b)) for b in range(n_batches)]


GOOD = {spill: _good_batches(spill, 3) for spill in (1, 2)}


@settings(max_examples=100, **FUZZ)
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2]), st.sampled_from(["b0", "b1", "b2", "eos"])),
        min_size=1,
        max_size=10,
    )
)
def test_duplicated_and_out_of_order_messages_count_each_batch_once(worker, specs, sequence):
    # Given any order of the batches and markers of two spills, with any repetitions
    worker.hand.clear()
    worker.markers.clear()  # a fresh stream: no end-of-spill marker known yet
    msgs = []
    for i, (spill, what) in enumerate(sequence):
        if what == "eos":
            fields = {
                b"type": b"eos",
                b"run": b"9",
                b"spill": str(spill).encode(),
                b"n_batches": b"3",
                b"n_events": b"9",
            }
        else:
            fields = {b"type": b"batch", b"payload": GOOD[spill][int(what[1])]}
        msgs.append(Message(f"{i + 1}-0", fields))
    # When the worker processes them as one group
    worker.intake.process(msgs, check_seen=False)
    # Then each distinct batch is filled once, before or after its marker (the marker
    # announces 3 batches: none is beyond it), each repeat is dead-lettered as a duplicate
    seen = set(sequence)
    n_dupes = len(sequence) - len(seen)
    assert len(worker.hand.dead) == n_dupes
    assert {reason for _, reason, _ in worker.hand.dead} <= {"duplicate-batch", "duplicate-marker"}
    filler = Filler(specs)
    for spill in (1, 2):
        indexes = sorted(int(w[1]) for s, w in seen if s == spill and w != "eos")
        c = worker.hand.spills.get((9, spill))
        assert c is None or not c.late
        if not indexes:
            assert c is None or c.hists is None
            continue
        truth = filler.book()
        for b in indexes:
            filler.fill(truth, BatchView(decode_batch(GOOD[spill][b]).columns))
        assert sorted(b for _, b in c.batches) == indexes
        assert_identical(truth, c.hists, where=f"spill {spill}")


def test_a_batch_beyond_the_count_its_marker_announced_is_set_aside_in_any_order(worker):
    # Given batches 0 and 2 of a spill, its marker announcing 2 batches, then batch 1
    worker.hand.clear()
    worker.markers.clear()
    eos = {b"type": b"eos", b"run": b"9", b"spill": b"1", b"n_batches": b"2", b"n_events": b"6"}
    payloads = GOOD[1]
    msgs = [
        Message("1-0", {b"type": b"batch", b"payload": payloads[0]}),
        Message("2-0", eos),
        Message("3-0", {b"type": b"batch", b"payload": payloads[2]}),
        Message("4-0", {b"type": b"batch", b"payload": payloads[1]}),
    ]
    # When the worker handles them
    worker.intake.process(msgs, check_seen=False)
    # Then batches 0 and 1 are counted (1 after the marker is no less the spill's), and
    # batch 2 — beyond the 2 announced — is set aside as late, not filled
    c = worker.hand.spills[(9, 1)]
    assert sorted(b for _, b in c.batches) == [0, 1]
    assert [m for m, _ in c.late] == ["3-0"] and not worker.hand.dead
