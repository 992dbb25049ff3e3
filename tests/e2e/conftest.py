"""The whole compose stack, driven through the Makefile as a user would.

It runs under its own compose project name and host ports, so a developer's stack
(project "conveyor") is left alone, and it is always removed with its volumes at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.helpers import (
    DEVELOPMENT_MAIL,
    ROOT,
    mailbox_auth,
    read_env_file,
    task_outcome,
    wait_for,
)

PROJECT = "conveyor-e2e"
PORTS = {"PRODUCER_PORT": 18000, "FLOWER_PORT": 15555, "MAILBOX_PORT": 18025}
ENV = {
    **os.environ,
    "COMPOSE_PROJECT_NAME": PROJECT,
    **{k: str(v) for k, v in PORTS.items()},
    **DEVELOPMENT_MAIL,
}


def run(
    *command: str,
    timeout: float = 540,
    check: bool = True,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in the project folder with the e2e environment (plus `env`); fail
    with its output."""
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        # stderr first and stdout clipped: CI shows only the start of a failure message.
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"--- stderr\n{done.stderr[-3000:]}\n--- stdout (end)\n{done.stdout[-3000:]}"
        )
    return done


def make(
    *args: str, timeout: float = 540, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`make ARGS` as a user would type it (with `env` on top of the e2e environment)."""
    return run("make", *args, timeout=timeout, env=env)


def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker compose ARGS` on the e2e project."""
    return run("docker", "compose", *args, check=check, timeout=540)


def containers() -> list[dict[str, Any]]:
    """The e2e project's containers as compose reports them."""
    out = compose("ps", "--all", "--format", "json").stdout.strip()
    if not out:
        return []
    if out.startswith("["):
        return list(json.loads(out))
    return [json.loads(line) for line in out.splitlines()]


@dataclass
class Stack:
    """Clients for the running stack, with the credentials from .env."""

    api: httpx.Client
    flower: httpx.Client
    mailbox: httpx.Client
    secrets: dict[str, str] = field(repr=False)  # never in a failure message


def api_client(port: int, secrets: dict[str, str]) -> httpx.Client:
    """A client of the API published on 127.0.0.1:port, with the key of `secrets` (.env)."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=15,
        headers={"Authorization": f"Bearer {secrets['CONVEYOR_API_KEY']}"},
    )


def flower_client(port: int, secrets: dict[str, str]) -> httpx.Client:
    """A client of Flower published on 127.0.0.1:port, logged in as in `secrets` (.env)."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=15,
        auth=(secrets.get("FLOWER_USER") or "admin", secrets["FLOWER_PASSWORD"]),
    )


def mailbox_client(port: int) -> httpx.Client:
    """A client of the mailbox published on 127.0.0.1:port, with its login."""
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15, auth=mailbox_auth())


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """`make up`, clients for the API, Flower and the mailbox; `down -v` at the end (also
    when `make up` fails half-way: no stack is left behind)."""
    try:
        make("up")
    except BaseException:
        compose("--profile", "mailbox", "down", "--volumes", "--remove-orphans", check=False)
        raise
    secrets = read_env_file(ROOT / ".env")
    api = api_client(PORTS["PRODUCER_PORT"], secrets)
    flower = flower_client(PORTS["FLOWER_PORT"], secrets)
    mailbox = mailbox_client(PORTS["MAILBOX_PORT"])
    try:
        yield Stack(api, flower, mailbox, secrets)
    finally:
        for client in (api, flower, mailbox):
            client.close()
        # The mailbox's profile too: compose leaves a service of an inactive profile alone.
        compose("--profile", "mailbox", "down", "--volumes", "--remove-orphans", check=False)


def ended_workflow(api: httpx.Client, workflow_id: str) -> dict[str, Any] | None:
    """A workflow's status once it ended, else None."""
    status: dict[str, Any] = api.get(f"/api/v1/workflows/{workflow_id}").json()
    return status if status["state"] in {"SUCCESS", "FAILURE"} else None


