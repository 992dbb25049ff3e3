"""A task's status: Celery's state and outcome joined with the producer's bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from conveyor_producer.schemas import Progress, TaskError, TaskStatus

TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


def outcome(result: AsyncResult[Any]) -> tuple[str, Any, TaskError | None, Any]:
    """(state, result, error, meta) of a task as Celery's result backend has it."""
    state: str = result.state
    if state in {"FAILURE", "REVOKED"}:
        exc = result.result
        error = TaskError(type=type(exc).__name__, message=str(exc)) if exc else None
        return state, None, error, None
    if state == "SUCCESS":
        return state, result.result, None, None
    return state, None, None, result.info


def _time(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None


def _done(result: AsyncResult[Any]) -> datetime | None:
    done = result.date_done
    if isinstance(done, str):
        done = datetime.fromisoformat(done)
    if isinstance(done, datetime) and done.tzinfo is None:
        done = done.replace(tzinfo=UTC)
    return done if isinstance(done, datetime) else None


def task_status(
    celery: Celery, task_id: str, read_ledger: Callable[[], dict[str, str]]
) -> TaskStatus:
    """The status of an issued task, from its result and then its ledger hash.

    The order matters: workers write received/started times before the result, so
    reading the result first guarantees that a finished task's times are seen too.
    """
    result: AsyncResult[Any] = AsyncResult(task_id, app=celery)
    state, value, error, meta = outcome(result)
    ledger = read_ledger()
    if state == "PENDING" and "started_at" in ledger:
        # Workers do not store STARTED (task_track_started is off); they record the start.
        state = "STARTED"
    ready = state in TERMINAL_STATES
    # postrun (which records finished_at) runs just after the result is stored.
    finished_at = _time(ledger.get("finished_at")) or (_done(result) if ready else None)
    progress = None
    if state == "PROGRESS" and isinstance(meta, dict):
        progress = Progress.model_validate(meta)
    elif "progress" in ledger:
        progress = Progress.model_validate(json.loads(ledger["progress"]))
    return TaskStatus(
        id=task_id,
        state=state,
        result=value,
        error=error,
        task=ledger.get("task"),
        queue=ledger.get("queue"),
        progress=progress,
        submitted_at=_time(ledger.get("submitted_at")),
        received_at=_time(ledger.get("received_at")),
        started_at=_time(ledger.get("started_at")),
        finished_at=finished_at,
        retries=int(ledger.get("retries", 0)),
        worker=ledger.get("worker") or None,
        ready=ready,
    )
