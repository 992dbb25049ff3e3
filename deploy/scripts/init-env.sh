#!/usr/bin/env bash
# Create .env from .env.example with freshly generated secrets. Never overwrites an
# existing .env, and never prints a secret.
set -euo pipefail

example=${1:-.env.example}
target=${2:-.env}

if [[ -e $target ]]; then
  echo "$target exists; leaving it alone"
  exit 0
fi

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

umask 077
tmp=$(mktemp "${target}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [[ -n $line ]]; do
  case $line in
    REDIS_PASSWORD=|CONVEYOR_API_KEY=|FLOWER_PASSWORD=|FLOWER_COOKIE_SECRET=) line="${line}$(secret)" ;;
  esac
  printf '%s\n' "$line"
done <"$example" >"$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "created $target with generated secrets (REDIS_PASSWORD, CONVEYOR_API_KEY, FLOWER_PASSWORD, FLOWER_COOKIE_SECRET)"
