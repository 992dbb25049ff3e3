#!/usr/bin/env bash
# The one reader of .env files in shell; conveyor_core.env_file is the one in Python.
# Both read a line as python-dotenv (and Docker Compose) do, for the lines we write:
#   KEY=value            unquoted: an inline comment needs a blank before its `#`
#   KEY="va lue"         double quotes: \\ \' \" \a \b \f \n \r \t \v are decoded
#   KEY='va lue'         single quotes: only \\ and \' are decoded
#   export KEY=value     the `export ` prefix is dropped; blanks around `=` are too
# Blank lines and `#` comments are skipped, and so is a line that does not parse; the
# last of repeated keys wins. `${VAR}` is not expanded. A value spanning several lines
# (python-dotenv accepts a newline inside quotes) is not supported.
#
# Source it for the functions, or run it:
#   env-file.sh get KEY [FILE]     print KEY's value; exit 1 if FILE has no KEY
#   env-file.sh has KEY [FILE]     exit 0 if FILE sets KEY (even to an empty value)
# FILE defaults to $ENV_FILE, else .env; a missing file holds no key.

# Parse one line into ENV_FILE_KEY and ENV_FILE_VALUE; return 1 if it binds nothing.
env_file_parse_line() {
  local line=${1%$'\r'} quoted rest
  local re_binding='^[[:space:]]*(export[[:blank:]]+)?([^=#[:space:]]+)[[:blank:]]*=([[:blank:]]*)(.*)$'
  local re_double='^"((\\.|[^"\\])*)"(.*)$'
  local re_single="^'((\\\\.|[^'\\\\])*)'(.*)\$"
  [[ $line =~ $re_binding ]] || return 1
  ENV_FILE_KEY=${BASH_REMATCH[2]}
  local blanks=${BASH_REMATCH[3]} value=${BASH_REMATCH[4]}
  if [[ $value =~ $re_double ]]; then
    quoted=${BASH_REMATCH[1]} rest=${BASH_REMATCH[3]}
    _env_file_comment_only "$rest" || return 1
    _env_file_unescape "$quoted" "\\'\"abfnrtv"
  elif [[ $value =~ $re_single ]]; then
    quoted=${BASH_REMATCH[1]} rest=${BASH_REMATCH[3]}
    _env_file_comment_only "$rest" || return 1
    _env_file_unescape "$quoted" "\\'"
  elif [[ $value == [\"\']* ]]; then
    return 1 # an opening quote that never closes on this line
  elif [[ -n $blanks && $value == '#'* ]]; then
    ENV_FILE_VALUE= # `KEY= # comment`: empty
  else
    _env_file_unquoted "$value"
  fi
}

# What follows a closing quote may only be blanks and a comment.
_env_file_comment_only() { [[ $1 =~ ^[[:blank:]]*(#.*)?$ ]]; }

# ENV_FILE_VALUE: an unquoted value without its inline comment (a `#` after a blank)
# and without trailing blanks.
_env_file_unquoted() {
  local value=$1
  if [[ $value =~ [[:space:]]+# ]]; then
    value=${value%%"${BASH_REMATCH[0]}"*}
  fi
  ENV_FILE_VALUE=${value%"${value##*[![:space:]]}"}
}

# ENV_FILE_VALUE: $1 with the backslash escapes whose letter is in $2 decoded; any other
# backslash is kept.
_env_file_unescape() {
  local rest=$1 known=$2 out='' char
  while [[ $rest == *\\* ]]; do
    out+=${rest%%\\*}
    rest=${rest#*\\}
    char=${rest:0:1}
    if [[ -n $char && $known == *"$char"* ]]; then
      case $char in
        a) char=$'\a' ;;
        b) char=$'\b' ;;
        f) char=$'\f' ;;
        n) char=$'\n' ;;
        r) char=$'\r' ;;
        t) char=$'\t' ;;
        v) char=$'\v' ;;
      esac
      out+=$char
      rest=${rest:1}
    else
      out+=\\
    fi
  done
  ENV_FILE_VALUE=$out$rest
}

# Print KEY's value in FILE (the last line setting it); return 1 if no line does.
env_file_get() {
  local key=${1:?usage: env_file_get KEY [FILE]} file=${2:-${ENV_FILE:-.env}}
  local line found=1 value=''
  [[ -r $file ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    if env_file_parse_line "$line" && [[ $ENV_FILE_KEY == "$key" ]]; then
      value=$ENV_FILE_VALUE found=0
    fi
  done <"$file"
  ((found == 0)) && printf '%s\n' "$value"
  return "$found"
}

# Whether FILE sets KEY, even to an empty value.
env_file_has() {
  env_file_get "$@" >/dev/null
}

# Export every KEY of FILE that the environment does not set already: the environment
# wins over the file, as with Docker Compose.
env_file_export() {
  local file=${1:-${ENV_FILE:-.env}} line name
  local -A values=()
  [[ -r $file ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    env_file_parse_line "$line" || continue
    [[ $ENV_FILE_KEY =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue # not a shell name
    values[$ENV_FILE_KEY]=$ENV_FILE_VALUE
  done <"$file"
  for name in "${!values[@]}"; do
    [[ -v $name ]] || export "$name=${values[$name]}"
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    get | has) "env_file_$1" "${@:2}" ;;
    *)
      echo "usage: env-file.sh get|has KEY [FILE]" >&2
      exit 2
      ;;
  esac
fi
