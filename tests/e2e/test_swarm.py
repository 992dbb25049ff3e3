"""Conveyor on Docker Swarm: `make swarm-up`, tasks, `make swarm-scale`, `make swarm-down`.

A single-node swarm (initialised here if this machine has none, and left again at the
end), a stack of its own on ports of its own. The stack runs Redis with TLS and one user
per role, secrets as Swarm secrets.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_stack import SERVICES
from tests.helpers import ROOT, read_env_file, task_outcome, wait_for

pytestmark = pytest.mark.e2e


def ended_workflow(api: httpx.Client, workflow_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = api.get(f"/api/v1/workflows/{workflow_id}").json()
    return status if status["state"] in {"SUCCESS", "FAILURE"} else None


STACK = "conveyor-e2e-swarm"
PORTS = {"PRODUCER_PORT": "18200", "FLOWER_PORT": "18255"}
# Swarm never runs the development mailbox and refuses to deploy without an SMTP server:
# one that is never reached (these tests send no e-mail).
ENV = {
    **os.environ,
    "STACK_NAME": STACK,
    **PORTS,
    "SMTP_HOST": "smtp.example.invalid",
    # A task project that declares a queue of its own (webhooks): the rendered stack
    # gets its worker service. The image is the one test_task_project uses.
    "CONVEYOR_TASKS": "examples/webhooks",
    "CONVEYOR_IMAGE_TAG": f"{os.environ.get('CONVEYOR_IMAGE_TAG', 'dev')}-tasks",
}
#: Every service of the compose stack but the mailbox, and the declared queue's.
SWARM_SERVICES = SERVICES - {"mailbox"} | {"webhooks-worker"}


def run(*command: str, check: bool = True, timeout: float = 540) -> str:
    done = subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}\n{done.stderr[-3000:]}")
    return done.stdout


def replicas() -> dict[str, str]:
    """Each service of the stack and its running/desired replicas."""
    out = run("docker", "stack", "services", STACK, "--format", "{{json .}}")
    rows = [json.loads(line) for line in out.splitlines()]
    return {row["Name"].removeprefix(f"{STACK}_"): row["Replicas"] for row in rows}


def stack_tasks() -> str:
    """Every task of the stack with its state and error: what a failure should show."""
    return run(
        "docker", "stack", "ps", STACK, "--no-trunc",
        "--format", "{{.Name}} {{.CurrentState}} {{.Error}}", check=False,
    )  # fmt: skip


def accepted(response: httpx.Response) -> dict[str, Any]:
    """The body of a 202; any other answer fails the test, showing it and the stack's tasks."""
    assert response.status_code == 202, f"{response.status_code} {response.text}\n{stack_tasks()}"
    body: dict[str, Any] = response.json()
    return body


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    """A task's id, submitted as a client does: a 503 (Redis briefly away) is retried with
    the same idempotency key for up to 60 s."""
    body = {"idempotency_key": uuid.uuid4().hex, **body}

    def answer() -> httpx.Response | None:
        response = api.post("/api/v1/tasks", json=body)
        return None if response.status_code == 503 else response

    return str(accepted(wait_for(answer, 60, "an answer other than 503"))["id"])


@pytest.fixture(scope="module")
def swarm() -> Iterator[None]:
    state = run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    try:
        yield
    finally:
        run("make", "swarm-down", check=False)
        volumes = run("docker", "volume", "ls", "-q", "--filter", f"name={STACK}_", check=False)
        if volumes.split():
            run("docker", "volume", "rm", *volumes.split(), check=False)
        if state != "active":  # we made it: leave no swarm behind
            run("docker", "swarm", "leave", "--force", check=False)


@pytest.fixture(scope="module")
def api(swarm: None) -> Iterator[httpx.Client]:
    run("make", "swarm-up", timeout=540)
    key = read_env_file(ROOT / ".env")["CONVEYOR_API_KEY"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    ) as client:
        # The routing mesh may take a moment after the service is healthy.
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "the API via the mesh")
        yield client


def online_workers(secrets: dict[str, str]) -> list[str]:
    auth = (secrets.get("FLOWER_USER") or "admin", secrets["FLOWER_PASSWORD"])
    url = f"http://127.0.0.1:{PORTS['FLOWER_PORT']}/api/workers"
    workers = httpx.get(url, params={"status": "true"}, auth=auth, timeout=15).json()
    return sorted(name for name, online in workers.items() if online and name.startswith("worker@"))


def test_the_stack_converges_and_runs_tasks(api: httpx.Client) -> None:
    assert set(replicas()) == SWARM_SERVICES
    assert all(r.split()[0] in {"1/1", "2/2"} for r in replicas().values()), replicas()
    task = submit(api, {"task": "add", "args": [40, 2]})
    assert task_outcome(api, task, timeout=120)["result"] == 42
    chain = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [8]}]}
    workflow = accepted(api.post("/api/v1/workflows/chain", json=chain))["workflow_id"]
    done = wait_for(lambda: ended_workflow(api, workflow), 120, "the chain")
    assert done["result"] == 32


def test_a_declared_queue_has_its_own_swarm_service(api: httpx.Client) -> None:
    """The webhooks queue, declared in the task project only, is consumed by its service."""
    assert replicas()["webhooks-worker"].split()[0] == "1/1"

    def consumers() -> list[str] | None:
        rows = api.get("/api/v1/queues").json()["queues"]
        found = next(row["consumers"] for row in rows if row["name"] == "webhooks")
        return found or None

    found = wait_for(consumers, 60, "a consumer of the webhooks queue")
    assert all(name.startswith("webhooks@") for name in found), found


def test_scale_workers_to_three_and_back(api: httpx.Client) -> None:
    secrets = read_env_file(ROOT / ".env")
    run("make", "swarm-scale", "WORKERS=3")
    assert replicas()["worker"].split()[0] == "3/3"

    def three_online() -> list[str] | None:
        online = online_workers(secrets)
        return online if len(online) == 3 else None

    online = wait_for(three_online, 120, "Flower to list 3 online workers", interval=1)
    assert len(set(online)) == 3
    ids = [submit(api, {"task": "add", "args": [i, i]}) for i in range(12)]
    assert [task_outcome(api, i, timeout=120)["result"] for i in ids] == [2 * i for i in range(12)]
    run("make", "swarm-scale", "WORKERS=1")
    assert replicas()["worker"].split()[0] == "1/1"
    task = submit(api, {"task": "add", "args": [1, 1]})
    assert task_outcome(api, task, timeout=120)["result"] == 2


def stopped_services(since: float) -> list[str]:
    """The services of the stack whose containers stopped since `since`, in that order."""
    out = run(
        "docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", "type=container", "--filter", "event=die",
        "--filter", f"label=com.docker.stack.namespace={STACK}",
        "--format", '{{index .Actor.Attributes "com.docker.swarm.service.name"}}',
    )  # fmt: skip
    return [line.removeprefix(f"{STACK}_") for line in out.split()]


def test_swarm_down_removes_the_stack(api: httpx.Client) -> None:
    since = time.time()
    run("make", "swarm-down")
    # The workers stop first, while Redis can still take back what they hold.
    stopped = stopped_services(since)
    assert set(stopped) == SWARM_SERVICES, stopped
    workers = [i for i, service in enumerate(stopped) if service.endswith("worker")]
    assert max(workers) < stopped.index("redis"), stopped
    stacks = run("docker", "stack", "ls", "--format", "{{.Name}}").split()
    assert STACK not in stacks
    leftovers = run("docker", "ps", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
    assert leftovers.strip() == ""
