"""Bad settings, spec files, URLs and arguments: one clear line, exit 2, no traceback, no password.

Run as a user would, ``python -m dqm …`` in a subprocess, all cases at once (each
process mostly waits on its imports). Unreachable services are ports nothing listens
on, so no server is needed.
"""

from __future__ import annotations

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


def test_every_bad_input_gives_one_clear_line_exit_2_and_hides_passwords(tmp_path):
    # Given wrong settings, a wrong spec file, wrong arguments and unreachable services
    # (the other malformed settings and specs fail in-process: test_config.py, test_specs.py)
    todo = cases(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    base.update(PYTHONPATH=str(ROOT), DQM_DATA_DIR=str(tmp_path / "data"))
    # When `python -m dqm …` runs each of them (all at once)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "dqm", *argv],
            env={**base, **env},
            cwd=str(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (env, argv, _) in todo.items()
    }
    failures = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        expected = todo[name][2]
        error_lines = [line for line in err.splitlines() if "error:" in line]
        # Then each exits with 2 and one error line saying what is wrong — no traceback, no password
        if (
            proc.returncode != 2
            or "Traceback" in err
            or len(error_lines) != 1
            or expected not in error_lines[0]
            or SECRET in out + err
        ):
            failures.append(f"{name}: exit {proc.returncode}, stderr:\n{err[-1500:]}")
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
