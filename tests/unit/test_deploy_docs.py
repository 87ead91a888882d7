"""The deployment page only tells users to run things that exist.

Given docs/deployment.md, then every ``dqm …`` command it shows is accepted by the CLI,
every compose variable it names is one docker/compose.yaml reads, every metric it names is one
a worker exports, and docker/README.md points to it instead of repeating it.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dqm.cli import build_parser
from dqm.config import SETTINGS
from dqm.pipeline.metrics import WORKER_COUNTERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def section() -> str:
    return (ROOT / "docs" / "deployment.md").read_text()


def dqm_commands(text: str) -> list[list[str]]:
    """``dqm …`` invocations in code blocks and inline code, cut at comments and shell operators."""
    found = []
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    inline = [
        " ".join(c.split())
        for c in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    ]
    for chunk in fenced + inline:
        for line in chunk.splitlines():
            m = re.search(r"(?:^|\s)(dqm(?: [^#|&;>]*)?)", line.split(" # ")[0])
            if m and not m.group(1).startswith("dqm:"):
                argv = shlex.split(m.group(1))
                if len(argv) > 1 and re.fullmatch(r"[a-z]+", argv[1]):
                    found.append(argv[1:])
    return found


def test_every_dqm_command_shown_is_accepted_by_the_cli(section):
    parser = build_parser()
    commands = dqm_commands(section)
    assert ["db", "backup"] in [c[:2] for c in commands] and ["status"] in [c[:1] for c in commands]
    for argv in commands:
        argv = [a for a in argv if a not in {"[REV]", "[FILE]", "REV"}] or argv
        if argv[:2] == ["db", "downgrade"] and len(argv) == 2:
            argv.append("base")
        parser.parse_args(argv)  # SystemExit(2) on an unknown command or option


def test_the_compose_variables_named_exist(section):
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    settings = {s.env for s in SETTINGS.values()}
    named = set(re.findall(r"\b((?:REDIS|POSTGRES|WEB|DQM)_[A-Z_]+)\b", section))
    assert {"DQM_WORKERS", "REDIS_PUBLISH", "POSTGRES_PUBLISH", "WEB_ORIGINS"} <= named
    for var in named:
        assert var in settings or f"${{{var}" in compose, (
            f"{var} is neither a setting nor read by compose"
        )


def test_the_metrics_named_are_exported(section):
    exported = {name + "_total" for name, _ in WORKER_COUNTERS.values()} | {
        "dqm_worker_spill_close_latency_seconds",
        "dqm_worker_spill_close_latency_seconds_bucket",
        "dqm_stream_lag_messages",
        "dqm_stream_pending_messages",
        "dqm_consumer_pending_messages",
        "dqm_dead_letter_stream_length_messages",
        "dqm_metrics_redis_up",
        "dqm_stream_length_messages",
    }
    named = set(re.findall(r"\b(dqm_[a-z_]+)\b", section))
    assert named and named <= exported, f"not exported: {sorted(named - exported)}"
    source = (ROOT / "dqm" / "pipeline" / "metrics.py").read_text()
    for name in named - {n + "_total" for n, _ in WORKER_COUNTERS.values()}:
        assert name.removesuffix("_bucket") in source


def test_the_docker_readme_points_here(section):
    assert "(../docs/deployment.md)" in (ROOT / "docker" / "README.md").read_text()
    assert "docker/compose.yaml" in section
