"""/api/v1/dead-letters: list, show, replay and purge tasks that could not be done."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from conveyor_core.catalog import TASK_NAME_PREFIX
from conveyor_core.dead_letters import DeadLetter, DeadLetterStore
from conveyor_core.errors import InvalidArgumentsError
from conveyor_producer.context import Context
from conveyor_producer.errors import ApiError
from conveyor_producer.metrics import count_submissions
from conveyor_producer.schemas import (
    DeadLetterList,
    Purged,
    Replayed,
    ReplayRequest,
    TaskCall,
)
from conveyor_producer.submission import publish_all, publish_recorded, signature


def build(ctx: Context) -> APIRouter:
    """The dead-letter routes."""
    router = APIRouter(prefix="/dead-letters", tags=["dead letters"])
    store = DeadLetterStore(ctx.ledger.client)

    @router.get("", response_model=DeadLetterList)
    def list_entries(
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> DeadLetterList:
        """Dead letters, newest first."""
        return DeadLetterList(count=store.count(), entries=store.page(limit, offset))

    @router.get("/{entry_id}", response_model=DeadLetter)
    def show(entry_id: str) -> DeadLetter:
        """One dead letter, with its error, traceback and raw message."""
        entry = store.get(entry_id)
        if entry is None:
            raise ApiError(404, "not_found", f"no dead letter {entry_id}", "entry_id")
        return entry

    @router.post("/replay", response_model=Replayed)
    def replay(request: ReplayRequest | None = None) -> Replayed:
        """Submit dead letters again as new tasks (new ids), then drop them from the store.

        Each is validated against today's catalogue first; entries that cannot be sent
        (an undecodable message, a task no longer in the catalogue, arguments that no
        longer fit) stay in the store and are listed under `skipped` with the reason.
        """
        ids = request.ids if request and request.ids is not None else store.all_ids()
        entries = {entry.id: entry for entry in store.get_many(ids)}
        skipped = {i: "no such dead letter" for i in ids if i not in entries}
        built = []
        for entry in entries.values():
            try:
                built.append((entry, *signature(ctx, _call_of(entry))))
            except (ApiError, InvalidArgumentsError, ValueError) as exc:
                skipped[entry.id] = str(exc)
        if built:
            ctx.ledger.issue([issued for _, _, issued in built])
            publish_recorded(
                lambda: publish_all(ctx.celery, [sig for _, sig, _ in built]),
                [issued.id for _, _, issued in built],
            )
            store.remove(entry.id for entry, _, _ in built)
            for _, _, issued in built:
                count_submissions(issued.task, "replayed")
        return Replayed(
            replayed={entry.id: issued.id for entry, _, issued in built}, skipped=skipped
        )

    @router.delete("/{entry_id}", response_model=Purged)
    def delete(entry_id: str) -> Purged:
        """Delete one dead letter."""
        removed = store.remove([entry_id])
        if not removed:
            raise ApiError(404, "not_found", f"no dead letter {entry_id}", "entry_id")
        return Purged(purged=removed)

    @router.delete("", response_model=Purged)
    def purge() -> Purged:
        """Delete every dead letter."""
        return Purged(purged=store.purge())

    return router


def _call_of(entry: DeadLetter) -> TaskCall:
    """The catalogue call a dead letter stands for."""
    if not entry.replayable or not entry.task:
        raise ValueError(f"cannot be replayed ({entry.reason}: no task call to send)")
    if not entry.task.startswith(TASK_NAME_PREFIX):
        raise ValueError(f"{entry.task} is not a Conveyor task")
    return TaskCall(
        task=entry.task.removeprefix(TASK_NAME_PREFIX), args=entry.args, kwargs=entry.kwargs
    )
