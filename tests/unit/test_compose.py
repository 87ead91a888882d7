"""The deployment files, checked without a Docker engine.

Given docker/compose.yaml and docker/Dockerfile, parsed (and interpolated the way compose
does with a docker/.env), then the services, their dependencies, health checks, volumes,
replicas and environment are the ones the deployment needs, every DQM_* variable passed to a
container is a real setting, no credential is written down, and the commands they run are
commands the dqm CLI accepts. If a Docker Compose binary is on the machine, it validates the
file too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dqm.config import SETTINGS, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DEPLOYMENT_DOCS = ROOT / "docs" / "deployment.md"
DOCKERIGNORE = ROOT / ".dockerignore"

SETTING_VARS = {s.env for s in SETTINGS.values()}
#: DQM_* names that steer compose itself and never reach a container.
COMPOSE_KNOBS = {"DQM_WORKERS", "DQM_IMAGE"}
#: What a docker/.env must hold at least.
DOT_ENV = {"POSTGRES_PASSWORD": "pg-secret", "REDIS_PASSWORD": "redis-secret"}
DQM_SERVICES = ("migrate", "worker", "web", "report")


# ---------------------------------------------------------------------- compose's interpolation
class MissingVariable(Exception):
    pass


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, defaults themselves interpolated (nested)."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end, depth = i + 2, 1
            while depth:
                if end >= len(text):
                    raise ValueError(f"unclosed ${{ in {text!r}")
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            out.append(_expand(text[i + 2 : end - 1], env))
            i = end
        else:
            m = _NAME.match(text, i + 1)
            if not m:
                raise ValueError(f"a lone $ in {text!r}: write $$")
            out.append(env.get(m.group(), ""))
            i = m.end()
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    m = _NAME.match(body)
    assert m, f"bad variable ${{{body}}}"
    name, rest = m.group(), body[m.end() :]
    value = env.get(name)
    for op, unset in (
        (":-", lambda v: not v),
        ("-", lambda v: v is None),
        (":?", lambda v: not v),
        ("?", lambda v: v is None),
    ):
        if rest.startswith(op):
            arg = rest[len(op) :]
            if not unset(value):
                return value
            if "?" in op:
                raise MissingVariable(f"{name}: {interpolate(arg, env)}")
            return interpolate(arg, env)
    assert rest == "", f"unsupported expansion ${{{body}}}"
    return value or ""


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def variables_used(text: str) -> set[str]:
    """Every variable compose interpolates in ``text`` (``$$`` escapes excluded)."""
    return set(re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate_tree(raw, DOT_ENV)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


# ---------------------------------------------------------------------- services
def test_the_services_of_the_deployment(compose):
    assert set(compose["services"]) == {"redis", "postgres", "migrate", "worker", "web", "report"}


def test_migrate_is_a_one_shot_that_the_dqm_services_wait_for(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert command(migrate) == ["db", "upgrade"]
    assert migrate.get("restart", "no") == "no", "a one-shot must not be restarted"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "web", "report"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        ), name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in ("worker", "web"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_workers_are_replicated_three_by_default_and_configurable(raw):
    assert interpolate_tree(raw, DOT_ENV)["services"]["worker"]["deploy"]["replicas"] == "3"
    assert (
        interpolate_tree(raw, {**DOT_ENV, "DQM_WORKERS": "8"})["services"]["worker"]["deploy"][
            "replicas"
        ]
        == "8"
    )


def test_every_long_running_service_has_a_health_check(compose):
    services = compose["services"]
    for name in ("redis", "postgres", "worker", "web", "report"):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    # the migration exits: the image's health check (a worker's metrics) must not apply to it
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_the_report_health_check_tests_what_the_nightly_run_needs(compose):
    from dqm.cli import build_parser

    # the database at head (`dqm db check`, a real dqm command) and a writable report folder
    check = " ".join(compose["services"]["report"]["healthcheck"]["test"][1:])
    dqm_argv = shlex.split(check.split("&&")[0])
    assert dqm_argv[0] == "dqm"
    args = build_parser().parse_args(dqm_argv[1:])
    assert (args.command, args.action) == ("db", "check")
    report = command(compose["services"]["report"])
    assert f"test -w {report[report.index('--dir') + 1]}" in check


def test_the_worker_health_check_and_expose_match_its_metrics_port(compose):
    worker = compose["services"]["worker"]
    cmd = command(worker)
    port = cmd[cmd.index("--metrics-port") + 1]
    assert [str(p) for p in worker["expose"]] == [port]
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert worker.get("init") is True, "SIGTERM must reach the worker so it commits before exiting"


def test_web_and_report_commands(compose):
    services = compose["services"]
    assert command(services["web"])[:3] == ["serve", "--host", "0.0.0.0"]
    assert environment(services["web"])["DQM_WEB_PORT"] == "5006"
    assert any(p.endswith(":5006") for p in services["web"]["ports"])
    report = command(services["report"])
    assert report[0] == "report"
    assert report[report.index("--schedule") + 1] == "06:00"
    assert report[report.index("--dir") + 1] == "/reports"


def test_named_volumes_for_the_database_redis_and_reports(compose):
    services, volumes = compose["services"], set(compose["volumes"])
    mounts = {
        name: {m.split(":")[1]: m.split(":")[0] for m in s.get("volumes", [])}
        for name, s in services.items()
    }
    assert mounts["postgres"]["/var/lib/postgresql/data"] in volumes
    assert mounts["redis"]["/data"] in volumes
    assert mounts["report"]["/reports"] in volumes
    # the web apps list <DQM_DATA_DIR>/reports (read-only): the same volume the report service
    # writes
    web_reports = environment(services["web"])["DQM_DATA_DIR"] + "/reports"
    assert mounts["web"][web_reports] == mounts["report"]["/reports"]
    assert any(
        m.startswith(f"{mounts['web'][web_reports]}:{web_reports}:ro")
        for m in services["web"]["volumes"]
    )


# ---------------------------------------------------------------------- configuration
def test_every_dqm_variable_passed_to_a_container_is_a_setting(compose):
    for name, service in compose["services"].items():
        unknown = {k for k in environment(service) if k.startswith("DQM_")} - SETTING_VARS
        assert not unknown, (
            f"{name} passes {sorted(unknown)}, which dqm.config.SETTINGS does not know"
        )


def test_every_setting_can_be_set_through_compose(compose):
    passed = set()
    for name in DQM_SERVICES:
        passed |= set(environment(compose["services"][name]))
    assert SETTING_VARS <= passed, f"not passed to any dqm service: {sorted(SETTING_VARS - passed)}"


def test_every_compose_variable_is_a_setting_or_documented(raw):
    used = variables_used(COMPOSE.read_text())
    unknown_dqm = {v for v in used if v.startswith("DQM_")} - SETTING_VARS - COMPOSE_KNOBS
    assert not unknown_dqm, f"DQM_* variables that are not settings: {sorted(unknown_dqm)}"
    docs = DEPLOYMENT_DOCS.read_text()
    undocumented = {v for v in used - SETTING_VARS if f"`{v}`" not in docs}
    assert not undocumented, (
        f"compose variables missing from docs/deployment.md: {sorted(undocumented)}"
    )


def test_each_dqm_service_environment_loads_as_settings(compose):
    for name in DQM_SERVICES:
        settings = load_settings(
            environment(compose["services"][name])
        )  # validates URLs and numbers
        assert settings.redis_url == "redis://:redis-secret@redis:6379/0", name
        assert settings.database_url == "postgresql+psycopg://dqm:pg-secret@postgres:5432/dqm", name
        assert settings.stream == SETTINGS["stream"].default, (
            f"{name}: an empty variable must mean the default"
        )


def test_credentials_come_only_from_the_environment(raw):
    text = COMPOSE.read_text()
    for secret in DOT_ENV:
        with pytest.raises(MissingVariable, match=secret):
            interpolate_tree(raw, {k: v for k, v in DOT_ENV.items() if k != secret})
    # no password literal: every URL's credentials and every *PASSWORD* value is a variable
    assert not re.search(r"://[^$\s/:@]*:[^$\s/@{]+@", text), "a URL with a literal password"
    for line in text.splitlines():
        m = re.match(r"\s*([A-Z_]*PASSWORD[A-Z_]*)\s*:\s*(\S.*)$", line)
        if m:
            assert m.group(2).startswith("${"), (
                f"{m.group(1)} is not taken from the environment: {line.strip()}"
            )


def test_the_services_can_point_at_servers_outside_compose(raw):
    env = {
        **DOT_ENV,
        "REDIS_HOST": "daq-a",
        "REDIS_PORT": "6380",
        "POSTGRES_HOST": "dbod-dqm.cern.ch",
        "POSTGRES_PORT": "6600",
        "POSTGRES_USER": "na64",
        "POSTGRES_DB": "dqm2026",
    }
    for name in DQM_SERVICES:
        settings = load_settings(environment(interpolate_tree(raw, env)["services"][name]))
        assert settings.redis_url == "redis://:redis-secret@daq-a:6380/0", name
        assert settings.database_url == (
            "postgresql+psycopg://na64:pg-secret@dbod-dqm.cern.ch:6600/dqm2026"
        ), name


def test_compose_v1_can_read_the_file(raw):
    """Debian's docker-compose 1.29 knows no top-level ``name`` and no nested ``${...}``."""
    assert set(raw) <= {"services", "volumes", "networks"} | {k for k in raw if k.startswith("x-")}
    for var in re.findall(r"\$\{([^}]*)\}", COMPOSE.read_text().replace("$$", "")):
        assert "$" not in var, f"a nested default in ${{{var}}}"


