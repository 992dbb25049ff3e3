"""Stopping and killing workers: reserved tasks go back at once, killed ones come back."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import redis

from tests.helpers import task_outcome, wait_for, wait_until_started
from tests.integration.conftest import RedisServer, WorkerProcess, api_for
from tests.integration.test_tasks import submit

#: Short limits, so a killed worker's task is back in seconds (the defaults make it 610 s).
FAST = {
    "VISIBILITY_TIMEOUT": "10",
    "RESTORE_INTERVAL": "1",
    "TASK_TIME_LIMIT": "6",
    "TASK_SOFT_TIME_LIMIT": "5",
    "MAX_COUNTDOWN": "3",
}


def broker(server: RedisServer, db: int) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password, db=db)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (the prefork pool)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_whole_worker(worker: WorkerProcess) -> None:
    """SIGKILL the worker and its pool at once, as the OOM killer would a container."""
    pids = [worker.process.pid, *children(worker.process.pid)]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    worker.process.wait(10)


def test_warm_shutdown_puts_a_reserved_task_back_at_once(
    redis_server: RedisServer, start_worker
) -> None:
    worker = start_worker(broker_db=12, result_db=13)
    api = api_for(redis_server, broker_db=12, result_db=13)
    # A delayed task is reserved (unacknowledged) in the worker until it comes due.
    task_id = submit(api, {"task": "add", "args": [1, 2], "countdown": 120})
    wait_for(lambda: api.get(f"/api/v1/tasks/{task_id}").json()["received_at"], 30, "receipt")
    client = broker(redis_server, 12)
    assert client.llen("default") == 0
    assert client.hlen("unacked") == 1
    assert worker.terminate(timeout=60) == 0  # SIGTERM, as `docker stop` sends
    assert client.llen("default") == 1  # back on its queue, not after a visibility timeout
    assert client.hlen("unacked") == 0


def test_a_killed_workers_task_runs_when_a_worker_returns(
    redis_server: RedisServer, start_worker
) -> None:
    api = api_for(redis_server, broker_db=14, result_db=15)
    worker = start_worker(broker_db=14, result_db=15, extra_env=FAST)
    task_id = submit(api, {"task": "sleep", "args": [2]})
    wait_until_started(api, task_id)
    first_start = api.get(f"/api/v1/tasks/{task_id}").json()["started_at"]
    killed_at = time.time()  # wall clock: the workers stamp started_at with time.time()
    kill_whole_worker(worker)
    assert broker(redis_server, 14).hlen("unacked") == 1  # it was mid-run, unacknowledged
    start_worker(broker_db=14, result_db=15, extra_env=FAST)
    status = task_outcome(api, task_id, timeout=120)
    assert (status["state"], status["result"]) == ("SUCCESS", 2)
    assert status["started_at"] != first_start, "the task must have run a second time"
    # The README's bound: a SIGKILLed worker's tasks come back within
    # VISIBILITY_TIMEOUT + 10 s (the worker that takes it back starts meanwhile).
    back_after = datetime.fromisoformat(status["started_at"]).timestamp() - killed_at
    bound = int(FAST["VISIBILITY_TIMEOUT"]) + 10
    assert back_after <= bound, f"back {back_after:.1f} s after the kill, more than {bound} s"
