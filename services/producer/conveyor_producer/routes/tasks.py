"""/api/v1/tasks: submit one or many, read status and results, revoke, list recent."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated

from celery import states
from celery.result import AsyncResult
from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from conveyor_producer.context import Context
from conveyor_producer.errors import ApiError
from conveyor_producer.schemas import (
    BatchRequest,
    BatchSubmitted,
    RecentList,
    Revoked,
    Submitted,
    TaskRequest,
    TaskStatus,
)
from conveyor_producer.status import task_status
from conveyor_producer.submission import (
    IDEMPOTENT_BATCH_REPEAT,
    IDEMPOTENT_REPEAT,
    idempotency_of,
    publish_options,
    signature,
    submit_many,
    submit_one,
)


def _known(ctx: Context, task_id: uuid.UUID) -> dict[str, str]:
    info = ctx.ledger.info(str(task_id))
    if info is None:
        raise ApiError(404, "unknown_task_id", f"no task {task_id} was issued here", "task_id")
    return info


def _revoked_unless_started(ctx: Context, task_id: str) -> None:
    """Store REVOKED now for a revoked task that no worker started, and none ever will.

    Read after the revoke record is written: a worker records a start and checks the
    record in one script (`ledger_keys.START`), so no start recorded by now means none
    to come. Without this, the state would stay PENDING until a worker takes the message
    (none may be up). A started task (running, retrying, ended) is left to its workers.
    """
    if ctx.ledger.started(task_id):
        return
    if AsyncResult(task_id, app=ctx.celery).state == states.PENDING:
        ctx.celery.backend.mark_as_revoked(task_id, "revoked")


def build(ctx: Context) -> APIRouter:
    """The task routes."""
    router = APIRouter(prefix="/tasks", tags=["tasks"])

    @router.post("", status_code=202, response_model=Submitted, responses=IDEMPOTENT_REPEAT)
    def submit_task(request: TaskRequest, response: Response) -> Submitted:
        """Enqueue one task of the catalogue."""
        options = publish_options(request, ctx.settings.max_countdown)
        sig, issued = signature(ctx, request, **options)
        idempotency = idempotency_of(request.idempotency_key, request)
        return Submitted(id=submit_one(ctx, sig, issued, response, idempotency))

    @router.post(
        "/batch",
        status_code=202,
        response_model=BatchSubmitted,
        responses=IDEMPOTENT_BATCH_REPEAT,
    )
    def submit_batch(request: BatchRequest, response: Response) -> BatchSubmitted:
        """Enqueue many tasks; one bad item rejects the whole batch, naming its index.

        With `idempotency_key`, sending the same batch again (a retry after a lost answer)
        returns the first batch's ids with 200 instead of enqueueing it twice.
        """
        limit = ctx.settings.max_batch_tasks
        if len(request.tasks) > limit:
            raise ApiError(413, "too_large", f"at most {limit} tasks in a batch", "tasks")
        built = [signature(ctx, call, field=f"tasks[{i}].") for i, call in enumerate(request.tasks)]
        idempotency = idempotency_of(request.idempotency_key, request)
        return BatchSubmitted(ids=submit_many(ctx, built, response, idempotency))

    @router.get("/recent", response_model=RecentList)
    def recent(limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> RecentList:
        """The newest submissions, newest first."""
        return RecentList.model_validate({"tasks": ctx.ledger.recent(limit)})

    @router.get("/{task_id}", response_model=TaskStatus)
    def status(task_id: uuid.UUID) -> TaskStatus:
        """A task's state, progress, times, worker, and its result or error once it ended."""
        return task_status(ctx.celery, str(task_id), lambda: _known(ctx, task_id))

    @router.get("/{task_id}/result", response_model=TaskStatus)
    async def result(
        task_id: uuid.UUID, wait: Annotated[float, Query(ge=0, le=300)] = 0
    ) -> TaskStatus:
        """Like the status, but waits up to `wait` seconds for the task to end."""
        if wait > ctx.settings.result_wait_max:
            raise ApiError(
                422,
                "invalid_request",
                f"wait: at most {ctx.settings.result_wait_max:g} seconds",
                "wait",
            )
        deadline = time.monotonic() + wait
        pause = 0.05
        while True:
            current = await run_in_threadpool(
                task_status, ctx.celery, str(task_id), lambda: _known(ctx, task_id)
            )
            if current.ready or time.monotonic() >= deadline:
                return current
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 0.5)

    @router.delete("/{task_id}", status_code=202, response_model=Revoked)
    def revoke(task_id: uuid.UUID, terminate: bool = False) -> Revoked:
        """Revoke a task; with terminate=true a running one is stopped too (SIGTERM).

        The revoke is recorded in Redis first: whichever worker takes the task later,
        after a restart or a scale-up, from a queue, a countdown or the reconciler, ends
        it REVOKED without running it. A task no worker started is stored REVOKED at
        once. The broadcast then reaches the live workers, for a task they hold or run
        (terminate).
        """
        _known(ctx, task_id)
        ctx.ledger.revoke([str(task_id)], "revoked")
        _revoked_unless_started(ctx, str(task_id))
        ctx.celery.control.revoke(str(task_id), terminate=terminate, signal="SIGTERM")
        return Revoked(id=str(task_id), terminate=terminate)

    return router
