"""The producer's bookkeeping in Redis.

Issued ids, recent submissions, idempotency keys and workflow records. Key names are
shared with the workers (`conveyor_core.ledger_keys`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from conveyor_core.ledger_keys import (
    PENDING,
    RECENT,
    idempotency_key,
    revoked_key,
    task_key,
    workflow_key,
)

#: How long a revoke record lives unless told otherwise (the REVOKE_TTL default).
DEFAULT_REVOKE_TTL = 7 * 86_400


@dataclass(frozen=True)
class Issued:
    """A task id this producer issued, with what it was."""

    id: str
    task: str
    queue: str
    #: How to publish it again (`submission.replay_call`), for the reconciler.
    call: dict[str, Any] | None = None


class Ledger:
    """Reads and writes the bookkeeping keys; every method is one Redis round trip."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: int,
        recent_max: int,
        revoke_ttl: int = DEFAULT_REVOKE_TTL,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.recent_max = recent_max
        self.revoke_ttl = revoke_ttl

    def issue(self, entries: Sequence[Issued], workflow: str | None = None) -> None:
        """Record ids before their messages are published, so a fast worker finds them.

        Standalone tasks (not workflow steps, whose messages Celery's canvas publishes)
        are also kept with their call in the pending set until a worker settles them:
        the reconciler publishes again any that vanish from Redis.
        """
        now = time.time()
        pipe = self.client.pipeline(transaction=True)
        for entry in entries:
            fields: dict[Any, str | float] = {
                "task": entry.task,
                "queue": entry.queue,
                "submitted_at": now,
            }
            if workflow:
                fields["workflow"] = workflow
            elif entry.call is not None:
                fields["call"] = json.dumps(entry.call)
            pipe.hset(task_key(entry.id), mapping=fields)
            pipe.expire(task_key(entry.id), self.ttl)
        pending = {e.id: now for e in entries if e.call is not None and not workflow}
        if pending:
            pipe.zadd(PENDING, pending)
        recent = [json.dumps({"id": e.id, "task": e.task, "submitted_at": now}) for e in entries]
        # Only the newest recent_max entries matter; pushing more would be trimmed anyway.
        pipe.lpush(RECENT, *recent[-self.recent_max :])
        pipe.ltrim(RECENT, 0, self.recent_max - 1)
        pipe.execute()

    def revoke(self, task_ids: Sequence[str], reason: str) -> None:
        """Record that these tasks must never run (`ledger_keys.REVOKED_PREFIX`).

        Workers check the record before they run a task, so a revoke reaches workers
        that are not running yet, and copies restored or republished later.
        """
        if not task_ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(revoked_key(task_id), reason, ex=self.revoke_ttl)
        pipe.execute()

    def started(self, task_id: str) -> bool:
        """Whether a worker recorded a start of this task (`ledger_keys.START`)."""
        return bool(self.client.hexists(task_key(task_id), "started_at"))

    def info(self, task_id: str) -> dict[str, str] | None:
        """The bookkeeping hash of a task, or None if this producer never issued it."""
        raw: dict[bytes, bytes] = self.client.hgetall(task_key(task_id))  # type: ignore[assignment]
        if not raw:
            return None
        return {k.decode(): v.decode() for k, v in raw.items()}

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` submissions, newest first."""
        return [json.loads(item) for item in self.client.lrange(RECENT, 0, limit - 1)]

    def claim_idempotency(self, key: str, task_id: str, fingerprint: str) -> tuple[str, str] | None:
        """Bind `key` to `task_id` and the request's fingerprint unless already bound.

        `task_id` is one id, or a batch's ids joined by commas. Returns None when this
        call bound it, else the (task id(s), fingerprint) bound first.
        """
        name = idempotency_key(key)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(name, f"{task_id} {fingerprint}", nx=True, ex=self.ttl)
        pipe.get(name)
        claimed, current = pipe.execute()
        if claimed or not current:
            return None
        earlier_id, _, earlier_fingerprint = current.decode().partition(" ")
        return earlier_id, earlier_fingerprint

    def recorded(self, task_ids: Sequence[str]) -> bool:
        """Whether every one of these ids was recorded by `issue` (one transaction)."""
        return int(self.client.exists(*(task_key(i) for i in task_ids))) == len(task_ids)

    def rebind_idempotency(self, key: str, task_ids: str, fingerprint: str) -> None:
        """Bind an already claimed `key` to other ids (see `submission.claim`)."""
        self.client.set(idempotency_key(key), f"{task_ids} {fingerprint}", ex=self.ttl)

    def release_idempotency(self, key: str) -> None:
        """Forget a key whose submission could not be enqueued, so a retry can use it."""
        self.client.delete(idempotency_key(key))

    def save_workflow(self, workflow_id: str, record: dict[str, Any]) -> None:
        """Keep a workflow's kind and step ids for GET /workflows/{id}."""
        self.client.set(workflow_key(workflow_id), json.dumps(record), ex=self.ttl)

    def workflow(self, workflow_id: str) -> dict[str, Any] | None:
        """A workflow's record, or None if unknown."""
        raw = self.client.get(workflow_key(workflow_id))
        return json.loads(raw) if raw else None
