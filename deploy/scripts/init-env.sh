#!/usr/bin/env bash
# Create .env, or complete it: every secret named in generated-secrets.list gets a fresh
# random value where .env leaves it empty (as `cp .env.example .env` does) or lacks it
# (added in a later version). A secret that is set is never changed, nor is any other
# line, and no secret is ever printed.
#   init-env.sh [EXAMPLE [TARGET]]     defaults: .env.example and .env
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=deploy/scripts/env-file.sh
. "$here/env-file.sh"

example=${1:-.env.example}
target=${2:-.env}
# A .env that links elsewhere is completed where it points, and stays a link.
[[ -L $target ]] && target=$(readlink -f "$target")
# The one list of generated secrets; comments and blank lines skipped.
mapfile -t generated < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/generated-secrets.list" | grep -v '^$')
((${#generated[@]})) || { echo "init-env: no secret listed in $here/generated-secrets.list" >&2; exit 1; }

# N fresh secrets, one a line (one interpreter start for all of them).
secrets() { python3 -c 'import secrets, sys; [print(secrets.token_urlsafe(32)) for _ in range(int(sys.argv[1]))]' "$1"; }

# The names of the generated secrets that FILE sets to an empty value (the last line
# setting each one wins, as for every reader), and those it does not set at all.
find_unset() {
  local file=$1 line name
  local -A values=()
  while IFS= read -r line || [[ -n $line ]]; do
    env_file_parse_line "$line" && values[$ENV_FILE_KEY]=$ENV_FILE_VALUE
  done <"$file"
  empty=() missing=()
  for name in "${generated[@]}"; do
    if [[ ! -v values[$name] ]]; then
      missing+=("$name")
    elif [[ -z ${values[$name]} ]]; then
      empty+=("$name")
    fi
  done
}

# Print FILE with a fresh value on each line that sets an empty secret of $empty
# (`export ` and blanks around `=` are kept), then a line for each of $missing.
fill() {
  local file=$1 line i text
  local names=("${empty[@]}" "${missing[@]}") values=()
  local -A fresh=()
  text=$(secrets "${#names[@]}") # a failure stops here, before any empty value is written
  mapfile -t values <<<"$text"
  for i in "${!names[@]}"; do fresh[${names[i]}]=${values[i]:?no secret generated}; done
  while IFS= read -r line || [[ -n $line ]]; do
    if env_file_parse_line "$line" && [[ -z $ENV_FILE_VALUE && -v fresh[$ENV_FILE_KEY] ]]; then
      line="${line%%=*}=${fresh[$ENV_FILE_KEY]}"
    fi
    printf '%s\n' "$line"
  done <"$file"
  for i in "${missing[@]}"; do printf '%s=%s\n' "$i" "${fresh[$i]}"; done
}

main() {
  local source=$target verb=completed names
  if [[ ! -e $target ]]; then
    source=$example verb=created
  fi
  find_unset "$source"
  names=("${empty[@]}" "${missing[@]}")
  if [[ $verb == completed ]] && ((${#names[@]} == 0)); then
    return 0 # every secret is set: leave the file untouched
  fi
  # Owner-only, like every file holding secrets; replaced in one step (rename).
  umask 077
  tmp=$(mktemp "${target}.XXXXXX") # global: the EXIT trap removes it
  trap 'rm -f "$tmp"' EXIT
  fill "$source" >"$tmp"
  mv "$tmp" "$target"
  trap - EXIT
  echo "$verb $target: generated ${names[*]}"
}

main
