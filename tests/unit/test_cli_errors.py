"""Bad settings, spec files, URLs and arguments: one clear line, exit 2, no traceback, no password.

Run as a user would, ``python -m dqm …`` (its ``__main__``) in a process of its own per case.
Each such process spent a second or two of CPU on its imports alone, so one interpreter
imports the command line and the modules the commands load once, then forks a child per case
that takes the case's environment, working directory and arguments and runs ``dqm``'s
``__main__`` (settings are read from the environment when a command runs, never at import).
Unreachable services are ports nothing listens on, so no server is needed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dqm.pipeline.services import free_port
from dqm.redact import redact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-s3cret"


def cases(tmp: Path) -> dict[str, tuple[dict[str, str], list[str], str]]:
    """name -> (environment, argv, what the error line must say)."""
    bad_kind = tmp / "kind"
    bad_kind.mkdir()
    (bad_kind / "a.toml").write_text('[[histogram]]\nname = "x"\nkind = "h9"\n')
    dead = free_port()
    empty_db = tmp / "empty.sqlite"
    sqlite3.connect(empty_db).close()
    return {
        "redis url": (
            {"DQM_REDIS_URL": "foo"},
            ["worker"],
            "DQM_REDIS_URL='foo': expected redis://",
        ),
        "database url": (
            {"DQM_DATABASE_URL": f"mysql://dqm:{SECRET}@db/dqm"},
            ["worker"],
            "expected postgresql+psycopg://",
        ),
        "spec kind": (
            {"DQM_SPECS_DIR": str(bad_kind), "DQM_REDIS_URL": f"redis://127.0.0.1:{dead}/0"},
            ["worker"],
            "unknown kind 'h9'",
        ),
        "argument type": ({}, ["worker", "--max-seconds", "soon"], "invalid float value: 'soon'"),
        "command": ({}, ["wrker"], "invalid choice: 'wrker'"),
        "missing file": (
            {"DQM_REDIS_URL": f"redis://127.0.0.1:{dead}/0"},
            ["replay", str(tmp / "nothing.n64r")],
            "No such file or directory",
        ),
        "redis down": (
            {
                "DQM_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{dead}/0",
                "DQM_DATA_DIR": str(tmp / "d1"),
            },
            ["simulate", "--spills", "1"],
            f"cannot reach Redis at redis://:***@127.0.0.1:{dead}/0",
        ),
        "postgres down": (
            {"DQM_DATABASE_URL": f"postgresql+psycopg://dqm:{SECRET}@127.0.0.1:{dead}/dqm"},
            ["status"],
            f"cannot use the database at postgresql+psycopg://dqm:***@127.0.0.1:{dead}/dqm",
        ),
        "no database": (
            {"DQM_DATA_DIR": str(tmp / "d2")},
            ["status"],
            "no database yet at sqlite:///",
        ),
        "no such file": (
            {"DQM_DATABASE_URL": f"sqlite:///{tmp / 'd3' / 'x.sqlite'}"},
            ["status"],
            "no database yet at sqlite:///",
        ),
        "no tables": (
            {"DQM_DATABASE_URL": f"sqlite:///{empty_db}"},
            ["status"],
            "run 'dqm db upgrade'",
        ),
    }


#: The modules the cases' commands load (imported once, before the children fork).
PRELOAD = (
    "dqm.cli",
    "dqm.config",
    "dqm.logs",
    "dqm.commands.worker",
    "dqm.commands.replay",
    "dqm.commands.simulate",
    "dqm.commands.status",
    "dqm.pipeline.runtime",
    "dqm.pipeline.worker",
    "dqm.store.engine",
    "redis",
)

#: Reads {name: [environment, cwd, argv, stdout file, stderr file]} from stdin; forks one
#: child per case, which runs ``python -m dqm`` (runpy: dqm/__main__.py, its SystemExit and
#: tracebacks as the real thing) with its output in those files; prints {name: exit status}.
DRIVER = """
import importlib, json, os, runpy, sys
cases = json.load(sys.stdin)
for module in sys.argv[1:]:
    importlib.import_module(module)
