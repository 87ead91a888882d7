"""Columnar, versioned event batches — the wire format between DAQ/simulator and workers.

Why columnar: a worker fills ~30 histograms from the same few columns, so each column
must be one contiguous array it can hand straight to boost-histogram. Decoding is a
header ``struct.unpack`` plus one ``np.frombuffer`` per column (zero-copy views).

Layout of schema version 1 (little endian)::

    header  <4sHHIIII  magic b"N64B", version, flags, run, spill, batch_index, n_events
            <I         reserved (keeps the header 28 bytes -> pad to 32 for alignment)
            4 bytes    padding
    columns            in COLUMNS order, each n_events * prod(shape) * itemsize bytes

Flags, reserved and padding must be zero: version 1 gives them no meaning, so a non-zero
value is a producer that means something this worker cannot read (``bad-header``), not
noise to ignore. The full specification is ``docs/wire-format.md``.

4-byte columns come first and 2-byte columns last, so every column starts aligned.
Changing a column (adding a station, a cell) means a new ``SCHEMA_VERSION``.

Validation is cheap (one min and one max per column): NaN fails every comparison, so
the same two reductions catch NaN, ±inf and out-of-range values. Only when a column
fails do we search for the offending event to name it in the error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from dqm.core.numbering import MAX_ID
from dqm.errors import BatchError

__all__ = [
    "SCHEMA_VERSION",
    "MAGIC",
    "Column",
    "COLUMNS",
    "COLUMN_BY_NAME",
    "DAQ_SOURCES",
    "SOURCE_COLUMNS",
    "COLUMN_SOURCE",
    "source_bits",
    "TRIGGER_BITS",
    "N_MS1",
    "N_MS2",
    "EventBatch",
    "encode_batch",
    "decode_batch",
    "empty_columns",
]

MAGIC = b"N64B"
SCHEMA_VERSION = 1
_HEADER = struct.Struct("<4sHHIIIII4x")  # 32 bytes
HEADER_SIZE = _HEADER.size

#: Tracking stations of the default layout (NA64MU.md: MS1 has 2-4, MS2 sits behind MBPL).
N_MS1 = 3
N_MS2 = 2

#: Front-end sources whose presence the DAQ reports per event (bit i of ``daq_sources``).
DAQ_SOURCES: tuple[str, ...] = ("BMS", "MS1", "MS2", "ECAL", "VETO", "HCAL", "VHCAL", "TRIGGER")
#: Trigger bits: physics (calorimeter-based), beam (random/beam counter), calibration.
TRIGGER_BITS: tuple[str, ...] = ("physics", "beam", "calibration", "random")

_E_MAX_GEV = 400.0  # no single cell/module can see more than the beam energy (+margin)
_P_MAX_GEV = 400.0
_XY_MAX_MM = 500.0


@dataclass(frozen=True)
class Column:
    """One per-event column: name, dtype, per-event shape, allowed value range, unit, meaning."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    lo: float
    hi: float
    unit: str
    doc: str

    def __post_init__(self) -> None:
        # precomputed: decode runs per message and np.prod/np.dtype cost microseconds each
        per_event = 1
        for d in self.shape:
            per_event *= d
        object.__setattr__(self, "np_dtype", np.dtype(self.dtype))
        object.__setattr__(self, "per_event", per_event)
        object.__setattr__(self, "itemsize", np.dtype(self.dtype).itemsize)

    np_dtype: np.dtype = field(init=False, repr=False, compare=False)
    per_event: int = field(init=False, repr=False, compare=False)
    itemsize: int = field(init=False, repr=False, compare=False)

    def nbytes(self, n_events: int) -> int:
        return n_events * self.per_event * self.itemsize


