"""The producer's full interface against a real Redis and a real worker."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import wait_for, wait_until_started
from tests.integration.conftest import WorkerProcess
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


def test_scheduling_options(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(
        api,
        {
            "task": "add",
            "args": [1, 2],
            "countdown": 1.5,
            "priority": 0,
            "queue": "default",
            "expires": 600,
        },
    )
    status = outcome(api, task_id)
    assert status["result"] == 3
    started = time.mktime(time.strptime(status["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    submitted = time.mktime(time.strptime(status["submitted_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert started - submitted >= 1


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
    queues = {q["name"]: q for q in api.get("/api/v1/queues").json()["queues"]}
    assert queues["default"]["length"] >= 0
    assert any(name.startswith("itest-") for name in queues["default"]["consumers"])
