"""/api/v1/catalog and /api/v1/queues: what can be run, and what is waiting where."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conveyor_core.catalog import known_queues
from conveyor_core.celery_internals import priority_lists
from conveyor_core.ledger_keys import PENDING
from conveyor_core.messages import message_ids
from conveyor_core.queue_declarations import declared_queues
from conveyor_producer.context import Context
from conveyor_producer.errors import ApiError
from conveyor_producer.schemas import Catalog, CatalogEntry, Purged, QueueInfo, QueueList

#: How long GET /queues waits for workers to say which queues they consume.
CONSUMER_REPLY_TIMEOUT = 1.0


def build(ctx: Context) -> APIRouter:
    """The catalogue and queue routes."""
    router = APIRouter(tags=["system"])

    @router.get("/catalog", response_model=Catalog)
    def catalog() -> Catalog:
        """Every task, its queue and the JSON Schema of its arguments."""
        return Catalog(
            tasks=[
                CatalogEntry(
                    name=spec.name,
                    queue=spec.queue,
                    summary=spec.summary,
                    arguments=spec.json_schema(),
                    positional=spec.parameter_names,
                )
                for spec in ctx.catalog.values()
            ]
        )

    @router.get("/queues", response_model=QueueList)
    def queues() -> QueueList:
        """Each declared queue, its waiting messages (all priorities) and its consumers."""
        declarations = declared_queues()
        names = [queue.name for queue in declarations]
        pipe = ctx.broker.pipeline(transaction=False)
        for name in names:
            for key in priority_lists(name):
                pipe.llen(key)
        counts = iter(pipe.execute())
        lengths = {name: sum(next(counts) for _ in priority_lists(name)) for name in names}
        replies = _active_queues(ctx)
        consumers: dict[str, list[str]] = {name: [] for name in names}
        for worker, worker_queues in sorted(replies.items()):
            for queue in worker_queues if isinstance(worker_queues, list) else []:
                consumers.setdefault(queue["name"], []).append(worker)
        return QueueList(
            queues=[
                QueueInfo(
                    name=queue.name,
                    length=lengths.get(queue.name, 0),
                    consumers=consumers.get(queue.name, []),
                    summary=queue.summary,
                    kind=queue.kind,
                    service=queue.service,
                    pool=queue.pool,
                    concurrency=queue.concurrency,
                    prefetch=queue.prefetch,
                    time_limit=queue.time_limit,
                )
                for queue in declarations
            ]
        )

    @router.delete("/queues/{queue}", response_model=Purged)
    def purge(queue: str) -> Purged:
        """Delete every task waiting in a queue; each is marked REVOKED ("purged").

        The lists are read and deleted in one transaction, so a message is either
        purged or consumed, never both; the purged ids leave the pending set, or the
        reconciler would publish them again, and are recorded as revoked, so that no
        other copy of them (republished, restored from unacked) runs either.
        """
        if queue not in known_queues():
            raise ApiError(
                404, "not_found", f"no queue {queue!r}; known: {known_queues()}", "queue"
            )
        pipe = ctx.broker.pipeline(transaction=True)
        for key in priority_lists(queue):
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
        replies = pipe.execute()
        ids = list(message_ids(message for chunk in replies[::2] for message in chunk))
        if ids:
            ctx.ledger.client.zrem(PENDING, *ids)
            ctx.ledger.revoke(ids, "purged")
            for task_id in ids:
                ctx.celery.backend.mark_as_revoked(task_id, reason="purged")
        return Purged(purged=len(ids))

    return router


def _active_queues(ctx: Context) -> dict[str, Any]:
    """Each live worker's queues, asked over a connection of its own.

    Celery's control calls do not retry like publishing does, and after a Redis restart
    every connection pooled in this process fails once ("Connection closed by server"):
    a fresh connection per call (a millisecond) keeps /queues from answering 503 then.
    """
    with ctx.celery.connection_for_read() as connection:
        inspect = ctx.celery.control.inspect(timeout=CONSUMER_REPLY_TIMEOUT, connection=connection)
        return inspect.active_queues() or {}
