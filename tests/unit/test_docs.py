"""The documentation says what the code does: generated tables match, paths and links exist.

- docs/configuration.md carries the settings table that the code generates (dqm.docs);
- every path of the README's layout table exists, every link of the README points at a file;
- the README's test command is what CI runs, after the linters;
- mkdocs.yml lists no pages, so every page in docs/ is in the site's navigation.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from dqm.config import SETTINGS
from dqm.docs import settings_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_configuration_page_carries_the_generated_settings_table():
    # Given the configuration page and the table generated from dqm.config.SETTINGS
    page = (ROOT / "docs" / "configuration.md").read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"
    assert start in page and end in page, "docs/configuration.md lost its settings-table markers"
    block = page.split(start, 1)[1].split(end, 1)[0]
    # Then they are the same text: regenerate with `python -m dqm.docs` when a setting changes
    assert block == settings_table()


def test_every_setting_is_documented_with_its_unit_in_the_name():
    for name, setting in SETTINGS.items():
        assert setting.doc.strip(), f"{name} has no documentation"
        assert setting.env == "DQM_" + name.upper(), (
            f"{name}: environment variable {setting.env} does not follow the name"
        )


def _section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_path_in_the_readme_layout_exists():
    # Given the README's layout table (a folder named there that does not exist is a stale line)
    layout = _section(README.read_text(), "Layout")
    paths = [
        p
        for cell in re.findall(r"^\| ([^|]+) \|", layout, re.M)
        for p in re.findall(r"`([^`]+)`", cell)
    ]
    assert "dqm/core/" in paths and "docs/" in paths
    for path in paths:
        assert (ROOT / path).exists(), f"README layout names {path}, which does not exist"
    # and the folders under tests/ it names are the ones there are
    named = set(re.findall(r"`(\w+)/`", layout.split("| `tests/` |", 1)[1].splitlines()[0]))
    present = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert named == present, f"tests/ holds {sorted(present)}, the README says {sorted(named)}"


def test_every_link_in_the_readme_points_at_a_file():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links {target}, which does not exist"


def test_ci_runs_the_linters_then_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text().split("\n")
    commands = [line.strip() for line in ci if line.strip().startswith(("./run", "exec ./run"))]
    assert commands == ["./run lint", "./run test", './run test -m "slow and not compose"']
    assert [line.strip() for line in ci][-2] == "exec .ci/compose", "the Docker stage comes last"
    assert "./run test " in README.read_text() and "./run lint" in README.read_text()


def test_every_docs_page_is_in_the_navigation():
    # no `nav:` in mkdocs.yml: MkDocs then puts every page of docs/ in the navigation, so the
    # pages other work adds are published without editing the configuration
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert "nav" not in config and config.get("strict") is True
    assert config["theme"]["name"] == "material"


#: paths the docs name that a user creates, not the repository
_CREATED_BY_USERS = {"docker/.env"}


def test_every_repository_path_the_docs_name_exists():
    # Given every `dqm/…`, `tests/…`, `apps/…` … path in code spans of the README and docs/
    texts = [README.read_text(), *(p.read_text() for p in (ROOT / "docs").glob("*.md"))]
    top = "dqm|apps|tests|benchmarks|db|docker|histograms|docs"
    named = {
        p for text in texts for p in re.findall(rf"`((?:{top})/[\w./-]*)`", text) if "*" not in p
    }
    assert "dqm/core/events.py" in named
    # Then each exists (a file moved or removed leaves a stale line otherwise)
    missing = sorted(p for p in named - _CREATED_BY_USERS if not (ROOT / p).exists())
    assert not missing, f"the docs name paths that do not exist: {missing}"
