#!/bin/sh
# One image, many roles: `conveyor-entrypoint ROLE [ARGS...]`.
# Every branch ends in exec, so the real process is PID 1 and gets Docker's signals
# itself: SIGTERM reaches the Celery main process only (warm shutdown), never its
# prefork children, and gunicorn's arbiter, not a shell.
set -eu

role=${1:-}
[ $# -gt 0 ] && shift
# The settings read it: only workers sweep kombu's unacknowledged messages back.
export CONVEYOR_ROLE="$role"

# Refuse settings that would lose or duplicate tasks before the service starts
# (exit 2, naming the setting); CONVEYOR_SKIP_PREFLIGHT=1 is for debugging only.
# The check runs in the background so that this shell (PID 1, which ignores signals it
# has no trap for) still stops at once on `docker stop` while it waits for Redis.
preflight() {
  [ "${CONVEYOR_SKIP_PREFLIGHT:-0}" = 1 ] && return 0
  python -m conveyor_core.preflight "$1" &
  child=$!
  trap 'kill -TERM "$child" 2>/dev/null; exit 143' TERM INT
  status=0
  wait "$child" || status=$?
  trap - TERM INT
  return "$status"
}

# A published port on anything but loopback is reachable from the network: say so in
# the log, where operators look (compose passes the host address it publishes on).
warn_if_exposed() {
  case "${CONVEYOR_BIND_ADDRESS:-127.0.0.1}" in
    127.* | ::1 | localhost) ;;
    *) echo "WARNING: $1 is published on ${CONVEYOR_BIND_ADDRESS}, not only on this machine;" \
      "keep it behind a firewall or a TLS proxy (CONVEYOR_BIND_ADDRESS)" >&2 ;;
  esac
}

case "$role" in
  dev)
    # `make dev` (deploy/compose/dev.yml): the role given next runs under watchfiles,
    # which restarts it when a Python file of the mounted task project changes, and
    # stops it with SIGINT (a warm shutdown for a worker) on `docker stop`.
    exec watchfiles --target-type command --filter python --sigint-timeout 30 \
      "conveyor-entrypoint $*" /opt/tasks
    ;;
  producer)
    warn_if_exposed producer
    preflight producer
    exec gunicorn --config python:conveyor_producer.gunicorn_conf \
      'conveyor_producer.api:create_api()' "$@"
    ;;
  worker)
    preflight worker
    # Node name, queues, pool, concurrency and log level come from the settings.
    exec python -m conveyor_worker "$@"
    ;;
  flower)
    warn_if_exposed flower
    preflight flower
    exec celery --app conveyor_core.celery_app flower --conf=/app/flowerconfig.py "$@"
    ;;
  reconciler)
    preflight reconciler
    exec python -m conveyor_reconciler.main "$@"
    ;;
  mailbox)
    warn_if_exposed mailbox
    exec python -m conveyor_mailbox.server "$@"
    ;;
  "")
    echo "usage: conveyor-entrypoint producer|worker|reconciler|flower|mailbox|COMMAND [ARGS...]" >&2
    exit 64
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
