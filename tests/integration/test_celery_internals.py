"""Each hook of conveyor_core.celery_internals is reached by real Celery workers.

The unit twin (tests/unit/test_upstream_contract.py) checks names and signatures; here
real `celery worker` processes on a Redis of this module's own run tasks, and each test
observes an effect only the hook produces. Also: the worker's task events are published
in batches, to a real event receiver, and the last batch at a warm shutdown.

The emergency dump (`replace_emergency_dump`) has no test here: kombu 5.7's Redis
transport never reaches it (see the unit test `test_emergency_dump_is_dead_on_the_redis_
transport`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from conveyor_core import celery_internals as fence
from conveyor_core.celery_app import create_app
from conveyor_core.ledger_keys import PENDING, task_key
from conveyor_core.settings import Settings
from conveyor_worker import rescue
from tests.helpers import task_outcome, wait_for, wait_until_started
from tests.integration.conftest import RedisServer, WorkerProcess, api_for, redis_container

pytestmark = pytest.mark.integration

#: Databases of the module's Redis: the main worker's, and the events worker's.
MAIN, EVENTS = (0, 1), (2, 3)
#: Seconds the events worker waits before publishing buffered task events.
FLUSH_INTERVAL = 5.0


def settings_for(server: RedisServer, dbs: tuple[int, int]) -> Settings:
    return server.settings(*dbs)


def client(server: RedisServer, db: int) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password, db=db)


def submit(api: TestClient, body: dict[str, Any]) -> str:
    response = api.post("/api/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this module alone: the session's sixteen databases are all taken."""
    with redis_container("-internals") as server:
        yield server


