"""Replay files: a run's spills (encoded batches + end-of-spill records) in one binary file.

Why a file: a demo or a test can replay the very same bytes at the SPS pace without
regenerating them, and a run recorded once can be replayed on another machine.
Why not pickle: the file is data, never code; it must be safe to read from anywhere.

Layout (little endian)::

    file header   <4sHH        magic b"N64R", version, reserved 0
    frame         <BxxxII      kind, payload length, CRC-32 of the payload
                  payload
    kind 1 BATCH  payload = one ``events.encode_batch`` message, verbatim
    kind 2 SPILL  payload = <IIIId run, spill, n_batches, n_events, start_offset_s (since run start)
    kind 3 END    payload = <I   number of spills; the last frame of a complete file
    kind 4 CONDITIONS  payload = a run-conditions message payload, verbatim
                  (``conditions.encode_conditions``); it precedes the batches of the first
                  spill it applies to (a run's first spill, and any spill after which the
                  conditions changed). Version 2.

Version 1 files (no conditions frames) are still read: replaying them announces no
conditions, so their runs are judged with conditions unknown.

A missing END frame means the writer died: the reader raises instead of ending quietly
(it is lazy, so the intact spills before the damage have already been yielded; call
:func:`verify_spill_file` first to refuse a damaged file up front). Every error names
the byte offset of the bad frame.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dqm.core.conditions import RunConditions, decode_conditions, encode_conditions
from dqm.core.events import decode_batch
from dqm.errors import BatchError

__all__ = [
    "FILE_MAGIC",
    "FILE_VERSION",
    "ReplaySpill",
    "FileSummary",
    "write_spill_file",
    "read_spill_file",
    "verify_spill_file",
]

FILE_MAGIC = b"N64R"
FILE_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FILE_HEADER = struct.Struct("<4sHH")
_FRAME = struct.Struct("<BxxxII")
_SPILL = struct.Struct("<IIIId")
_END = struct.Struct("<I")
_BATCH, _SPILL_END, _FILE_END, _CONDITIONS = 1, 2, 3, 4
_MAX_FRAME = 1 << 30  # a larger length is a corrupt header, not data


@dataclass(frozen=True)
class ReplaySpill:
    """One spill read back: its batches (verbatim wire bytes) and its end-of-spill record."""

    run: int
    spill: int
    n_events: int
    start_offset_s: float
    batches: tuple[bytes, ...]
    #: conditions to announce before this spill (its run's first, or changed ones), else None
    conditions: RunConditions | None = None

    @property
    def n_batches(self) -> int:
        return len(self.batches)


@dataclass(frozen=True)
class FileSummary:
    """What :func:`write_spill_file` wrote."""

    path: str
    n_spills: int
    n_batches: int
    n_events: int
    n_bytes: int


def _frame(kind: int, payload: bytes) -> bytes:
    return _FRAME.pack(kind, len(payload), zlib.crc32(payload)) + payload


def write_spill_file(path: str | os.PathLike[str], spills: Iterable) -> FileSummary:
    """Write spills (``SpillData`` or ``ReplaySpill``) to ``path``; returns a summary.

    The file is written to ``path + '.tmp'`` and renamed at the end, so a reader never
    sees a half-written file under the final name.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n_spills = n_batches = n_events = 0
    announced: dict[int, RunConditions] = {}
    with open(tmp, "wb") as f:
        f.write(_FILE_HEADER.pack(FILE_MAGIC, FILE_VERSION, 0))
        for sp in spills:
            cond = getattr(sp, "conditions", None)
            if cond is not None and not cond.same_as(announced.get(cond.run)):
                f.write(_frame(_CONDITIONS, encode_conditions(cond)))
                announced[cond.run] = cond
            batches = sp.batches() if callable(sp.batches) else sp.batches
            for payload in batches:
                f.write(_frame(_BATCH, payload))
            end = _SPILL.pack(sp.run, sp.spill, len(batches), sp.n_events, sp.start_offset_s)
            f.write(_frame(_SPILL_END, end))
            n_spills += 1
            n_batches += len(batches)
            n_events += sp.n_events
        f.write(_frame(_FILE_END, _END.pack(n_spills)))
    os.replace(tmp, path)
    return FileSummary(str(path), n_spills, n_batches, n_events, path.stat().st_size)


def _error(reason: str, name: str, offset: int, what: str) -> BatchError:
    return BatchError(reason, f"{name}: {what} (byte offset {offset})")


