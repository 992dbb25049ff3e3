"""The systems under test: how to fill a queue, tell when it drained, clean up after.

"Drained" means every task ran: for systems that acknowledge after running (Conveyor,
Dramatiq) the queue and the unacknowledged messages are gone; stock Celery acknowledges
on receipt, so its results are counted too; the ceiling consumer has nothing to ack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import redis

from conveyor_bench.agent import connections as conn

#: Tasks per API batch request and per Redis pipeline when filling a queue.
FILL_CHUNK = 5_000


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class System(Protocol):
    """One system under test."""

    name: str

    def fill(self, count: int, task: str) -> list[str]:
        """Put `count` tasks on the queue; return their ids."""

    def remaining(self, ids: Sequence[str]) -> int:
        """How many of `ids` have not run yet (0 when drained)."""

    def cleanup(self, ids: Sequence[str]) -> None:
        """Delete what the tasks left in Redis (results, bookkeeping)."""


def _queue_backlog(client: redis.Redis, lists: Sequence[str], unacked: str | None) -> int:
    pipe = client.pipeline(transaction=False)
    for name in lists:
        pipe.llen(name)
    if unacked:
        pipe.hlen(unacked)
    return sum(int(n) for n in pipe.execute())


def _missing_results(client: redis.Redis, ids: Sequence[str]) -> int:
    missing = 0
    for part in chunks(ids, 5_000):
        missing += len(part) - int(client.exists(*(f"celery-task-meta-{i}" for i in part)))
    return missing


@dataclass
class Conveyor:
    """Conveyor, filled through its API (batch requests), as users submit work."""

    name: str = "conveyor"
    queue: str = "default"

    def __post_init__(self) -> None:
        self.broker = conn.client(conn.CONVEYOR_BROKER_DB)
        self.results = conn.client(conn.CONVEYOR_RESULT_DB)

    def fill(self, count: int, task: str = "noop") -> list[str]:
        """Submit through POST /api/v1/tasks/batch."""
        ids: list[str] = []
        with httpx.Client(base_url=conn.API_URL, headers=conn.api_headers(), timeout=120) as api:
            while len(ids) < count:
                size = min(FILL_CHUNK, count - len(ids))
                body = {"tasks": [{"task": task}] * size}
                reply = api.post("/api/v1/tasks/batch", json=body)
                if reply.is_error:
                    raise RuntimeError(f"the API answered {reply.status_code}: {reply.text}")
                ids += reply.json()["ids"]
        return ids

    def remaining(self, ids: Sequence[str]) -> int:
        """Messages waiting or unacknowledged (acks late: acknowledged once run)."""
        from conveyor_core.celery_internals import UNACKED_KEY, priority_lists

        return _queue_backlog(self.broker, priority_lists(self.queue), UNACKED_KEY)

    def cleanup(self, ids: Sequence[str]) -> None:
        """Results, bookkeeping hashes and delivery counters of `ids`."""
        cleanup_conveyor(self.results, ids)


def cleanup_conveyor(results: redis.Redis, ids: Sequence[str]) -> None:
    """Delete the results and bookkeeping Conveyor keeps for `ids`."""
    for part in chunks(ids, 2_000):
        keys = [f"celery-task-meta-{i}" for i in part]
        keys += [f"conveyor:task:{i}" for i in part]
        keys += [f"conveyor:deliveries:{i}:0" for i in part]
        pipe = results.pipeline(transaction=False)
        pipe.unlink(*keys)
        pipe.zrem("conveyor:pending", *part)
        pipe.execute()


@dataclass
class ConveyorDirect(Conveyor):
    """Conveyor's worker on a queue filled by publishing straight to Redis (no API)."""

    name: str = "conveyor-direct"

    def fill(self, count: int, task: str = "noop") -> list[str]:
        """Publish with Conveyor's Celery app, pipelined (catalogue names get the prefix)."""
        from conveyor_core.celery_app import app

        name = task if "." in task else f"conveyor.{task}"
        return publish_pipelined(app, name, self.queue, count)


