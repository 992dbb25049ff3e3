"""Helpers shared by the integration and e2e tests: bounded polling, base image names."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# The one .env reader; re-exported for the tests that import it from here.
from conveyor_core.catalog import TaskSpec
from conveyor_core.env_file import read_env_file
from conveyor_core.settings import Settings
from conveyor_core.task_packages import Selection, catalog_of

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
__all__ = [
    "DEVELOPMENT_MAIL",
    "ROOT",
    "mailbox_auth",
    "read_env_file",
    "redis_image",
    "task_outcome",
    "wait_for",
    "wait_until_started",
]


#: The test stacks that read e-mail are development stacks with the mailbox, whatever
#: the developer's .env says: a production .env would make the e-mail worker refuse the
#: mailbox, and a real SMTP_HOST would send the tests' e-mail out.
def selection(*modules: str, demo: bool = True, test: bool = False) -> Selection:
    """A choice of task packages, with the settings' default limits."""
    fields = Settings.model_fields
    return Selection(
        demo_tasks=demo,
        test_tasks=test,
        modules=modules,
        visibility_timeout=fields["visibility_timeout"].default,
        task_time_limit=fields["task_time_limit"].default,
        task_soft_time_limit=fields["task_soft_time_limit"].default,
    )


#: The task packages of the stacks under test: demo, e-mail and the test tasks.
TEST_STACK_TASKS = selection(test=True)


def catalog(name: str) -> TaskSpec:
    """A task of the test stacks' catalogue."""
    return catalog_of(TEST_STACK_TASKS)[name]


DEVELOPMENT_MAIL = {"CONVEYOR_ENV": "development", "SMTP_HOST": "mailbox"}


def mailbox_auth() -> tuple[str, str]:
    """The mailbox's basic-auth login from .env (`make env` generates the password)."""
    values = read_env_file(ROOT / ".env")
    return values.get("MAILBOX_USER") or "admin", values["MAILBOX_PASSWORD"]


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # the thing may not be up yet; keep the last reason
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error})")


#: An HTTP client with the API key set: FastAPI's TestClient (integration) or an
#: httpx.Client (e2e); both have .get(path).json().
JsonGetter = Any


def task_outcome(api: JsonGetter, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the API until the task ended (ready) and return its status."""

    def ended() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").json()
        return status if status["ready"] else None

    return wait_for(ended, timeout, f"task {task_id} to end", interval=0.2)


def wait_until_started(api: JsonGetter, task_id: str, timeout: float = 60) -> None:
    """Poll the API until the task is running on a worker."""

    def started() -> bool:
        return bool(api.get(f"/api/v1/tasks/{task_id}").json()["state"] == "STARTED")

    wait_for(started, timeout, f"task {task_id} to start", interval=0.1)


def redis_image() -> str:
    """The Redis image `make bases` chose (public, or the air-gapped stand-in)."""
    chosen = read_env_file(ROOT / ".build" / "bases.env").get("REDIS_IMAGE")
    return os.environ.get("REDIS_IMAGE") or chosen or "redis:7-bookworm"


#: The mailbox's pages and API paths, and one that does not exist: none answers an
#: anonymous client (the unit and e2e tests of its login share it).
MAILBOX_ROUTES = [
    ("GET", "/"),
    ("GET", "/?to=ada@example.com"),
    ("GET", "/messages/1"),
    ("GET", "/api/messages"),
    ("DELETE", "/api/messages"),
    ("GET", "/api/messages/1"),
    ("GET", "/api/stats"),
    ("PUT", "/api/faults"),
    ("GET", "/no-such-page"),
]
