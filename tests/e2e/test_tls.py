"""The stack with REDIS_TLS=true: TLS only, one Redis ACL user per role.

`make up` on a compose project of its own, certificates from `make certs` in a temporary
folder. The same work as the plain stack must succeed (tasks, a chord, an e-mail, Flower,
the queue view) with no command refused by Redis (its ACL log stays empty), and each
role's credentials must be refused for another role's work: a worker started with the
producer's password takes no task.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import Stack
from tests.helpers import (
    DEVELOPMENT_MAIL,
    ROOT,
    mailbox_auth,
    read_env_file,
    task_outcome,
    wait_for,
)

pytestmark = pytest.mark.e2e


def ended_workflow(api: httpx.Client, workflow_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = api.get(f"/api/v1/workflows/{workflow_id}").json()
    return status if status["state"] in {"SUCCESS", "FAILURE"} else None


PROJECT = "conveyor-e2e-tls"
#: Remove the project, the mailbox too (compose leaves a service of an inactive profile).
DOWN = ("docker", "compose", "--profile", "mailbox", "down", "--volumes", "--remove-orphans")
PORTS = {"PRODUCER_PORT": 18100, "FLOWER_PORT": 18155, "MAILBOX_PORT": 18125}
REDIS_PORT = 18379


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="module")
def env(certs: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        # What `make` adds when REDIS_TLS is on, for the docker compose calls made here.
        "COMPOSE_FILE": "docker-compose.yml:deploy/compose/tls.yml",
        "REDIS_TLS": "true",
        "CONVEYOR_CERTS_DIR": str(certs),
        "REDIS_TLS_PORT": str(REDIS_PORT),
        **{name: str(port) for name, port in PORTS.items()},
        **DEVELOPMENT_MAIL,
    }


def run(env: dict[str, str], *command: str, check: bool = True, timeout: float = 540) -> str:
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def tls_stack(env: dict[str, str]) -> Iterator[Stack]:
    try:
        run(env, "make", "up")
    except BaseException:
        run(env, *DOWN, check=False)
        raise
    secrets = read_env_file(ROOT / ".env")
    api, flower, mailbox = (
        httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}",
            timeout=15,
            headers={"Authorization": f"Bearer {secrets['CONVEYOR_API_KEY']}"},
        ),
        httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['FLOWER_PORT']}",
            timeout=15,
            auth=(secrets.get("FLOWER_USER") or "admin", secrets["FLOWER_PASSWORD"]),
        ),
        httpx.Client(
            base_url=f"http://127.0.0.1:{PORTS['MAILBOX_PORT']}", timeout=15, auth=mailbox_auth()
        ),
    )
    try:
        yield Stack(api, flower, mailbox, secrets)
    finally:
        for client in (api, flower, mailbox):
            client.close()
        run(env, *DOWN, check=False)


def as_role(stack: Stack, certs: Path, role: str, db: int = 0) -> redis.Redis:
    """A client of the published TLS port, logged in as one role."""
    return redis.Redis(
        host="127.0.0.1",
        port=REDIS_PORT,
        db=db,
        username=role,
        password=stack.secrets[f"REDIS_{role.upper()}_PASSWORD"],
        ssl=True,
        ssl_ca_certs=str(certs / "ca.crt"),
        ssl_cert_reqs="required",
        socket_timeout=5,
    )


def acl_log(env: dict[str, str]) -> str:
    return run(
        env, "docker", "compose", "exec", "-T", "redis", "conveyor-redis", "cli", "ACL", "LOG"
    )


def test_the_whole_stack_works_with_tls_and_no_command_is_refused(
    tls_stack: Stack, env: dict[str, str]
) -> None:
    api = tls_stack.api
    run(
        env,
        "docker",
        "compose",
        "exec",
        "-T",
        "redis",
        "conveyor-redis",
        "cli",
        "ACL",
        "LOG",
        "RESET",
    )
    add = api.post("/api/v1/tasks", json={"task": "add", "args": [2, 3]}).json()["id"]
    assert task_outcome(api, add)["result"] == 5
    chord = {
        "steps": [{"task": "add", "args": [i, i]} for i in range(20)],
        "callback": {"task": "xsum"},
    }
    workflow = api.post("/api/v1/workflows/chord", json=chord).json()["workflow_id"]
    done = wait_for(lambda: ended_workflow(api, workflow), 120, "the chord")
    assert (done["state"], done["result"]) == ("SUCCESS", 380)
    mail = {"to": ["tls@example.com"], "subject": "over TLS", "text": "hello"}
    email = api.post("/api/v1/emails", json=mail).json()["id"]
    assert task_outcome(api, email)["state"] == "SUCCESS"
    inbox = tls_stack.mailbox.get("/api/messages", params={"to": "tls@example.com"}).json()
    assert [m["subject"] for m in inbox["messages"]] == ["over TLS"]
    # The producer asks the workers which queues they consume (remote control replies).
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}
    assert [name.split("@")[0] for name in queues["default"]["consumers"]] == ["worker"]
    assert [name.split("@")[0] for name in queues["email"]["consumers"]] == ["email"]

    # Flower (its own Redis user) sees the workers, their tasks and the queue lengths.
    def both_online() -> bool:
        workers = tls_stack.flower.get("/api/workers", params={"status": "true"}).json()
        return sorted(name.split("@")[0] for name, up in workers.items() if up) == [
            "email",
            "worker",
        ]

    wait_for(both_online, 60, "Flower to see the worker and the e-mail worker online")
    inspected = tls_stack.flower.get("/api/workers", params={"refresh": "1"}).json()
    assert any(name.startswith("worker@") and "stats" in w for name, w in inspected.items())
    tasks = wait_for(lambda: tls_stack.flower.get("/api/tasks").json().get(add), 60, "the task")
    assert tasks["state"] == "SUCCESS"
    lengths = tls_stack.flower.get("/api/queues/length").json()["active_queues"]
    assert {q["name"] for q in lengths} >= {"default", "email"}
    log = acl_log(env)
    assert log.strip() == "", f"Redis refused something the stack does:\n{log}"


def test_redis_speaks_only_tls_with_a_certificate_from_our_ca(
    tls_stack: Stack, certs: Path
) -> None:
    plain = redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=5)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    untrusted = redis.Redis(
        host="127.0.0.1", port=REDIS_PORT, ssl=True, ssl_cert_reqs="required", socket_timeout=5
    )
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        untrusted.ping()
    assert as_role(tls_stack, certs, "producer").ping() is True


def test_each_role_is_refused_what_belongs_to_another(tls_stack: Stack, certs: Path) -> None:
    producer = as_role(tls_stack, certs, "producer")
    flower = as_role(tls_stack, certs, "flower")
    worker = as_role(tls_stack, certs, "worker")
    probe = "default-acl-probe"
    assert producer.lpush(probe, "x") == 1  # the producer may push to a queue...
    for take in (lambda: producer.rpop(probe), lambda: producer.brpop([probe], timeout=1)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            take()  # ...but never take from one
    with pytest.raises(redis.exceptions.NoPermissionError):
        producer.zadd("unacked_index", {"forged": 1})
    with pytest.raises(redis.exceptions.NoPermissionError):
        flower.lpush(probe, "x")  # Flower only counts queues
    assert flower.llen(probe) == 1
    assert worker.rpop(probe) == b"x"
    for role in (producer, flower, worker):
        for command in (("FLUSHALL",), ("CONFIG", "GET", "dir"), ("ACL", "LIST")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                role.execute_command(*command)  # type: ignore[no-untyped-call]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            host="127.0.0.1", port=REDIS_PORT, username="worker",
            password=tls_stack.secrets["REDIS_PRODUCER_PASSWORD"], ssl=True,
            ssl_ca_certs=str(certs / "ca.crt"), socket_timeout=5,
        ).ping()  # fmt: skip


def test_a_worker_with_the_producers_credentials_takes_no_task(
    tls_stack: Stack, env: dict[str, str], certs: Path
) -> None:
    api = tls_stack.api
    run(env, "docker", "compose", "stop", "worker")
    try:
        task = api.post("/api/v1/tasks", json={"task": "add", "args": [20, 22]}).json()["id"]
        imposter = run(
            env, "timeout", "60", "docker", "compose", "run", "--rm", "--no-deps",
            "-e", "REDIS_USERNAME=producer",
            "-e", f"REDIS_PASSWORD={tls_stack.secrets['REDIS_PRODUCER_PASSWORD']}",
            "worker", check=False, timeout=120,
        )  # fmt: skip
        # redis-py drops the NOPERM code from the message; its exception names it.
        assert re.search(r"NoPermissionError|NOPERM|no permissions", imposter), imposter[-3000:]
        assert api.get(f"/api/v1/tasks/{task}").json()["state"] == "PENDING"
        assert as_role(tls_stack, certs, "producer").llen("default") == 1
    finally:
        run(env, "docker", "compose", "start", "worker")
    # The real worker then runs it: nothing was lost to the imposter.
    assert task_outcome(api, task, timeout=120)["result"] == 42
