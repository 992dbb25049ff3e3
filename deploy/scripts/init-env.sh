#!/usr/bin/env bash
# Create .env from .env.example with freshly generated secrets. Never overwrites an
# existing .env, and never prints a secret.
set -euo pipefail
# shellcheck source=deploy/scripts/env-file.sh
. "$(dirname "${BASH_SOURCE[0]}")/env-file.sh"

example=${1:-.env.example}
target=${2:-.env}

generated=(REDIS_PASSWORD CONVEYOR_API_KEY FLOWER_PASSWORD FLOWER_COOKIE_SECRET
  REDIS_PRODUCER_PASSWORD REDIS_WORKER_PASSWORD REDIS_EMAIL_PASSWORD REDIS_RECONCILER_PASSWORD
  REDIS_FLOWER_PASSWORD REDIS_AUTOSCALER_PASSWORD)
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

# An existing .env is never rewritten; a generated secret it lacks altogether (added in
# a later version) is appended, so an upgrade never starts without it.
if [[ -e $target ]]; then
  added=()
  for name in "${generated[@]}"; do
    if ! env_file_has "$name" "$target"; then
      printf '%s=%s\n' "$name" "$(secret)" >>"$target"
      added+=("$name")
    fi
  done
  if ((${#added[@]})); then
    echo "$target exists; added generated ${added[*]}"
  fi
  exit 0
fi

umask 077
tmp=$(mktemp "${target}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [[ -n $line ]]; do
  for name in "${generated[@]}"; do
    [[ $line == "$name=" ]] && line="${line}$(secret)"
  done
  printf '%s\n' "$line"
done <"$example" >"$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "created $target with generated secrets (${generated[*]})"
