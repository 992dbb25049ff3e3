"""The producer's HTTP API (v1). Served by gunicorn: `conveyor_producer.api:create_api()`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline

from conveyor_core.settings import ProducerSettings
from conveyor_producer.auth import API_PREFIX, ApiKeyGuard, key_matches
from conveyor_producer.body_guard import BodyGuard
from conveyor_producer.context import Context, submission_parts
from conveyor_producer.errors import ApiError, error_body, install_error_handlers
from conveyor_producer.metrics import LatencyMiddleware, render
from conveyor_producer.routes import dead_letters, emails, system, tasks, workflows
from conveyor_producer.schemas import Health

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="The CONVEYOR_API_KEY from .env")
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"example": body}}}
    for code, text, body in (
        (400, "Malformed JSON", error_body("malformed_json", "request body is not valid JSON")),
        (401, "Missing or wrong API key", error_body("unauthorized", "missing or invalid API key")),
        (404, "Unknown task, id or route", error_body("unknown_task", "no task named 'x'", "task")),
        (
            409,
            "Idempotency key reused",
            error_body("idempotency_conflict", "...", "idempotency_key"),
        ),
        (413, "Too large", error_body("too_large", "at most 10000 tasks in a batch", "tasks")),
        (415, "Body is not JSON", error_body("unsupported_media_type", "send JSON")),
        (422, "Arguments do not fit", error_body("invalid_arguments", "args[1]: ...", "args[1]")),
        (503, "Broker unreachable", error_body("broker_unavailable", "retry later")),
    )
}


def _api_key_check(settings: ProducerSettings) -> Callable[..., None]:
    expected = settings.conveyor_api_key.get_secret_value().encode()

    def require_api_key(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        # ApiKeyGuard has refused a wrong key before the body was read; this second check
        # (the same function) keeps a route safe should it ever be mounted without it,
        # and `bearer` puts the scheme in the OpenAPI document.
        if not key_matches(request.headers.get("authorization"), expected):
            raise ApiError(401, "unauthorized", "missing or invalid API key")

    return require_api_key


def _context(settings: ProducerSettings) -> Context:
    celery, broker, ledger, catalog = submission_parts(settings)
    return Context(settings=settings, celery=celery, broker=broker, ledger=ledger, catalog=catalog)


def _add_operational_routes(api: FastAPI, ctx: Context) -> None:
    @api.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Any:
        """200 when Redis answers, else 503 (within the socket timeout)."""
        try:
            ctx.broker.ping()
        except redis.RedisError as exc:
            logger.warning("health: Redis did not answer: %s", exc)
            return JSONResponse(
                error_body("broker_unavailable", "Redis is not answering"), status_code=503
            )
        return Health(status="ok")

    @api.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics, on the internal metrics port only (unless METRICS_PUBLIC)."""
        server = request.scope.get("server") or ("", 0)
        if not ctx.settings.metrics_public and server[1] != ctx.settings.metrics_port:
            raise ApiError(404, "not_found", "Not Found")
        body, content_type = render()
        return Response(body, media_type=content_type)


def create_api(settings: ProducerSettings | None = None) -> FastAPI:
    """The FastAPI application, configured from `settings` or the environment."""
    settings = settings or ProducerSettings()
    ctx = _context(settings)
    api = FastAPIOffline(
        title="Conveyor producer",
        version="1",
        description="Submit tasks and workflows to Conveyor's Celery workers.",
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(api)
    _add_operational_routes(api, ctx)
    v1 = APIRouter(
        prefix=f"{API_PREFIX}v1",
        dependencies=[Depends(_api_key_check(settings))],
        responses=ERROR_RESPONSES,
    )
    for module in (tasks, workflows, emails, system, dead_letters):
        v1.include_router(module.build(ctx))
    api.include_router(v1)
    # The last added runs first: timing, then the key, and only then is a body read.
    api.add_middleware(
        BodyGuard,
        max_bytes=settings.max_body_bytes,
        max_depth=settings.max_json_depth,
        prefix=API_PREFIX,
    )
    api.add_middleware(ApiKeyGuard, api_key=settings.conveyor_api_key.get_secret_value().encode())
    api.add_middleware(LatencyMiddleware)
    return api
