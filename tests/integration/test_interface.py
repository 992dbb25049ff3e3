"""The producer's full interface against a real Redis and a real worker."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import redis
from fastapi.testclient import TestClient

from conveyor_core.celery_internals import priority_lists
from tests.helpers import wait_for, wait_until_started
from tests.integration.conftest import RedisServer, WorkerProcess
from tests.integration.test_tasks import outcome, submit


def test_unknown_ids_are_404_not_pending(api: TestClient, worker: WorkerProcess) -> None:
    some_id = str(uuid.uuid4())
    for method, path in (
        ("GET", f"/api/v1/tasks/{some_id}"),
        ("GET", f"/api/v1/tasks/{some_id}/result"),
        ("DELETE", f"/api/v1/tasks/{some_id}"),
        ("GET", f"/api/v1/workflows/{some_id}"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] in {"unknown_task_id", "unknown_workflow"}


def test_progress_is_reported_while_running(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(api, {"task": "progress", "kwargs": {"steps": 5, "delay": 0.3}})

    def midway() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/api/v1/tasks/{task_id}").json()
        progress = status["progress"]
        return status if status["state"] == "PROGRESS" and progress["current"] < 5 else None

    running = wait_for(midway, 30, "progress to be reported", interval=0.05)
    assert running["progress"]["total"] == 5
    assert running["progress"]["message"].startswith("step ")
    done = outcome(api, task_id)
    assert done["result"] == {"steps": 5}
    assert done["progress"] == {"current": 5, "total": 5, "message": "step 5 of 5"}


def test_result_long_polls(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(api, {"task": "sleep", "args": [1]})
    immediate = api.get(f"/api/v1/tasks/{task_id}/result").json()
    assert immediate["ready"] is False
    started = time.monotonic()
    waited = api.get(f"/api/v1/tasks/{task_id}/result", params={"wait": 20}).json()
    assert waited["ready"] is True
    assert waited["result"] == 1
    assert time.monotonic() - started < 15
    too_long = api.get(f"/api/v1/tasks/{task_id}/result", params={"wait": 61})
    assert too_long.status_code == 422
    assert too_long.json()["error"]["field"] == "wait"


def test_revoke_with_terminate_stops_a_running_task(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(api, {"task": "sleep", "args": [30]})
    wait_until_started(api, task_id)
    response = api.delete(f"/api/v1/tasks/{task_id}", params={"terminate": "true"})
    assert response.status_code == 202
    assert response.json() == {"id": task_id, "revoked": True, "terminate": True}
    status = outcome(api, task_id, timeout=20)
    assert status["state"] == "REVOKED"


def test_recent_lists_newest_first(api: TestClient, worker: WorkerProcess) -> None:
    ids = [submit(api, {"task": "noop"}) for _ in range(3)]
    recent = api.get("/api/v1/tasks/recent", params={"limit": 3}).json()["tasks"]
    assert [entry["id"] for entry in recent] == ids[::-1]
    assert {entry["task"] for entry in recent} == {"noop"}
    assert api.get("/api/v1/tasks/recent", params={"limit": 0}).status_code == 422


def test_idempotency_key_returns_the_first_id(api: TestClient, worker: WorkerProcess) -> None:
    body = {"task": "add", "args": [1, 1], "idempotency_key": f"order-{uuid.uuid4()}"}
    first = api.post("/api/v1/tasks", json=body)
    again = api.post("/api/v1/tasks", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    other = api.post("/api/v1/tasks", json={**body, "idempotency_key": f"k-{uuid.uuid4()}"})
    assert other.status_code == 202
    assert other.json()["id"] != first.json()["id"]
    reused = api.post("/api/v1/tasks", json={**body, "args": [1, 2]})
    assert reused.status_code == 409
    assert reused.json()["error"]["field"] == "idempotency_key"


def _time(iso: str) -> float:
    """Seconds since the epoch of an ISO time from the API, to the microsecond."""
    return datetime.fromisoformat(iso).timestamp()


def _broker_message(redis_server: RedisServer, task_id: str) -> tuple[str, dict[str, Any]]:
    """Where the task's message is in the broker (a queue list, or "unacked") and the message."""
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=0
    )
    places: list[tuple[str, dict[str, Any]]] = [
        (key, json.loads(raw))
        for key in priority_lists("email")
        for raw in client.lrange(key, 0, -1)
    ]
    # kombu keeps a reserved message in the "unacked" hash as [message, exchange, key].
    places += [("unacked", json.loads(raw)[0]) for raw in client.hvals("unacked")]
    for place, message in places:
        if message["headers"]["id"] == task_id:
            return place, message
    raise AssertionError(f"task {task_id} is nowhere in the broker: {places}")


def test_scheduling_options(
    api: TestClient, redis_server: RedisServer, start_worker, worker: WorkerProcess
) -> None:
    """countdown, priority, queue and expires all reach the message, and the worker obeys."""
    # `add` routes to "default"; asking for "email" must take it there. A worker of its
    # own consumes "email" on these databases, and stops at the end: other tests count
    # on nothing consuming "email" here.
    email_queue_worker = start_worker(queues="email", concurrency=1)
    try:
        body = {
            "task": "add",
            "args": [1, 2],
            "countdown": 2.5,
            "priority": 6,
            "queue": "email",
            "expires": 600,
        }
        task_id = submit(api, body)
        place, message = _broker_message(redis_server, task_id)
        # Waiting on the "email" queue's priority-6 list, or reserved by the email worker.
        assert place in {priority_lists("email")[2], "unacked"}, place
        assert message["properties"]["priority"] == 6
        assert message["properties"]["delivery_info"]["routing_key"] == "email"
        status = outcome(api, task_id)
        assert (status["state"], status["result"], status["queue"]) == ("SUCCESS", 3, "email")
        submitted = _time(status["submitted_at"])
        eta, expires = message["headers"]["eta"], message["headers"]["expires"]
        assert eta and expires, f"the message lacks its schedule: {message['headers']}"
        # Both are computed when the message is published, just after the submission is
        # recorded: not earlier, and (however slow the machine) not much later.
        assert 2.5 <= _time(eta) - submitted + 0.001 < 2.5 + 10
        assert 600 <= _time(expires) - submitted + 0.001 < 600 + 10
        # The worker held it until the countdown ran out (sub-second times, not truncated).
        assert _time(status["started_at"]) - submitted >= 2.5
    finally:
        assert email_queue_worker.terminate() == 0
        api.delete("/api/v1/queues/email")  # nothing left behind if it failed


