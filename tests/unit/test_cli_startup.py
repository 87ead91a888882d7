"""The command line starts without the heavy libraries (issue 15, item 3).

``dqm --help``, ``dqm status`` and ``dqm flags`` must answer at once and a worker must be
ready within a second; SciPy, the web and plotting stacks, the benchmarks and Playwright
cost seconds to import. Given a fresh interpreter run with ``python -X importtime``, when
it starts each command (or builds a worker's specs and close hooks), then none of those
modules was imported. Each case is also run against a planted import, so it can fail.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from dqm.cli import COMMANDS, build_parser, chosen_command

HEAVY = (
    "scipy",
    "panel",
    "bokeh",
    "holoviews",
    "matplotlib",
    "mplhep",
    "sklearn",
    "benchmarks",
    "playwright",
    "apps",
)

WORKER_START = (
    "from dqm.config import load_settings\n"
    "from dqm.pipeline.runtime import close_hooks, load_default_specs\n"
    "from dqm.pipeline.worker import Worker\n"
    "settings = load_settings()\n"
    "close_hooks(settings, load_default_specs(settings))\n"
)


def imported_modules(code: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """Every module a fresh interpreter imports running ``code`` (read from -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    assert "dqm" in names or "dqm.cli" in names, done.stderr[-2000:]
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


CLI = "import sys; from dqm.cli import main; sys.argv[0] = 'dqm'; main(sys.argv[1:])"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["status", "--help"],
        ["flags", "--help"],
        ["worker", "--help"],
        ["db", "--help"],
        ["prune", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_commands_start_without_heavy_modules(argv):
    assert heavy(imported_modules(CLI, *argv)) == []


def test_db_check_needs_neither_redis_nor_numpy_nor_the_pipeline(tmp_path):
    # Given a store to check, when `dqm db check` runs (it reads the schema's revision only)
    names = imported_modules(
        CLI, "db", "check", env={"DQM_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    )
    # Then it loaded the store and Alembic, but no other layer of the command line
    assert "dqm.store.migrate" in names
    unneeded = {"redis", "numpy", "dqm.pipeline", "dqm.core"}
    assert sorted(n for n in names if n in unneeded or n.split(".")[0] in HEAVY) == []
    # and a planted import of the pipeline is seen
    assert "dqm.pipeline" in imported_modules("import dqm.pipeline.stream; " + CLI, "--version")


def test_help_imports_no_command_module():
    names = imported_modules(CLI, "--help")
    assert sorted(n for n in names if n.startswith("dqm.commands.")) == []
    assert "sqlalchemy" not in names and "numpy" not in names


def test_a_worker_starts_without_heavy_modules():
    assert heavy(imported_modules(WORKER_START)) == []


def test_a_planted_heavy_import_is_seen():
    # SciPy's top-level package, not scipy.stats: the detector reads package names from
    # -X importtime either way, and the bare package imports in milliseconds, not seconds
    assert "scipy" in heavy(imported_modules("import dqm.cli; import scipy"))


def test_command_help_lines_match_their_modules():
    """``dqm --help`` lists COMMANDS' lines: each must be what its module declares."""
    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    declared = {action.dest: action.help for action in sub._choices_actions}
    assert declared == COMMANDS


def test_the_chosen_command_is_built_in_full():
    args = build_parser(["--log-level", "DEBUG", "db", "check"]).parse_args(
        ["--log-level", "DEBUG", "db", "check"]
    )
    assert args.command == "db" and callable(args.func)
    assert chosen_command(["--log-level", "ERROR", "status"]) == "status"
    assert chosen_command(["--version"]) is None


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A migrated, empty SQLite store: the commands run to their end against it."""
    from dqm.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'db.sqlite'}"
    upgrade_database(url)
    return {"DQM_DATABASE_URL": url, "DQM_REDIS_URL": ""}


LIGHT_READERS = ("numpy", "boost_histogram", "dqm.checks", "dqm.core.specs", "dqm.core.evaluate")


@pytest.mark.parametrize("argv", [["flags", "--run", "1"], ["status"]], ids=" ".join)
def test_flags_and_status_read_the_store_without_the_checks_or_numpy(argv, empty_store):
    # Given a store, when `dqm flags --run N` or `dqm status` runs to its end
    names = imported_modules(CLI, *argv, env=empty_store)
    # Then it read the store (SQLAlchemy, the models) but loaded no check, NumPy nor judging
    assert "dqm.store.models" in names
    assert sorted(n for n in names if n.split(".")[0] in LIGHT_READERS or n in LIGHT_READERS) == []
    # and a planted import of the checks is seen
    planted = imported_modules("import dqm.checks; " + CLI, *argv, env=empty_store)
    assert "dqm.checks" in planted and "numpy" in planted


def test_the_flags_command_knows_which_checks_compare_with_the_reference():
    """``dqm flags`` names them without importing the registry: the two must agree."""
    from dqm.checks import CHECKS
    from dqm.commands.flags import REFERENCE_CHECKS

    assert REFERENCE_CHECKS == {name for name, c in CHECKS.items() if c.needs_reference}


def test_the_quality_words_are_the_checks_own():
    """``dqm.quality`` (no NumPy) and ``dqm.checks`` hand out the very same objects."""
    import dqm.checks
    import dqm.quality

    assert dqm.checks.Quality is dqm.quality.Quality
    assert dqm.checks.quality_name is dqm.quality.quality_name
    assert dqm.checks.ROLLUP == dqm.quality.ROLLUP
