"""`make dev`: a task project written by `make new-tasks`, mounted into the stack; a change
to its task file takes effect in the workers and the producer without `make up`.

Printed, not asserted to the second: how long the change took to be served (watchfiles
notices it, then the worker and the producer restart). The bound asserted is generous,
so a slow machine does not fail it; docs/tasks.md states what to expect.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.scaffold import render
from tests.e2e.conftest import Stack, own_stack
from tests.helpers import DEVELOPMENT_MAIL, ROOT, task_outcome, wait_for

pytestmark = pytest.mark.e2e

PROJECT = "conveyor-e2e-dev"
PORTS = {"PRODUCER_PORT": 18300, "FLOWER_PORT": 18355, "MAILBOX_PORT": 18325}
#: Where the project is written: under the repository, which the containers' user can read
#: (pytest's own temporary folders are private to the user running the tests).
WORKSPACE = ROOT / ".build" / "e2e-dev"
#: How long a saved change may take to be served (a worker restarts in a few seconds).
RELOAD_BOUND = 90


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    dest = WORKSPACE / "devloop-tasks"
    render("devloop", dest)
    for path in [WORKSPACE, *WORKSPACE.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield dest
    shutil.rmtree(WORKSPACE, ignore_errors=True)


@pytest.fixture(scope="module")
def env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "CONVEYOR_IMAGE_TAG": f"{os.environ.get('CONVEYOR_IMAGE_TAG', 'dev')}-devloop",
        "CONVEYOR_TASKS": str(project),
        **{name: str(port) for name, port in PORTS.items()},
        **DEVELOPMENT_MAIL,
    }


@pytest.fixture(scope="module")
def stack(env: dict[str, str]) -> Iterator[Stack]:
    down_env = {**env, "COMPOSE_FILE": "docker-compose.yml:deploy/compose/dev.yml"}
    with own_stack(env, "make", "dev", down_env=down_env) as stack:
        yield stack


def greet(stack: Stack) -> object:
    response = stack.api.post("/api/v1/tasks", json={"task": "devloop.greet", "args": ["Ada"]})
    assert response.status_code == 202, response.text
    return task_outcome(stack.api, response.json()["id"], timeout=60).get("result")


def summary(stack: Stack) -> str | None:
    tasks = stack.api.get("/api/v1/catalog").json()["tasks"]
    return next((t["summary"] for t in tasks if t["name"] == "devloop.greet"), None)


def test_a_saved_change_is_served_without_make_up(stack: Stack, project: Path) -> None:
    assert greet(stack) == "Hello, Ada."
    assert summary(stack) == "Greet someone by name."
    tasks = project / "devloop_tasks" / "tasks.py"
    source = tasks.read_text()
    changed = source.replace('f"Hello, {name}', 'f"Welcome, {name}').replace(
        "Greet someone by name.", "Welcome someone by name."
    )
    assert changed != source
    saved = time.monotonic()
    tasks.write_text(changed)
    wait_for(lambda: greet(stack) == "Welcome, Ada.", RELOAD_BOUND, "the worker to run the change")
    worker_seconds = time.monotonic() - saved
    wait_for(
        lambda: summary(stack) == "Welcome someone by name.",
        RELOAD_BOUND,
        "the producer to serve the change",
    )
    print(
        f"served by the worker {worker_seconds:.1f} s after the save, by the producer "
        f"{time.monotonic() - saved:.1f} s after"
    )
