#!/bin/sh
# Redis for Conveyor, in every deployment (compose, Swarm, Kubernetes):
#   conveyor-redis [REDIS-SERVER OPTIONS...]   start the server (exec: PID 1, gets SIGTERM)
#   conveyor-redis health                      PING as the operator; exit 0 on PONG
#   conveyor-redis cli [ARGS...]               redis-cli as the operator, password hidden
# One ACL user per role in every mode (roles.acl): the `operator` and each of $REDIS_ROLES,
# with the key patterns of each queue in $CONVEYOR_QUEUES (the declared queues);
# Redis's `default` user is off. Passwords come from the environment (REDIS_PASSWORD for
# the operator, REDIS_<ROLE>_PASSWORD) or from a file of the same name in lower case in
# $SECRETS_DIR (Swarm and Kubernetes secrets).
# REDIS_TLS=true: TLS only (no plain port) with the certificate in $REDIS_TLS_DIR; its
# private key may be elsewhere ($REDIS_TLS_KEY_FILE, see deploy/compose/tls.yml).
set -eu

roles=${REDIS_ROLES_FILE:-/etc/conveyor/redis-roles.acl}
tls_dir=${REDIS_TLS_DIR:-/etc/conveyor/tls}
tls_key=${REDIS_TLS_KEY_FILE:-$tls_dir/redis.key}
secrets_dir=${SECRETS_DIR:-/run/secrets}
tls=${REDIS_TLS:-false}

die() {
  echo "conveyor-redis: $*" >&2
  exit 2
}

# secret NAME: the value of $NAME, else the content of $secrets_dir/name.
secret() {
  eval "value=\${$1:-}"
  file="$secrets_dir/$(printf %s "$1" | tr '[:upper:]' '[:lower:]')"
  if [ -z "$value" ] && [ -r "$file" ]; then
    value=$(cat "$file")
  fi
  [ -n "$value" ] || die "$1 is not set (nor is $file)"
  printf %s "$value"
}

sha256() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

# The rules of one user from the roles file (the words after its name).
rules_of() {
  rules=$(awk -v name="$1" '$1 == name { $1 = ""; print; found = 1 } END { exit !found }' "$roles") ||
    die "no user $1 in $roles"
  printf %s "$rules"
}

# The rules with each word that holds {queue} once per declared queue ($CONVEYOR_QUEUES,
# from queues.toml): `%W~{queue}*` becomes `%W~default* %W~email* ...`.
expand_queues() {
  expanded=""
  for rule in $1; do
    case $rule in
      *"{queue}"*)
        for queue in $queues; do
          expanded="$expanded ${rule%%\{queue\}*}$queue${rule#*\{queue\}}"
        done
        ;;
      *) expanded="$expanded $rule" ;;
    esac
  done
  printf %s "$expanded"
}

tls_client_options() {
  [ "$tls" = true ] && printf -- '--tls --cacert %s' "$tls_dir/ca.crt"
  return 0
}

case ${1:-} in
  health)
    # shellcheck disable=SC2046 # the TLS options are separate words
    REDISCLI_AUTH=$(secret REDIS_PASSWORD) redis-cli $(tls_client_options) --user operator \
      -h 127.0.0.1 ping |
      grep -q PONG
    exit
    ;;
  cli)
    shift
    REDISCLI_AUTH=$(secret REDIS_PASSWORD)
    export REDISCLI_AUTH
    # shellcheck disable=SC2046
    exec redis-cli $(tls_client_options) --user operator -h 127.0.0.1 "$@"
    ;;
esac

# The declared queues (a name each: lower-case letters, digits, dashes; no glob character).
queues=${CONVEYOR_QUEUES:-}
[ -n "$queues" ] || die "CONVEYOR_QUEUES is not set: the declared queues (queues.toml), space-separated"
for queue in $queues; do
  case $queue in
    *[!a-z0-9-]*) die "CONVEYOR_QUEUES: $queue is not a queue name (a-z, 0-9, -)" ;;
  esac
done

# `default` off and without a password: no connection can log in as it, each must name
# its role. Its rules are still all commands on all keys: Redis replays the append-only
# file as `default`, and EXEC checks the ACL again, so without them every MULTI/EXEC in
# the file would be dropped at start (redis/redis#14541, fixed after Redis 7.0).
# Then `--user NAME reset on #HASH RULES` for each user; rules hold glob characters (~*).
set -f
set -- "$@" --user default reset off "~*" "&*" +@all
for name in operator ${REDIS_ROLES:-producer worker email reconciler flower}; do
  variable=REDIS_PASSWORD
  [ "$name" = operator ] || variable=REDIS_$(printf %s "$name" | tr '[:lower:]' '[:upper:]')_PASSWORD
  hash=$(sha256 "$(secret "$variable")")
  rules=$(expand_queues "$(rules_of "$name")")
  # shellcheck disable=SC2086 # one word per rule
  set -- "$@" --user "$name" reset on "#$hash" $rules
done
set +f

if [ "$tls" = true ]; then
  for file in "$tls_dir/ca.crt" "$tls_dir/redis.crt" "$tls_key"; do
    [ -r "$file" ] || die "REDIS_TLS=true but $file is missing or unreadable (make certs)"
  done
  set -- "$@" --port 0 --tls-port "${REDIS_PORT:-6379}" \
    --tls-cert-file "$tls_dir/redis.crt" --tls-key-file "$tls_key" \
    --tls-ca-cert-file "$tls_dir/ca.crt" --tls-auth-clients no \
    --tls-protocols "TLSv1.2 TLSv1.3"
fi

# Durable by default: every write in the append-only file, flushed each second, and a
# full Redis refuses writes instead of evicting queued tasks.
exec redis-server --appendonly yes --appendfsync everysec \
  --maxmemory "${REDIS_MAXMEMORY:-256mb}" --maxmemory-policy noeviction \
  --dir /data "$@"
