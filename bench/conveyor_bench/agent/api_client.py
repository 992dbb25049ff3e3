"""A lean keep-alive HTTP/1.1 client for the latency scenario's submissions.

The load generator shares the machine with what it measures. httpx spent about 5 ms of
CPU per request here (its connection pool's bookkeeping, anyio, header models): at 200
requests/s that is most of a core, and the generator, not the API, set the achieved rate.
This client does what `wrk` does: one persistent connection per sender, a request
written as bytes, the response read by its Content-Length.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

#: Headers this client writes itself, per request.
FRAMING = {"content-type", "content-length", "host", "connection"}

#: Seconds a request may take, as httpx's default client timeout in the bench was.
TIMEOUT = 30


class ApiError(Exception):
    """The API answered with a status that is not 2xx."""


class KeepAliveConnection:
    """One persistent HTTP/1.1 connection to the API; reopened when the server closes it."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"an http:// URL with a host is needed, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        given = {k: v for k, v in headers.items() if k.lower() not in FRAMING}
        fixed = {"Host": url.netloc, "Connection": "keep-alive", **given}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, body: Any) -> Any:
        """POST `body` as JSON; the decoded JSON reply (ApiError when it is not 2xx)."""
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        reused = self._writer is not None
        try:
            status, reply = await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.close()
            # A kept-alive connection the server closed while idle never saw the request:
            # sending it again on a new one cannot submit it twice. Anything else is raised.
            if not (reused and isinstance(exc, asyncio.IncompleteReadError) and not exc.partial):
                raise
            status, reply = await self._exchange(request)
        if not 200 <= status < 300:
            raise ApiError(f"{status}: {reply[:200]!r}")
        return json.loads(reply)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None  # opened together with the writer
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }
        if "content-length" not in fields:  # the API never streams; chunked is not handled
            raise ApiError(f"a response without Content-Length: {status_line}")
        reply = await self._reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split()[1]), reply

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """`size` connections, each used by one request at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], size: int) -> None:
        self._idle: asyncio.LifoQueue[KeepAliveConnection] = asyncio.LifoQueue()
        for _ in range(size):
            self._idle.put_nowait(KeepAliveConnection(base_url, headers))

    async def post_json(self, path: str, body: Any) -> Any:
        """POST on an idle connection (waiting for one if every one is busy)."""
        connection = await self._idle.get()
        try:
            async with asyncio.timeout(TIMEOUT):
                return await connection.post_json(path, body)
        except BaseException:
            connection.close()  # its stream may be mid-response: never reuse it
            raise
        finally:
            self._idle.put_nowait(connection)
