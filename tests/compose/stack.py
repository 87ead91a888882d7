"""The compose stack of ``docker/``, driven from the host as an operator drives it.

The deployment steps are read from the README (between ``<!-- deploy:start -->`` and
``<!-- deploy:end -->``) and run one by one as written, so that the README cannot drift from
what the test brings up. Where the ``docker compose`` plugin is missing, Debian's
``docker-compose`` (v1) stands in for it (a shell function named ``docker``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOT_ENV = ROOT / "docker" / ".env"
COMPOSE_FILE = "docker/compose.yaml"
#: not the README's "dqm": a deployment on the same engine is never touched
PROJECT = "dqmtest"
LONG_RUNNING = ("redis", "postgres", "worker", "web", "report")

SHIM = """docker() {
  if [ "${1:-}" = compose ] && ! command docker compose version >/dev/null 2>&1; then
    shift; command docker-compose "$@"
  else
    command docker "$@"
  fi
}
"""


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) if the plugin answers, else Debian's ``docker-compose`` (v1)."""
    if shutil.which("docker") and _ok(["docker", "compose", "version"]):
        return ["docker", "compose"]
    if shutil.which("docker-compose") and _ok(["docker-compose", "version"]):
        return ["docker-compose"]
    return None


def _ok(argv: list[str]) -> bool:
    return subprocess.run(argv, capture_output=True).returncode == 0


def engine_problem() -> str | None:
    """Why the stack cannot be brought up here, or None."""
    if not shutil.which("docker"):
        return "no docker client on PATH"
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if info.returncode != 0:
        return f"no Docker engine answers: {(info.stderr or info.stdout).strip()[:300]}"
    if compose_command() is None:
        return "neither `docker compose` nor `docker-compose` works"
    return None


