"""No credential in the repository: every password in a URL is a placeholder.

Walks the project's files (not tests, which use throw-away servers, nor generated
folders) for ``scheme://user:PASSWORD@`` and ``*_PASSWORD=value`` and accepts only
``${VAR…}`` substitutions and documented stand-ins ("change-me", "secret").
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".git",
    ".venv",
    "dqm-data",
    "test-artifacts",
    "tests",
    "__pycache__",
    "reports",
    ".hypothesis",
    "build",
    ".pytest_cache",
}
URL_PASSWORD = re.compile(
    r"\b[a-z][a-z0-9+.\-]*://[^\s:/@\[\]]*:(?P<password>[^\s/?#]*)@", re.IGNORECASE
)
ASSIGNED = re.compile(r"\b[A-Z_]*PASSWORD(?:\s*=\s*|:\s+)(?P<password>[^\s#|]+)")
#: stand-ins used in documentation and examples
PLACEHOLDERS = {"change-me", "change-me-too", "...", "***", "password", "secret", "—"}
#: the redaction module itself, whose examples and patterns look like credentials
EXEMPT = {Path("dqm/redact.py")}


def _candidates():
    """What a commit would take: git's tracked and not-ignored files (a second test run must not
    trip over pytest's own cache of these tests' ids); every file when this is no git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [ROOT / name for name in out.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return list(ROOT.rglob("*"))


def _files():
    for path in _candidates():
        rel = path.relative_to(ROOT)
        if (
            path.is_file()
            and not SKIP_DIRS.intersection(rel.parts)
            and rel not in EXEMPT
            and path.stat().st_size < 2_000_000
        ):
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def _is_placeholder(password: str) -> bool:
    """A substitution (``${VAR}``, ``$VAR``, ``$(command)``), a variable's name, or a stand-in."""
    bare = password.strip("`'\"")
    return (
        password.startswith("$")
        or re.fullmatch(r"[A-Z_]*PASSWORD", bare) is not None
        or bare.lower() in PLACEHOLDERS
    )


def test_no_password_is_committed():
    found = []
    for path, text in _files():
        for pattern in (URL_PASSWORD, ASSIGNED):
            for m in pattern.finditer(text):
                if not _is_placeholder(m.group("password")):
                    found.append(f"{path.relative_to(ROOT)}: {m.group(0)[:80]}")
    assert not found, "credentials in the repository:\n" + "\n".join(found)


def test_the_scan_finds_a_planted_password():
    # the test can fail: a real-looking password in a URL or an assignment is caught
    assert not _is_placeholder(
        URL_PASSWORD.search("postgresql+psycopg://dqm:Tr0ub4dor@db/dqm").group("password")
    )
    assert not _is_placeholder(ASSIGNED.search("POSTGRES_PASSWORD=Tr0ub4dor").group("password"))
    assert _is_placeholder(
        URL_PASSWORD.search("redis://:${REDIS_PASSWORD}@redis:6379/0").group("password")
    )
    assert _is_placeholder(
        ASSIGNED.search("REDIS_PASSWORD=$(openssl rand -hex 24)").group("password")
    )
    assert not _is_placeholder(
        URL_PASSWORD.search("redis://:HUNTER2@redis:6379/0").group("password")
    )
