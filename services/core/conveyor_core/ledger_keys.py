"""Names of the Redis keys where the producer and the workers keep their bookkeeping.

They live in the result database, next to Celery's own `celery-task-meta-*` keys, and
expire with the results.
"""

#: Hash per task the producer issued: task, queue, submitted/received/started/finished
#: times, retries, worker, progress. Its existence means "this producer issued this id".
TASK_PREFIX = "conveyor:task:"
#: Capped list of the newest submissions, newest first (LPUSH + LTRIM).
RECENT = "conveyor:recent"
#: Client idempotency key -> the task id of its first submission.
IDEMPOTENCY_PREFIX = "conveyor:idempotency:"
#: Workflow id -> JSON record of its kind and step ids.
WORKFLOW_PREFIX = "conveyor:workflow:"


def task_key(task_id: str) -> str:
    """The bookkeeping hash of one task."""
    return TASK_PREFIX + task_id


def idempotency_key(key: str) -> str:
    """Where a client idempotency key is remembered."""
    return IDEMPOTENCY_PREFIX + key


def workflow_key(workflow_id: str) -> str:
    """The record of one workflow."""
    return WORKFLOW_PREFIX + workflow_id


#: HSET only on a task hash that exists: a message that did not come through the
#: producer must not make its id look issued.
HSET_IF_EXISTS = """
if redis.call('exists', KEYS[1]) == 1 then
  return redis.call('hset', KEYS[1], unpack(ARGV))
end
return 0
"""
