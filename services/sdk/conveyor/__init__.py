"""Conveyor's task SDK: the one way to write a task for a Conveyor stack.

    from typing import Annotated
    from pydantic import Field
    from conveyor import task

    @task(autoretry_for=(TimeoutError,), retry_backoff=True, max_retries=5)
    def charge(customer: str, cents: Annotated[int, Field(gt=0)]) -> str:
        \"\"\"Charge a customer's card.\"\"\"
        ...

The function stays a plain function (test it by calling it). The API's catalogue, its
JSON Schemas and its field-named 422 errors come from the type hints (or `params=`, a
pydantic model), and the workers validate every message again before running it.
A package of such functions is found through the `conveyor.tasks` entry point of its
distribution, or named in TASK_PACKAGES; see docs/tasks.md.
"""

from conveyor_core.catalog import Number, TaskParams, number_between
from conveyor_core.errors import TaskFailedError
from conveyor_core.task_sdk import TaskDefinition, TaskDefinitionError, definition_of, task

__all__ = [
    "Number",
    "TaskDefinition",
    "TaskDefinitionError",
    "TaskFailedError",
    "TaskParams",
    "definition_of",
    "number_between",
    "task",
]
