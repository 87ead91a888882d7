"""The columnar wire format: lossless round trip, zero-copy decoding, and every way a
payload can be malformed failing as a :class:`BatchError` with its own ``reason``."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dqm.core.events import (
    COLUMNS,
    DAQ_SOURCES,
    HEADER_SIZE,
    MAGIC,
    SCHEMA_VERSION,
    decode_batch,
    empty_columns,
    encode_batch,
)
from dqm.errors import BatchError

N = 50
RUN, SPILL, BATCH = 7, 12, 3


def random_columns(n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    """Valid columns filled with random values spanning each column's allowed range."""
    rng = np.random.default_rng(seed)
    cols = empty_columns(n)
    for col in COLUMNS:
        shape = (n, *col.shape)
        if col.np_dtype.kind == "f":
            cols[col.name][...] = rng.uniform(col.lo, col.hi, shape).astype(col.np_dtype)
        else:
            cols[col.name][...] = rng.integers(int(col.lo), int(col.hi), shape, endpoint=True)
    return cols


def payload_with(**changes) -> bytes:
    """A valid payload with selected cells overwritten: ``changes[name] = (index, value)``."""
    cols = random_columns()
    for name, (index, value) in changes.items():
        cols[name][index] = value
    return encode_batch(RUN, SPILL, BATCH, cols)


def header(magic=MAGIC, version=SCHEMA_VERSION, n=N) -> bytes:
    return struct.pack("<4sHHIIIII4x", magic, version, 0, RUN, SPILL, BATCH, n, 0)


def reason_of(payload: bytes) -> BatchError:
    with pytest.raises(BatchError) as info:
        decode_batch(payload)
    return info.value


# --------------------------------------------------------------------------- round trip


def test_every_column_round_trips_with_values_dtype_and_shape():
    # Given random valid columns
    cols = random_columns()
    # When encoded and decoded
    batch = decode_batch(encode_batch(RUN, SPILL, BATCH, cols))
    # Then the header fields and every column come back exactly, in the schema dtype
    assert (batch.run, batch.spill, batch.batch_index, batch.n_events) == (RUN, SPILL, BATCH, N)
    assert batch.version == SCHEMA_VERSION
    assert set(batch.columns) == {c.name for c in COLUMNS}
    for col in COLUMNS:
        got = batch[col.name]
        assert got.dtype == col.np_dtype, col.name
        assert got.shape == (N, *col.shape), col.name
        np.testing.assert_array_equal(got, cols[col.name], err_msg=col.name)


def test_encode_casts_to_the_schema_dtype():
    # Given float64 / int64 columns (what a user's numpy code naturally produces)
    cols = {
        k: v.astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int64)
        for k, v in random_columns().items()
    }
    # When round-tripped
    batch = decode_batch(encode_batch(RUN, SPILL, BATCH, cols))
    # Then every column is stored in its schema dtype with the same (float32-rounded) values
    for col in COLUMNS:
        assert batch[col.name].dtype == col.np_dtype
        np.testing.assert_array_equal(batch[col.name], cols[col.name].astype(col.np_dtype))


def test_decoding_is_zero_copy():
    # Given an encoded payload
    payload = encode_batch(RUN, SPILL, BATCH, random_columns())
    raw = np.frombuffer(payload, dtype=np.uint8)
    # When decoded
    batch = decode_batch(payload)
    # Then every column is a read-only view of the payload's bytes, not a copy
    for col in COLUMNS:
        arr = batch[col.name]
        assert np.shares_memory(arr, raw), col.name
        assert not arr.flags.writeable, col.name
        base = arr
        while isinstance(base, np.ndarray) and base.base is not None:
            base = base.base
        assert base is payload or (isinstance(base, memoryview) and base.obj is payload), col.name


def test_columns_start_aligned_to_their_itemsize():
    # Given a batch with an odd number of events (worst case for alignment)
    payload = encode_batch(RUN, SPILL, BATCH, random_columns(n=37))
    # When decoded, then every column's offset in the payload is a multiple of its itemsize
    offset = HEADER_SIZE
    for col in COLUMNS:
        assert offset % col.np_dtype.itemsize == 0, col.name
        offset += col.nbytes(37)
    assert offset == len(payload)
    decode_batch(payload)


