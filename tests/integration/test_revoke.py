"""A revoke sticks: a revoked (or purged) task never runs, whatever worker takes it, when.

Celery keeps revokes in worker memory only (celery#4300, celery#4886): a worker that
starts after the revoke, or a copy of the task that comes back, would run it. Conveyor
records each revoke in Redis (`ledger_keys.REVOKED_PREFIX`) and every worker checks the
record before it runs a task. Each test runs real `celery worker` processes on a Redis of
this module's own, with a control task alongside that does run; the mutation that makes
each test fail is named in its docstring.
"""

from __future__ import annotations

import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conveyor_reconciler.main import Reconciler
from fastapi.testclient import TestClient

from conveyor_core.catalog import known_queues
from conveyor_core.celery_app import create_app
from conveyor_core.celery_internals import UNACKED_KEY, priority_lists
from conveyor_core.ledger_keys import PENDING, revoked_key, task_key
from conveyor_core.settings import ReconcilerSettings, Settings
from conveyor_producer.ledger import Issued, Ledger
from conveyor_producer.submission import replay_call
from conveyor_worker.tally import TALLY_RUNS
from tests.helpers import ROOT, catalog, task_outcome, wait_for
from tests.integration.conftest import RedisServer, WorkerProcess, Workers, api_for, redis_container

pytestmark = pytest.mark.integration

#: Broker and result databases of each test, so that no test sees another's messages.
QUEUED, HELD, RECONCILED, PURGED = (0, 1), (2, 3), (4, 5), (6, 7)
#: Seconds of countdown of the held tasks: long enough to revoke and restart a worker.
COUNTDOWN = 12

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this module alone: the session's sixteen databases are all taken."""
    with redis_container("-revoke") as server:
        yield server


@pytest.fixture
def start_worker(own_redis: RedisServer, tmp_path: Path) -> Iterator[StartWorker]:
    """Factory: start a worker on a pair of databases; each is stopped after the test."""
    workers = Workers(own_redis, lambda: Path(tempfile.mkdtemp(prefix="worker-", dir=tmp_path)))
    yield lambda dbs, **options: workers.start(*dbs, **options)
    workers.stop_all()


def results(server: RedisServer, dbs: tuple[int, int]) -> redis.Redis:
    """A client of the result database (where the tally and the revoke records are)."""
    return redis.Redis(host=server.host, port=server.port, password=server.password, db=dbs[1])