def test_an_expired_task_is_revoked_not_run(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(api, {"task": "add", "args": [1, 1], "countdown": 2, "expires": 1})
    status = outcome(api, task_id, timeout=30)
    assert (status["state"], status["result"]) == ("REVOKED", None), status
    assert status["started_at"] is None


def test_scheduling_limits_name_the_field(api: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"countdown": 3_001}, "countdown"),
        ({"eta": "2030-01-01T00:00:00"}, "eta"),
        ({"eta": "2999-01-01T00:00:00Z"}, "eta"),
        ({"queue": "nope"}, "queue"),
        ({"priority": 10}, "priority"),
        ({"expires": -1}, "expires"),
        ({"countdown": 1, "eta": "2030-01-01T00:00:00Z"}, None),
    ]
    for extra, field in cases:
        response = api.post("/api/v1/tasks", json={"task": "noop", **extra})
        assert response.status_code == 422, extra
        assert response.json()["error"]["field"] == field, extra


def test_batch_validates_all_then_enqueues(api: TestClient, worker: WorkerProcess) -> None:
    response = api.post(
        "/api/v1/tasks/batch",
        json={
            "tasks": [
                {"task": "noop"},
                {"task": "add", "args": [1, 2]},
                {"task": "mul", "args": [2, 5]},
            ]
        },
    )
    assert response.status_code == 202
    ids = response.json()["ids"]
    assert [outcome(api, task_id)["result"] for task_id in ids] == [None, 3, 10]
    before = api.get("/api/v1/tasks/recent", params={"limit": 1}).json()["tasks"][0]["id"]
    bad = api.post(
        "/api/v1/tasks/batch", json={"tasks": [{"task": "noop"}, {"task": "add", "args": [1, "x"]}]}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "tasks[1].args[1]"
    after = api.get("/api/v1/tasks/recent", params={"limit": 1}).json()["tasks"][0]["id"]
    assert after == before, "nothing of a rejected batch may be enqueued"
    huge = api.post("/api/v1/tasks/batch", json={"tasks": [{"task": "noop"}] * 10_001})
    assert huge.status_code == 413


def test_group_and_chord(api: TestClient, worker: WorkerProcess) -> None:
    steps = [{"task": "add", "args": [i, i]} for i in range(10)]
    submitted = api.post("/api/v1/workflows/group", json={"steps": steps}).json()
    assert len(submitted["ids"]) == 10

    def finished(workflow_id: str) -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/api/v1/workflows/{workflow_id}").json()
        return status if status["state"] in {"SUCCESS", "FAILURE"} else None

    group = wait_for(lambda: finished(submitted["workflow_id"]), 60, "the group")
    assert group["result"] == [2 * i for i in range(10)]
    assert [s["id"] for s in group["steps"]] == submitted["ids"]

    steps = [{"task": "add", "args": [i, i]} for i in range(100)]
    body = {"steps": steps, "callback": {"task": "xsum"}}
    response = api.post("/api/v1/workflows/chord", json=body)
    assert response.status_code == 202, response.text
    chord = response.json()
    assert len(chord["ids"]) == 101
    assert chord["id"] == chord["ids"][-1]
    status = wait_for(lambda: finished(chord["workflow_id"]), 120, "the chord")
    assert status["state"] == "SUCCESS"
    assert status["result"] == 9900
    assert outcome(api, chord["id"])["result"] == 9900


def test_workflow_errors_name_the_step(api: TestClient) -> None:
    body = {"steps": [{"task": "add", "args": [1, 1]}], "callback": {"task": "add", "args": ["x"]}}
    response = api.post("/api/v1/workflows/chord", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "callback.args[0]"
    response = api.post("/api/v1/workflows/group", json={"steps": [{"task": "nope"}]})
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "steps[0].task"


def test_catalog_lists_schemas(api: TestClient) -> None:
    catalog = {t["name"]: t for t in api.get("/api/v1/catalog").json()["tasks"]}
    assert {"add", "mul", "xsum", "noop", "sleep", "fail", "progress"} <= set(catalog)
    assert catalog["add"]["queue"] == "default"
    assert catalog["add"]["positional"] == ["x", "y"]
    assert catalog["add"]["arguments"]["required"] == ["x", "y"]


def test_queues_show_length_and_consumers(api: TestClient, worker: WorkerProcess) -> None:
    # Nothing consumes "email" on the session's databases: what is sent there waits, one
    # list per priority step, and the length counts them all.
    for priority in (0, 5, 9):
        submit(api, {"task": "noop", "queue": "email", "priority": priority})
    try:
        queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}
        assert queues["email"]["length"] == 3
        assert queues["email"]["consumers"] == []
        assert any(name.startswith("itest-") for name in queues["default"]["consumers"])
    finally:
        purged = api.delete("/api/v1/queues/email")
    assert (purged.status_code, purged.json()) == (200, {"purged": 3})
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}
    assert queues["email"]["length"] == 0
