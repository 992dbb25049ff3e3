"""Refuse request bodies that are too big, nested too deeply, or not clean UTF-8 JSON.

It runs before FastAPI parses anything, so what would otherwise surface as a recursion
error, a 4,300-digit integer or an unencodable lone surrogate somewhere deep in the stack
is a 400 or 413 that says what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_producer.errors import error_body

#: Bodies larger than this are checked on a worker thread: parsing 16 MiB of JSON and
#: walking it takes seconds, which would stall every other request on the event loop.
THREAD_THRESHOLD = 64 * 1024


class BodyTooLargeError(Exception):
    """The body is over the size limit."""


def json_problem(body: bytes, max_depth: int) -> str | None:
    """What is wrong with a JSON body, or None (malformed JSON is left to FastAPI)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "request body is not valid UTF-8"
    try:
        document = json.loads(text)
    except RecursionError:
        return f"JSON is nested too deeply (at most {max_depth} levels)"
    except json.JSONDecodeError:
        return None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return f"JSON value not accepted: {exc}"
    return _walk(document, max_depth)


def _walk(document: Any, max_depth: int) -> str | None:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return f"JSON is nested too deeply (at most {max_depth} levels)"
        if isinstance(node, dict):
            for key, value in node.items():
                if not _encodable(key):
                    return "JSON contains an invalid Unicode string (a lone surrogate)"
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str) and not _encodable(node):
            return "JSON contains an invalid Unicode string (a lone surrogate)"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class BodyGuard:
    """ASGI middleware: bounded body read, then the JSON checks, then the app.

    Only paths under `prefix` are checked; elsewhere no route takes a body, so nothing
    reads one (a 404 or 405 leaves it unread). In the API that prefix is /api/, whose
    requests `ApiKeyGuard` has authenticated first.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int, prefix: str = "/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the body of POST, PUT and PATCH requests; pass everything else on."""
        if (
            scope["type"] != "http"
            or scope["method"] not in {"POST", "PUT", "PATCH"}
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except BodyTooLargeError:
            message = f"request body is larger than {self.max_bytes} bytes"
            await JSONResponse(error_body("too_large", message), 413)(scope, receive, send)
            return
        problem = await self._problem(body)
        if problem:
            await JSONResponse(error_body("bad_request", problem), 400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _problem(self, body: bytes) -> str | None:
        if not body:
            return None
        if len(body) <= THREAD_THRESHOLD:
            return json_problem(body, self.max_depth)  # quicker than a thread hop
        return await run_in_threadpool(json_problem, body, self.max_depth)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise BodyTooLargeError
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLargeError
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)
