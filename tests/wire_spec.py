"""The wire format as docs/wire-format.md states it, read from the page itself.

Shared by tests/unit/test_wire_format_spec.py and tests/integration/test_wire_format_worker.py.
Nothing here imports dqm's encoder: the header and the columns come from the page's tables,
so an encoder built from them is one "written from the page alone", and a page that drifts
from the code makes those tests fail.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAGE = Path(__file__).resolve().parents[1] / "docs" / "wire-format.md"

#: the page's type names, as numpy little-endian dtypes
TYPES = {"float32": "<f4", "uint32": "<u4", "uint16": "<u2"}


def page_text() -> str:
    return PAGE.read_text()


def table(name: str) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown table between ``<!-- name:start/end -->``."""
    text = page_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in text and end in text, f"docs/wire-format.md lost its {name} markers"
    lines = text.split(start, 1)[1].split(end, 1)[0].strip().splitlines()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    return rows[2:]  # without the header row and the |---| line


def table_after(text: str) -> list[list[str]]:
    """Rows (cells stripped) of the first Markdown table after ``text`` on the page."""
    rest = page_text().split(text, 1)[1].splitlines()
    first = next(i for i, line in enumerate(rest) if line.startswith("|"))
    lines = []
    for line in rest[first:]:
        if not line.startswith("|"):
            break
        lines.append([c.strip() for c in line.strip().strip("|").split("|")])
    return lines[2:]


def section(title: str) -> str:
    """The text of the page's ``## title`` section."""
    return page_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def number(text: str) -> float:
    """'2 147 483 647', '−500' (Unicode minus), '0' as a number."""
    return float(text.replace("\u2212", "-").replace(" ", "").replace("\u202f", ""))


def value_range(cell: str) -> tuple[float, float]:
    lo, hi = re.search(r"([−\-]?[\d  ]+)\s*…\s*([−\-]?[\d  ]+)", cell).groups()
    return number(lo), number(hi)


@dataclass(frozen=True)
class HeaderField:
    offset: int
    size: int
    code: str
    name: str
    value: str


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str
    shape: tuple[int, ...]
    lo: float
    hi: float


def header_fields() -> list[HeaderField]:
    return [
        HeaderField(int(o), int(s), code.strip("`"), name, value)
        for o, s, code, name, value in table("wire-header")
    ]


def columns() -> list[ColumnSpec]:
    out = []
    for row in table("wire-columns"):
        name, type_name, shape, _index, _unit, allowed = row[:6]
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("×"))
        out.append(
            ColumnSpec(name.strip("`"), TYPES[type_name.strip("`")], dims, *value_range(allowed))
        )
    return out


def header_format() -> str:
    return "<" + "".join(f.code for f in header_fields())


def encode(run: int, spill: int, batch_index: int, cols: dict[str, np.ndarray]) -> bytes:
    """A batch payload built only from the page's two tables."""
    n_events = len(cols["event"])
    fixed = {f.name: f.value for f in header_fields()}
    magic = re.search(r"`(\w{4})`", fixed["magic"]).group(1).encode("ascii")
    version = int(fixed["version"].strip("`"))
    header = struct.pack(header_format(), magic, version, 0, run, spill, batch_index, n_events, 0)
    body = [
        np.ascontiguousarray(cols[c.name], dtype=c.dtype).reshape(n_events, *c.shape).tobytes()
        for c in columns()
    ]
    return header + b"".join(body)


def random_columns(n_events: int, seed: int) -> dict[str, np.ndarray]:
    """Values over each column's whole allowed range as the page states it, edges included."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in columns():
        shape = (n_events, *c.shape)
        if c.dtype.startswith("<f"):
            values = rng.uniform(c.lo, c.hi, shape).astype(c.dtype)
        else:
            values = rng.integers(int(c.lo), int(c.hi), shape, endpoint=True).astype(c.dtype)
        values.flat[0], values.flat[-1] = c.lo, c.hi
        out[c.name] = values
    return out


def example_code() -> dict:
    """Run the page's example encoder (the python block of 'An encoder from this page')."""
    block = re.search(r"```python\n(.*?)```", section("An encoder from this page"), re.S)
    namespace: dict = {}
    exec(compile(block.group(1), f"{PAGE}:example", "exec"), namespace)
    return namespace
