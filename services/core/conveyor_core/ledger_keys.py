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

#: Submissions that have not reached a terminal state yet: sorted set of task ids scored
#: by submission time. The reconciler re-publishes those that vanished from Redis.
PENDING = "conveyor:pending"
#: Task id -> time the reconciler first missed it in the queues (second miss: re-publish).
SUSPECTS = "conveyor:pending:suspects"
#: Message header on a task the reconciler published again (workers check its result).
REPUBLISHED_HEADER = "conveyor_republished"
#: Lock so that only one reconciler pass runs at a time.
RECONCILER_LOCK = "conveyor:reconciler:lock"
#: Executions started per task id and retry ("<id>:<retries>"), for poison detection.
DELIVERIES_PREFIX = "conveyor:deliveries:"
#: Dead letters: hash entry id -> JSON, and a sorted set of ids by time.
DLQ_ENTRIES = "conveyor:dlq:entries"
DLQ_INDEX = "conveyor:dlq:index"


#: Task id -> why it must never run ("revoked" or "purged"), for REVOKE_TTL seconds. The
#: producer writes it before answering a revoke or a purge; every worker reads it before
#: it runs a task (`START`), and the reconciler before it publishes one again. Celery's
#: own revokes live in worker memory only (celery#4300, celery#4886).
REVOKED_PREFIX = "conveyor:revoked:"


def deliveries_key(task_id: str, retries: int) -> str:
    """The counter of executions started for one delivery of a task."""
    return f"{DELIVERIES_PREFIX}{task_id}:{retries}"


def revoked_key(task_id: str) -> str:
    """The revoke record of one task."""
    return REVOKED_PREFIX + task_id


#: A worker is about to run a task: unless it is revoked, count this start of the
#: delivery (poison detection) and set fields on the task's hash if it exists (as
#: HSET_IF_EXISTS), in one round trip. KEYS: delivery counter, hash, revoke record;
#: ARGV: counter TTL, then field/value pairs. Returns {starts, ""}, or {0, reason} for a
#: revoked task, which records nothing. One script, so a revoke either comes before the
#: check (the task never runs) or after the start is recorded (the task is running).
START = """
local revoked = redis.call('get', KEYS[3])
if revoked then
  return {0, revoked}
end
local starts = redis.call('incr', KEYS[1])
redis.call('expire', KEYS[1], ARGV[1])
if #ARGV > 1 and redis.call('exists', KEYS[2]) == 1 then
  redis.call('hset', KEYS[2], unpack(ARGV, 2))
end
return {starts, ''}
"""

#: A task reached a terminal state: set fields on its hash if it exists (as
#: HSET_IF_EXISTS) and drop it from the pending set. KEYS: hash, pending set;
#: ARGV: task id, then field/value pairs.
FINISH = """
if #ARGV > 1 and redis.call('exists', KEYS[1]) == 1 then
  redis.call('hset', KEYS[1], unpack(ARGV, 2))
end
return redis.call('zrem', KEYS[2], ARGV[1])
"""

#: One record per e-mail idempotency key: "sending <token>" while a worker holds the
#: send lease, then "sent <Message-ID>" for EMAIL_SENT_TTL.
EMAIL_SEND_PREFIX = "conveyor:email:"


def email_send_key(idempotency_key: str) -> str:
    """Where the send record of one e-mail lives."""
    return EMAIL_SEND_PREFIX + idempotency_key
