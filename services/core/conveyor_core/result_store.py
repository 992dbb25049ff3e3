"""Celery's Redis result backend, storing each state in one round trip.

Celery reads a task's stored state before writing a new one, so that a late copy of a
task cannot overwrite SUCCESS (`BaseKeyValueStoreBackend._store_result`, overridden
through `conveyor_core.celery_internals.StoreStateBackend`): a GET, then a
SET and PUBLISH, two round trips and a window between them. Here a Lua script does the
check, the write and the publish at once: one round trip, and no window. A final state
also settles the task's bookkeeping in the same script (finished_at on its hash, off the
reconciler's pending set: what `ledger_keys.FINISH` does), saving the worker another.
"""

from __future__ import annotations

import time
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

from conveyor_core.celery_internals import StoreStateBackend
from conveyor_core.ledger_keys import PENDING, task_key

#: KEYS: the result key, the task's hash, the pending set; ARGV: the encoded meta, seconds
#: to keep it (0: no expiry), the task id, finished_at ("" unless the state is final).
#: Leaves a stored SUCCESS alone (returns 0); otherwise stores and publishes (1).
STORE_UNLESS_SUCCEEDED = """
local current = redis.call('get', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('setex', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('set', KEYS[1], ARGV[1])
end
redis.call('publish', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then
  if redis.call('exists', KEYS[2]) == 1 then
    redis.call('hset', KEYS[2], 'finished_at', ARGV[4])
  end
  redis.call('zrem', KEYS[3], ARGV[3])
end
return 1
"""


class ConveyorRedisBackend(StoreStateBackend):
    """RedisBackend whose stores are one atomic script call."""

    # Set by Celery's key-value backend (untyped there).
    expires: Any
    failure_expires: Any

    def store_state(
        self, task_id: str, result: Any, state: str, traceback: Any, request: Any
    ) -> Any:
        """Store one state: check, write, publish and settle in one script call."""
        meta = self.result_meta(result, state, traceback, request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)
        if isinstance(value, str) and len(value) > self.max_value_size:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        seconds = int(
            expires.total_seconds() if hasattr(expires, "total_seconds") else expires or 0
        )
        finished_at = repr(time.time()) if state in states.READY_STATES else ""
        keys = (self.get_key_for_task(task_id), task_key(meta["task_id"]), PENDING)
        args = (value, seconds, meta["task_id"], finished_at)
        self.ensure(self.client.eval, (STORE_UNLESS_SUCCEEDED, 3, *keys, *args))
        return result


def backend_url(redis_url: str, backend: type[RedisBackend] = ConveyorRedisBackend) -> str:
    """The `result_backend` value selecting `backend` for a Redis URL."""
    return f"{backend.__module__}:{backend.__name__}+{redis_url}"
