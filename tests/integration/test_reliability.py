"""Nothing is lost: start-up checks, dead letters, poison messages and the reconciler,
with a real Redis and real worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from conveyor_reconciler.main import Reconciler
from fastapi.testclient import TestClient

from conveyor_core.celery_app import create_app
from conveyor_core.ledger_keys import PENDING, REPUBLISHED_HEADER
from conveyor_core.preflight import check
from conveyor_core.settings import ReconcilerSettings, Settings
from conveyor_producer.ledger import Issued, Ledger
from conveyor_producer.submission import replay_call
from tests.helpers import ROOT, catalog, task_outcome, wait_for
from tests.integration.conftest import RedisServer, WorkerProcess

VENV_BIN = str(Path(sys.executable).parent)


def submit(api: TestClient, body: dict[str, object]) -> str:
    response = api.post("/api/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def dead_letter(api: TestClient, entry_id: str, timeout: float = 60) -> dict[str, object]:
    """Wait for a dead letter to appear and return it."""

    def found() -> dict[str, object] | None:
        response = api.get(f"/api/v1/dead-letters/{entry_id}")
        return response.json() if response.status_code == 200 else None

    return wait_for(found, timeout, f"dead letter {entry_id}")


# ---- start-up checks ------------------------------------------------------------------


def test_worker_refuses_to_start_when_time_limit_outlasts_visibility(
    redis_server: RedisServer,
) -> None:
    env = {
        **os.environ,
        **redis_server.env(),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "VISIBILITY_TIMEOUT": "100",
        "TASK_TIME_LIMIT": "200",
        "TASK_SOFT_TIME_LIMIT": "150",
    }
    done = subprocess.run(
        ["sh", str(ROOT / "services/entrypoint.sh"), "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "TASK_TIME_LIMIT (200 s) must be shorter than VISIBILITY_TIMEOUT (100 s)" in done.stderr
    assert "refusing to start the worker" in done.stderr


def test_eviction_policy_other_than_noeviction_is_refused(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in redis_server.env().items():
        monkeypatch.setenv(name, value)
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password
    )
    assert check("worker", wait=5) == []
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        problems = check("worker", wait=5)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    assert len(problems) == 1
    assert "maxmemory-policy is 'allkeys-lru'" in problems[0]


# ---- dead letters -----------------------------------------------------------------------


def test_failed_task_is_dead_lettered_then_replayed(api: TestClient, worker: WorkerProcess) -> None:
    task_id = submit(api, {"task": "fail", "kwargs": {"message": "boom 7"}})
    assert task_outcome(api, task_id)["state"] == "FAILURE"
    entry = dead_letter(api, task_id)
    assert entry["reason"] == "failed"
    assert entry["task"] == "conveyor.fail"
    assert entry["kwargs"] == {"message": "boom 7"}
    assert "boom 7" in str(entry["error"])
    assert "TaskFailedError" in str(entry["traceback"])

    replay = api.post("/api/v1/dead-letters/replay", json={"ids": [task_id]}).json()
    new_id = replay["replayed"][task_id]
    assert replay["skipped"] == {}
    assert api.get(f"/api/v1/dead-letters/{task_id}").status_code == 404  # left the store
    assert task_outcome(api, new_id)["state"] == "FAILURE"  # it fails again...
    assert dead_letter(api, new_id)["kwargs"] == {"message": "boom 7"}  # ...and is back
    assert api.delete(f"/api/v1/dead-letters/{new_id}").json() == {"purged": 1}


def test_poison_message_is_quarantined_after_max_deliveries(
    api: TestClient, worker: WorkerProcess
) -> None:
    task_id = submit(api, {"task": "crash"})
    entry = dead_letter(api, task_id, timeout=120)
    assert entry["reason"] == "quarantined", (entry["error"], entry["attempts"])
    assert entry["attempts"] == Settings.model_fields["max_deliveries"].default
    # The worker survived its children's deaths and still runs work.
    assert task_outcome(api, submit(api, {"task": "add", "args": [1, 1]}))["result"] == 2
    assert worker.process.poll() is None


def test_unknown_and_undecodable_messages_are_set_aside(
    api: TestClient, worker: WorkerProcess, redis_server: RedisServer
) -> None:
    settings = Settings(**_settings_kwargs(redis_server))
    unknown = create_app(settings).send_task("conveyor.nope", args=[1], queue="default")
    entry = dead_letter(api, unknown.id)
    assert (entry["reason"], entry["task"], entry["args"]) == ("unknown_task", "conveyor.nope", [1])

    # A pickled message: the worker accepts JSON only, so it must not run it.
    pickler = create_app(settings)
    pickler.conf.task_serializer = "pickle"
    pickled = pickler.send_task("conveyor.add", args=[1, 2], queue="default")
    entry = dead_letter(api, pickled.id)
    assert entry["reason"] == "undecodable"
    assert entry["raw"]
    skipped = api.post("/api/v1/dead-letters/replay", json={"ids": [pickled.id]}).json()
    assert pickled.id in skipped["skipped"]  # nothing safe to send again
    assert worker.process.poll() is None


# ---- reconciler ---------------------------------------------------------------------------


def _settings_kwargs(server: RedisServer, broker_db: int = 0, result_db: int = 1) -> dict[str, Any]:
    return {
        "redis_host": server.host,
        "redis_port": server.port,
        "redis_password": server.password,
        "redis_broker_db": broker_db,
        "redis_result_db": result_db,
    }


def _record_without_publishing(ledger: Ledger, x: int, y: int) -> str:
    """What the producer leaves behind when the message is then lost."""
    task_id = str(uuid.uuid4())
    call = replay_call(catalog("add"), {"x": x, "y": y}, "default", {})
    ledger.issue([Issued(task_id, "add", "default", call)])
    return task_id


def test_reconciler_publishes_a_lost_task_again(
    api: TestClient, worker: WorkerProcess, redis_server: RedisServer
) -> None:
    settings = ReconcilerSettings(**_settings_kwargs(redis_server), reconcile_grace=5)
    reconciler = Reconciler(settings)
    ledger = Ledger(reconciler.results, ttl=3600, recent_max=10)
    lost = _record_without_publishing(ledger, 20, 22)
    later = time.time() + 10
    first = reconciler.run_pass(now=later)
    assert lost not in first.republished  # one miss only makes it a suspect
    second = reconciler.run_pass(now=later + 1)
    assert lost in second.republished
    status = task_outcome(api, lost)
    assert (status["state"], status["result"]) == ("SUCCESS", 42)
    wait_for(lambda: reconciler.results.zscore(PENDING, lost) is None, 10, "the task to settle")


def test_reconciler_leaves_queued_tasks_alone(redis_server: RedisServer) -> None:
    # Databases no worker consumes: the message waits in its queue.
    kwargs = _settings_kwargs(redis_server, broker_db=4, result_db=5)
    reconciler = Reconciler(ReconcilerSettings(**kwargs, reconcile_grace=5))
    ledger = Ledger(reconciler.results, ttl=3600, recent_max=10)
    queued = _record_without_publishing(ledger, 1, 2)
    app = create_app(Settings(**kwargs))
    app.send_task("conveyor.add", kwargs={"x": 1, "y": 2}, task_id=queued, queue="default")
    later = time.time() + 10
    reports = [reconciler.run_pass(now=later + i) for i in range(3)]
    assert all(r.present == 1 and not r.republished for r in reports)


def test_republished_copy_of_a_finished_task_does_not_run_again(
    api: TestClient, worker: WorkerProcess, redis_server: RedisServer
) -> None:
    task_id = submit(api, {"task": "tally"})
    assert task_outcome(api, task_id)["result"] == 1  # first run counted once
    settings = Settings(**_settings_kwargs(redis_server))
    create_app(settings).send_task(
        "conveyor.tally",
        kwargs={"delay": 0},
        task_id=task_id,
        queue="default",
        headers={REPUBLISHED_HEADER: True},
    )
    wait_for(
        lambda: f"task {task_id} already succeeded" in worker.log_path.read_text(),
        30,
        "the worker to skip the copy",
    )
    tally = redis.Redis.from_url(settings.result_backend_url)
    assert tally.hget("conveyor:tally:runs", task_id) == b"1"
    assert task_outcome(api, task_id)["result"] == 1


def test_reconciler_republishes_a_task_stuck_unacked_past_the_visibility_timeout(
    redis_server: RedisServer,
) -> None:
    # As if its worker was SIGKILLed and no sweep restored it (kombu's restore mutex
    # left held by a worker killed mid-sweep blocks every sweep for its expiry).
    kwargs = _settings_kwargs(redis_server, broker_db=4, result_db=5)
    limits: dict[str, Any] = {"visibility_timeout": 60, "task_time_limit": 30}
    limits["task_soft_time_limit"] = 25
    settings = ReconcilerSettings(**kwargs, reconcile_grace=5, max_countdown=10, **limits)
    reconciler = Reconciler(settings)
    reconciler.broker.flushdb()
    reconciler.results.flushdb()
    ledger = Ledger(reconciler.results, ttl=3600, recent_max=10)
    now = time.time()
    stuck, fresh = (_record_without_publishing(ledger, 1, i) for i in (1, 2))
    app = create_app(Settings(**kwargs))
    for tag, task_id, delivered_at in (("t1", stuck, now - 600), ("t2", fresh, now)):
        app.send_task("conveyor.add", kwargs={"x": 1, "y": 1}, task_id=task_id, queue="default")
        message = json.loads(reconciler.broker.rpop("default"))  # type: ignore[arg-type]
        reconciler.broker.hset("unacked", tag, json.dumps([message, "default", "default"]))
        reconciler.broker.zadd("unacked_index", {tag: delivered_at})
    first = reconciler.run_pass(now=now + 10)
    second = reconciler.run_pass(now=now + 11)
    assert first.republished == [] and first.present == 1
    assert second.republished == [stuck]
    assert reconciler.broker.llen("default") == 1  # the republished copy