# --------------------------------------------------------------------------- malformed


def test_shorter_than_the_header_is_truncated():
    # Given fewer bytes than a header, when decoded, then "truncated"
    for size in (0, 1, HEADER_SIZE - 1):
        assert reason_of(header()[:size]).reason == "truncated"


def test_bad_magic():
    err = reason_of(header(magic=b"ROOT") + payload_with()[HEADER_SIZE:])
    assert err.reason == "bad-magic"
    assert "ROOT" in str(err)


def test_unknown_version():
    err = reason_of(header(version=SCHEMA_VERSION + 1) + payload_with()[HEADER_SIZE:])
    assert err.reason == "unknown-version"
    assert str(SCHEMA_VERSION + 1) in str(err)


@pytest.mark.parametrize(
    ("field", "offset", "raw"),
    [
        ("flags", 6, struct.pack("<H", 1)),
        ("flags", 6, struct.pack("<H", 0x8000)),
        ("reserved", 24, struct.pack("<I", 1)),
        ("reserved", 24, struct.pack("<I", 0xFFFF_FFFF)),
        ("padding", 28, b"\0\0\0\x01"),
        ("padding", 28, b"\xff\0\0\0"),
    ],
)
def test_non_zero_flags_reserved_or_padding_is_a_bad_header(field, offset, raw):
    # Given a valid batch whose header flags, reserved word or padding is not zero
    payload = bytearray(payload_with())
    payload[offset : offset + len(raw)] = raw
    # When decoded, then "bad-header" naming the field: version 1 defines none of them
    err = reason_of(bytes(payload))
    assert err.reason == "bad-header"
    assert f"header {field} = " in err.detail and "must be 0" in err.detail


def test_encoder_flags_are_refused_by_the_decoder():
    # Given a batch encoded with a flag set (only tests do this), then the decoder refuses it
    payload = encode_batch(RUN, SPILL, BATCH, random_columns(), flags=2)
    assert reason_of(payload).reason == "bad-header"


def test_a_newer_version_with_flags_is_an_unknown_version_not_a_bad_header():
    # the meaning of the flags belongs to the version: the version is judged first
    payload = bytearray(header(version=SCHEMA_VERSION + 1) + payload_with()[HEADER_SIZE:])
    payload[6:8] = struct.pack("<H", 1)
    assert reason_of(bytes(payload)).reason == "unknown-version"


@pytest.mark.parametrize("n", [0, 2**32 - 1, 10_000_001])
def test_zero_or_huge_count(n):
    # Given a header announcing no events or an absurd number of them
    err = reason_of(header(n=n) + b"\0" * 64)
    # Then "bad-count" (and no attempt to allocate or read that much)
    assert err.reason == "bad-count"
    assert str(n) in str(err)


def test_truncated_column_data():
    payload = payload_with()
    for cut in (1, 2, 100, len(payload) - HEADER_SIZE):
        assert reason_of(payload[:-cut]).reason == "truncated", cut


def test_header_claiming_more_events_than_sent_is_truncated():
    payload = payload_with()
    assert reason_of(header(n=N + 1) + payload[HEADER_SIZE:]).reason == "truncated"


def test_extra_bytes():
    payload = payload_with()
    for extra in (b"\0", b"\0" * 4096):
        assert reason_of(payload + extra).reason == "trailing-bytes"
    assert reason_of(header(n=N - 1) + payload[HEADER_SIZE:]).reason == "trailing-bytes"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_scalar_column_names_column_event_and_channel(value):
    # Given p_bms of event 17 is not finite
    err = reason_of(payload_with(p_bms=(17, value)))
    # Then "non-finite", naming the column, the event and the channel
    assert err.reason == "non-finite"
    assert "'p_bms'" in str(err) and "event 17 " in str(err) and "channel 0" in str(err)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_cell_names_the_flat_channel(value):
    # Given ECAL main-layer cell (ix=2, iy=4) of event 3 is NaN/inf
    err = reason_of(payload_with(ecal=((3, 1, 2, 4), value)))
    # Then the channel is the flat index within the event: 1*36 + 2*6 + 4 = 52
    assert err.reason == "non-finite"
    assert "'ecal'" in str(err) and "event 3 " in str(err) and "channel 52" in str(err)


