"""`make redis-audit` against a real Redis, and reply queues that must not pile up."""

from __future__ import annotations

import os
import subprocess
import sys

import redis
from fastapi.testclient import TestClient

from conveyor_producer.audit import audit_db
from tests.helpers import ROOT
from tests.integration.conftest import RedisServer, WorkerProcess


def test_counts_keys_by_kind(redis_server: RedisServer) -> None:
    client = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=8
    )
    client.flushdb()
    client.rpush("default", "a", "b", "c")
    client.hset("unacked", mapping={"t1": "m1", "t2": "m2"})
    client.set("celery-task-meta-1", "{}")
    client.set("celery-task-meta-2", "{}", ex=60)
    client.hset("conveyor:task:1", "task", "add")
    client.set("stray", "x")
    kinds, others = audit_db(client, 8)
    found = {k.kind: (k.keys, k.items, k.no_expiry) for k in kinds}
    assert found["queues"] == (1, 3, 1)
    assert found["unacked"] == (1, 2, 1)
    assert found["results"] == (2, 2, 1)
    assert found["ledger"] == (1, 1, 1)
    assert others == ["stray"]


def test_repeated_inspections_leave_no_pile_of_reply_queues(
    api: TestClient, worker: WorkerProcess, redis_server: RedisServer
) -> None:
    broker = redis.Redis(
        host=redis_server.host, port=redis_server.port, password=redis_server.password, db=0
    )
    # The API's inspect (one process: one reply queue). Each waits out the reply timeout
    # (1 s); five are enough to see a pile grow.
    for _ in range(5):
        assert api.get("/api/v1/queues").status_code == 200
    env = {**os.environ, **redis_server.env()}
    for _ in range(3):  # `make inspect`: a new process, a new reply queue, each time
        subprocess.run(
            [
                sys.executable,
                "-m",
                "celery",
                "--app",
                "conveyor_core.celery_app",
                "inspect",
                "ping",
                "--timeout",
                "1",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=False,
            timeout=60,
        )
    kinds, _ = audit_db(broker, 0)
    replies = next((k for k in kinds if k.kind == "pidbox replies"), None)
    bindings = next(k for k in kinds if k.kind == "bindings")
    # Replies are consumed and empty lists vanish; the reply exchange's binding set does
    # not grow by one member per inspecting process.
    assert replies is None or replies.keys <= 2, replies
    assert bindings.items <= 5, bindings
