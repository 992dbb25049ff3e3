#!/bin/sh
# One image, many roles: `conveyor-entrypoint ROLE [ARGS...]`.
# Every branch ends in exec, so the real process is PID 1 and gets Docker's signals
# itself: SIGTERM reaches the Celery main process only (warm shutdown), never its
# prefork children, and gunicorn's arbiter, not a shell.
set -eu

role=${1:-}
[ $# -gt 0 ] && shift

case "$role" in
  producer)
    exec gunicorn --config python:conveyor_producer.gunicorn_conf \
      'conveyor_producer.api:create_api()' "$@"
    ;;
  worker)
    # %h is the container's hostname, so every replica gets its own node name.
    exec celery --app conveyor_worker.main worker \
      --loglevel "${LOG_LEVEL:-INFO}" \
      --hostname "${WORKER_NAME:-worker}@%h" \
      --queues "${WORKER_QUEUES:-default}" \
      --pool "${WORKER_POOL:-prefork}" \
      --concurrency "${WORKER_CONCURRENCY:-2}" \
      --task-events \
      "$@"
    ;;
  flower)
    exec celery --app conveyor_core.celery_app flower --conf=/app/flowerconfig.py "$@"
    ;;
  mailbox)
    exec python -m conveyor_mailbox.server "$@"
    ;;
  "")
    echo "usage: conveyor-entrypoint producer|worker|flower|mailbox|COMMAND [ARGS...]" >&2
    exit 64
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