def test_compose_commands_are_accepted_by_the_cli(compose):
    from dqm.cli import build_parser

    parser = build_parser()
    available = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001
    for name in DQM_SERVICES:
        argv = command(compose["services"][name])
        assert argv[0] in available, f"{name}: 'dqm {argv[0]}' is no dqm command"
        parser.parse_args(argv)  # SystemExit on an unknown option


def compose_binary() -> list[str] | None:
    """``docker compose`` (the plugin) or a ``docker-compose`` binary (v2, or Debian's v1), if
    either works here."""
    candidates = [[shutil.which("docker"), "compose"], [shutil.which("docker-compose")]]
    for cmd in candidates:
        if cmd[0] and subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    return None


def test_docker_compose_itself_validates_the_file(tmp_path):
    cmd = compose_binary()
    if cmd is None:
        pytest.skip("no Docker Compose here (neither the docker plugin nor docker-compose)")
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DQM_", "POSTGRES_", "REDIS_"))
    }
    clean["HOME"] = str(tmp_path)
    done = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "config", "--quiet"],
        env={**clean, **DOT_ENV},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "config", "--quiet"], env=clean, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "PASSWORD" in missing.stderr


# ---------------------------------------------------------------------- Dockerfile
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_base_user_and_health_check():
    instr = dockerfile_instructions()
    # the base is a build argument (a Debian base where no registry answers), python:3.11-slim
    # unless told otherwise; the last stage starts from it too
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instr
    froms = [arg.split()[0] for word, arg in instr if word == "FROM"]
    assert froms[0] == "${BASE_IMAGE}" and froms[-1] == "runtime"
    users = [arg for word, arg in instr if word == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"
    assert any(word == "HEALTHCHECK" for word, _ in instr)


def test_dockerfile_runs_the_dqm_console_script():
    import json

    instr = dict(dockerfile_instructions())
    entry, cmd = json.loads(instr["ENTRYPOINT"]), json.loads(instr["CMD"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["dqm"] and "dqm" in scripts
    from dqm.cli import build_parser

    build_parser().parse_args(cmd)


def test_dockerfile_env_and_copies():
    instr = dockerfile_instructions()
    envs = set(
        re.findall(r"\b(DQM_[A-Z0-9_]+)=", " ".join(arg for word, arg in instr if word == "ENV"))
    )
    assert envs <= SETTING_VARS, f"Dockerfile sets unknown settings {sorted(envs - SETTING_VARS)}"
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert patterns[0] == "**", (
        ".dockerignore is an allow-list: exclude everything, then let through"
    )
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert "**/.env" in patterns, "a local docker/.env (the passwords) must never reach the image"
    for word, arg in instr:
        if word == "COPY" and "--from" not in arg:
            for src in arg.split()[:-1]:
                assert src in allowed, f"COPY {src}: excluded by .dockerignore"
                assert (ROOT / src).exists(), (
                    f"COPY {src}: no such path in the repository (the build would fail)"
                )
