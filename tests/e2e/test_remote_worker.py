"""Remote workers, from the documented steps (docs/deploy.md, "Compose with remote workers").

Two compose projects play two hosts. Host A runs the whole TLS stack with Redis's TLS
port published on the Docker bridge's gateway address (named in its certificate), and
its own workers scaled to zero. Host B is a second project whose containers reach A only
through that published port: `make up ROLE=worker` with B's own env file (from `make env`,
its own secrets) and certs folder, given only A's `ca.crt`, REDIS_WORKER_PASSWORD and
REDIS_EMAIL_PASSWORD (the e-mail worker's own Redis user).
Tasks sent to A's API run on B's workers; B scales; B with another CA's `ca.crt` or a
wrong password is refused and runs nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DOWN, api_client, flower_client, run_env
from tests.helpers import DEVELOPMENT_MAIL, ROOT, read_env_file, task_outcome, wait_for

pytestmark = pytest.mark.e2e

PROJECT_A = "conveyor-e2e-hosta"
PROJECT_B = "conveyor-e2e-hostb"
PORTS_A = {"PRODUCER_PORT": 18600, "FLOWER_PORT": 18655, "MAILBOX_PORT": 18625}
REDIS_TLS_PORT = 18663
TLS_FILES = "docker-compose.yml:deploy/compose/tls.yml"


#: What an outer `make test` exports to the makes it runs: a host's shell has none of it.
MAKE_STATE = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}


def shell_environment(*dropped: str) -> dict[str, str]:
    """This process's environment as a shell on a host would have it, less `dropped`."""
    return {k: v for k, v in os.environ.items() if k not in MAKE_STATE | set(dropped)}


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from every container,
    on none of B's networks."""
    gateways = "{{range .IPAM.Config}}{{.Gateway}} {{end}}"
    out = subprocess.run(
        ["docker", "network", "inspect", "bridge", "-f", gateways],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    addresses = [a for a in out if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a)]
    assert addresses, f"the bridge network has no IPv4 gateway: {out}"
    return addresses[0]


@dataclass
class HostA:
    env: dict[str, str]
    certs: Path
    gateway: str
    api: httpx.Client
    flower: httpx.Client
    worker_password: str
    email_password: str


@pytest.fixture(scope="module")
def host_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostA]:
    gateway = bridge_gateway()
    certs = tmp_path_factory.mktemp("host-a-certs")
    env = {
        **shell_environment(),
        "COMPOSE_PROJECT_NAME": PROJECT_A,
        "REDIS_TLS": "true",
        "CONVEYOR_CERTS_DIR": str(certs),
        "REDIS_TLS_PORT": str(REDIS_TLS_PORT),
        "REDIS_TLS_BIND_ADDRESS": gateway,
        "REDIS_TLS_NAMES": gateway,
        **{name: str(port) for name, port in PORTS_A.items()},
        **DEVELOPMENT_MAIL,
    }
    env.pop("COMPOSE_FILE", None)
    compose_env = {**env, "COMPOSE_FILE": TLS_FILES}
    try:
        run_env(env, "make", "up", timeout=540)
        # Only B's workers may run tasks.
        run_env(env, "make", "scale", "WORKERS=0")
        run_env(env, "make", "scale", "WORKERS=0", "SERVICE=email-worker")
    except BaseException:
        run_env(compose_env, *DOWN, check=False)
        raise
    secrets = read_env_file(ROOT / ".env")
    api = api_client(PORTS_A["PRODUCER_PORT"], secrets)
    flower = flower_client(PORTS_A["FLOWER_PORT"], secrets)
    try:
        yield HostA(
            compose_env, certs, gateway, api, flower,
            secrets["REDIS_WORKER_PASSWORD"], secrets["REDIS_EMAIL_PASSWORD"],
        )  # fmt: skip
    finally:
        api.close()
        flower.close()
        run_env(compose_env, *DOWN, check=False)


