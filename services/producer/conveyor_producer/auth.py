"""The API key check, made before anything reads a request body.

`ApiKeyGuard` sits outside `BodyGuard`: an anonymous or wrong-key request under /api/ is
answered 401 without a single `receive()`, so a client without the key cannot make the
producer read, buffer or parse its body. The FastAPI dependency in api.py makes the same
check again (with `key_matches`) and shows the scheme in the OpenAPI document.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor_producer.errors import error_body

#: Every route under this prefix needs the key; only routes under it take a body.
API_PREFIX = "/api/"


def key_matches(authorization: str | None, expected: bytes) -> bool:
    """Whether an Authorization header is `Bearer <expected>`, as FastAPI's HTTPBearer reads it.

    The key is compared with hmac.compare_digest: the time taken does not tell how much
    of it was right.
    """
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.encode(), expected)


def unauthorized() -> JSONResponse:
    """The 401 of a missing or wrong key, in the API's one error shape."""
    return JSONResponse(error_body("unauthorized", "missing or invalid API key"), 401)


def is_api_path(path: str) -> bool:
    """Whether a request path is under the API prefix (and so needs the key)."""
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/")


def _authorization(scope: Scope) -> str | None:
    """The first Authorization header, decoded as Starlette's `Request.headers` does."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class ApiKeyGuard:
    """ASGI middleware: refuse API requests without the right key before reading them."""

    def __init__(self, app: ASGIApp, *, api_key: bytes) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 at once, or pass the request on untouched."""
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        if key_matches(_authorization(scope), self.api_key):
            await self.app(scope, receive, send)
            return
        # Never receive(): the body stays unread in the socket buffer; uvicorn discards it.
        await unauthorized()(scope, receive, send)
