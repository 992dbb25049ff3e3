"""/api/v1/workflows: chains, groups and chords, and the state of every step."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from celery import chain, chord, group
from celery.canvas import Signature
from celery.result import AsyncResult
from fastapi import APIRouter

from conveyor_producer.context import Context
from conveyor_producer.errors import ApiError
from conveyor_producer.ledger import Issued
from conveyor_producer.metrics import count_submissions
from conveyor_producer.schemas import (
    ChordRequest,
    TaskCall,
    WorkflowRequest,
    WorkflowStatus,
    WorkflowStep,
    WorkflowSubmitted,
)
from conveyor_producer.status import outcome
from conveyor_producer.submission import signature

Kind = Literal["chain", "group", "chord"]


def _aggregate(kind: Kind, steps: list[WorkflowStep]) -> tuple[str, Any]:
    """The workflow's state, and its result once it succeeded."""
    states = [step.state for step in steps]
    if "FAILURE" in states or "REVOKED" in states:
        return "FAILURE", None
    if all(state == "SUCCESS" for state in states):
        if kind == "group":
            return "SUCCESS", [step.result for step in steps]
        return "SUCCESS", steps[-1].result  # chain: last step; chord: the callback
    if any(state != "PENDING" for state in states):
        return "STARTED", None
    return "PENDING", None


def build(ctx: Context) -> APIRouter:
    """The workflow routes."""
    router = APIRouter(prefix="/workflows", tags=["workflows"])

    def check_size(count: int) -> None:
        limit = ctx.settings.max_workflow_steps
        if count > limit:
            raise ApiError(413, "too_large", f"at most {limit} steps", "steps")

    def steps_of(
        calls: list[TaskCall], *, piped_after_first: bool
    ) -> list[tuple[Signature[Any], Issued]]:
        check_size(len(calls))
        return [
            signature(ctx, call, field=f"steps[{i}].", piped=piped_after_first and i > 0)
            for i, call in enumerate(calls)
        ]

    def launch(
        kind: Kind, built: list[tuple[Signature[Any], Issued]], canvas: Any
    ) -> WorkflowSubmitted:
        workflow_id = str(uuid.uuid4())
        issued = [entry for _, entry in built]
        ctx.ledger.issue(issued, workflow=workflow_id)
        ctx.ledger.save_workflow(
            workflow_id,
            {
                "kind": kind,
                "steps": [{"id": e.id, "task": e.task} for e in issued],
            },
        )
        canvas.apply_async()
        for entry in issued:
            count_submissions(entry.task, "accepted")
        return WorkflowSubmitted(
            workflow_id=workflow_id, id=issued[-1].id, ids=[e.id for e in issued]
        )

    @router.post("/chain", status_code=202, response_model=WorkflowSubmitted)
    def submit_chain(request: WorkflowRequest) -> WorkflowSubmitted:
        """Run steps in order; each result becomes the first argument of the next step."""
        built = steps_of(request.steps, piped_after_first=True)
        return launch("chain", built, chain(*[sig for sig, _ in built]))

    @router.post("/group", status_code=202, response_model=WorkflowSubmitted)
    def submit_group(request: WorkflowRequest) -> WorkflowSubmitted:
        """Run steps in parallel; the workflow's result is the list of their results."""
        built = steps_of(request.steps, piped_after_first=False)
        return launch("group", built, group([sig for sig, _ in built]))

    @router.post("/chord", status_code=202, response_model=WorkflowSubmitted)
    def submit_chord(request: ChordRequest) -> WorkflowSubmitted:
        """Run steps in parallel, then the callback with the list of their results."""
        built = steps_of(request.steps, piped_after_first=False)
        callback = signature(ctx, request.callback, field="callback.", piped=True)
        canvas = chord([sig for sig, _ in built], callback[0])
        return launch("chord", [*built, callback], canvas)

    @router.get("/{workflow_id}", response_model=WorkflowStatus)
    def workflow_status(workflow_id: uuid.UUID) -> WorkflowStatus:
        """The workflow's state and result, and every step's state."""
        record = ctx.ledger.workflow(str(workflow_id))
        if record is None:
            raise ApiError(404, "unknown_workflow", f"no workflow {workflow_id}", "workflow_id")
        steps = []
        for step in record["steps"]:
            state, value, error, _ = outcome(AsyncResult(step["id"], app=ctx.celery))
            steps.append(
                WorkflowStep(
                    id=step["id"], task=step["task"], state=state, result=value, error=error
                )
            )
        state, value = _aggregate(record["kind"], steps)
        return WorkflowStatus(
            id=str(workflow_id), kind=record["kind"], state=state, result=value, steps=steps
        )

    return router
