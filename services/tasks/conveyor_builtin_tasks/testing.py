"""Tasks for the test and chaos stacks only (CONVEYOR_TEST_TASKS=true).

A task that kills its worker must not be one API key away on a production stack: this
module is never an entry point, and is loaded only when that setting is on.
"""

from __future__ import annotations

import os
import signal
import time

from celery import current_task

from conveyor import TaskParams, number_between, task
from conveyor_worker.tally import TALLY_EXECUTED, TALLY_RUNS, tally_client


@task(summary="Kill its own worker process (a poison message).")
def crash() -> None:
    """Kill the process running this task: a poison message, quarantined after a few tries."""
    os.kill(os.getpid(), signal.SIGKILL)


class TallyParams(TaskParams):
    """Arguments of `tally`."""

    delay: number_between(0, 10) = 0  # type: ignore[valid-type]


@task(params=TallyParams, summary="Count this execution in the tally store (chaos).")
def tally(delay: float) -> int:
    """Count this execution of this task id in the tally store; return the count so far."""
    time.sleep(delay)
    task_id = current_task.request.id or ""
    pipe = tally_client().pipeline(transaction=True)
    pipe.sadd(TALLY_EXECUTED, task_id)
    pipe.hincrby(TALLY_RUNS, task_id, 1)
    _, runs = pipe.execute()
    return int(runs)
