"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TaskCall(Strict):
    """One task and its arguments."""

    task: str = Field(min_length=1, max_length=100, examples=["add"])
    args: list[Any] = Field(default_factory=list, max_length=10_000, examples=[[2, 3]])
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=100, examples=[{}])


class ChainRequest(Strict):
    """Steps run one after another; each result becomes the first argument of the next."""

    steps: list[TaskCall] = Field(min_length=1)


class Submitted(BaseModel):
    """The id of an enqueued task (for a chain, its last step)."""

    id: str


class TaskError(BaseModel):
    """Why a task failed."""

    type: str
    message: str


class TaskStatus(BaseModel):
    """A task's state and, once it ended, its result or error."""

    id: str
    state: str = Field(examples=["SUCCESS"])
    result: Any = None
    error: TaskError | None = None


class Health(BaseModel):
    """Health of the producer and its broker."""

    status: str