def read_spill_file(path: str | os.PathLike[str]) -> Iterator[ReplaySpill]:
    """Yield the spills of a replay file in order; :class:`BatchError` names the bad byte offset.

    Each batch header is checked (zero-copy, no value validation) against its spill's
    end-of-spill record, so a file mixing spills is caught before anything is replayed.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(_FILE_HEADER.size)
        if len(head) < _FILE_HEADER.size:
            raise _error("truncated", name, 0, f"{len(head)} bytes, shorter than the file header")
        magic, version, _ = _FILE_HEADER.unpack(head)
        if magic != FILE_MAGIC:
            raise _error("bad-magic", name, 0, f"starts with {magic!r}, expected {FILE_MAGIC!r}")
        if version not in _READABLE_VERSIONS:
            what = f"file version {version}, this reader knows {_READABLE_VERSIONS}"
            raise _error("unknown-version", name, 4, what)
        offset = _FILE_HEADER.size
        pending: list[tuple[int, bytes]] = []  # (offset, payload) of the current spill's batches
        conditions: RunConditions | None = None  # announced before the current spill
        n_spills = 0
        while True:
            fh = f.read(_FRAME.size)
            if len(fh) < _FRAME.size:
                what = "file ends without its end frame (writer interrupted?)"
                raise _error("truncated", name, offset + len(fh), what)
            kind, length, crc = _FRAME.unpack(fh)
            known = (_BATCH, _SPILL_END, _FILE_END) + ((_CONDITIONS,) if version > 1 else ())
            if kind not in known or length > _MAX_FRAME:
                what = f"bad frame header (kind {kind}, length {length})"
                raise _error("corrupt", name, offset, what)
            payload = f.read(length)
            if len(payload) < length:
                what = f"frame needs {length} bytes, the file has {len(payload)}"
                raise _error("truncated", name, offset, what)
            if zlib.crc32(payload) != crc:
                raise _error("corrupt", name, offset, "CRC mismatch in the frame")
            if kind == _BATCH:
                pending.append((offset, payload))
            elif kind == _CONDITIONS:
                try:
                    conditions = decode_conditions(payload)
                except BatchError as e:
                    raise _error(e.reason, name, offset, f"conditions: {e.detail}") from None
            elif kind == _SPILL_END:
                yield _close_spill(name, offset, payload, pending, conditions)
                pending, conditions, n_spills = [], None, n_spills + 1
            else:
                (expected,) = _END.unpack(payload) if length == _END.size else (-1,)
                if pending or expected != n_spills or f.read(1):
                    what = (
                        f"inconsistent end frame: {n_spills} spills read, {expected} announced, "
                        f"{len(pending)} batches without end-of-spill, or trailing bytes"
                    )
                    raise _error("corrupt", name, offset, what)
                return
            offset += _FRAME.size + length


def _close_spill(
    name: str,
    offset: int,
    payload: bytes,
    pending: list[tuple[int, bytes]],
    conditions: RunConditions | None = None,
) -> ReplaySpill:
    if len(payload) != _SPILL.size:
        raise _error("corrupt", name, offset, f"end-of-spill frame of {len(payload)} bytes")
    run, spill, n_batches, n_events, start = _SPILL.unpack(payload)
    if n_batches != len(pending):
        what = f"spill {spill} announces {n_batches} batches, the file has {len(pending)}"
        raise _error("corrupt", name, offset, what)
    total = 0
    for i, (boff, data) in enumerate(pending):
        try:
            b = decode_batch(data, validate=False)
        except BatchError as e:
            raise _error(e.reason, name, boff, f"batch: {e.detail}") from None
        if (b.run, b.spill, b.batch_index) != (run, spill, i):
            what = (
                f"batch is run {b.run} spill {b.spill} batch {b.batch_index}, "
                f"expected run {run} spill {spill} batch {i}"
            )
            raise _error("corrupt", name, boff, what)
        total += b.n_events
    if total != n_events:
        what = f"spill {spill} announces {n_events} events, its batches hold {total}"
        raise _error("corrupt", name, offset, what)
    if conditions is not None and conditions.run != run:
        what = f"conditions of run {conditions.run} announced before spill {spill} of run {run}"
        raise _error("corrupt", name, offset, what)
    return ReplaySpill(run, spill, n_events, start, tuple(d for _, d in pending), conditions)


def verify_spill_file(path: str | os.PathLike[str]) -> FileSummary:
    """Read the whole file once (frames, CRCs, batch headers); raise BatchError if damaged."""
    n_spills = n_batches = n_events = 0
    for sp in read_spill_file(path):
        n_spills += 1
        n_batches += sp.n_batches
        n_events += sp.n_events
    return FileSummary(os.fspath(path), n_spills, n_batches, n_events, os.path.getsize(path))
