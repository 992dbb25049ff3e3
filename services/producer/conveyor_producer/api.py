"""The producer's HTTP API (v1). Served by gunicorn: `conveyor_producer.api:create_api()`."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import redis
from celery import Celery, chain
from celery.result import AsyncResult
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline

from conveyor_core.catalog import TaskSpec, lookup
from conveyor_core.celery_app import create_app
from conveyor_core.errors import InvalidArgumentsError
from conveyor_core.settings import ProducerSettings
from conveyor_producer.errors import ApiError, error_body, install_error_handlers
from conveyor_producer.results import backend_url
from conveyor_producer.schemas import (
    ChainRequest,
    Health,
    Submitted,
    TaskCall,
    TaskError,
    TaskStatus,
)

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="The CONVEYOR_API_KEY from .env")
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {"application/json": {"example": body}}}
    for code, text, body in (
        (401, "Missing or wrong API key", error_body("unauthorized", "missing or invalid API key")),
        (422, "Arguments do not fit", error_body("invalid_arguments", "y: missing", "y")),
        (503, "Broker unreachable", error_body("broker_unavailable", "retry later")),
    )
}


def _api_key_check(settings: ProducerSettings) -> Callable[..., None]:
    expected = settings.conveyor_api_key.get_secret_value().encode()

    def require_api_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        # compare_digest: the time taken does not tell how much of the key was right.
        given = credentials.credentials.encode() if credentials else b""
        if not credentials or not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "missing or invalid API key")

    return require_api_key


def _spec(name: str, field: str) -> TaskSpec:
    spec = lookup(name)
    if spec is None:
        raise ApiError(404, "unknown_task", f"no task named {name!r}", field)
    return spec


def _signature(celery: Celery, call: TaskCall, *, field: str, piped: bool) -> Any:
    """Validate one call and return its Celery signature; errors name `field`."""
    spec = _spec(call.task, f"{field}task")
    try:
        kwargs = spec.bind(call.args, call.kwargs, piped=piped)
    except InvalidArgumentsError as exc:
        if not field:
            raise
        raise InvalidArgumentsError(field + exc.message, field + (exc.field or "")) from None
    return celery.signature(spec.celery_name, kwargs=kwargs, queue=spec.queue)


def _status(result: AsyncResult[Any]) -> TaskStatus:
    state = result.state
    if state == "FAILURE":
        exc = result.result
        error = TaskError(type=type(exc).__name__, message=str(exc))
        return TaskStatus(id=result.id, state=state, error=error)
    value = result.result if state == "SUCCESS" else None
    return TaskStatus(id=result.id, state=state, result=value)


def build_router(settings: ProducerSettings, celery: Celery) -> APIRouter:
    """The authenticated /api/v1 routes."""
    router = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(_api_key_check(settings))],
        responses=ERROR_RESPONSES,
    )

    @router.post("/tasks", status_code=202, response_model=Submitted, tags=["tasks"])
    def submit_task(call: TaskCall) -> Submitted:
        """Enqueue one task of the catalogue."""
        signature = _signature(celery, call, field="", piped=False)
        return Submitted(id=signature.apply_async().id)

    @router.get("/tasks/{task_id}", response_model=TaskStatus, tags=["tasks"])
    def task_status(task_id: uuid.UUID) -> TaskStatus:
        """A task's state, and its result or error once it ended."""
        return _status(AsyncResult(str(task_id), app=celery))

    @router.post("/workflows/chain", status_code=202, response_model=Submitted, tags=["workflows"])
    def submit_chain(request: ChainRequest) -> Submitted:
        """Run steps in order; each result becomes the first argument of the next step.

        Answers with the id of the last step, whose result is the chain's result.
        """
        if len(request.steps) > settings.max_workflow_steps:
            raise ApiError(
                413, "too_large", f"at most {settings.max_workflow_steps} steps", "steps"
            )
        signatures = [
            _signature(celery, step, field=f"steps[{i}].", piped=i > 0)
            for i, step in enumerate(request.steps)
        ]
        return Submitted(id=chain(*signatures).apply_async().id)

    return router


def create_api(settings: ProducerSettings | None = None) -> FastAPI:
    """The FastAPI application, configured from `settings` or the environment."""
    settings = settings or ProducerSettings()
    celery = create_app(settings)
    celery.conf.update(result_backend=backend_url(settings.result_backend_url))
    health_client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=1.0, socket_timeout=1.0
    )
    api = FastAPIOffline(
        title="Conveyor producer",
        version="1",
        description="Submit tasks and workflows to Conveyor's Celery workers.",
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(api)

    @api.get("/healthz", response_model=Health, tags=["health"])
    def healthz(request: Request) -> Any:
        """200 when Redis answers within a second, else 503."""
        try:
            health_client.ping()
        except redis.RedisError as exc:
            logger.warning("health: Redis did not answer: %s", exc)
            return JSONResponse(
                error_body("broker_unavailable", "Redis is not answering"), status_code=503
            )
        return Health(status="ok")

    api.include_router(build_router(settings, celery))
    return api
