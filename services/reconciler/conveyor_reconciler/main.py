"""Re-publish accepted tasks that are nowhere: not finished, not queued, not unacked.

The producer records each standalone submission (its call included) in the pending set
before it answers 202, and a worker removes it when the task reaches a terminal state.
Between, the message is in a queue list, in kombu's `unacked` hash, or - for a moment -
only in a worker's memory (BRPOP has taken it, the unacked write has not happened; a
SIGKILL there loses it: celery#7950, kombu#305). A message can also be lost with the
last second of Redis's append-only file, or never published (the producer accepted it,
then Redis failed).

Every pass looks at pending tasks older than a grace period: a task with a terminal
result is forgotten; one found in no queue and no unacked entry becomes a suspect; a
suspect missing again on the next pass is published again, with the same id and a
header that lets a worker skip it if it succeeded in between. Two misses in a row
rule out a message merely in flight between lists. A lock keeps replicas from doing
the same pass twice. A revoked task (its revoke record, `ledger_keys.REVOKED_PREFIX`)
is never published again: missing twice, it is stored REVOKED instead.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import redis
from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from conveyor_core.catalog import known_queues
from conveyor_core.celery_app import create_app
from conveyor_core.celery_internals import (
    RESULT_KEY_PREFIX,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    priority_lists,
    unacked_message,
)
from conveyor_core.ledger_keys import (
    PENDING,
    RECONCILER_LOCK,
    REPUBLISHED_HEADER,
    SUSPECTS,
    revoked_key,
    task_key,
)
from conveyor_core.logs import configure_logging
from conveyor_core.messages import ids_of, message_ids, redis_texts
from conveyor_core.settings import ReconcilerSettings
from conveyor_core.task_packages import lookup
from conveyor_reconciler.healthcheck import HEARTBEAT_FILE

logger = logging.getLogger("conveyor.reconciler")

#: Celery states after which a task will not run again.
TERMINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED", "IGNORED"})
#: Pending ids examined per pass at most; the rest wait for the next pass.
BATCH = 10_000
#: Queue items fetched per LRANGE while scanning a queue.
SCAN_CHUNK = 5_000


@dataclass
class PassReport:
    """What one pass did, for the log and the tests."""

    overdue: int = 0
    settled: int = 0
    present: int = 0
    suspected: int = 0
    republished: list[str] = field(default_factory=list)
    #: Missing tasks that were revoked: stored REVOKED instead of published again.
    revoked: list[str] = field(default_factory=list)
    forgotten: int = 0


class Reconciler:
    """One reconciler, over the broker and result databases of one Redis."""

    def __init__(self, settings: ReconcilerSettings, app: Celery | None = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        options = {"socket_timeout": settings.redis_socket_timeout, "socket_connect_timeout": 2}
        self.broker = redis.Redis.from_url(settings.broker_url, **options)
        self.results = redis.Redis.from_url(settings.result_backend_url, **options)

    @property
    def lock_timeout(self) -> int:
        """Seconds the pass lock lives if its holder dies without releasing it."""
        return max(int(self.settings.reconcile_interval * 4), 30)

    def run_pass(self, now: float | None = None) -> PassReport:
        """One reconciliation pass (skipped, empty, when another replica holds the lock)."""
        now = time.time() if now is None else now
        report = PassReport()
        # redis-py's Lock holds a random token and releases with a compare-and-delete:
        # a pass that outlived its lock cannot delete the lock another replica took since.
        lock = self.results.lock(RECONCILER_LOCK, timeout=self.lock_timeout, blocking=False)
        if not lock.acquire():
            return report
        try:
            self._reconcile(now, report)
        finally:
            self._release(lock)
        return report

    def _release(self, lock: Lock) -> None:
        try:
            lock.release()
        except LockNotOwnedError:
            # It expired mid-pass, so another replica may have started a pass alongside
            # this one; its lock is not ours to delete. Say so: the timeout is too short.
            logger.warning(
                "the pass outlasted its %d s lock; the lock is left to its new holder",
                self.lock_timeout,
            )

    def _reconcile(self, now: float, report: PassReport) -> None:
        # Pending entries older than the ledger's lifetime have lost their call anyway.
        report.forgotten = int(
            self.results.zremrangebyscore(PENDING, "-inf", now - self.settings.result_expires)
        )
        overdue = redis_texts(
            self.results.zrangebyscore(
                PENDING, "-inf", now - self.settings.reconcile_grace, start=0, num=BATCH
            )
        )
        report.overdue = len(overdue)
        if not overdue:
            self.results.delete(SUSPECTS)
            return
        # Broker first, results second: a task that finishes in between is then seen
        # as finished rather than as missing.
        in_broker = self.ids_in_broker(now)
        unsettled = self._drop_settled(overdue, report)
        missing = [i for i in unsettled if i not in in_broker]
        report.present = len(unsettled) - len(missing)
        suspects = self._suspects()
        again = [i for i in missing if i in suspects]
        fresh = [i for i in missing if i not in suspects]
        pipe = self.results.pipeline(transaction=False)
        pipe.delete(SUSPECTS)
        if fresh:
            pipe.hset(SUSPECTS, mapping=dict.fromkeys(fresh, now))
        pipe.execute()
        report.suspected = len(fresh)
        revoked = self.revoke_reasons(again)
        for task_id in again:
            if task_id in revoked:
                self.app.backend.mark_as_revoked(task_id, revoked[task_id])
                report.revoked.append(task_id)
                logger.info(
                    "task %s was %s; stored REVOKED, not republished", task_id, revoked[task_id]
                )
            elif self.republish(task_id, now):
                report.republished.append(task_id)

    def revoke_reasons(self, ids: list[str]) -> dict[str, str]:
        """The revoke record (its reason) of each of these ids that has one."""
        if not ids:
            return {}
        reasons = self.results.mget([revoked_key(i) for i in ids])
        pairs = zip(ids, reasons, strict=True)
        return {i: redis_texts([r])[0] for i, r in pairs if r is not None}

    def _drop_settled(self, ids: list[str], report: PassReport) -> list[str]:
        """Forget ids whose result is terminal; return the others."""
        pipe = self.results.pipeline(transaction=False)
        for task_id in ids:
            pipe.get(f"{RESULT_KEY_PREFIX}{task_id}")
        settled: list[str] = []
        unsettled: list[str] = []
        for task_id, raw in zip(ids, pipe.execute(), strict=True):
            status = json.loads(raw).get("status") if raw else None
            (settled if status in TERMINAL else unsettled).append(task_id)
        if settled:
            self.results.zrem(PENDING, *settled)
        report.settled = len(settled)
        return unsettled

    def _suspects(self) -> set[str]:
        return set(redis_texts(self.results.hkeys(SUSPECTS)))

    def ids_in_broker(self, now: float | None = None) -> set[str]:
        """Task ids of every message waiting in a queue, or unacknowledged and not stale.

        An unacknowledged message older than the visibility timeout plus the grace period
        should have been restored by a worker's sweep; if it was not (no live worker,
        kombu's restore mutex held by a worker that was SIGKILLed mid-sweep: it expires
        only after `unacked_mutex_expire`), it counts as missing, so it is published again.
        """
        now = time.time() if now is None else now
        stale_before = now - self.settings.visibility_timeout - self.settings.reconcile_grace
        index: list[tuple[bytes, float]] = self.broker.zrange(  # type: ignore[assignment]
            UNACKED_INDEX_KEY, 0, -1, withscores=True
        )
        delivered = dict(index)
        ids: set[str] = set()
        for queue in known_queues():
            for key in priority_lists(queue):
                start = 0
                while True:
                    chunk = self.broker.lrange(key, start, start + SCAN_CHUNK - 1)
                    ids.update(message_ids(chunk))
                    if len(chunk) < SCAN_CHUNK:
                        break
                    start += SCAN_CHUNK
        for tag, raw in self.broker.hscan_iter(UNACKED_KEY, count=1_000):
            if delivered.get(tag, now) < stale_before:
                continue
            message = unacked_message(raw)
            if message is not None:
                ids.update(ids_of([message]))
        return ids

    def republish(self, task_id: str, now: float) -> bool:
        """Publish a pending task again from its recorded call; False if it has none."""
        raw = self.results.hget(task_key(task_id), "call")
        if not raw:
            logger.warning("pending task %s has no recorded call; forgetting it", task_id)
            self.results.zrem(PENDING, task_id)
            return False
        call = json.loads(raw)
        options = dict(call.get("options", {}))
        for name in ("eta", "expires"):
            if name in options:
                options[name] = datetime.fromisoformat(options[name])
        kwargs = call.get("kwargs", {})
        spec = lookup(self.settings, call["task"])
        options.update(spec.repr_options(kwargs) if spec else {})
        self.app.send_task(
            call["task"],
            kwargs=kwargs,
            task_id=task_id,
            headers={REPUBLISHED_HEADER: True},
            **options,
        )
        pipe = self.results.pipeline(transaction=False)
        pipe.hincrby(task_key(task_id), "republished", 1)
        pipe.zadd(PENDING, {task_id: now})  # a full grace period before it is checked again
        pipe.execute()
        logger.warning("republished task %s (%s): it was in no queue", task_id, call["task"])
        return True


def main() -> int:
    """Run passes every RECONCILE_INTERVAL seconds until SIGTERM."""
    settings = ReconcilerSettings()
    configure_logging(settings.log_level)
    reconciler = Reconciler(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logger.info(
        "reconciling every %.0f s, grace %.0f s",
        settings.reconcile_interval,
        settings.reconcile_grace,
    )
    while not stop.is_set():
        try:
            report = reconciler.run_pass()
        except (redis.RedisError, OperationalError, OSError) as exc:
            logger.warning("pass skipped, Redis did not answer: %s", exc)
        else:
            HEARTBEAT_FILE.touch()
            if report.republished or report.suspected:
                logger.info("pass: %s", report)
        stop.wait(settings.reconcile_interval)
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