def submit(api: TestClient, **body: Any) -> str:
    response = api.post("/api/v1/tasks", json={"task": "tally", **body})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def revoke(api: TestClient, task_id: str) -> None:
    response = api.delete(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 202, response.text


def runs(server: RedisServer, dbs: tuple[int, int], task_id: str) -> int:
    """How many times the `tally` task ran with this id."""
    return int(results(server, dbs).hget(TALLY_RUNS, task_id) or 0)


def copies_in_broker(server: RedisServer, dbs: tuple[int, int], task_id: str) -> int:
    """Messages of the task waiting in the default queue or held unacknowledged."""
    client = redis.Redis(host=server.host, port=server.port, password=server.password, db=dbs[0])
    raw = [m for key in priority_lists("default") for m in client.lrange(key, 0, -1)]
    raw += client.hvals(UNACKED_KEY)
    return sum(task_id.encode() in message for message in raw)


def assert_revoked_and_never_ran(
    api: TestClient,
    server: RedisServer,
    dbs: tuple[int, int],
    task_id: str,
    reason: str,
    started: bool = False,
) -> None:
    """The task's every message was taken and acknowledged, and it ended REVOKED unrun.

    `started`: a start was recorded before the revoke (an earlier attempt).

    Its state alone does not tell: a live worker's revoke broadcast, or the purge, stores
    REVOKED before any worker takes the message, and a run would overwrite it later.
    """
    seen_gone: list[bool] = []

    def gone() -> bool:
        # Twice in a row: a message just popped by a worker is in neither place a moment.
        seen_gone.append(copies_in_broker(server, dbs, task_id) == 0)
        return seen_gone[-2:] == [True, True]

    wait_for(gone, 60, f"every message of {task_id} to be taken and acknowledged")
    status = task_outcome(api, task_id)
    assert (status["state"], status["error"]) == (
        "REVOKED",
        {"type": "TaskRevokedError", "message": reason},
    ), status
    assert (status["started_at"] is not None) == started
    assert runs(server, dbs, task_id) == 0
    # Settled: the reconciler forgets it.
    assert results(server, dbs).zscore(PENDING, task_id) is None


def test_a_task_revoked_while_no_worker_runs_never_runs_once_one_starts(
    own_redis: RedisServer, start_worker: StartWorker
) -> None:
    """Revoked while queued with no worker up (stopped, or before a scale-up).

    Mutations seen failing: `guard` without its revoke check (`if start.revoked:` never
    true): the revoked task ran, state SUCCESS; the revoke route without
    `_revoked_unless_started`: PENDING, not REVOKED, before a worker started.
    """
    api = api_for(own_redis, *QUEUED)
    revoked = submit(api)
    control = submit(api)
    revoke(api, revoked)  # no worker hears the broadcast
    assert results(own_redis, QUEUED).get(revoked_key(revoked)) == b"revoked"
    # Never started, and no worker will start it now: REVOKED at once, no worker needed.
    assert api.get(f"/api/v1/tasks/{revoked}").json()["state"] == "REVOKED"
    start_worker(QUEUED)
    assert task_outcome(api, control)["state"] == "SUCCESS"
    assert runs(own_redis, QUEUED, control) == 1
    assert_revoked_and_never_ran(api, own_redis, QUEUED, revoked, "revoked")


def test_a_countdown_task_revoked_then_every_worker_restarted_never_runs(
    own_redis: RedisServer, start_worker: StartWorker
) -> None:
    """Revoked while a worker holds it for its countdown, then that worker restarts.

    The first worker learns of the revoke by broadcast, in its memory (and stores
    REVOKED, as Celery 5.7 does for a task not started); its warm shutdown puts the held
    messages back, and the next worker, which never heard the broadcast, takes them.
    Mutation seen failing: `guard` without its revoke check: the revoked task ran
    on the new worker, state SUCCESS.
    """
    api = api_for(own_redis, *HELD)
    first = start_worker(HELD)
    revoked = submit(api, countdown=COUNTDOWN)
    control = submit(api, countdown=COUNTDOWN)

    def held() -> bool:
        statuses = [api.get(f"/api/v1/tasks/{i}").json() for i in (revoked, control)]
        return all(s["received_at"] for s in statuses)

    wait_for(held, 30, "the worker to hold both countdown tasks")
    revoke(api, revoked)
    assert first.terminate() == 0  # a deploy: SIGTERM, then a new worker
    start_worker(HELD)
    assert task_outcome(api, control, timeout=COUNTDOWN + 60)["state"] == "SUCCESS"
    assert runs(own_redis, HELD, control) == 1
    assert_revoked_and_never_ran(api, own_redis, HELD, revoked, "revoked")


def _record_without_publishing(ledger: Ledger) -> str:
    """What the producer leaves behind when a `tally` message is then lost."""
    task_id = str(uuid.uuid4())
    call = replay_call(catalog("tally"), {"delay": 0}, "default", {})
    ledger.issue([Issued(task_id, "tally", "default", call)])
    return task_id


def _reconciler_user(server: RedisServer) -> dict[str, str]:
    """Create the `reconciler` user of deploy/redis/roles.acl; its settings fields."""
    written = next(
        line.split()[1:]
        for line in (ROOT / "deploy" / "redis" / "roles.acl").read_text().splitlines()
        if line.startswith("reconciler ")
    )
    # As start-redis.sh writes them: a rule holding {queue} once per declared queue.
    rules = [
        rule.replace("{queue}", queue) if "{queue}" in rule else rule
        for rule in written
        for queue in (known_queues() if "{queue}" in rule else [""])
    ]
    password = secrets.token_urlsafe(24)
    admin = redis.Redis(host=server.host, port=server.port, password=server.password)
    command = ("ACL", "SETUSER", "reconciler", "reset", "on", f">{password}", *rules)
    admin.execute_command(*command)  # type: ignore[no-untyped-call]
    return {"redis_username": "reconciler", "redis_password": password}


def test_the_reconciler_does_not_bring_a_revoked_task_back(
    own_redis: RedisServer, start_worker: StartWorker
) -> None:
    """A revoked task whose message vanished is stored REVOKED, not published again.

    The reconciler runs as its Redis ACL user (deploy/redis/roles.acl).
    Mutations seen failing: `_reconcile` without the revoke check (every missing task
    republished): the revoked task was in `republished`; the `reconciler` ACL without
    `~celery-task-meta-*` (NoPermissionError) or without `+publish` (the store script
    refused).
    """
    api = api_for(own_redis, *RECONCILED)
    fields: dict[str, Any] = {
        "redis_host": own_redis.host,
        "redis_port": own_redis.port,
        "redis_broker_db": RECONCILED[0],
        "redis_result_db": RECONCILED[1],
        **_reconciler_user(own_redis),
    }
    reconciler = Reconciler(ReconcilerSettings(**fields, reconcile_grace=5))
    # The ledger is the producer's: written with the default user.
    ledger = Ledger(results(own_redis, RECONCILED), ttl=3600, recent_max=10)
    revoked, control = _record_without_publishing(ledger), _record_without_publishing(ledger)
    # It started once (a worker recorded the start; its retry was due later), so the
    # revoke leaves its state to the workers; then its message was lost. No worker is up:
    # the broadcast reaches nobody (a live one would store REVOKED, as Celery 5.7 does).
    ledger.client.hset(task_key(revoked), "started_at", time.time())
    revoke(api, revoked)
    assert api.get(f"/api/v1/tasks/{revoked}").json()["state"] == "STARTED"
    start_worker(RECONCILED)
    later = time.time() + 10
    first = reconciler.run_pass(now=later)
    assert first.suspected == 2 and not first.republished  # one miss: suspects only
    second = reconciler.run_pass(now=later + 1)
    assert (second.republished, second.revoked) == ([control], [revoked])
    assert task_outcome(api, control)["state"] == "SUCCESS"
    assert runs(own_redis, RECONCILED, control) == 1
    assert_revoked_and_never_ran(api, own_redis, RECONCILED, revoked, "revoked", started=True)
    third = reconciler.run_pass(now=later + 2)
    assert not third.republished and not third.revoked


def test_a_purged_task_never_runs_from_another_copy(
    own_redis: RedisServer, start_worker: StartWorker
) -> None:
    """Purge records each purged id: a copy of it that comes back later does not run.

    The copy stands for a message restored from unacked or published again. One worker
    process takes the copy, then the control, in order.
    Mutation seen failing: the purge route without `ctx.ledger.revoke(ids, "purged")`:
    no record; with that assertion taken out too, the copy ran (state SUCCESS over the
    purge's REVOKED, tally 1).
    """
    api = api_for(own_redis, *PURGED)
    purged = submit(api)
    response = api.delete("/api/v1/queues/default")
    assert (response.status_code, response.json()) == (200, {"purged": 1}), response.text
    assert results(own_redis, PURGED).get(revoked_key(purged)) == b"purged"
    settings = Settings(
        redis_host=own_redis.host,
        redis_port=own_redis.port,
        redis_password=own_redis.password,
        redis_broker_db=PURGED[0],
        redis_result_db=PURGED[1],
    )
    create_app(settings).send_task(
        "conveyor.tally", kwargs={"delay": 0}, task_id=purged, queue="default"
    )
    control = submit(api)
    start_worker(PURGED, concurrency=1)
    assert task_outcome(api, control)["state"] == "SUCCESS"
    assert runs(own_redis, PURGED, control) == 1
    assert_revoked_and_never_ran(api, own_redis, PURGED, purged, "purged")
