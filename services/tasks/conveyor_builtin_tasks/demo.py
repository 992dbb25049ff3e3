"""The arithmetic and demonstration tasks (DEMO_TASKS=false leaves them out)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from celery import Task
from pydantic import Field

from conveyor import Number, TaskFailedError, TaskParams, number_between, task
from conveyor_worker.lifecycle import ProgressReporter


@task
def add(x: Number, y: Number) -> float:
    """Return x + y."""
    return x + y


@task
def mul(x: Number, y: Number) -> float:
    """Return x * y."""
    return x * y


@task
def xsum(numbers: Annotated[list[Number], Field(max_length=10_000)]) -> float:
    """Return the sum of a list of numbers."""
    return sum(numbers)


@task(summary="Do nothing; for measuring overhead.")
def noop() -> None:
    """Do nothing."""


class SleepParams(TaskParams):
    """Arguments of `sleep`."""

    seconds: number_between(0, 200)  # type: ignore[valid-type]


@task(params=SleepParams, summary="Sleep for some seconds, then return them.")
def sleep(seconds: float) -> float:
    """Sleep, then return how long."""
    time.sleep(seconds)
    return seconds


@task(summary="Raise TaskFailedError with the given message.")
def fail(message: Annotated[str, Field(max_length=1_000)] = "failed on purpose") -> None:
    """Fail on purpose."""
    raise TaskFailedError(message)


class ProgressParams(TaskParams):
    """Arguments of `progress`."""

    steps: int = Field(10, ge=1, le=1_000, strict=True)
    delay: number_between(0, 10) = 0.5  # type: ignore[valid-type]


@task(params=ProgressParams, bind=True, summary="Work through steps, reporting progress.")
def progress(self: Task[Any, Any], steps: int, delay: float) -> dict[str, int]:
    """Work through `steps` steps of `delay` seconds, reporting progress after each."""
    report = ProgressReporter(self, steps)
    for step in range(1, steps + 1):
        time.sleep(delay)
        report(step, f"step {step} of {steps}")
    return {"steps": steps}
