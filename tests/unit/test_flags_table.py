"""``dqm flags`` read by someone who does not know the code: every column under its heading.

Given flags whose check name is longer than the check column (``reference_conditions``, the
DAQ flag of a reference taken under other conditions), when the table is printed, then the
quality, value and thresholds of every row still stand under their headings.
"""

from __future__ import annotations

from types import SimpleNamespace

from dqm.checks import Quality
from dqm.commands.flags import print_flags


def _flag(check: str, histogram: str | None, quality: Quality) -> SimpleNamespace:
    return SimpleNamespace(
        run=21,
        spill=3,
        subsystem="daq",
        histogram=histogram,
        check=check,
        quality=int(quality),
        value=1.0,
        config_version="50d2c110fadc+0",
        thresholds={"warning": 0.99, "bad": 0.95},
        reference_run=1,
        details={},
        instruction="",
        explanation="the reference was taken under other conditions",
        cause=None,
    )


def test_long_check_names_keep_every_column_under_its_heading(capsys) -> None:
    print_flags(
        [
            _flag("reference_conditions", None, Quality.WARNING),
            _flag("daq_completeness", "daq_source_presence_of_every_source", Quality.BAD),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], [line for line in lines[2:] if line.startswith("   21")]
    assert len(rows) == 2
    for heading, word in (("quality", ("WARNING", "BAD")), ("config", ("50d2c110fadc+0",) * 2)):
        column = header.index(heading)
        assert [row[column:].split()[0] for row in rows] == list(word), (header, rows)