def test_negative_energy():
    err = reason_of(payload_with(hcal=((9, 2, 1, 1), -0.25)))
    assert err.reason == "out-of-range"
    assert "negative energy" in str(err)
    assert (
        "'hcal'" in str(err)
        and "event 9 " in str(err)
        and f"channel {2 * 9 + 1 * 3 + 1}" in str(err)
    )


@pytest.mark.parametrize("value", [500.5, -501.0, 1e6])
def test_position_beyond_500_mm(value):
    err = reason_of(payload_with(ms1_x=((4, 2), value)))
    assert err.reason == "out-of-range"
    assert "'ms1_x'" in str(err) and "event 4 " in str(err) and "channel 2" in str(err)
    assert "negative energy" not in str(err)


def test_position_at_the_limit_is_accepted():
    decode_batch(payload_with(ms2_y=((0, 1), 500.0)))
    decode_batch(payload_with(ms2_y=((0, 1), -500.0)))


def test_daq_source_bit_beyond_the_sources():
    # Given bit 8 set (there are only 8 sources, bits 0..7)
    err = reason_of(payload_with(daq_sources=(11, 1 << len(DAQ_SOURCES))))
    # Then "out-of-range" naming the column and event
    assert err.reason == "out-of-range"
    assert "'daq_sources'" in str(err) and "event 11 " in str(err)
    # and all eight bits set is fine
    decode_batch(payload_with(daq_sources=(11, (1 << len(DAQ_SOURCES)) - 1)))


def test_validation_can_be_skipped():
    batch = decode_batch(payload_with(p_bms=(0, np.nan)), validate=False)
    assert np.isnan(batch["p_bms"][0])


@pytest.mark.parametrize(
    "name, shape", [("ms1_x", (N, 2)), ("ecal", (N, 6, 6)), ("p_bms", (N - 1,)), ("event", (N, 1))]
)
def test_encode_wrong_column_shape(name, shape):
    # Given one column with the wrong per-event shape (or the wrong number of events)
    cols = random_columns()
    cols[name] = np.zeros(shape, dtype=cols[name].dtype)
    # When encoded, then "wrong-shape" naming the column
    with pytest.raises(BatchError) as info:
        encode_batch(RUN, SPILL, BATCH, cols)
    assert info.value.reason == "wrong-shape"
    assert f"'{name}'" in str(info.value)


def test_encode_missing_column():
    cols = random_columns()
    del cols["vhcal"]
    with pytest.raises(BatchError) as info:
        encode_batch(RUN, SPILL, BATCH, cols)
    assert info.value.reason == "missing-column"


# --------------------------------------------------------------------------- fuzzing

_VALID = encode_batch(RUN, SPILL, BATCH, random_columns(n=5))
_FUZZ = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _decode_or_batch_error(payload: bytes) -> None:
    try:
        decode_batch(payload)
    except BatchError as exc:
        assert exc.reason in {
            "truncated",
            "bad-magic",
            "unknown-version",
            "bad-count",
            "trailing-bytes",
            "non-finite",
            "out-of-range",
            "bad-header",
        }


@_FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_batch_error(data):
    _decode_or_batch_error(data)


@_FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_behind_a_valid_magic_raise_only_batch_error(data):
    _decode_or_batch_error(MAGIC + struct.pack("<H", SCHEMA_VERSION) + data)


@_FUZZ
@given(st.integers(0, len(_VALID)))
def test_random_truncations_raise_only_batch_error(cut):
    if cut == len(_VALID):
        decode_batch(_VALID)
    else:
        with pytest.raises(BatchError):
            decode_batch(_VALID[:cut])


@_FUZZ
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255))
def test_random_byte_corruption_raises_only_batch_error(position, value):
    corrupt = bytearray(_VALID)
    corrupt[position] = value
    _decode_or_batch_error(bytes(corrupt))
