"""Versioned, compact persistence of a set of histograms (plus summary accumulators).

Format ``DQMH`` version 1: ``b"DQMH" + u16 version + zlib(u32 header length + JSON
header + raw arrays)``. The JSON header is boost-histogram's UHI serialisation
(``to_uhi``) of every histogram with each storage array replaced by a reference to a
raw little-endian block that follows it; zlib squeezes the mostly-empty bins, so a
spill's ~30 histograms take a few tens of KB. Decoding rebuilds real
``bh.Histogram`` objects with ``from_uhi``; unknown versions fail loudly.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Mapping

import boost_histogram as bh
import numpy as np
from boost_histogram.serialization import from_uhi, to_uhi

from dqm.errors import StorageError

__all__ = ["FORMAT_VERSION", "encode_histograms", "decode_histograms", "add_into"]

MAGIC = b"DQMH"
FORMAT_VERSION = 1
_ARRAY_KEYS = ("values", "variances", "counts", "sum_of_weights", "sum_of_weights_squared")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def encode_histograms(hists: Mapping[str, bh.Histogram], moments: Mapping[str, float] | None = None) -> bytes:
    header: dict = {"histograms": {}, "moments": dict(moments or {})}
    blocks: list[bytes] = []
    offset = 0
    for name, h in hists.items():
        uhi = to_uhi(h)
        uhi.pop("writer_info", None)
        storage = uhi["storage"]
        for key in _ARRAY_KEYS:
            if key in storage:
                arr = np.ascontiguousarray(storage[key])
                storage[key] = {"offset": offset, "dtype": arr.dtype.str, "shape": list(arr.shape)}
                blocks.append(arr.tobytes())
                offset += arr.nbytes
        uhi["metadata"] = {k: v for k, v in h.__dict__.items() if isinstance(v, (str, int, float))}
        header["histograms"][name] = _jsonable(uhi)
    head = json.dumps(header, separators=(",", ":")).encode()
    body = struct.pack("<I", len(head)) + head + b"".join(blocks)
    return MAGIC + struct.pack("<H", FORMAT_VERSION) + zlib.compress(body, 6)


def decode_histograms(blob: bytes) -> tuple[dict[str, bh.Histogram], dict[str, float]]:
    if blob[:4] != MAGIC:
        raise StorageError(f"histogram blob starts with {bytes(blob[:4])!r}, expected {MAGIC!r}")
    (version,) = struct.unpack_from("<H", blob, 4)
    if version != FORMAT_VERSION:
        raise StorageError(f"histogram blob format version {version}; this code reads {FORMAT_VERSION}")
    body = zlib.decompress(blob[6:])
    (hlen,) = struct.unpack_from("<I", body, 0)
    header = json.loads(body[4 : 4 + hlen])
    data = memoryview(body)[4 + hlen :]
    hists: dict[str, bh.Histogram] = {}
    for name, uhi in header["histograms"].items():
        storage = uhi["storage"]
        for key in _ARRAY_KEYS:
            if key in storage:
                ref = storage[key]
                dt = np.dtype(ref["dtype"])
                count = int(np.prod(ref["shape"]))
                storage[key] = np.frombuffer(data, dtype=dt, count=count, offset=ref["offset"]).reshape(ref["shape"]).copy()
        meta = uhi.pop("metadata", {})
        uhi["metadata"] = {}
        h = from_uhi(uhi)
        for k, v in meta.items():
            setattr(h, k, v)
        hists[name] = h
    return hists, {k: float(v) for k, v in header.get("moments", {}).items()}


def add_into(total: dict[str, bh.Histogram], part: Mapping[str, bh.Histogram]) -> dict[str, bh.Histogram]:
    """Histograms are additive: sum ``part`` into ``total`` (names missing in total are copied)."""
    for name, h in part.items():
        if name in total:
            total[name] += h
        else:
            total[name] = h.copy()
    return total
