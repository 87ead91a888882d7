"""Structured log lines: ``time level logger message key=value…`` (logfmt fields).

Given a log call about a spill with ``extra={"run": …, "spill": …}``, when it is formatted,
then ``run=`` and ``spill=`` come first, in a fixed order, values with spaces or quotes are
quoted and escaped, and absent fields are left out — so ``grep 'run=7 spill=12'`` works.
"""

from __future__ import annotations

import logging
import re

from dqm.pipeline.runtime import LOG_FIELDS, _KeyValueFormatter


def formatted(msg: str, **extra) -> str:
    record = logging.LogRecord("dqm.pipeline.worker", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return _KeyValueFormatter().format(record)


def test_spill_fields_in_a_fixed_order_after_the_message():
    line = formatted(
        "spill closed", consumer="vm-1", status="complete", n_events=4000, spill=12, run=7
    )
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d INFO    dqm\.pipeline\.worker spill closed "
        r"run=7 spill=12 consumer=vm-1 status=complete n_events=4000",
        line,
    ), line
    assert "run=7 spill=12" in line
    assert list(LOG_FIELDS[:2]) == ["run", "spill"]


def test_values_with_spaces_quotes_or_newlines_are_quoted():
    line = formatted("dead-lettered", message_id="1-0", reason='bad "magic"\nnext')
    assert line.endswith(r'message_id=1-0 reason="bad \"magic\"\nnext"')
    assert "\n" not in line


def test_absent_fields_are_left_out():
    assert formatted("worker started").endswith("dqm.pipeline.worker worker started")
