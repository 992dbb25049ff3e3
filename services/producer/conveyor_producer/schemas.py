"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conveyor_core.dead_letters import DeadLetter


class Strict(BaseModel):
    """Unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TaskCall(Strict):
    """One task and its arguments."""

    task: str = Field(min_length=1, max_length=100, examples=["add"])
    args: list[Any] = Field(default_factory=list, max_length=10_000, examples=[[2, 3]])
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=100, examples=[{}])


#: A client's key for a submission it may send again (printable ASCII, no spaces).
IdempotencyKey = Annotated[
    str | None, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


class TaskRequest(TaskCall):
    """One task, its arguments and how to enqueue it."""

    countdown: float | None = Field(None, ge=0, description="Run no sooner than in N seconds.")
    eta: datetime | None = Field(None, description="Run no sooner than this time (with zone).")
    expires: float | datetime | None = Field(
        None, description="Discard unless started within N seconds, or by this time."
    )
    priority: int | None = Field(None, ge=0, le=9, description="0 (first) to 9 (last).")
    queue: str | None = Field(None, max_length=100, description="A known queue.")
    idempotency_key: IdempotencyKey = Field(
        None, description="The same key within its TTL returns the first submission's id (200)."
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> TaskRequest:
        if self.countdown is not None and self.eta is not None:
            raise ValueError("give countdown or eta, not both")
        return self


class BatchRequest(Strict):
    """Many tasks in one request; all are validated before any is enqueued."""

    tasks: list[TaskCall] = Field(min_length=1)
    idempotency_key: IdempotencyKey = Field(
        None,
        description="The same key and tasks within its TTL return the first batch's ids (200).",
    )


class WorkflowRequest(Strict):
    """Steps of a chain (in order) or a group (in parallel)."""

    steps: list[TaskCall] = Field(min_length=1)


class ChordRequest(WorkflowRequest):
    """Steps run in parallel; the callback receives the list of their results."""

    callback: TaskCall


class Submitted(BaseModel):
    """The id of an enqueued task."""

    id: str


class BatchSubmitted(BaseModel):
    """The ids of a batch's tasks, in request order."""

    ids: list[str]


class WorkflowSubmitted(BaseModel):
    """A workflow's id, the id whose result is the workflow's, and every step's id."""

    workflow_id: str
    id: str = Field(description="The task whose result is the workflow's result.")
    ids: list[str] = Field(description="Every step's task id, callback last.")


class TaskError(BaseModel):
    """Why a task failed."""

    type: str
    message: str


class Progress(BaseModel):
    """How far a task that reports progress got."""

    current: int
    total: int
    message: str = ""


class TaskStatus(BaseModel):
    """A task's state, its result or error once it ended, and what is known of its run."""

    id: str
    state: str = Field(examples=["SUCCESS"])
    result: Any = None
    error: TaskError | None = None
    task: str | None = None
    queue: str | None = None
    progress: Progress | None = None
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retries: int = 0
    worker: str | None = None
    ready: bool = Field(False, description="True once the task ended (success or not).")


class Revoked(BaseModel):
    """A revoke request was broadcast to the workers."""

    id: str
    revoked: bool = True
    terminate: bool


class RecentEntry(BaseModel):
    """One submission in the recent list."""

    id: str
    task: str
    submitted_at: datetime


class RecentList(BaseModel):
    """The newest submissions, newest first."""

    tasks: list[RecentEntry]


class WorkflowStep(BaseModel):
    """One step of a workflow and its state."""

    id: str
    task: str
    state: str
    result: Any = None
    error: TaskError | None = None


class WorkflowStatus(BaseModel):
    """A workflow's overall state and each step's."""

    id: str
    kind: Literal["chain", "group", "chord"]
    state: str
    result: Any = None
    steps: list[WorkflowStep]


class CatalogEntry(BaseModel):
    """One task of the catalogue."""

    name: str
    queue: str
    summary: str
    arguments: dict[str, Any] = Field(description="JSON Schema of the keyword arguments.")
    positional: list[str] = Field(description="Parameter names in positional order.")


class Catalog(BaseModel):
    """Every task the workers run."""

    tasks: list[CatalogEntry]


class QueueInfo(BaseModel):
    """One queue: its declaration, waiting messages and the workers consuming it."""

    name: str
    length: int
    consumers: list[str]
    summary: str = Field("", description="The declaration's summary line")
    kind: Literal["cpu", "io"] = Field(description="CPU work or waiting work (network)")
    service: str = Field(description="The worker service that consumes it (compose, k8s)")
    pool: str = Field(description="Its workers' pool, as declared (.env may override)")
    concurrency: int = Field(description="Processes or threads per worker, as declared")
    prefetch: int = Field(description="Messages reserved per process or thread")
    time_limit: int | None = Field(description="Seconds a task may run; null: TASK_TIME_LIMIT")


class QueueList(BaseModel):
    """Every known queue."""

    queues: list[QueueInfo]


class Health(BaseModel):
    """Health of the producer and its broker."""

    status: str


class DeadLetterList(BaseModel):
    """A page of the dead-letter store, newest first."""

    count: int = Field(description="Entries in the store")
    entries: list[DeadLetter]


class ReplayRequest(Strict):
    """Which dead letters to send again; none given means all of them."""

    ids: list[str] | None = Field(None, max_length=10_000, examples=[None])


class Replayed(BaseModel):
    """What a replay did: entry id -> new task id, and entry id -> why it was skipped."""

    replayed: dict[str, str]
    skipped: dict[str, str]


class Purged(BaseModel):
    """How many dead letters were deleted."""

    purged: int
