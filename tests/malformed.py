"""Malformed event batches on demand, each with the reason the decoder must give.

Shared by the property-based tests (tests/unit/test_bad_input.py, where Hypothesis
picks kind, batch and seed) and the worker end to end (tests/integration/
test_bad_input_worker.py, where they are interleaved with good spills on a stream).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from dqm.core.events import COLUMN_BY_NAME, COLUMNS, MAGIC, MAX_ID, empty_columns, encode_batch

HEADER = struct.Struct("<4sHHIIIII4x")
CALORIMETERS = ("ecal", "veto", "hcal", "vhcal")
FLOAT_COLUMNS = tuple(c.name for c in COLUMNS if c.np_dtype.kind == "f")
POSITIONS = ("ms1_x", "ms1_y", "ms2_x", "ms2_y")
BIT_COLUMNS = ("trigger_bits", "daq_sources")
#: every reason a decoder may give; anything else (or any other exception) is a bug
REASONS = {
    "truncated",
    "bad-magic",
    "unknown-version",
    "bad-count",
    "trailing-bytes",
    "non-finite",
    "out-of-range",
    "bad-header",
    "bad-marker",
    "missing-payload",
    "unknown-type",
    "duplicate-batch",
    "duplicate-marker",
    "bad-conditions",
}


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


#: valid batches of 1..6 events, made once: drawing from them keeps 10 000 examples fast
POOL = [valid_columns(1 + i % 6, seed=i) for i in range(48)]


KINDS = (
    "version",
    "magic",
    "truncate",
    "trailing",
    "count",
    "non-finite",
    "negative",
    "channel",
    "position",
    "header-id",
    "header-reserved",
)


def corrupt(cols: dict[str, np.ndarray], kind: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """One corruption of ``kind`` of a valid batch, and the reason the decoder must give."""
    n = len(cols["event"])
    if kind in ("non-finite", "negative", "channel", "position"):
        cols = {k: v.copy() for k, v in cols.items()}
        names = {
            "non-finite": FLOAT_COLUMNS,
            "negative": CALORIMETERS,
            "channel": BIT_COLUMNS,
            "position": POSITIONS,
        }[kind]
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
            value = float(np.float32(500.001 * 10 ** rng.uniform(0, 35.7))) * (
                1 if rng.integers(2) else -1
            )
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
        return bytes(payload) + bytes(
            rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8)
        ), "trailing-bytes"
    elif kind == "count":
        n_hdr = int(
            rng.choice(
                [
                    0,
                    int(rng.integers(10_000_001, 2**32)),
                    int(rng.integers(1, 10_000_001)),
                    n + 1,
                    max(n - 1, 0),
                ]
            )
        )
        if n_hdr == n:
            n_hdr = n + 1
        expected = (
            "bad-count"
            if n_hdr == 0 or n_hdr > 10_000_000
            else ("truncated" if n_hdr > n else "trailing-bytes")
        )
    elif kind == "header-reserved":  # flags, reserved word or padding not zero
        which = int(rng.integers(3))
        if which == 0:
            flags = int(rng.integers(1, 2**16))
        elif which == 1:
            res = int(rng.integers(1, 2**32))
        else:
            HEADER.pack_into(payload, 0, magic, version, flags, run, spill, batch, n_hdr, res)
            payload[28 + int(rng.integers(4))] = int(rng.integers(1, 256))
            return bytes(payload), "bad-header"
        expected = "bad-header"
    else:  # header-id: a run, spill or batch number the store cannot keep
        big = int(rng.integers(MAX_ID + 1, 2**32))
        which = int(rng.integers(3))
        run, spill, batch = (
            big if which == 0 else run,
            big if which == 1 else spill,
            big if which == 2 else batch,
        )
        expected = "bad-header"
    HEADER.pack_into(payload, 0, magic, version, flags, run, spill, batch, n_hdr, res)
    return bytes(payload), expected