def publish_pipelined(app: Any, task: str, queue: str | None, count: int) -> list[str]:
    """Publish `count` calls of `task` with one producer, a thousand per round trip."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    options = {"queue": queue} if queue else {}
    with app.producer_or_acquire() as producer, producer.batch(1_000):
        for task_id in ids:
            app.send_task(task, task_id=task_id, producer=producer, **options)
    return ids


@dataclass
class StockCelery:
    """The Celery tutorial's app and worker (bench/baselines/stock_celery)."""

    name: str = "stock-celery"

    def __post_init__(self) -> None:
        self.broker = conn.client(conn.STOCK_BROKER_DB)
        self.results = conn.client(conn.STOCK_RESULT_DB)

    def fill(self, count: int, task: str = "noop") -> list[str]:
        """Publish with the tutorial's app, pipelined (filling speed is not measured)."""
        import tasks

        return publish_pipelined(tasks.app, f"tasks.{task}", None, count)

    def remaining(self, ids: Sequence[str]) -> int:
        """Messages waiting, then results not stored yet (acks early: results tell)."""
        # Not the unacked hash: acks early empties it at once, and what a killed stock
        # worker left there stays an hour (kombu's default visibility timeout).
        backlog = _queue_backlog(self.broker, ["celery"], None)
        return backlog or _missing_results(self.results, ids)

    def cleanup(self, ids: Sequence[str]) -> None:
        """The tutorial's results."""
        for part in chunks(ids, 5_000):
            self.results.unlink(*(f"celery-task-meta-{i}" for i in part))


@dataclass
class Dramatiq:
    """Dramatiq with its Redis broker (bench/conveyor_bench/agent/dramatiq_tasks.py)."""

    name: str = "dramatiq"

    def __post_init__(self) -> None:
        self.client = conn.client(conn.DRAMATIQ_DB)

    def fill(self, count: int, task: str = "noop") -> list[str]:
        """`actor.send()` per message, as Dramatiq users enqueue."""
        from conveyor_bench.agent import dramatiq_tasks

        actor = getattr(dramatiq_tasks, task)
        return [actor.send().message_id for _ in range(count)]

    def remaining(self, ids: Sequence[str]) -> int:
        """Messages not acknowledged yet (Dramatiq deletes a message once it ran)."""
        return int(self.client.hlen("dramatiq:default.msgs"))

    def cleanup(self, ids: Sequence[str]) -> None:
        """Nothing: Dramatiq keeps no results here."""


@dataclass
class Ceiling:
    """The ceiling: LPUSH by a pipeline, BRPOP by minimal consumers (agent/ceiling.py)."""

    name: str = "ceiling"

    def __post_init__(self) -> None:
        self.client = conn.client(conn.CEILING_DB)

    def fill(self, count: int, task: str = "noop") -> list[str]:
        """LPUSH JSON messages, a thousand per round trip."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for part in chunks(ids, 1_000):
            messages = [json.dumps({"id": i, "task": task}) for i in part]
            self.client.lpush(CEILING_QUEUE, *messages)
        return ids

    def remaining(self, ids: Sequence[str]) -> int:
        """Messages not popped yet."""
        return int(self.client.llen(CEILING_QUEUE))

    def cleanup(self, ids: Sequence[str]) -> None:
        """Nothing is left."""


CEILING_QUEUE = "ceiling:default"


def system(name: str) -> System:
    """The system called `name`."""
    kinds: dict[str, Callable[[], System]] = {
        "conveyor": Conveyor,
        "conveyor-direct": ConveyorDirect,
        "stock-celery": StockCelery,
        "dramatiq": Dramatiq,
        "ceiling": Ceiling,
        "io": lambda: ConveyorDirect(name="io", queue="bench-io"),
    }
    return kinds[name]()


def wait_drained(target: System, ids: Sequence[str], timeout: float, poll: float = 0.01) -> float:
    """Poll until every task ran; return the time.time() when it was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.remaining(ids) == 0:
            return time.time()
        time.sleep(poll)
    raise TimeoutError(
        f"{target.name}: {target.remaining(ids)} task(s) still left after {timeout}s"
    )