def do_the_usual_work(stack: Stack, recipient: str) -> None:
    """What every role does with Redis: a task, a chord, an e-mail, the queue view (the
    producer asks the workers), and Flower's workers, tasks and queue lengths.

    The Redis-user tests run it and then look for refused commands in the ACL log.
    """
    api = stack.api
    add = api.post("/api/v1/tasks", json={"task": "add", "args": [2, 3]}).json()["id"]
    assert task_outcome(api, add)["result"] == 5
    chord = {
        "steps": [{"task": "add", "args": [i, i]} for i in range(20)],
        "callback": {"task": "xsum"},
    }
    workflow = api.post("/api/v1/workflows/chord", json=chord).json()["workflow_id"]
    done = wait_for(lambda: ended_workflow(api, workflow), 120, "the chord")
    assert (done["state"], done["result"]) == ("SUCCESS", 380)
    mail = {"to": [recipient], "subject": "Redis users", "text": "hello"}
    email = api.post("/api/v1/emails", json=mail).json()["id"]
    assert task_outcome(api, email)["state"] == "SUCCESS"
    inbox = stack.mailbox.get("/api/messages", params={"to": recipient}).json()
    assert [m["subject"] for m in inbox["messages"]] == ["Redis users"]
    # The producer asks the workers which queues they consume (remote control replies).
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}
    assert {name.split("@")[0] for name in queues["default"]["consumers"]} == {"worker"}
    assert {name.split("@")[0] for name in queues["email"]["consumers"]} == {"email"}

    # Flower (its own Redis user) sees the workers, their tasks and the queue lengths.
    def both_online() -> bool:
        workers = stack.flower.get("/api/workers", params={"status": "true"}).json()
        return {name.split("@")[0] for name, up in workers.items() if up} == {"email", "worker"}

    wait_for(both_online, 60, "Flower to see the worker and the e-mail worker online")

    # A refresh asks the workers over remote control and keeps the replies that come
    # within Flower's inspect timeout: on a busy machine the worker's may come later.
    def worker_stats() -> bool:
        inspected = stack.flower.get("/api/workers", params={"refresh": "1"}).json()
        return any(name.startswith("worker@") and "stats" in w for name, w in inspected.items())

    wait_for(worker_stats, 60, "Flower's inspection to get the worker's stats", interval=1)
    tasks = wait_for(lambda: stack.flower.get("/api/tasks").json().get(add), 60, "the task")
    assert tasks["state"] == "SUCCESS"
    lengths = stack.flower.get("/api/queues/length").json()["active_queues"]
    assert {q["name"] for q in lengths} >= {"default", "email"}


#: Remove a project, its mailbox too (compose leaves a service of an inactive profile).
DOWN = ("docker", "compose", "--profile", "mailbox", "down", "--volumes", "--remove-orphans")


def run_env(env: dict[str, str], *command: str, check: bool = True, timeout: float = 540) -> str:
    """Run a command in the project folder with exactly `env`; its output (stdout, then
    stderr). Fails the test with the end of both when it exits non-zero and `check`."""
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"--- stderr\n{done.stderr[-3000:]}\n--- stdout (end)\n{done.stdout[-2000:]}"
        )
    return done.stdout + done.stderr


@contextmanager
def own_stack(
    env: dict[str, str], *up: str, down_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """A stack of a project of its own: `up` run with `env` (its ports in it), the stack's
    clients, and the project removed with its volumes at the end, or when `up` fails.

    `down_env`: the environment compose needs to find every service (the compose files
    that `make` adds), when `env` does not say it.
    """
    down = down_env or env
    try:
        run_env(env, *up)
    except BaseException:
        run_env(down, *DOWN, check=False)
        raise
    secrets = read_env_file(ROOT / ".env")
    clients = (
        api_client(int(env["PRODUCER_PORT"]), secrets),
        flower_client(int(env["FLOWER_PORT"]), secrets),
        mailbox_client(int(env["MAILBOX_PORT"])),
    )
    try:
        yield Stack(*clients, secrets)
    finally:
        for client in clients:
            client.close()
        run_env(down, *DOWN, check=False)
