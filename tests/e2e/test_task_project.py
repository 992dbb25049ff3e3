"""A team's task project in the stack: examples/webhooks, built in with CONVEYOR_TASKS.

`make up` builds the project's wheel and its locked dependencies into the image (a tag
of its own here), and the producer and the workers load its tasks through its entry
point. The queue it declares in its pyproject.toml (`webhooks`) gets, from that one
entry and no other file, its own worker service, its key patterns in every Redis role's
ACL and its row in /api/v1/queues. Its task runs through the API, its arguments are
validated by the schema from its type hints, and its retry policy (Celery's autoretry,
set in the decorator) shows in the attempts the receiver saw and the retries recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from conveyor_client import Client, InvalidArgumentsError
from tests.e2e.conftest import Stack, own_stack, run_env
from tests.helpers import DEVELOPMENT_MAIL, ROOT, task_outcome

pytestmark = pytest.mark.e2e

PROJECT = "conveyor-e2e-tasks"
PORTS = {"PRODUCER_PORT": 18200, "FLOWER_PORT": 18255, "MAILBOX_PORT": 18225}
RECEIVER = "http://webhook-receiver:8080/hooks"
#: The receiver answers 503 to this many attempts of each delivery.
REFUSED_ATTEMPTS = 2


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": "docker-compose.yml:examples/webhooks/compose.yml",
        # Its own image tag: the default stack's image stays without the example.
        "CONVEYOR_IMAGE_TAG": f"{os.environ.get('CONVEYOR_IMAGE_TAG', 'dev')}-tasks",
        "CONVEYOR_TASKS": "examples/webhooks",
        "WEBHOOK_SIGNING_SECRET": "an-e2e-signing-secret-0123456789",
        "RECEIVER_FAIL_FIRST": str(REFUSED_ATTEMPTS),
        **{name: str(port) for name, port in PORTS.items()},
        **DEVELOPMENT_MAIL,
    }


def worktree() -> str:
    """The repository's changes (tracked and untracked, .gitignore'd files aside)."""
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture(scope="module")
def stack(env: dict[str, str]) -> Iterator[Stack]:
    before = worktree()
    with own_stack(env, "make", "up") as stack:
        # The queue came from its declaration alone: `make up` edited no file of the
        # repository (what it renders goes to .build, which git ignores).
        assert worktree() == before
        yield stack


def deliveries(env: dict[str, str]) -> list[dict[str, object]]:
    """What the receiver kept (asked inside its container: it is on the internal network)."""
    script = (
        "import urllib.request as u; "
        "print(u.urlopen('http://127.0.0.1:8080/deliveries', timeout=5).read().decode())"
    )
    out = run_env(
        env, "docker", "compose", "exec", "-T", "webhook-receiver", "python", "-c", script
    )
    return list(json.loads(out))


def test_the_projects_task_is_in_the_catalogue_with_its_schema(stack: Stack) -> None:
    tasks = {entry["name"]: entry for entry in stack.api.get("/api/v1/catalog").json()["tasks"]}
    entry = tasks["deliver_webhook"]
    assert entry["queue"] == "webhooks"
    assert entry["summary"] == "POST a signed event to a webhook receiver."
    assert entry["positional"] == ["url", "event", "payload"]
    assert entry["arguments"]["properties"]["url"]["pattern"] == "^https?://"
    assert {"add", "send_email"} <= set(tasks)  # the built-in packages still load


def test_a_bad_argument_is_a_422_naming_the_field(stack: Stack) -> None:
    response = stack.api.post(
        "/api/v1/tasks",
        json={"task": "deliver_webhook", "args": ["ftp://example.com", "order.paid", {}]},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "args[0]"


def test_a_delivery_is_retried_with_backoff_until_the_receiver_takes_it(
    stack: Stack, env: dict[str, str]
) -> None:
    body = {"task": "deliver_webhook", "args": [RECEIVER, "order.paid", {"order": 7}]}
    response = stack.api.post("/api/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    done = task_outcome(stack.api, task_id, timeout=90)
    assert done["state"] == "SUCCESS", done
    assert done["result"] == {"status": 204, "webhook_id": task_id}
    assert done["worker"].startswith("webhooks@"), done  # the queue's own worker ran it
    # Two 503s, each retried by Celery's autoretry (1 s, then 2 s), then taken once.
    assert done["retries"] == REFUSED_ATTEMPTS, done
    [kept] = [d for d in deliveries(env) if d["id"] == task_id]
    assert kept["attempts"] == REFUSED_ATTEMPTS + 1
    assert (kept["event"], kept["payload"]) == ("order.paid", {"order": 7})


def test_the_python_client_runs_the_projects_task(stack: Stack) -> None:
    with Client(
        f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}", stack.secrets["CONVEYOR_API_KEY"]
    ) as conveyor:
        task = conveyor.submit("deliver_webhook", RECEIVER, "invoice.sent", payload={"n": 1})
        assert task.wait(timeout=90) == {"status": 204, "webhook_id": task.id}
        assert task.status()["retries"] == REFUSED_ATTEMPTS
        with pytest.raises(InvalidArgumentsError) as refused:
            conveyor.submit("deliver_webhook", RECEIVER, "", payload={})
        assert refused.value.field == "args[1]"


def test_the_projects_queue_has_its_own_worker_and_acl(stack: Stack, env: dict[str, str]) -> None:
    queues = {row["name"]: row for row in stack.api.get("/api/v1/queues").json()["queues"]}
    assert list(queues) == ["default", "email", "webhooks"]
    webhooks = queues["webhooks"]
    assert (webhooks["service"], webhooks["kind"], webhooks["pool"]) == (
        "webhooks-worker",
        "io",
        "threads",
    )
    assert (webhooks["concurrency"], webhooks["time_limit"]) == (8, 90)
    assert webhooks["consumers"] and all(c.startswith("webhooks@") for c in webhooks["consumers"])
    assert not any(c.startswith("webhooks@") for c in queues["default"]["consumers"])
    running = run_env(env, "docker", "compose", "ps", "--status", "running", "--services")
    assert "webhooks-worker" in running.split()
    # Each role's key patterns cover the queue: the producer may push to it, Flower may
    # count it; a key of no declared queue stays refused to both.
    producer = ("producer", "SET", "{key}", "1")
    flower = ("flower", "LLEN", "{key}")
    for user, *command in (producer, flower):
        allowed = as_user(stack, env, user, *(a.format(key="webhooks-acl-probe") for a in command))
        refused = as_user(stack, env, user, *(a.format(key="nowhere-acl-probe") for a in command))
        assert "NOPERM" not in allowed and "NOPERM" in refused, (user, allowed, refused)
    as_user(stack, env, "producer", "DEL", "webhooks-acl-probe")


def as_user(stack: Stack, env: dict[str, str], user: str, *command: str) -> str:
    """A Redis command as a role's user (its password from .env), in the Redis container."""
    # The password goes through the environment, never the command line (or a failure
    # message that prints it).
    password = {"REDISCLI_AUTH": stack.secrets[f"REDIS_{user.upper()}_PASSWORD"]}
    return run_env(
        {**env, **password},
        "docker",
        "compose",
        "exec",
        "-T",
        "-e",
        "REDISCLI_AUTH",
        "redis",
        "redis-cli",
        "--user",
        user,
        "-h",
        "127.0.0.1",
        *command,
    )


def test_make_scale_by_queue_runs_that_queues_workers(stack: Stack, env: dict[str, str]) -> None:
    run_env(env, "make", "scale", "QUEUE=webhooks", "WORKERS=2")
    running = subprocess.run(
        ["docker", "compose", "ps", "--status", "running", "--quiet", "webhooks-worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert len(running.split()) == 2
    refused = subprocess.run(
        ["make", "scale", "QUEUE=nope", "WORKERS=2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "QUEUE=nope is not a declared queue; declared: default email webhooks" in (
        refused.stderr
    )


def test_make_k8s_render_shows_the_projects_queue(env: dict[str, str]) -> None:
    """The same declaration gives the queue its Kubernetes objects (no manifest edited)."""
    out = run_env(env, "make", "--no-print-directory", "k8s-render", "OVERLAY=production")
    objects = {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(out) if doc
    }
    assert {("Deployment", "webhooks-worker"), ("ScaledObject", "webhooks-worker")} <= set(objects)
    scaler = objects[("ScaledObject", "webhooks-worker")]
    assert scaler["spec"]["triggers"][0]["metadata"]["listName"] == "webhooks"
