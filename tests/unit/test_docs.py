"""The README's configuration table is the one the code generates (dqm.docs), so they never
disagree."""

from __future__ import annotations

from pathlib import Path

from dqm.config import SETTINGS
from dqm.docs import settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_carries_the_generated_settings_table():
    # Given the README and the table generated from dqm.config.SETTINGS
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"
    assert start in readme and end in readme, "README lost its settings-table markers"
    block = readme.split(start, 1)[1].split(end, 1)[0]
    # Then they are the same text: regenerate with `python -m dqm.docs` when a setting changes
    assert block == settings_table()


def test_every_setting_is_documented_with_its_unit_in_the_name():
    for name, setting in SETTINGS.items():
        assert setting.doc.strip(), f"{name} has no documentation"
        assert setting.env == "DQM_" + name.upper(), (
            f"{name}: environment variable {setting.env} does not follow the name"
        )
