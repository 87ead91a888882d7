"""``docs/wire-format-conditions.md`` and the code agree: a DAQ group can trust the page.

Given the page, when its example encoder is run, then dqm's decoder accepts what it makes;
the field table lists exactly the fields the decoder knows, the table of condition names
exactly those a spec may use, and the ``XADD`` example is a valid message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dqm.core import conditions as cond

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format-conditions.md"


def section(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker}:start -->")[1].split(f"<!-- {marker}:end -->")[0]


def first_column(table: str) -> list[str]:
    rows = [line for line in table.strip().splitlines() if line.startswith("| `")]
    return [re.match(r"\| `@?([^`]+)`", row)[1] for row in rows]


def test_the_example_encoder_makes_what_the_decoder_accepts():
    text = DOC.read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.S)[1]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation
    fields = namespace["fields"]
    assert fields["type"] == "conditions"
    got = cond.decode_conditions(fields["payload"])
    assert (got.run, got.beam_config, got.mbpl_field_integral_tm) == (1234, "mu160", 7.2)
    assert got.extra == {"n_mbpl": 2}
    assert fields["payload"] == cond.encode_conditions(got)  # the same canonical bytes


def test_the_field_table_is_the_decoders():
    text = DOC.read_text(encoding="utf-8")
    assert first_column(section(text, "conditions-fields")) == list(cond._FIELDS)
    assert first_column(section(text, "condition-names")) == list(cond.CONDITION_NAMES)
    for name in cond.PARTICLES:
        assert f"`{name}`" in section(text, "conditions-fields")


def test_the_xadd_example_is_a_valid_message():
    text = DOC.read_text(encoding="utf-8")
    payload = re.search(r"type conditions payload '(\{.*?\})'", text)[1]
    assert cond.decode_conditions(payload.encode()).to_dict() == json.loads(payload)
