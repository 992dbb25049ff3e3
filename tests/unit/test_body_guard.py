"""Hostile request bodies get a 4xx that names the problem, never a 500."""

import asyncio
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from conveyor_producer import body_guard
from conveyor_producer.body_guard import BodyGuard, json_problem
from tests.unit.test_api import AUTH, offline_api


@pytest.fixture(scope="module")
def client() -> TestClient:
    return offline_api(max_body_bytes=64 * 1024, max_json_depth=32, metrics_public=True)


def raw(client: TestClient, body: bytes) -> tuple[int, dict]:
    response = client.post(
        "/api/v1/tasks", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    return response.status_code, response.json()


def test_deep_nesting_is_400(client: TestClient) -> None:
    # Deep enough for a RecursionError in the JSON parser, small enough to pass the size
    # check (64 KiB here): it must be refused for its depth, not for its size.
    deep = b'{"task": "xsum", "args": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    assert len(deep) < 64 * 1024
    status, body = raw(client, deep)
    assert status == 400, body
    assert body["error"]["code"] == "bad_request"
    assert "nested too deeply" in body["error"]["message"]
    # Past the limit (32) but nowhere near the parser's own: the walk catches it.
    status, body = raw(client, b'{"task": "xsum", "args": ' + b"[" * 40 + b"]" * 40 + b"}")
    assert status == 400
    assert "nested too deeply (at most 32 levels)" in body["error"]["message"]


def test_oversized_body_is_413(client: TestClient) -> None:
    status, body = raw(client, b'{"task": "noop", "args": ["' + b"x" * 70_000 + b'"]}')
    assert status == 413
    assert body["error"]["code"] == "too_large"


def test_huge_integer_is_400(client: TestClient) -> None:
    status, body = raw(client, b'{"task": "add", "args": [' + b"9" * 5000 + b", 1]}")
    assert status == 400
    assert "not accepted" in body["error"]["message"]


def test_big_float_is_422_naming_the_field(client: TestClient) -> None:
    status, body = raw(client, b'{"task": "add", "args": [1e400, 1]}')
    assert status == 422
    assert body["error"]["field"] == "args[0]"


def test_lone_surrogate_is_400(client: TestClient) -> None:
    status, body = raw(client, b'{"task": "\\ud800"}')
    assert status == 400
    assert "surrogate" in body["error"]["message"]


def test_invalid_utf8_is_400(client: TestClient) -> None:
    status, body = raw(client, b'{"task": "\xff\xfe"}')
    assert status == 400
    assert "UTF-8" in body["error"]["message"]


def test_odd_but_valid_unicode_is_a_clean_404(client: TestClient) -> None:
    status, body = raw(client, '{"task": "a\\u0000b\u202e\U0001f600\u00e9"}'.encode())
    assert status == 404
    assert body["error"]["field"] == "task"


def test_wrong_types_are_422(client: TestClient) -> None:
    for payload in (b'{"task": 5}', b'{"task": "add", "args": {"x": 1}}', b"[]", b'"noop"'):
        status, body = raw(client, payload)
        assert status == 422, payload
        assert body["error"]["code"] == "invalid_request"


def test_json_problem_accepts_plain_documents() -> None:
    assert json_problem(b'{"task": "add", "args": [1, 2]}', 32) is None
    assert json_problem(b"{not json", 32) is None  # left to FastAPI's 400


def requests_counted(client: TestClient, series: str) -> float:
    """The request histogram's count for one label set (0 before its first request)."""
    name = f"conveyor_http_request_duration_seconds_count{{{series}}} "
    lines = [line for line in client.get("/metrics").text.splitlines() if line.startswith(name)]
    return float(lines[0].removeprefix(name)) if lines else 0.0


def test_metrics_count_submissions_and_requests(client: TestClient) -> None:
    series = 'handler="submit_task",method="POST",status="404"'
    before = requests_counted(client, series)
    assert raw(client, b'{"task": "nope"}')[0] == 404
    # This very request, under its handler and its real status.
    assert requests_counted(client, series) == before + 1
    assert "conveyor_http_request_duration_seconds_bucket" in client.get("/metrics").text


async def accept(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the body and answers 204."""
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def post_to(app: Any, body: bytes) -> int:
    """POST `body` to a raw ASGI app; the response status."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": "/api/v1/tasks", "headers": []}
    await app(scope, receive, send)
    return statuses[0]


def test_a_large_body_is_checked_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a large body's JSON check runs, the event loop still serves a small request.

    The large check waits for the small request to finish: on the event loop that wait
    would block it, the small request could never run, and the wait would time out.
    """
    small_served = threading.Event()
    waited: list[bool] = []
    real = body_guard.json_problem

    def slow_check(body: bytes, max_depth: int) -> str | None:
        if len(body) > body_guard.THREAD_THRESHOLD:
            waited.append(small_served.wait(timeout=3))
        return real(body, max_depth)

    monkeypatch.setattr(body_guard, "json_problem", slow_check)
    guard = BodyGuard(accept, max_bytes=1024 * 1024, max_depth=32)
    large = b'{"task": "noop", "args": [' + b"1," * body_guard.THREAD_THRESHOLD + b"1]}"

    async def small_request() -> int:
        status = await post_to(guard, b'{"task": "noop"}')
        small_served.set()
        return status

    async def both() -> list[int]:
        return list(await asyncio.gather(post_to(guard, large), small_request()))

    assert asyncio.run(both()) == [204, 204]
    assert waited == [True], "the large body's check blocked the event loop"


def test_a_large_body_checked_on_a_thread_is_still_refused_for_its_depth() -> None:
    """The parser's RecursionError happens on the worker thread, and is still a 400."""
    guard = BodyGuard(accept, max_bytes=1024 * 1024, max_depth=32)
    deep = b'{"task": "noop", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(deep) > body_guard.THREAD_THRESHOLD
    assert asyncio.run(post_to(guard, deep)) == 400
