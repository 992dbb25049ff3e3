"""The host side's handle on the stack: Docker Compose with the bench overlay."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conveyor_core.env_file import read_env_file

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "bench" / "compose.bench.yml"
#: Compose services that consume work; each scenario runs only the ones it measures.
CONSUMERS = ("worker", "stock-celery", "dramatiq", "ceiling", "io-worker")


class Stack:
    """`docker compose` on the project, with the bench overlay and profile."""

    def __init__(self, project: str | None = None) -> None:
        self.env = {
            **os.environ,
            **read_env_file(ROOT / ".build" / "bases.env"),
            "COMPOSE_FILE": os.pathsep.join([str(ROOT / "docker-compose.yml"), str(OVERLAY)]),
            "COMPOSE_PROFILES": "bench",
        }
        if project:
            self.env["COMPOSE_PROJECT_NAME"] = project

    def run(self, *command: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
        """Run a command in the project folder; raise with its stderr when it fails."""
        done = subprocess.run(  # noqa: S603
            command,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def compose(self, *args: str, env: dict[str, str] | None = None) -> str:
        """`docker compose ARGS`."""
        return self.run("docker", "compose", *args, env=env)

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        return self.compose("ps", "--quiet", "--status", "running", service).split()

    def scale(self, service: str, replicas: int, env: dict[str, str] | None = None) -> None:
        """Run exactly `replicas` containers of `service`."""
        self.compose(
            "up", "--detach", "--no-build", "--no-recreate", "--scale",
            f"{service}={replicas}", service, env=env,
        )  # fmt: skip

    def only(self, service: str | None, replicas: int, env: dict[str, str] | None = None) -> None:
        """Stop every consumer but `service`, which gets `replicas` fresh containers."""
        running = set(self.compose("ps", "--status", "running", "--format", "{{.Service}}").split())
        # One call stops them all in parallel (each takes a warm shutdown of 1-2 s).
        stopping = [name for name in CONSUMERS if name in running]
        if stopping:
            self.compose("rm", "--stop", "--force", *stopping)
        if service:
            self.scale(service, replicas, env=env)

    def agent(self, *args: str, timeout: float = 900) -> dict[str, Any]:
        """Run an agent command in the bench-agent container; its figures."""
        out = self.compose(
            "exec", "-T", "bench-agent", "python", "-m", "conveyor_bench.agent.main", *args
        )
        return dict(json.loads(out.strip().splitlines()[-1]))

    def agent_process(self, *args: str) -> subprocess.Popen[str]:
        """Start an agent command that talks over stdin and stdout."""
        command = ["docker", "compose", "exec", "-T", "bench-agent", "python", "-u", "-m"]
        return subprocess.Popen(  # noqa: S603
            [*command, "conveyor_bench.agent.main", *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    @contextmanager
    def frozen(self, ids: Sequence[str]) -> Iterator[None]:
        """Containers frozen (cgroup freezer) inside the block, and thawed on the way out."""
        self.run("docker", "pause", *ids)
        try:
            yield
        finally:
            self.run("docker", "unpause", *ids) if self._paused(ids) else None

    def _paused(self, ids: Sequence[str]) -> bool:
        out = self.run("docker", "inspect", "--format", "{{.State.Paused}}", *ids)
        return "true" in out

    def memory_mib(self, service: str) -> float:
        """Memory the service's containers use now (docker stats), in MiB, summed."""
        ids = self.containers(service)
        out = self.run("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *ids)
        total = 0.0
        for line in out.splitlines():
            used = line.split("/")[0].strip()
            number, unit = float(used[:-3]), used[-3:]
            total += number * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1 / 1024**2)
        return round(total, 1)

    def wait(self, seconds: float) -> None:
        """Let the machine settle (background work of the previous step)."""
        time.sleep(seconds)