@pytest.fixture(scope="module")
def rescued(own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A rescue directory holding one dumped task message, as a worker would find it."""
    folder = tmp_path_factory.mktemp("rescue")
    settings = settings_for(own_redis, MAIN)
    task_id = str(uuid.uuid4())
    create_app(settings).send_task(
        "conveyor.add", kwargs={"x": 20, "y": 22}, task_id=task_id, queue="default"
    )
    raw = client(own_redis, MAIN[0]).rpop("default")
    assert raw
    original = rescue.rescue_dir
    rescue.rescue_dir = lambda: folder  # only for this dump
    try:
        rescue.dump_messages([json.loads(raw)])  # type: ignore[arg-type]
    finally:
        rescue.rescue_dir = original
    return folder, task_id


@pytest.fixture(scope="module")
def main_worker(
    own_redis: RedisServer, rescued: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker on MAIN that starts with a rescued message waiting for it."""
    folder = tmp_path_factory.mktemp("main-worker")
    env = {**own_redis.env(*MAIN), "WORKER_RESCUE_DIR": str(rescued[0])}
    worker = WorkerProcess(env, folder / "heartbeat", folder / "worker.log")
    yield worker
    worker.terminate()


@pytest.fixture(scope="module")
def api(own_redis: RedisServer) -> TestClient:
    return api_for(own_redis, *MAIN)


# ---- kombu: Channel._do_restore_message (restore_message) ------------------------


def test_restore_message_requeues_a_rescued_message_at_worker_start(
    own_redis: RedisServer, rescued: tuple[Path, str], main_worker: WorkerProcess
) -> None:
    folder, task_id = rescued
    result = create_app(settings_for(own_redis, MAIN)).AsyncResult(task_id)
    assert result.get(timeout=60) == 42  # only in the file until the worker requeued it
    assert list(folder.iterdir()) == []


# ---- Celery: _store_result / _get_result_meta (StoreStateBackend) ------------------


def test_store_state_is_how_a_worker_stores_results(
    own_redis: RedisServer, api: TestClient, main_worker: WorkerProcess
) -> None:
    task_id = submit(api, {"task": "add", "args": [2, 3]})
    assert task_outcome(api, task_id)["result"] == 5
    results = client(own_redis, MAIN[1])
    meta = json.loads(results.get(f"{fence.RESULT_KEY_PREFIX}{task_id}") or "{}")
    # _get_result_meta with result_extended: the request's fields are there.
    assert (meta["status"], meta["result"], meta["name"]) == ("SUCCESS", 5, "conveyor.add")
    assert meta["worker"]
    # Only Conveyor's script settles a SUCCESS's ledger (lifecycle leaves it to the
    # store); Celery's own _store_result would leave both of these undone.
    assert results.hget(task_key(task_id), "finished_at")
    assert results.zscore(PENDING, task_id) is None


# ---- Celery: on_task_call (NoSubscriptionOnTaskCall) -------------------------------


def test_publishing_through_the_producer_subscribes_to_nothing(
    own_redis: RedisServer,
    api: TestClient,
    main_worker: WorkerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def subscribers(task_id: str) -> int:
        channel = f"{fence.RESULT_KEY_PREFIX}{task_id}"
        return int(dict(client(own_redis, 0).pubsub_numsub(channel))[channel.encode()])

    # What the mixin leaves out: Celery's own on_task_call subscribes.
    plain = create_app(settings_for(own_redis, MAIN))
    control = plain.send_task("conveyor.add", kwargs={"x": 1, "y": 1}, queue="default")
    assert subscribers(control.id) == 1
    assert control.get(timeout=60) == 2

    # The producer's publish goes through the mixin's on_task_call.
    reached: list[str] = []
    original = fence.NoSubscriptionOnTaskCall.on_task_call

    def spy(self: Any, producer: Any, task_id: str) -> None:
        reached.append(task_id)
        original(self, producer, task_id)

    monkeypatch.setattr(fence.NoSubscriptionOnTaskCall, "on_task_call", spy)
    task_id = submit(api, {"task": "add", "args": [1, 1]})
    assert reached == [task_id]
    assert task_outcome(api, task_id)["result"] == 2


# ---- Celery: Panel.data (control_commands) -----------------------------------------


def test_a_worker_refuses_the_disabled_control_commands(
    own_redis: RedisServer, main_worker: WorkerProcess
) -> None:
    app = create_app(settings_for(own_redis, MAIN))
    replies = app.control.broadcast("shutdown", reply=True, timeout=5)
    assert replies, "the worker should answer"
    for reply in replies:
        (answer,) = reply.values()
        assert "shutdown is disabled on Conveyor workers" in answer["error"]
    assert app.control.ping(timeout=5)
    assert main_worker.process.poll() is None


# ---- kombu: the Redis key layout ---------------------------------------------------


def test_the_key_layout_is_where_kombu_writes(
    own_redis: RedisServer, api: TestClient, main_worker: WorkerProcess
) -> None:
    broker = client(own_redis, MAIN[0])
    assert broker.exists(f"{fence.BINDING_KEY_PREFIX}default")
    # A running task is in the unacked hash and index, under the same delivery tag.
    task_id = submit(api, {"task": "sleep", "args": [3]})
    wait_until_started(api, task_id)
    entries = {
        tag: fence.unacked_message(raw) for tag, raw in broker.hgetall(fence.UNACKED_KEY).items()
    }
    (tag,) = [t for t, m in entries.items() if m and m["headers"]["id"] == task_id]
    assert broker.zscore(fence.UNACKED_INDEX_KEY, tag)
    assert task_outcome(api, task_id)["result"] == 3
    # A priority-5 message waits in the list of step 3 (no worker consumes "email" here).
    create_app(settings_for(own_redis, MAIN)).send_task(
        "conveyor.add", kwargs={"x": 1, "y": 1}, queue="email", priority=5
    )
    lengths = [broker.llen(key) for key in fence.priority_lists("email")]
    assert lengths == [0, 1, 0, 0]


# ---- Celery: Consumer._flush_events (flush_events): task events in batches ---------


class EventLog:
    """A real Celery event receiver, and a raw count of the messages it was sent."""

    def __init__(self, server: RedisServer) -> None:
        self.events: list[dict[str, Any]] = []
        self.messages: list[int] = []  # events per published message
        app = create_app(settings_for(server, EVENTS))
        self._connection = app.connection_for_read()
        self.receiver = app.events.Receiver(self._connection, handlers={"*": self.events.append})
        self._pubsub = client(server, EVENTS[0]).pubsub()  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(f"/{EVENTS[0]}.celeryev/task.*")
        self._threads = [
            threading.Thread(target=self._capture, daemon=True),
            threading.Thread(target=self._count, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _capture(self) -> None:
        self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _count(self) -> None:
        while not self.receiver.should_stop:
            message = self._pubsub.get_message(timeout=0.5)
            if message and message["type"] == "pmessage":
                body = json.loads(base64.b64decode(json.loads(message["data"])["body"]))
                self.messages.append(len(body) if isinstance(body, list) else 1)

    def of(self, task_id: str) -> list[str]:
        return [e["type"] for e in list(self.events) if e.get("uuid") == task_id]

    def close(self) -> None:
        self.receiver.should_stop = True
        for thread in self._threads:
            thread.join(5)
        self._pubsub.close()
        self._connection.release()


@pytest.fixture(scope="module")
def event_log(own_redis: RedisServer) -> Iterator[EventLog]:
    log = EventLog(own_redis)
    time.sleep(1)  # subscribed before the first event is sent
    yield log
    log.close()


@pytest.fixture(scope="module")
def events_worker(
    own_redis: RedisServer, event_log: EventLog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    folder = tmp_path_factory.mktemp("events-worker")
    env = {**own_redis.env(*EVENTS), "WORKER_EVENT_FLUSH_INTERVAL": str(FLUSH_INTERVAL)}
    worker = WorkerProcess(env, folder / "heartbeat", folder / "worker.log")
    yield worker
    worker.terminate()


def test_task_events_reach_a_receiver_in_batches(
    own_redis: RedisServer, event_log: EventLog, events_worker: WorkerProcess
) -> None:
    app = create_app(settings_for(own_redis, EVENTS))
    sent_at = time.monotonic()
    # Five tasks, three task events each: fewer than Celery's buffer limit (24), so only
    # the consumer's delayed flush publishes them.
    results = [app.send_task("conveyor.add", kwargs={"x": i, "y": 1}) for i in range(5)]
    assert [r.get(timeout=60) for r in results] == [1, 2, 3, 4, 5]
    expected = ["task-received", "task-started", "task-succeeded"]
    wait_for(
        lambda: all(event_log.of(r.id) == expected for r in results),
        FLUSH_INTERVAL + 30,
        "every task's events at the receiver",
    )
    arrived = time.monotonic() - sent_at
    events = sum(event_log.messages)
    assert events >= 15
    assert len(event_log.messages) < events, event_log.messages  # batched
    assert max(event_log.messages) > 1
    # Not before the interval: the first batch waited for it.
    assert arrived >= FLUSH_INTERVAL


def test_buffered_task_events_are_published_at_shutdown(
    own_redis: RedisServer, event_log: EventLog, events_worker: WorkerProcess
) -> None:
    app = create_app(settings_for(own_redis, EVENTS))
    result = app.send_task("conveyor.add", kwargs={"x": 2, "y": 2})
    assert result.get(timeout=60) == 4
    # Well within the flush interval: the task's events are still buffered.
    assert event_log.of(result.id) == []
    assert events_worker.terminate() == 0
    wait_for(
        lambda: "task-succeeded" in event_log.of(result.id),
        10,
        "the task's events, published at shutdown",
    )
    assert event_log.of(result.id) == ["task-received", "task-started", "task-succeeded"]
