#!/usr/bin/env bash
# Conveyor on Docker Swarm (deploy/swarm/stack.yml):
#   swarm.sh up            deploy or update the stack; wait until every service converged
#   swarm.sh scale N [S]   run N replicas of worker service S (default: worker)
#   swarm.sh down          remove the stack (volumes stay, like `make down`)
# Settings come from .env (the environment wins, as with compose). Secrets become Swarm
# secrets named after a hash of their content; they never stay on disk outside .env.
# With no swarm here, `up` makes this machine a single-node swarm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=deploy/scripts/env-file.sh
. deploy/scripts/env-file.sh

export STACK_NAME=${STACK_NAME:-conveyor}
stack=$STACK_NAME
# deploy/swarm/stack.yml with a worker service per declared queue, rendered by make.
stack_file=${SWARM_STACK_FILE:-.build/swarm/stack.yml}
env_file=${ENV_FILE:-.env}
timeout=${SWARM_TIMEOUT:-300}

log() { printf 'swarm: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Export each KEY of .env that the environment does not set already (the one shell
# reader of .env: env-file.sh).
load_env() {
  [[ -r $env_file ]] || die "$env_file is missing: run make env"
  env_file_export "$env_file"
}

ensure_swarm() {
  local state
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  if [[ $state != active ]]; then
    log "no swarm here: making this machine a single-node swarm (docs/deploy.md to add nodes)"
    docker swarm init --advertise-addr "${SWARM_ADVERTISE_ADDR:-127.0.0.1}" >/dev/null
  fi
  [[ $(docker info --format '{{.Swarm.ControlAvailable}}') == true ]] ||
    die "this node is not a swarm manager; run this on a manager"
}

# Redis keeps its data in a volume of one node: the node labelled conveyor.redis=true.
ensure_redis_node() {
  local labelled
  labelled=$(docker node ls -q --filter node.label=conveyor.redis=true)
  if [[ -z $labelled ]]; then
    log "labelling this node conveyor.redis=true: Redis and its volume live here"
    docker node update --label-add conveyor.redis=true "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null
  fi
}

# Write one secret file into the staging folder and export its content hash.
stage() {
  local name=$1 value=$2
  # Swarm refuses an empty secret; a newline reads back as empty.
  printf '%s\n' "$value" >"$staging/$name"
  export "SECRET_HASH_$name=$(sha256sum "$staging/$name" | cut -c1-12)"
}

stage_secrets() {
  local certs=${CONVEYOR_CERTS_DIR:-./certs}
  bash deploy/scripts/make-certs.sh "$certs" >&2
  staging=$(mktemp -d)
  trap 'rm -rf "$staging"' EXIT
  export SECRETS_STAGING=$staging
  local name
  for name in REDIS_PASSWORD REDIS_PRODUCER_PASSWORD REDIS_WORKER_PASSWORD REDIS_EMAIL_PASSWORD \
    REDIS_RECONCILER_PASSWORD REDIS_FLOWER_PASSWORD FLOWER_PASSWORD FLOWER_COOKIE_SECRET; do
    [[ -n ${!name:-} ]] || die "$name is empty in $env_file: run make env"
    stage "${name,,}" "${!name}"
  done
  stage conveyor_api_key "${CONVEYOR_API_KEY:?CONVEYOR_API_KEY is empty: run make env}"
  stage smtp_password "${SMTP_PASSWORD:-}"
  stage ca_crt "$(cat "$certs/ca.crt")"
  stage redis_crt "$(cat "$certs/redis.crt")"
  stage redis_key "$(cat "$certs/redis.key")"
}

# Wait until every service of the stack runs all its replicas (healthy: Swarm counts a
# task with a healthcheck as running only once it passes).
wait_converged() {
  local deadline=$((SECONDS + timeout)) pending
  while ((SECONDS < deadline)); do
    pending=$(docker stack services "$stack" --format '{{.Name}} {{.Replicas}}' |
      awk '{ split($2, r, "/"); if (r[1] != r[2]) print $1 " " $2 }')
    [[ -z $pending ]] && return 0
    sleep 2
  done
  docker stack ps "$stack" --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' | head -n 20 >&2
  die "not converged after ${timeout}s: $pending"
}

# Secrets of this stack that no service uses any more (an older hash).
prune_secrets() {
  local secret
  for secret in $(docker secret ls -q --filter "label=com.docker.stack.namespace=$stack"); do
    docker secret rm "$secret" >/dev/null 2>&1 || true # still in use: kept
  done
}

# Swarm never runs the development mailbox, so e-mail must go to a real SMTP server
# (SMTP_HOST, unset or empty meaning `mailbox` as in the settings). Checked before the
# swarm is touched.
require_smtp_server() {
  local host=${SMTP_HOST:-mailbox}
  [[ $host != mailbox ]] ||
    die "SMTP_HOST is mailbox, the development sink, which Swarm never runs: set SMTP_HOST \
(and SMTP_PORT, SMTP_SECURITY, SMTP_USER, SMTP_PASSWORD) to your SMTP server in $env_file"
}

up() {
  load_env
  require_smtp_server
  ensure_swarm
  ensure_redis_node
  stage_secrets
  # Images built here are used as they are; from a registry, resolve their digest.
  local resolve=never
  [[ -n ${CONVEYOR_IMAGE:-} ]] && resolve=always
  [[ -r $stack_file ]] || die "$stack_file is missing: make swarm-up renders it"
  docker stack deploy --prune --resolve-image "$resolve" -c "$stack_file" "$stack"
  wait_converged
  prune_secrets
  log "stack $stack is up: API on port ${PRODUCER_PORT:-8000}, Flower on ${FLOWER_PORT:-5555}"
}

scale() {
  local replicas=${1:?usage: swarm.sh scale N [SERVICE]} service=${2:-worker}
  [[ $replicas =~ ^[0-9]+$ ]] || die "N must be a number of replicas, not $replicas"
  # Detached, then our own wait: the CLI's wait adds the update monitor period (30 s) to
  # every scale, even down; wait_converged ends once every replica is healthy (up) or
  # every surplus worker has finished its warm shutdown (down).
  docker service scale --detach "${stack}_$service=$replicas" >/dev/null
  wait_converged
  log "${stack}_$service runs $replicas replica(s)"
}

# Scale every worker service of the stack to 0 and wait until their tasks are gone. Run
# while Redis is still up, their warm shutdown puts back what they prefetched and says
# goodbye (worker-offline event); with Redis removed at the same time, each of Celery's
# shutdown steps waits out a connection attempt (measured: the worker outlived the
# rest of the stack by 50 s).
stop_workers() {
  local -a scales
  mapfile -t scales < <(docker stack services "$stack" --format '{{.Name}}=0' 2>/dev/null |
    grep -E 'worker=0$' || true)
  ((${#scales[@]})) || return 0
  docker service scale --detach "${scales[@]}" >/dev/null
  wait_converged
}

down() {
  stop_workers
  docker stack rm "$stack" >/dev/null 2>&1 || true
  # `stack rm` returns at once; the network goes last, once every container is gone.
  local deadline=$((SECONDS + timeout))
  while docker network ls -q --filter "label=com.docker.stack.namespace=$stack" | grep -q .; do
    ((SECONDS < deadline)) || die "stack $stack still has networks after ${timeout}s"
    sleep 1
  done
  log "stack $stack removed (its volumes are kept)"
}

case ${1:-} in
  up) up ;;
  scale) scale "${2:-}" "${3:-}" ;;
  down) down ;;
  *) die "usage: swarm.sh up | scale N [SERVICE] | down" ;;
esac
