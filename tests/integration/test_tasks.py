"""Tasks and workflows run by real Celery worker processes against a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import redis
from fastapi.testclient import TestClient

from conveyor_core.celery_app import create_app
from conveyor_core.ledger_keys import idempotency_key
from conveyor_producer.schemas import TaskRequest
from conveyor_producer.submission import fingerprint
from tests.helpers import task_outcome, wait_for, wait_until_started
from tests.integration.conftest import RedisServer, WorkerProcess, api_for


def submit(api: TestClient, body: dict[str, Any], path: str = "/api/v1/tasks") -> str:
    response = api.post(path, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


outcome = task_outcome


def test_add_runs_on_a_worker(api: TestClient, worker: WorkerProcess) -> None:
    status = outcome(api, submit(api, {"task": "add", "args": [2, 3]}))
    assert (status["state"], status["result"], status["error"]) == ("SUCCESS", 5, None)
    assert status["task"] == "add"
    assert status["queue"] == "default"
    assert status["worker"].startswith("itest-")
    times = [status[f"{step}_at"] for step in ("submitted", "received", "started", "finished")]
    assert all(times), status
    assert times == sorted(times)


def test_each_catalogue_task_gives_its_result(api: TestClient, worker: WorkerProcess) -> None:
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"task": "mul", "args": [6, 7]}, 42),
        ({"task": "xsum", "args": [[1, 2, 3.5]]}, 6.5),
        ({"task": "noop"}, None),
        ({"task": "sleep", "kwargs": {"seconds": 0.1}}, 0.1),
        ({"task": "add", "args": [1], "kwargs": {"y": 2}}, 3),
    ]
    ids = [submit(api, body) for body, _ in cases]
    for task_id, (body, expected) in zip(ids, cases, strict=True):
        status = outcome(api, task_id)
        assert status["state"] == "SUCCESS", (body, status)
        assert status["result"] == expected, body


def test_chain_passes_each_result_on(api: TestClient, worker: WorkerProcess) -> None:
    first = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": [8]}]}
    assert outcome(api, submit(api, first, "/api/v1/workflows/chain"))["result"] == 32
    body = {
        "steps": [
            {"task": "add", "args": [1, 1]},
            {"task": "add", "args": [3]},
            {"task": "mul", "kwargs": {"y": 10}},
        ]
    }
    assert outcome(api, submit(api, body, "/api/v1/workflows/chain"))["result"] == 50


def test_failure_reports_the_error(api: TestClient, worker: WorkerProcess) -> None:
    status = outcome(api, submit(api, {"task": "fail", "args": ["boom"]}))
    assert status["state"] == "FAILURE"
    assert status["error"] == {"type": "TaskFailedError", "message": "boom"}


def test_worker_validates_messages_that_bypass_the_api(
    redis_server: RedisServer, api: TestClient, worker: WorkerProcess
) -> None:
    app = create_app(redis_server.settings())
    result = app.send_task("conveyor.add", args=[1, "x"], queue="default")
    wait_for(lambda: result.state == "FAILURE", 30, "the bad message to fail")
    assert type(result.result).__name__ == "InvalidArgumentsError"
    assert "args[1]" in str(result.result)
    # Not issued by the producer, so the API does not claim to know it.
    assert api.get(f"/api/v1/tasks/{result.id}").status_code == 404


def test_healthcheck_follows_the_heartbeat(worker: WorkerProcess) -> None:
    def check(path: str) -> int:
        env = {**os.environ, "WORKER_HEARTBEAT_FILE": path}
        return subprocess.run(
            [sys.executable, "-m", "conveyor_worker.healthcheck"],
            env=env,
            capture_output=True,
            check=False,
        ).returncode

    assert check(str(worker.heartbeat)) == 0
    assert check(str(worker.heartbeat) + ".missing") == 1


def test_warm_shutdown_finishes_the_running_task(redis_server: RedisServer, start_worker) -> None:
    # Databases of its own, so the session worker cannot take the task.
    worker = start_worker(broker_db=2, result_db=3)
    api = api_for(redis_server, broker_db=2, result_db=3)
    task_id = submit(api, {"task": "sleep", "args": [3]})
    wait_until_started(api, task_id)
    assert worker.terminate(timeout=60) == 0  # SIGTERM, as `docker stop` sends
    status = api.get(f"/api/v1/tasks/{task_id}").json()
    assert status["state"] == "SUCCESS"
    assert status["result"] == 3
    assert not worker.heartbeat.exists(), "a stopped worker must not look healthy"


def test_a_batch_sent_again_with_its_idempotency_key_is_enqueued_once(
    api: TestClient, worker: WorkerProcess
) -> None:
    """The retry a client sends after losing the answer gets the first ids back, 200."""
    key = f"batch-{os.urandom(6).hex()}"
    body = {"tasks": [{"task": "add", "args": [i, 1]} for i in range(3)], "idempotency_key": key}
    first = api.post("/api/v1/tasks/batch", json=body)
    again = api.post("/api/v1/tasks/batch", json=body)
    assert (first.status_code, again.status_code) == (202, 200), again.text
    ids = first.json()["ids"]
    assert again.json()["ids"] == ids
    assert [outcome(api, task_id)["result"] for task_id in ids] == [1, 2, 3]
    other = api.post("/api/v1/tasks/batch", json={**body, "tasks": [{"task": "noop"}]})
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "idempotency_key"


def test_a_key_left_bound_by_a_submission_never_recorded_does_not_swallow_the_retry(
    redis_server: RedisServer, api: TestClient, worker: WorkerProcess
) -> None:
    """Redis failed after the key was claimed and before the task was recorded, and the
    key could not be released (Redis was down): the client got a 503 and sends it again.
    The retry must be enqueued, not answered with the ids of a task that never existed."""
    key = f"left-{os.urandom(6).hex()}"
    body = {"task": "add", "args": [2, 2], "idempotency_key": key}
    ghost = str(uuid.uuid4())
    results = redis.Redis.from_url(redis_server.settings().result_backend_url)
    request_fingerprint = fingerprint(TaskRequest.model_validate(body))
    results.set(idempotency_key(key), f"{ghost} {request_fingerprint}", ex=600)
    retry = api.post("/api/v1/tasks", json=body)
    assert retry.status_code == 202, retry.text
    task_id = retry.json()["id"]
    assert task_id != ghost
    assert outcome(api, task_id)["result"] == 4
    again = api.post("/api/v1/tasks", json=body)
    assert (again.status_code, again.json()["id"]) == (200, task_id)
