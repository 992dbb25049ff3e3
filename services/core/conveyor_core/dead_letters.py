"""The dead-letter store: tasks that failed for good, were quarantined, or could not run.

Workers add entries (a failed task, a poison message, a message naming an unknown task
or that cannot be decoded); the producer lists, replays and purges them. Entries live in
the result database without expiry, under `ledger_keys.DLQ_ENTRIES` (id -> JSON) and
`ledger_keys.DLQ_INDEX` (id by time), until replayed or purged.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field

from conveyor_core.ledger_keys import DLQ_ENTRIES, DLQ_INDEX
from conveyor_core.messages import redis_texts

Reason = Literal["failed", "quarantined", "unknown_task", "invalid_message", "undecodable"]

#: Longest text kept from a raw message, an error or a traceback.
MAX_TEXT = 16_000


class DeadLetter(BaseModel):
    """One dead letter: what was to run, why it did not, and when."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Entry id: the task id, or a fresh id for a raw message")
    task_id: str | None = Field(None, description="The Celery task id, when known")
    task: str | None = Field(None, description="Celery task name, e.g. conveyor.add")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = None
    reason: Reason
    error: str = ""
    traceback: str = ""
    attempts: int = Field(1, description="Executions started (or deliveries) before it landed")
    worker: str = ""
    dead_at: float = Field(default_factory=time.time, description="Unix time it landed here")
    raw: str | None = Field(None, description="The message as received, when it could not run")

    @property
    def replayable(self) -> bool:
        """Whether the entry names a task with arguments that can be sent again."""
        return self.task is not None and self.reason != "undecodable"


def clip(text: str) -> str:
    """Keep stored texts bounded: a huge traceback must not fill Redis."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "... (clipped)"


def new_entry_id() -> str:
    """An id for an entry that has no task id of its own."""
    return str(uuid.uuid4())


class DeadLetterStore:
    """Reads and writes dead letters in Redis (the result database)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def add(self, entry: DeadLetter) -> None:
        """Store an entry (replacing one with the same id)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(DLQ_ENTRIES, entry.id, entry.model_dump_json())
        pipe.zadd(DLQ_INDEX, {entry.id: entry.dead_at})
        pipe.execute()

    def count(self) -> int:
        """How many entries there are."""
        return int(self.client.zcard(DLQ_INDEX))

    def page(self, limit: int = 50, offset: int = 0) -> list[DeadLetter]:
        """Entries, newest first."""
        return self.get_many(
            redis_texts(self.client.zrevrange(DLQ_INDEX, offset, offset + limit - 1))
        )

    def all_ids(self) -> list[str]:
        """Every entry id, oldest first."""
        return redis_texts(self.client.zrange(DLQ_INDEX, 0, -1))

    def get_many(self, ids: Iterable[str]) -> list[DeadLetter]:
        """The entries with these ids that exist, in the given order."""
        ids = list(ids)
        if not ids:
            return []
        raw: list[bytes | None] = self.client.hmget(DLQ_ENTRIES, ids)  # type: ignore[assignment]
        return [DeadLetter.model_validate(json.loads(r)) for r in raw if r]

    def get(self, entry_id: str) -> DeadLetter | None:
        """One entry, or None."""
        found = self.get_many([entry_id])
        return found[0] if found else None

    def remove(self, ids: Iterable[str]) -> int:
        """Delete entries; returns how many existed."""
        ids = list(ids)
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(DLQ_ENTRIES, *ids)
        pipe.zrem(DLQ_INDEX, *ids)
        removed, _ = pipe.execute()
        return int(removed)

    def purge(self) -> int:
        """Delete every entry; returns how many there were."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zcard(DLQ_INDEX)
        pipe.delete(DLQ_ENTRIES, DLQ_INDEX)
        count, _ = pipe.execute()
        return int(count)
