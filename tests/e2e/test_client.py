"""The Python client (clients/python) against the real API of the e2e stack.

One test installs the client alone into a fresh virtualenv, from the wheelhouse, with no
index: it must bring httpx and nothing of the server (no Celery, no Redis client), and
still submit a task and get its result.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_client import (
    AsyncClient,
    Client,
    InvalidArgumentsError,
    TaskFailedError,
    UnauthorizedError,
    UnknownTaskError,
    idempotency_key,
)
from tests.e2e.conftest import PORTS, Stack
from tests.helpers import ROOT

pytestmark = pytest.mark.e2e

URL = f"http://127.0.0.1:{PORTS['PRODUCER_PORT']}"
#: What a client install must never bring: Conveyor's server side.
SERVER_PACKAGES = {"celery", "kombu", "redis", "gunicorn", "aiosmtpd", "flower", "fastapi"}


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(URL, stack.secrets["CONVEYOR_API_KEY"]) as conveyor:
        yield conveyor


def test_submit_wait_and_status(client: Client) -> None:
    task = client.submit("add", 2, y=3)
    assert task.wait(timeout=60) == 5
    status = task.status()
    assert (status["state"], status["result"], status["task"]) == ("SUCCESS", 5, "add")


def test_errors_are_typed_from_the_api_error_shape(client: Client, stack: Stack) -> None:
    with pytest.raises(InvalidArgumentsError) as bad:
        client.submit("add", 2, "3")
    assert (bad.value.status, bad.value.field) == (422, "args[1]")
    with pytest.raises(UnknownTaskError):
        client.submit("no_such_task")
    with Client(URL, "not-the-key") as stranger, pytest.raises(UnauthorizedError):
        stranger.submit("noop")
    with pytest.raises(TaskFailedError, match="boom"):
        client.submit("fail", "boom").wait(timeout=60)


def test_revoke_a_waiting_task(client: Client) -> None:
    task = client.submit("add", 1, 1, countdown=60)
    assert task.revoke()["revoked"] is True
    with pytest.raises(TaskFailedError, match="REVOKED"):
        task.wait(timeout=60)


def test_batches_workflows_and_idempotency(client: Client) -> None:
    handles = client.submit_batch([("add", [i, i], {}) for i in range(5)])
    assert [h.wait(timeout=60) for h in handles] == [0, 2, 4, 6, 8]
    chain = client.workflow("chain", [("add", [2, 2], {}), ("mul", [8], {})])
    assert client.task(chain["id"]).wait(timeout=60) == 32
    key = idempotency_key()
    first = client.submit("noop", idempotency_key=key)
    assert client.submit("noop", idempotency_key=key).id == first.id


def test_the_async_client(stack: Stack) -> None:
    async def scenario() -> tuple[object, str]:
        async with AsyncClient(URL, stack.secrets["CONVEYOR_API_KEY"]) as conveyor:
            task = await conveyor.submit("mul", 6, 7)
            result = await task.wait(timeout=60)
            return result, (await task.status())["state"]

    assert asyncio.run(scenario()) == (42, "SUCCESS")


def test_the_client_installs_alone_and_works(stack: Stack, tmp_path: Path) -> None:
    """pip install of clients/python into an empty virtualenv, from the wheelhouse only."""
    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    python = str(home / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(ROOT / ".build" / "wheels"), str(ROOT / "clients" / "python")],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "freeze"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    installed = {line.split("==")[0].lower() for line in listed.split()}
    assert "conveyor-client" in installed and "httpx" in installed
    assert not installed & SERVER_PACKAGES, installed & SERVER_PACKAGES
    script = (
        "import sys; from conveyor_client import Client; "
        "print(Client(sys.argv[1], sys.argv[2]).submit('add', 20, 22).wait(timeout=60))"
    )
    done = subprocess.run(
        [python, "-c", script, URL, stack.secrets["CONVEYOR_API_KEY"]],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "42"
    assert sys.executable != python  # it ran in the fresh virtualenv, not in ours
