"""The HTTP API's answers that need no broker: auth, validation, error shape, 503 on outage.

The broker address points at a closed local port, so anything that would reach Redis
fails fast; these tests check that the API refuses bad requests before that point.
"""

import socket
import time

import pytest
from fastapi.testclient import TestClient

from conveyor_core.settings import ProducerSettings
from conveyor_producer.api import create_api
from conveyor_producer.submission import publish_recorded

KEY = "unit-test-api-key-0123456789"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offline_api(**overrides: object) -> TestClient:
    """The API with its broker on a closed port: anything reaching Redis fails fast."""
    settings = ProducerSettings(
        redis_password="unit-test-redis-password",
        conveyor_api_key=KEY,
        redis_host="127.0.0.1",
        redis_port=closed_port(),
        redis_socket_timeout=0.5,
        **overrides,  # type: ignore[arg-type]
    )
    return TestClient(create_api(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return offline_api()


AUTH = {"Authorization": f"Bearer {KEY}"}


def post(client: TestClient, path: str, body: object, headers: dict | None = None):
    return client.post(path, json=body, headers=headers if headers is not None else AUTH)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}]
)
def test_api_routes_need_the_key(client: TestClient, headers: dict) -> None:
    response = post(client, "/api/v1/tasks", {"task": "noop"}, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert (
        client.get(
            "/api/v1/tasks/00000000-0000-0000-0000-000000000000", headers=headers
        ).status_code
        == 401
    )


def test_the_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key check goes through hmac.compare_digest, whose time does not depend on
    how much of the key was right (a `==` would leak it a byte at a time)."""
    import hmac

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = offline_api()
    assert (
        post(client, "/api/v1/tasks", {"task": "noop"}, {"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert compared == [(b"x", KEY.encode())]


def test_unknown_task_is_404_naming_the_field(client: TestClient) -> None:
    response = post(client, "/api/v1/tasks", {"task": "nope"})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_task",
        "message": "no task named 'nope'",
        "field": "task",
    }


def test_bad_arguments_are_422_naming_the_field(client: TestClient) -> None:
    response = post(client, "/api/v1/tasks", {"task": "add", "args": [2, "x"]})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "args[1]"


def test_chain_step_errors_name_the_step(client: TestClient) -> None:
    body = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "mul", "args": ["a"]}]}
    response = post(client, "/api/v1/workflows/chain", body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "steps[1].args[0]"
    body = {"steps": [{"task": "add", "args": [2, 2]}, {"task": "nope"}]}
    assert post(client, "/api/v1/workflows/chain", body).json()["error"]["field"] == "steps[1].task"


def test_empty_and_oversized_chains_are_refused(client: TestClient) -> None:
    assert post(client, "/api/v1/workflows/chain", {"steps": []}).status_code == 422
    steps = [{"task": "noop"}] * 1001
    assert post(client, "/api/v1/workflows/chain", {"steps": steps}).status_code == 413


def test_unknown_body_fields_are_refused(client: TestClient) -> None:
    response = post(client, "/api/v1/tasks", {"task": "noop", "bogus": 1})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "bogus"


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/api/v1/tasks", content=b'{"task":', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"


def test_non_json_body_is_415(client: TestClient) -> None:
    response = client.post(
        "/api/v1/tasks",
        content=b"task=noop",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def test_bad_task_id_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/tasks/not-a-uuid", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "task_id"


def test_broker_outage_is_a_fast_503(client: TestClient) -> None:
    started = time.monotonic()
    response = post(client, "/api/v1/tasks", {"task": "add", "args": [1, 2]})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_unavailable"
    assert client.get("/healthz").status_code == 503
    # Generous bound: the point is "seconds, not a client timeout".
    assert time.monotonic() - started < 10


def test_openapi_and_docs_are_served_without_a_cdn(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/tasks" in spec["paths"]
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr.net" not in page.text


def test_a_command_refused_by_redis_acl_is_a_503_not_a_crash() -> None:
    from fastapi import FastAPI
    from redis.exceptions import NoPermissionError

    from conveyor_producer.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    def refused() -> None:
        raise NoPermissionError("this user has no permissions to run the 'info' command")

    response = TestClient(app, raise_server_exceptions=False).get("/refused")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "broker_refused"


@pytest.mark.parametrize("task", ["crash", "tally"])
def test_test_tasks_are_unknown_unless_switched_on(client: TestClient, task: str) -> None:
    refused = post(client, "/api/v1/tasks", {"task": task})
    assert refused.status_code == 404
    assert refused.json()["error"]["field"] == "task"
    listed = {
        entry["name"] for entry in client.get("/api/v1/catalog", headers=AUTH).json()["tasks"]
    }
    assert task not in listed
    # Switched on, the task is validated and reaches the (unreachable) broker: 503.
    on = offline_api(CONVEYOR_TEST_TASKS=True)
    assert post(on, "/api/v1/tasks", {"task": task}).status_code == 503
    assert task in {e["name"] for e in on.get("/api/v1/catalog", headers=AUTH).json()["tasks"]}


@pytest.mark.parametrize("error", [ConnectionError("reset"), RuntimeError("aborted batch")])
def test_a_failed_publish_after_the_record_is_left_to_the_reconciler(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Recorded means accepted: whatever the publish raises, the request still gets its 202."""

    def publish() -> None:
        raise error

    publish_recorded(publish, ["a", "b"])  # returns: the route answers 202 with the ids
    assert "publishing 2 recorded task(s) failed" in caplog.text
    assert "the reconciler will publish them" in caplog.text