def deploy_steps() -> list[str]:
    """The README's deployment steps: one shell command each, heredocs and ``\\`` kept whole."""
    m = re.search(
        r"<!-- deploy:start -->\s*```bash\n(.*?)```\s*<!-- deploy:end -->", README.read_text(), re.S
    )
    assert m, "README.md: no ```bash block between <!-- deploy:start --> and <!-- deploy:end -->"
    steps: list[str] = []
    current: list[str] = []
    heredoc: str | None = None
    for line in m.group(1).splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if heredoc is not None:
            if line.strip() != heredoc:
                continue
            heredoc = None
        elif hd := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line):
            heredoc = hd.group(1)
            continue
        if line.split(" #")[0].rstrip().endswith("\\"):
            continue
        steps.append("\n".join(current))
        current = []
    assert not current and heredoc is None, f"README deployment steps end mid-command: {current}"
    return steps


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """The project's containers, seen through ``docker`` and compose, with a log of every call."""

    env: dict[str, str]
    compose: list[str]
    log: Path

    @classmethod
    def create(cls, log: Path) -> Stack:
        # nothing of the host's own DQM/Redis/PostgreSQL settings may leak into the containers
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DQM_", "POSTGRES_", "REDIS_", "WEB_", "COMPOSE_"))
        }
        web = free_port()
        env.update(
            COMPOSE_PROJECT_NAME=PROJECT,
            REDIS_PUBLISH=f"127.0.0.1:{free_port()}",
            POSTGRES_PUBLISH=f"127.0.0.1:{free_port()}",
            WEB_PUBLISH=str(web),
            WEB_ORIGINS=f"localhost:{web},127.0.0.1:{web}",
        )
        compose = compose_command()
        assert compose is not None
        return cls(env=env, compose=compose, log=log)

    def remove_leftovers(self) -> None:
        """What an interrupted run of the test left: containers, volumes, networks."""
        label = f"label=com.docker.compose.project={PROJECT}"
        for kind, listing in (
            ("container", ["docker", "ps", "-aq", "--filter", label]),
            ("volume", ["docker", "volume", "ls", "-q", "--filter", label]),
            ("network", ["docker", "network", "ls", "-q", "--filter", label]),
        ):
            ids = self.sh(listing).stdout.split()
            if ids:
                rm = ["docker", "rm", "-f"] if kind == "container" else ["docker", kind, "rm"]
                self.sh([*rm, *ids])

    def port(self, what: str) -> int:
        return int(self.env[what].rsplit(":", 1)[-1])

    def sh(self, argv: list[str], *, check: bool = True, timeout: float = 900, **kw):
        """Run a command in the repository root with the stack's environment; logged."""
        t0 = time.monotonic()
        done = subprocess.run(
            argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, **kw
        )
        with self.log.open("a") as f:
            f.write(f"$ {' '.join(argv)}  # rc={done.returncode}, {time.monotonic() - t0:.1f} s\n")
            f.write(done.stdout[-4000:] + done.stderr[-4000:] + "\n")
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def run_step(self, step: str, timeout: float = 3600) -> float:
        """One README step, as written, under bash; returns its seconds."""
        t0 = time.monotonic()
        self.sh(["bash", "-euo", "pipefail", "-c", SHIM + step], timeout=timeout)
        return time.monotonic() - t0

    def c(self, *args: str, **kw):
        """A compose command on docker/compose.yaml."""
        return self.sh([*self.compose, "-f", COMPOSE_FILE, *args], **kw)

    def containers(self, service: str | None = None) -> list[dict]:
        """``docker inspect`` of the project's containers (of one service), stopped ones too."""
        argv = ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.sh(argv).stdout.split()
        if not ids:
            return []
        return json.loads(self.sh(["docker", "inspect", *ids]).stdout)

    def states(self) -> dict[str, str]:
        """name -> health (or exit code) of every container of the project."""
        out = {}
        for c in self.containers():
            state = c["State"]
            health = (state.get("Health") or {}).get("Status")
            out[c["Name"].lstrip("/")] = health or f"{state['Status']} ({state['ExitCode']})"
        return out

    def wait_healthy(self, workers: int, timeout_s: float = 900) -> float:
        """Until migrate has exited 0 and every long-running container is healthy; seconds."""
        t0 = time.monotonic()
        while True:
            cs = self.containers()
            by = {}
            for c in cs:
                by.setdefault(c["Config"]["Labels"]["com.docker.compose.service"], []).append(c)
            migrate = by.get("migrate", [])
            migrated = [
                c["State"]["Status"] == "exited" and c["State"]["ExitCode"] == 0 for c in migrate
            ]
            healthy = all(
                len(by.get(s, [])) == (workers if s == "worker" else 1)
                and all((c["State"].get("Health") or {}).get("Status") == "healthy" for c in by[s])
                for s in LONG_RUNNING
            )
            if migrated == [True] and healthy:
                return time.monotonic() - t0
            if migrate and migrate[0]["State"]["Status"] == "exited" and not migrated[0]:
                raise AssertionError(
                    f"migrate exited {migrate[0]['State']['ExitCode']}: "
                    + self.c("logs", "--no-color", "migrate", check=False).stdout[-3000:]
                )
            if time.monotonic() - t0 > timeout_s:
                raise AssertionError(f"not healthy after {timeout_s:.0f} s: {self.states()}")
            time.sleep(2)

    def worker_metrics(self) -> dict[str, str]:
        """container name -> the text of its /metrics, scraped from the host over the network."""
        out = {}
        for c in self.containers("worker"):
            ip = next(iter(c["NetworkSettings"]["Networks"].values()))["IPAddress"]
            with urllib.request.urlopen(f"http://{ip}:9100/metrics", timeout=10) as resp:
                out[c["Name"].lstrip("/")] = resp.read().decode()
        return out

    def image_sizes(self, *tags: str) -> dict[str, int]:
        sizes = {}
        for tag in tags:
            done = self.sh(["docker", "image", "inspect", "-f", "{{.Size}}", tag], check=False)
            if done.returncode == 0:
                sizes[tag] = int(done.stdout.strip())
        return sizes


def started(c: dict) -> datetime:
    return _time(c["State"]["StartedAt"])


def finished(c: dict) -> datetime:
    return _time(c["State"]["FinishedAt"])


def _time(text: str) -> datetime:
    """Docker's RFC 3339 times carry nanoseconds; Python reads microseconds."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    assert m, text
    frac = (m.group(2) or ".0")[:7]
    return datetime.fromisoformat(m.group(1) + frac + m.group(3).replace("Z", "+00:00"))


def metric(text: str, name: str) -> float:
    """The sum of the samples of ``name`` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and re.match(rf"{re.escape(name)}(\{{.*\}})?\s", line):
            total += float(line.rsplit(" ", 1)[-1])
    return total
