"""The API key is checked before any byte of the body is read (docs/security.md, 7).

An anonymous client must not be able to make the producer read, buffer or parse a
16 MiB body: the 401 is sent without calling `receive()` at all.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from conveyor_producer.auth import key_matches
from tests.unit.test_api import AUTH, KEY, closed_port, offline_api

SIXTEEN_MIB = 16 * 1024 * 1024
#: Just under 16 MiB of many tiny JSON values: the slowest body to parse and walk
#: (seconds), so reading and checking it before the key would show in the timing.
HEAVY = b'{"task": "noop", "args": [' + b"1," * (SIXTEEN_MIB // 2 - 64) + b"1]}"
WRONG_KEYS: list[dict[str, str]] = [
    {},
    {"authorization": "Bearer wrong"},
    {"authorization": f"Basic {KEY}"},
    {"authorization": "Bearer"},
    {"authorization": f"Bearer {KEY}x"},
]
#: The API's one error shape, as the FastAPI dependency answered before (ERROR_RESPONSES).
UNAUTHORIZED = {
    "error": {"code": "unauthorized", "message": "missing or invalid API key", "field": None}
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return offline_api()


def asgi_call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes, int]:
    """One raw ASGI request: status, headers, body, and how often the app called receive()."""
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, content, received


@pytest.mark.parametrize("headers", WRONG_KEYS)
def test_a_wrong_key_is_refused_before_the_body_is_read(
    client: TestClient, headers: dict[str, str]
) -> None:
    status, response_headers, content, received = asgi_call(
        client.app, "POST", "/api/v1/tasks", headers, HEAVY
    )
    assert status == 401
    assert received == 0, "the body was read before the key was checked"
    assert json.loads(content) == UNAUTHORIZED
    assert response_headers["content-type"] == "application/json"


def test_the_right_key_gets_the_body_read(client: TestClient) -> None:
    """The control of the test above: with the key the same call does read the body."""
    status, _, content, received = asgi_call(
        client.app, "POST", "/api/v1/tasks", {"authorization": f"Bearer {KEY}"}, b'{"task": "x"}'
    )
    assert received >= 1
    assert status == 404, content  # unknown task: the body was read and parsed


@pytest.mark.parametrize(("method", "path"), [("POST", "/healthz"), ("POST", "/nowhere")])
def test_a_body_sent_outside_the_api_is_never_read(
    client: TestClient, method: str, path: str
) -> None:
    """No public route takes a body, so nothing may read one sent to them."""
    status, _, _, received = asgi_call(client.app, method, path, {}, HEAVY)
    assert status in {404, 405}
    assert received == 0


def test_only_routes_under_the_api_prefix_take_a_body(client: TestClient) -> None:
    """BodyGuard checks bodies under /api/ only, after the key: no body route elsewhere."""
    spec = client.get("/openapi.json").json()
    with_body = [
        path
        for path, operations in spec["paths"].items()
        for operation in operations.values()
        if "requestBody" in operation
    ]
    assert with_body, "the scan found no route with a body"
    assert all(path.startswith("/api/") for path in with_body), with_body


def test_public_routes_stay_public_and_the_scheme_stays_documented(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 503  # Redis is offline here, not 401
    assert client.get("/docs").status_code == 200
    assert client.get("/metrics").status_code == 404  # API port: hidden, not 401
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/api/v1/nowhere").status_code == 401  # the whole prefix is closed
    assert client.get("/api/v1/nowhere", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (f"Bearer {KEY}", True),
        (f"bearer {KEY}", True),
        (f"Bearer  {KEY} ", True),  # HTTPBearer strips the credentials too
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Basic {KEY}", False),
        (f"Bearer {KEY[:-1]}", False),
        (f"{KEY}", False),
    ],
)
def test_key_matches_reads_the_header_as_fastapi_does(header: str | None, matches: bool) -> None:
    assert key_matches(header, KEY.encode()) is matches


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The API served by uvicorn (as in the container) on a loopback port."""
    port = closed_port()
    config = uvicorn.Config(
        offline_api().app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_an_anonymous_16_mib_post_is_answered_401_at_once(
    server: str, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/healthz").status_code == 503  # connected and warm
        started = time.monotonic()
        response = http.post(
            "/api/v1/tasks", content=HEAVY, headers={**headers, "Content-Type": "application/json"}
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    # Reading and checking this body takes seconds; refusing it, milliseconds.
    assert elapsed < 1, f"{elapsed:.2f} s"