COLUMNS: tuple[Column, ...] = (
    Column("event", "<u4", (), 0, 2**32 - 1, "", "event number within the spill"),
    Column("time_in_spill_s", "<f4", (), 0.0, 60.0, "s", "trigger time since start of spill"),
    Column("p_bms", "<f4", (), 0.0, _P_MAX_GEV, "GeV", "incoming momentum, beam momentum station"),
    Column("p_ms2", "<f4", (), 0.0, _P_MAX_GEV, "GeV", "outgoing momentum, MS2 behind MBPL"),
    Column("ms1_x", "<f4", (N_MS1,), -_XY_MAX_MM, _XY_MAX_MM, "mm", "x per MS1 station"),
    Column("ms1_y", "<f4", (N_MS1,), -_XY_MAX_MM, _XY_MAX_MM, "mm", "y per MS1 station"),
    Column("ms2_x", "<f4", (N_MS2,), -_XY_MAX_MM, _XY_MAX_MM, "mm", "x per MS2 station"),
    Column("ms2_y", "<f4", (N_MS2,), -_XY_MAX_MM, _XY_MAX_MM, "mm", "y per MS2 station"),
    Column("ecal", "<f4", (2, 6, 6), 0.0, _E_MAX_GEV, "GeV", "ECAL [preshower, main] x 6x6 cells"),
    Column("veto", "<f4", (3, 2), 0.0, _E_MAX_GEV, "GeV", "VETO 3 planes x 2 counters"),
    Column("hcal", "<f4", (4, 3, 3), 0.0, _E_MAX_GEV, "GeV", "HCAL 4 modules x 3x3 cells"),
    Column("vhcal", "<f4", (2, 2), 0.0, _E_MAX_GEV, "GeV", "veto HCAL around the beam hole"),
    Column("trigger_bits", "<u2", (), 0, 2 ** len(TRIGGER_BITS) - 1, "", "bit i = TRIGGER_BITS[i]"),
    Column(
        "daq_sources",
        "<u2",
        (),
        0,
        2 ** len(DAQ_SOURCES) - 1,
        "",
        "bit i = DAQ_SOURCES[i] read out",
    ),
)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

#: Columns each DAQ source fills. In an event without that source (its ``daq_sources`` bit
#: clear) they hold no measurement: the DAQ writes 0, which lies inside every range, so only
#: the bit tells a missing track from a track at x = 0. Columns of no source (event number,
#: time in spill, the ``daq_sources`` word itself) come from the event builder.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "BMS": ("p_bms",),
    "MS1": ("ms1_x", "ms1_y"),
    "MS2": ("p_ms2", "ms2_x", "ms2_y"),
    "ECAL": ("ecal",),
    "VETO": ("veto",),
    "HCAL": ("hcal",),
    "VHCAL": ("vhcal",),
    "TRIGGER": ("trigger_bits",),
}
#: column -> the DAQ source that fills it (absent: filled by the event builder)
COLUMN_SOURCE: dict[str, str] = {c: s for s, cols in SOURCE_COLUMNS.items() for c in cols}
assert set(SOURCE_COLUMNS) == set(DAQ_SOURCES) and set(COLUMN_SOURCE) <= set(COLUMN_BY_NAME)


def source_bits(sources: Iterable[str]) -> int:
    """The ``daq_sources`` bit mask of ``sources`` (names from :data:`DAQ_SOURCES`)."""
    bits = 0
    for name in sources:
        bits |= 1 << DAQ_SOURCES.index(name)
    return bits


_FLOAT_COLUMNS = tuple(c for c in COLUMNS if c.dtype.startswith("<f"))
_NONNEG_F32_LIMIT = {
    c.name: np.array(c.hi, dtype="<f4").view("<u4")[()]
    for c in _FLOAT_COLUMNS
    if c.lo == 0.0 and c.dtype == "<f4"
}