children = {}
for name, (env, cwd, argv, out, err) in cases.items():
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.environ.clear(); os.environ.update(env); os.chdir(cwd)
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd); os.close(f)
        sys.argv = ["dqm", *argv]
        runpy.run_module("dqm", run_name="__main__", alter_sys=True)
        sys.exit(0)
    children[name] = pid
print(json.dumps({n: os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for n, p in children.items()}))
"""


def test_every_bad_input_gives_one_clear_line_exit_2_and_hides_passwords(tmp_path):
    # Given wrong settings, a wrong spec file, wrong arguments and unreachable services
    # (the other malformed settings and specs fail in-process: test_config.py, test_specs.py)
    todo = cases(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    base.update(PYTHONPATH=str(ROOT), DQM_DATA_DIR=str(tmp_path / "data"))
    logs = tmp_path / "logs"
    logs.mkdir()
    jobs = {
        name: [{**base, **env}, str(tmp_path), argv, str(logs / f"{i}.out"), str(logs / f"{i}.err")]
        for i, (name, (env, argv, _)) in enumerate(todo.items())
    }
    # (and a command that succeeds, so a child's exit status and output are seen to be its own)
    jobs["control"] = [base, str(tmp_path), ["--version"], str(logs / "c.out"), str(logs / "c.err")]
    # When `python -m dqm …` runs each of them (one process each, forked after the imports)
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, *PRELOAD],
        input=json.dumps(jobs),
        env=base,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert driver.returncode == 0, driver.stderr[-3000:]
    status = json.loads(driver.stdout.splitlines()[-1])
    assert sorted(status) == sorted(jobs)
    assert status.pop("control") == 0 and (logs / "c.out").read_text().startswith("dqm ")
    failures = []
    for name in todo:
        out, err = (Path(path).read_text() for path in jobs[name][3:])
        code = status[name]
        expected = todo[name][2]
        error_lines = [line for line in err.splitlines() if "error:" in line]
        # Then each exits with 2 and one error line saying what is wrong — no traceback, no password
        if (
            code != 2
            or "Traceback" in err
            or len(error_lines) != 1
            or expected not in error_lines[0]
            or SECRET in out + err
        ):
            failures.append(f"{name}: exit {code}, stderr:\n{err[-1500:]}")
    assert not failures, "\n\n".join(failures)
    # And asking for the status of a data dir where nothing ran left no database file behind
    assert not (tmp_path / "d2" / "dqm.sqlite").exists() and not (tmp_path / "d3").exists()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "postgresql+psycopg://dqm:s3cr@t!@db:5432/dqm",
            "postgresql+psycopg://dqm:***@db:5432/dqm",
        ),
        (
            "error: DQM_DATABASE_URL='mysql://u:pw@h/db' bad",
            "error: DQM_DATABASE_URL='mysql://u:***@h/db' bad",
        ),
        ("rediss://user:p%40ss@h:1/0?password=abc&x=1", "rediss://user:***@h:1/0?password=***&x=1"),
        ("host=db user=dqm password=xyz", "host=db user=dqm password=***"),
        (
            "redis://127.0.0.1:6379/0 sqlite:////tmp/dqm.sqlite",
            "redis://127.0.0.1:6379/0 sqlite:////tmp/dqm.sqlite",
        ),
        (
            "expected redis://[user:password@]host:port[/db]",
            "expected redis://[user:password@]host:port[/db]",
        ),
        ("http://127.0.0.1:5006/control_room", "http://127.0.0.1:5006/control_room"),
    ],
)
def test_redact_hides_passwords_and_nothing_else(text, shown):
    assert redact(text) == shown


def test_log_lines_never_show_a_password():
    # Given the DQM's log formatter
    import logging

    from dqm.pipeline.runtime import _KeyValueFormatter

    record = logging.LogRecord(
        "dqm.pipeline.worker",
        logging.WARNING,
        __file__,
        1,
        "redis unavailable (%s)",
        (f"redis://:{SECRET}@10.0.0.1:6379/0 refused",),
        None,
    )
    # When a message quotes a URL with its password, Then the line hides it
    line = _KeyValueFormatter().format(record)
    assert SECRET not in line and "redis://:***@10.0.0.1:6379/0" in line
