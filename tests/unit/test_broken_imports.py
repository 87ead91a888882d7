"""Nothing silently off: a module that cannot be imported stops the program, loudly.

The worker used to return no close hooks when the flags store failed to import, and the
spec loader skipped parameter validation when the checks package did: every check off,
no error. Each test breaks one import in a fresh interpreter (``sys.modules[name] = None``
makes ``import name`` raise ModuleNotFoundError, an ImportError, "import of NAME halted")
and expects the entry point to fail with that error.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def halted(module: str, result: subprocess.CompletedProcess) -> bool:
    """The program failed with the ImportError of ``module`` (not some other error)."""
    return result.returncode != 0 and f"import of {module} halted" in result.stderr


def run_with_broken(module: str, code: str) -> subprocess.CompletedProcess:
    prelude = f"import sys; sys.modules[{module!r}] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    "broken",
    ["dqm.store.flags", "dqm.checks.shape", "dqm.core.evaluate"],
)
def test_the_worker_command_does_not_start_without_its_checks(broken):
    # Given a module of the judging chain that cannot be imported
    # When the worker's wiring is imported and asked for its close hooks
    result = run_with_broken(
        broken,
        "from dqm.config import Settings\n"
        "from dqm.pipeline.runtime import close_hooks, load_default_specs\n"
        "s = Settings()\n"
        "print(len(close_hooks(s, load_default_specs(s))), 'hooks')\n",
    )
    # Then it fails with the ImportError, instead of a worker closing spills nobody judges
    assert halted(broken, result), result.stderr
    assert "hooks" not in result.stdout


def test_the_worker_command_has_its_close_hook_when_nothing_is_broken():
    # the same program with nothing broken: one hook (so the tests above can fail)
    result = run_with_broken(
        "not.a.dqm.module",
        "from dqm.config import Settings\n"
        "from dqm.pipeline.runtime import close_hooks, load_default_specs\n"
        "s = Settings()\n"
        "print(len(close_hooks(s, load_default_specs(s))), 'hooks')\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 hooks"


def test_specs_are_not_loaded_unvalidated_without_the_check_registry():
    # Given the check registry cannot be imported, when the shipped specs are loaded,
    # then loading fails (it used to skip the validation of every check's parameters)
    result = run_with_broken(
        "dqm.checks",
        "from dqm.config import Settings\n"
        "from dqm.core.specs import load_specs\n"
        "print(len(load_specs(Settings().specs_path)), 'histograms')\n",
    )
    assert halted("dqm.checks", result), result.stderr
    assert "histograms" not in result.stdout


def test_every_dqm_command_module_is_imported_by_the_cli():
    # Given a command module that cannot be imported, when the CLI builds its parser,
    # then it fails (it used to drop a command whose module was missing, as "not built yet")
    result = run_with_broken(
        "dqm.commands.flags", "from dqm.cli import build_parser\nbuild_parser()\nprint('built')\n"
    )
    assert halted("dqm.commands.flags", result), result.stderr
    assert "built" not in result.stdout


def test_no_import_error_is_swallowed_in_the_source():
    # Given every ``except ImportError`` in the library and the apps, then each one raises
    # (e.g. a ConfigError saying what to install): none carries on without the module
    swallowed = []
    for top in ("dqm", "apps", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ExceptHandler) and _catches_import_error(node):
                    if not any(isinstance(n, ast.Raise) for n in ast.walk(node)):
                        swallowed.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert swallowed == []


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names
    )
