"""docs/wire-format.md is a specification a DAQ group can implement from.

Given an encoder built only from the page's tables (tests/wire_spec.py: struct + numpy, no
dqm encoder), then it writes exactly the bytes dqm writes, dqm decodes it to the same values,
the page's statements on memory order, x/y, the header's zero fields, the marker's integers,
the bits and the dead-letter reasons hold, and the page's own example encoder works.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dqm.core.events import DAQ_SOURCES, TRIGGER_BITS, decode_batch, encode_batch
from dqm.core.fill import Filler
from dqm.core.variables import BatchView
from dqm.errors import BatchError
from dqm.pipeline.stream import parse_eos
from tests import wire_spec
from tests.malformed import REASONS

RUN, SPILL, BATCH = 1234, 17, 5


@pytest.mark.parametrize(("n_events", "seed"), [(1, 1), (7, 2), (1000, 3)])
def test_an_encoder_from_the_page_writes_what_dqm_writes_and_reads(n_events, seed):
    # Given columns spanning every range the page allows, encoded from the page's tables
    cols = wire_spec.random_columns(n_events, seed)
    payload = wire_spec.encode(RUN, SPILL, BATCH, cols)
    # Then the bytes are dqm's own, to the last one
    assert payload == encode_batch(RUN, SPILL, BATCH, cols)
    # and dqm decodes (and validates) them to the same numbers
    batch = decode_batch(payload)
    assert (batch.run, batch.spill, batch.batch_index) == (RUN, SPILL, BATCH)
    for name, values in cols.items():
        assert batch[name].dtype == values.dtype and np.array_equal(batch[name], values), name


def test_the_header_table_is_32_bytes_with_its_fields_where_it_says():
    fields = wire_spec.header_fields()
    assert struct.calcsize(wire_spec.header_format()) == 32
    offset = 0
    for f in fields:
        assert f.offset == offset and f.size == struct.calcsize("<" + f.code), f
        offset += f.size
    values = {f.name: f.value for f in fields}
    assert values["flags"] == values["reserved"] == "`0`" and "zero" in values["padding"]
    # and the payload size the page gives: 32 + n_events x bytes per event
    per_event = sum(np.dtype(c.dtype).itemsize * int(np.prod(c.shape)) for c in wire_spec.columns())
    assert f"32 + n_events × {per_event}" in wire_spec.page_text()


@pytest.mark.parametrize(
    ("field", "raw"),
    [("flags", struct.pack("<H", 4)), ("reserved", struct.pack("<I", 9)), ("padding", b"\1")],
)
def test_what_the_page_says_must_be_zero_is_refused_otherwise(field, raw):
    # Given a batch from the page's encoder with one "must be zero" field set, at its offset
    offset = {f.name: f.offset for f in wire_spec.header_fields()}[field]
    payload = bytearray(wire_spec.encode(RUN, SPILL, BATCH, wire_spec.random_columns(3, 4)))
    payload[offset : offset + len(raw)] = raw
    # Then dqm refuses it as the page says: bad-header
    with pytest.raises(BatchError) as info:
        decode_batch(bytes(payload))
    assert info.value.reason == "bad-header" and field in info.value.detail


def test_memory_order_is_c_order_with_the_event_slowest_as_the_page_writes_it():
    # Given one batch of zeros with one ECAL cell set: event 2, main layer, ix 4, iy 1
    cols = {c.name: np.zeros((3, *c.shape), dtype=c.dtype) for c in wire_spec.columns()}
    e, layer, ix, iy = 2, 1, 4, 1
    cols["ecal"][e, layer, ix, iy] = 7.5
    payload = wire_spec.encode(RUN, SPILL, BATCH, cols)
    # Then the float sits at the byte the page's formula gives
    start = 32
    for c in wire_spec.columns():
        if c.name == "ecal":
            break
        start += 3 * np.dtype(c.dtype).itemsize * int(np.prod(c.shape))
    item = ((e * 2 + layer) * 6 + ix) * 6 + iy
    assert struct.unpack_from("<f", payload, start + 4 * item)[0] == 7.5
    # and dqm reads it at ecal[e, layer, ix, iy]
    assert decode_batch(payload)["ecal"][e, layer, ix, iy] == 7.5


def test_the_first_cell_index_is_x_in_the_dqm_cell_maps(specs):
    # Given events with energy only in ECAL main cell ix=4, iy=1, every DAQ source read out
    cols = {c.name: np.zeros((5, *c.shape), dtype=c.dtype) for c in wire_spec.columns()}
    cols["ecal"][:, 1, 4, 1] = 0.4
    cols["daq_sources"][:] = (1 << len(DAQ_SOURCES)) - 1
    # When the occupancy map is filled from the decoded batch
    filler = Filler(specs)
    hists = filler.book()
    filler.fill(hists, BatchView(decode_batch(wire_spec.encode(1, 1, 0, cols)).columns))
    occupancy = hists["ecal_occupancy"]
    # Then the map's x axis is ix and its y axis iy, as the page says
    assert "x" in occupancy.axes[0].label and "y" in occupancy.axes[1].label
    assert occupancy.view()[4, 1] == 5 and occupancy.view().sum() == 5


def test_the_bits_are_the_ones_the_page_lists():
    rows = [
        r for r in wire_spec.table_after("**Bits.**") if r[0].isdigit()
    ]  # | bit | trigger_bits | daq_sources |
    triggers = [r[1].split()[0] for r in rows if r[1] != "—"]
    sources = [r[2].split()[0] for r in rows]
    assert tuple(triggers) == TRIGGER_BITS and tuple(sources) == DAQ_SOURCES


def test_marker_integers_as_the_page_writes_them_are_accepted_within_its_limits():
    limits = {
        r[0].strip("`"): wire_spec.value_range(r[1])
        for r in wire_spec.table_after("## End-of-spill marker")
        if r[0] != "`type`"
    }
    assert set(limits) == {"run", "spill", "n_batches", "n_events"}
    # Given a marker with every integer at its upper limit, in ASCII decimal digits
    top = {k.encode(): str(int(hi)).encode() for k, (_, hi) in limits.items()}
    eos = parse_eos({b"type": b"eos", **top})
    assert [getattr(eos, k) for k in limits] == [int(hi) for _, hi in limits.values()]
    # Then one above a limit, or anything but digits, is a bad-marker
    for key, (_, hi) in limits.items():
        for bad in (str(int(hi) + 1), f"+{int(hi)}", f" {int(hi)}"):
            with pytest.raises(BatchError, match="bad-marker"):
                parse_eos({b"type": b"eos", **top, key.encode(): bad.encode()})


def test_the_page_lists_every_dead_letter_reason():
    rows = wire_spec.table_after("## What the worker refuses")
    listed = {r.strip("` ") for row in rows for r in row[0].split(",")}
    assert listed == REASONS | {"late", "beyond-marker"}  # the two the worker adds


def test_the_pages_example_encoder_writes_what_dqm_writes():
    # Given the example encoder exactly as printed on the page
    example = wire_spec.example_code()
    cols = wire_spec.random_columns(50, 5)
    # Then its bytes are dqm's, and its column list is the page's column table
    assert example["encode"](RUN, SPILL, BATCH, cols) == encode_batch(RUN, SPILL, BATCH, cols)
    assert [(n, d, s) for n, d, s in example["COLUMNS"]] == [
        (c.name, c.dtype, c.shape) for c in wire_spec.columns()
    ]