@dataclass(frozen=True)
class EventBatch:
    """A decoded batch: header fields plus read-only column views (``columns[name]``)."""

    run: int
    spill: int
    batch_index: int
    columns: Mapping[str, np.ndarray]
    version: int = SCHEMA_VERSION

    @property
    def n_events(self) -> int:
        return int(self.columns["event"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


def empty_columns(n_events: int) -> dict[str, np.ndarray]:
    """Zero-filled writable columns for ``n_events`` (the simulator fills these in place)."""
    return {c.name: np.zeros((n_events, *c.shape), dtype=c.np_dtype) for c in COLUMNS}


def encode_batch(
    run: int, spill: int, batch_index: int, columns: Mapping[str, np.ndarray], *, flags: int = 0
) -> bytes:
    """Serialise one batch. Columns are cast to the schema dtype; shapes are checked.

    ``flags`` must stay 0 for version 1 (the decoder refuses anything else); it is a
    parameter only so that tests can make such a batch.
    """
    n = int(np.asarray(columns["event"]).shape[0])
    parts = [_HEADER.pack(MAGIC, SCHEMA_VERSION, flags, run, spill, batch_index, n, 0)]
    for col in COLUMNS:
        if col.name not in columns:
            raise BatchError("missing-column", f"column '{col.name}' is missing")
        arr = np.ascontiguousarray(columns[col.name], dtype=col.np_dtype)
        if arr.shape != (n, *col.shape):
            raise BatchError(
                "wrong-shape",
                f"column '{col.name}' has shape {arr.shape}, expected {(n, *col.shape)}",
            )
        parts.append(arr.tobytes())
    return b"".join(parts)


def expected_size(n_events: int) -> int:
    """Exact payload size of a version-1 batch with ``n_events`` events."""
    return HEADER_SIZE + sum(c.nbytes(n_events) for c in COLUMNS)


_MAX_EVENTS = 10_000_000  # a single batch larger than this is a corrupt count, not data


def decode_batch(payload: bytes | memoryview, *, validate: bool = True) -> EventBatch:
    """Decode and (by default) validate a batch; raises :class:`BatchError` naming the problem."""
    if len(payload) < HEADER_SIZE:
        raise BatchError("truncated", f"payload of {len(payload)} bytes is shorter than the header")
    magic, version, flags, run, spill, batch_index, n, reserved = _HEADER.unpack_from(payload, 0)
    if magic != MAGIC:
        raise BatchError("bad-magic", f"payload starts with {magic!r}, expected {MAGIC!r}")
    if version != SCHEMA_VERSION:
        raise BatchError(
            "unknown-version", f"schema version {version}; this worker reads {SCHEMA_VERSION}"
        )
    padding = bytes(payload[HEADER_SIZE - 4 : HEADER_SIZE])
    for name, value, shown in (
        ("flags", flags, f"{flags:#06x}"),
        ("reserved", reserved, f"{reserved:#010x}"),
        ("padding", int.from_bytes(padding, "little"), padding.hex()),
    ):
        if value:
            raise BatchError(
                "bad-header",
                f"header {name} = {shown}; schema version {SCHEMA_VERSION} defines none, "
                "it must be 0",
            )
    for name, value in (("run", run), ("spill", spill), ("batch_index", batch_index)):
        if value > MAX_ID:
            raise BatchError(
                "bad-header", f"{name} = {value} is above {MAX_ID} (the largest the store keeps)"
            )
    if n == 0 or n > _MAX_EVENTS:
        raise BatchError("bad-count", f"batch announces {n} events (allowed 1..{_MAX_EVENTS})")
    size = expected_size(n)
    if len(payload) != size:
        kind = "truncated" if len(payload) < size else "trailing-bytes"
        raise BatchError(
            kind, f"{n} events need {size} bytes, payload has {len(payload)} (wrong column length)"
        )
    columns: dict[str, np.ndarray] = {}
    offset = HEADER_SIZE
    for col in COLUMNS:
        count = n * col.per_event
        arr = np.frombuffer(payload, dtype=col.np_dtype, count=count, offset=offset)
        columns[col.name] = arr.reshape((n, *col.shape)) if col.shape else arr
        offset += col.nbytes(n)
    batch = EventBatch(run=run, spill=spill, batch_index=batch_index, columns=columns)
    if validate:
        validate_batch(batch)
    return batch


def validate_batch(batch: EventBatch) -> None:
    """Raise :class:`BatchError` if any value is NaN/inf or outside its column's range."""
    for col in COLUMNS:
        arr = batch.columns[col.name]
        if col.name in _NONNEG_F32_LIMIT:
            # one pass: for float32 seen as uint32, [+0, hi] is exactly the range of bit
            # patterns [0, bits(hi)]; negatives (sign bit), NaN and inf all lie above it
            if arr.view("<u4").max() <= _NONNEG_F32_LIMIT[col.name]:
                continue
        else:
            lo, hi = arr.min(), arr.max()
            if lo >= col.lo and hi <= col.hi:  # NaN makes both comparisons False
                continue
        flat = arr.reshape(arr.shape[0], -1)
        if col in _FLOAT_COLUMNS:
            bad_finite = ~np.isfinite(flat)
            if bad_finite.any():
                ev, ch = (int(i) for i in np.argwhere(bad_finite)[0])
                raise BatchError(
                    "non-finite",
                    f"column '{col.name}' event {ev} channel {ch}: {flat[ev, ch]} "
                    f"(run {batch.run} spill {batch.spill} batch {batch.batch_index})",
                )
        bad = (flat < col.lo) | (flat > col.hi)
        if not bad.any():
            continue  # only -0.0 tripped the fast bit-pattern test: it is a valid zero
        ev, ch = (int(i) for i in np.argwhere(bad)[0])
        what = "negative energy" if col.unit == "GeV" and flat[ev, ch] < 0 else "out of range"
        raise BatchError(
            "out-of-range",
            f"column '{col.name}' event {ev} channel {ch}: {flat[ev, ch]} {col.unit} is {what} "
            f"[{col.lo}, {col.hi}] (run {batch.run} spill {batch.spill} batch {batch.batch_index})",
        )
