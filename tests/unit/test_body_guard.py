"""Hostile request bodies get a 4xx that names the problem, never a 500."""

import pytest
from fastapi.testclient import TestClient

from conveyor_producer.body_guard import json_problem
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
