"""A team's task project in the stack: examples/webhooks, built in with CONVEYOR_TASKS.

`make up` builds the project's wheel and its locked dependencies into the image (a tag
of its own here), and the producer and the workers load its tasks through its entry
point. Its task runs through the API, its arguments are validated by the schema from
its type hints, and its retry policy (Celery's autoretry, set in the decorator) shows in
the attempts the receiver saw and the retries the API records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from conveyor_client import Client, InvalidArgumentsError
from tests.e2e.conftest import Stack, own_stack, run_env
from tests.helpers import DEVELOPMENT_MAIL, task_outcome

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


@pytest.fixture(scope="module")
def stack(env: dict[str, str]) -> Iterator[Stack]:
    with own_stack(env, "make", "up") as stack:
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
    assert entry["queue"] == "default"
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