@dataclass
class HostB:
    env: dict[str, str]
    certs: Path

    def make(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        return run_env(self.env, "make", *args, check=check, timeout=timeout)

    def make_fails(self, *args: str, timeout: float = 300) -> str:
        """`make ARGS`, which must exit non-zero; its output."""
        done = subprocess.run(
            ["make", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode != 0, f"make {' '.join(args)} succeeded:\n{output[-3000:]}"
        return output

    def compose(self, *args: str, check: bool = True) -> str:
        env = {**self.env, "COMPOSE_FILE": f"{TLS_FILES}:deploy/compose/remote-worker.yml"}
        return run_env(env, "docker", "compose", *args, check=check)

    def container_ids(self) -> set[str]:
        out = self.compose("ps", "--all", "--quiet", "worker")
        return {line.strip()[:12] for line in out.splitlines() if line.strip()}


@pytest.fixture
def host_b(host_a: HostA, tmp_path: Path) -> Iterator[Callable[..., HostB]]:
    """Make host B as docs/deploy.md says; `down --volumes` at the end, whatever happens."""
    made: list[HostB] = []

    def make_host_b(ca_crt: Path | None = None, worker_password: str | None = None) -> HostB:
        folder = tmp_path / "host-b"
        folder.mkdir()
        env_file = folder / ".env"
        # `make env` on B: B's own generated secrets.
        run_env(
            dict(os.environ), "bash", "deploy/scripts/init-env.sh", ".env.example", str(env_file)
        )
        # Then only these in B's .env, from A (and the image tag: the same version).
        copied = {
            "REDIS_TLS": "true",
            "REDIS_HOST": host_a.gateway,
            "REDIS_PORT": str(REDIS_TLS_PORT),
            "REDIS_WORKER_PASSWORD": worker_password or host_a.worker_password,
            "REDIS_EMAIL_PASSWORD": host_a.email_password,
            "CONVEYOR_IMAGE_TAG": read_env_file(ROOT / ".env").get("CONVEYOR_IMAGE_TAG", ""),
            **DEVELOPMENT_MAIL,
        }
        with env_file.open("a") as out:
            out.writelines(f"{name}={value}\n" for name, value in copied.items())
        certs = folder / "certs"
        certs.mkdir(mode=0o700)
        shutil.copy(ca_crt or host_a.certs / "ca.crt", certs / "ca.crt")
        own = read_env_file(env_file)
        # B runs make in this checkout: the environment wins over the repo's .env (A's)
        # everywhere (Makefile and compose), and A's variables B's file lacks are blanked.
        env = shell_environment("COMPOSE_FILE", "ROLE")
        env.update({name: "" for name in read_env_file(ROOT / ".env")})
        env.update(own)
        env.update(COMPOSE_PROJECT_NAME=PROJECT_B, CONVEYOR_CERTS_DIR=str(certs))
        host = HostB(env, certs)
        made.append(host)
        return host

    try:
        yield make_host_b
    finally:
        for host in made:
            host.compose(
                "--profile", "mailbox", "down", "--volumes", "--remove-orphans", check=False
            )


def online_workers(host_a: HostA, containers: set[str]) -> list[str]:
    workers = host_a.flower.get("/api/workers", params={"status": "true"}).json()
    return sorted(name for name, up in workers.items() if up and name.split("@")[-1] in containers)


def test_tasks_sent_to_a_run_on_b_workers_and_b_scales(
    host_a: HostA, host_b: Callable[..., HostB]
) -> None:
    b = host_b()
    b.make("up", "ROLE=worker", timeout=400)
    # make certs kept the copied CA and made nothing else: B holds no key.
    assert sorted(p.name for p in b.certs.iterdir()) == ["ca.crt"]
    assert (b.certs / "ca.crt").read_bytes() == (host_a.certs / "ca.crt").read_bytes()
    ids = b.container_ids()
    assert len(ids) == 1
    task = host_a.api.post("/api/v1/tasks", json={"task": "add", "args": [2, 3]}).json()["id"]
    status = task_outcome(host_a.api, task, timeout=90)
    assert status["result"] == 5
    assert status["worker"] == f"worker@{next(iter(ids))}", status
    mail = {"to": ["remote@example.com"], "subject": "from B", "text": "hello"}
    email = host_a.api.post("/api/v1/emails", json=mail).json()["id"]
    # B's e-mail worker takes it (A has none); B has no mailbox, so it is retried.
    wait_for(
        lambda: host_a.api.get(f"/api/v1/tasks/{email}").json()["state"] != "PENDING" or None,
        90,
        "B's e-mail worker to take the e-mail",
    )

    b.make("scale", "WORKERS=2", "ROLE=worker")
    ids = b.container_ids()
    assert len(ids) == 2
    wait_for(
        lambda: len(online_workers(host_a, ids)) == 2 or None,
        90,
        "A's Flower to see B's two workers online",
    )


def refused(host_a: HostA, b: HostB) -> tuple[str, str]:
    """B's `make up ROLE=worker` fails; its worker's log; a task sent meanwhile stays."""
    task = host_a.api.post("/api/v1/tasks", json={"task": "add", "args": [20, 22]}).json()["id"]
    up = b.make_fails("up", "ROLE=worker", timeout=400)
    logs = b.compose("logs", "--no-color", "worker")
    assert host_a.api.get(f"/api/v1/tasks/{task}").json()["state"] == "PENDING"
    return up, logs


def test_a_worker_host_with_another_ca_is_refused(
    host_a: HostA, host_b: Callable[..., HostB], tmp_path: Path
) -> None:
    other = tmp_path / "other-ca"
    run_env(dict(os.environ), "bash", "deploy/scripts/make-certs.sh", str(other))
    _, logs = refused(host_a, host_b(ca_crt=other / "ca.crt"))
    assert "certificate verify failed" in logs, logs[-3000:]
    assert "refusing to start the worker" in logs, logs[-3000:]


def test_a_worker_host_with_a_wrong_password_is_refused(
    host_a: HostA, host_b: Callable[..., HostB]
) -> None:
    _, logs = refused(host_a, host_b(worker_password="not-the-worker-password"))
    assert re.search(r"WRONGPASS|invalid username-password", logs), logs[-3000:]
    assert "refusing to start the worker: Redis refused REDIS_PASSWORD" in logs, logs[-3000:]
