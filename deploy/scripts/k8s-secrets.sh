#!/usr/bin/env bash
# Print the two Secrets the Kubernetes manifests expect, for `kubectl apply -f -`:
#   k8s-secrets.sh NAMESPACE
# conveyor-secrets from .env (every password and key, one per role), conveyor-redis-tls
# from certs/ (make certs with REDIS_TLS_NAMES=redis.NAMESPACE.svc.cluster.local for
# KEDA). Values go through files of this user only, never on a command line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

namespace=${1:?usage: k8s-secrets.sh NAMESPACE}
env_file=${ENV_FILE:-.env}
certs=${CONVEYOR_CERTS_DIR:-./certs}

# The one shell reader of .env: the value as python-dotenv and compose read it.
# shellcheck source=deploy/scripts/env-file.sh
. deploy/scripts/env-file.sh
[[ -r $env_file ]] || {
  echo "k8s-secrets: $env_file is missing (make env)" >&2
  exit 1
}

umask 077
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
for name in REDIS_PASSWORD REDIS_PRODUCER_PASSWORD REDIS_WORKER_PASSWORD REDIS_EMAIL_PASSWORD \
  REDIS_RECONCILER_PASSWORD REDIS_FLOWER_PASSWORD REDIS_AUTOSCALER_PASSWORD \
  CONVEYOR_API_KEY FLOWER_PASSWORD FLOWER_COOKIE_SECRET SMTP_PASSWORD; do
  key=$(tr '[:upper:]_' '[:lower:]-' <<<"$name")
  value=$(env_file_get "$name" "$env_file") || value=
  if [[ -z $value && $name != SMTP_PASSWORD ]]; then
    echo "k8s-secrets: $name is empty in $env_file (make env)" >&2
    exit 1
  fi
  printf '%s' "$value" >"$staging/$key"
done
printf autoscaler >"$staging/redis-autoscaler-username"

kubectl create secret generic conveyor-secrets --namespace "$namespace" \
  --from-file="$staging" --dry-run=client -o yaml
echo ---
kubectl create secret generic conveyor-redis-tls --namespace "$namespace" \
  --from-file=ca.crt="$certs/ca.crt" --from-file=tls.crt="$certs/redis.crt" \
  --from-file=tls.key="$certs/redis.key" --dry-run=client -o yaml
