"""The bench's lean HTTP client against a real local server (sockets, no mocks)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from conveyor_bench.agent.api_client import ApiError, ConnectionPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(status: int, body: Any, close: bool = False) -> bytes:
    payload = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + payload


async def read_request(reader: asyncio.StreamReader) -> dict[str, Any]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = int(head.lower().split("content-length:")[1].split("\r\n")[0])
    return {"head": head, "body": json.loads(await reader.readexactly(length))}


def serve(handler: Handler, client: Callable[[str], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await client(f"http://127.0.0.1:{port}")

    return asyncio.run(main())


def test_a_connection_closed_while_idle_is_reopened_and_nothing_is_sent_twice() -> None:
    seen: list[dict[str, Any]] = []

    async def one_request_per_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        request = await read_request(r)
        seen.append(request)
        w.write(answer(202, {"id": str(request["body"]["n"])}))
        await w.drain()
        w.close()  # as a server whose keep-alive timeout ran out, without saying so

    async def client(url: str) -> list[Any]:
        pool = ConnectionPool(url, {"Authorization": "Bearer k"}, size=1)
        replies = [await pool.post_json("/api/v1/tasks", {"n": n}) for n in range(3)]
        return replies

    assert serve(one_request_per_connection, client) == [{"id": "0"}, {"id": "1"}, {"id": "2"}]
    assert [r["body"]["n"] for r in seen] == [0, 1, 2]  # each once
    assert all("Authorization: Bearer k\r\n" in r["head"] for r in seen)
    assert all(r["head"].count("Content-Type:") == 1 for r in seen)


def test_requests_share_a_kept_alive_connection_and_errors_name_the_status() -> None:
    connections = 0

    async def keep_alive(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not r.at_eof():
            try:
                request = await read_request(r)
            except asyncio.IncompleteReadError:
                return
            ok = request["body"].get("task") == "add"
            w.write(answer(202, {"id": "x"}) if ok else answer(422, {"detail": "task"}))
            await w.drain()

    async def client(url: str) -> tuple[list[Any], str]:
        pool = ConnectionPool(url, {}, size=1)
        replies = [await pool.post_json("/", {"task": "add"}) for _ in range(3)]
        with pytest.raises(ApiError) as refused:
            await pool.post_json("/", {"task": "nope"})
        return replies, str(refused.value)

    replies, error = serve(keep_alive, client)
    assert replies == [{"id": "x"}] * 3
    assert error.startswith("422")
    assert connections == 1
