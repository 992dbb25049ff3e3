"""A direct submit: another Python service with Redis access submits through the
producer's own path (conveyor_producer.direct), so its tasks are validated, recorded
for the reconciler, deduplicated by key and readable through the API like the API's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conveyor_core.errors import InvalidArgumentsError
from conveyor_core.ledger_keys import PENDING
from conveyor_core.settings import SubmitterSettings
from conveyor_producer.direct import DirectSubmitter
from conveyor_producer.errors import ApiError
from tests.helpers import task_outcome
from tests.integration.conftest import RedisServer, WorkerProcess


@pytest.fixture(scope="module")
def submitter(redis_server: RedisServer) -> Iterator[DirectSubmitter]:
    """On the session worker's databases, as the API there; no API key."""
    settings = redis_server.settings(0, 1, SubmitterSettings, CONVEYOR_TEST_TASKS=True)
    direct = DirectSubmitter(settings)
    yield direct
    direct.close()


def test_a_direct_submission_runs_and_the_api_knows_it(
    submitter: DirectSubmitter, worker: WorkerProcess, api: TestClient
) -> None:
    task_id = submitter.submit("add", 2, y=3)
    done = task_outcome(api, task_id)
    assert (done["state"], done["result"], done["task"]) == ("SUCCESS", 5, "add")
    recent = api.get("/api/v1/tasks/recent", params={"limit": 50}).json()["tasks"]
    assert task_id in [entry["id"] for entry in recent]


def test_a_direct_submission_is_recorded_for_the_reconciler_before_it_runs(
    submitter: DirectSubmitter, worker: WorkerProcess, api: TestClient
) -> None:
    """Pending with its call, as the API's are: the reconciler publishes it if Redis
    loses the message."""
    task_id = submitter.submit("add", 1, 1, countdown=60)
    assert submitter.ledger.client.zscore(PENDING, task_id) is not None
    info = submitter.ledger.info(task_id)
    assert info is not None and info["task"] == "add"
    assert api.delete(f"/api/v1/tasks/{task_id}").status_code == 202


def test_a_repeated_key_returns_the_first_id_and_a_reused_one_is_refused(
    submitter: DirectSubmitter, worker: WorkerProcess, api: TestClient
) -> None:
    first = submitter.submit("mul", 6, 7, idempotency_key="direct-e2e-42")
    assert submitter.submit("mul", 6, 7, idempotency_key="direct-e2e-42") == first
    assert task_outcome(api, first)["result"] == 42
    with pytest.raises(ApiError) as refused:
        submitter.submit("mul", 6, 8, idempotency_key="direct-e2e-42")
    assert (refused.value.status, refused.value.field) == (409, "idempotency_key")


def test_bad_input_names_the_field_and_enqueues_nothing(submitter: DirectSubmitter) -> None:
    with pytest.raises(InvalidArgumentsError) as refused:
        submitter.submit("add", 2, "x")
    assert refused.value.field == "args[1]"
    with pytest.raises(ApiError) as unknown:
        submitter.submit("nope")
    assert (unknown.value.status, unknown.value.field) == (404, "task")
    with pytest.raises(InvalidArgumentsError) as in_batch:
        submitter.submit_batch([("add", [1, 1], {}), ("add", [1], {"y": "z"})])
    assert in_batch.value.field == "tasks[1].kwargs.y"


def test_a_direct_batch_runs_every_task(
    submitter: DirectSubmitter, worker: WorkerProcess, api: TestClient
) -> None:
    ids = submitter.submit_batch([("add", [i, i], {}) for i in range(5)])
    assert [task_outcome(api, task_id)["result"] for task_id in ids] == [0, 2, 4, 6, 8]
