#!/usr/bin/env bash
# Prepare a team's task project (CONVEYOR_TASKS: a folder with a pyproject.toml) for the
# image build: its wheel, and its dependencies locked with hashes against Conveyor's own
# pins and downloaded as wheels, all in DEST (.build/tasks), which the Dockerfile
# installs from with no network. An empty CONVEYOR_TASKS leaves DEST empty: no project.
#
#   task-project.sh PROJECT_DIR DEST_DIR VENV
set -euo pipefail

project=${1-}
dest=${2:?usage: task-project.sh PROJECT_DIR DEST_DIR VENV}
venv=${3:?usage: task-project.sh PROJECT_DIR DEST_DIR VENV}

if [[ -n "$project" && ! -f "$project/pyproject.toml" ]]; then
  echo "CONVEYOR_TASKS=$project: no pyproject.toml there (a task project is a Python project)" >&2
  exit 2
fi
# Done already for this very project (its files, its path) and this lock: nothing to do.
fingerprint=$(
  {
    echo "$project"
    sha256sum requirements.lock "$0"
    if [[ -n "$project" ]]; then
      find "$project" -type f -not -path '*/.git/*' -not -path '*/__pycache__/*' \
        -not -path '*/build/*' -not -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    fi
  } | sha256sum | cut -d' ' -f1
)
if [[ -f "$dest/.fingerprint" && "$(cat "$dest/.fingerprint")" == "$fingerprint" ]]; then
  exit 0
fi
rm -rf "$dest"
mkdir -p "$dest"
if [[ -z "$project" ]]; then
  echo "$fingerprint" >"$dest/.fingerprint"
  exit 0
fi
# The image provides Conveyor's SDK: a second `conveyor` (PyPI's, or a copy) would shadow it.
if "$venv/bin/python" - "$project/pyproject.toml" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    dependencies = tomllib.load(f).get("project", {}).get("dependencies", [])
names = {re.split(r"[\s\[<>=!~;]", d.strip(), maxsplit=1)[0].lower() for d in dependencies}
sys.exit(0 if "conveyor" in names else 1)
PY
then
  echo "CONVEYOR_TASKS=$project lists conveyor in its dependencies: the image provides Conveyor's SDK; remove it" >&2
  exit 2
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check uv
# One version of each package in the image: the project's dependencies resolve within
# Conveyor's lock (-c), and the project may not bring a second Conveyor.
"$venv/bin/uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
  --no-header -c requirements.lock "$project/pyproject.toml" -o "$dest/requirements.lock"
mkdir -p "$dest/wheels"
if grep -qE '^[A-Za-z0-9._-]+==' "$dest/requirements.lock"; then
  bash deploy/scripts/wheelhouse.sh "$dest/requirements.lock" "$dest/wheels"
fi
# Built from a copy: a build backend writes build/ and *.egg-info into the folder it builds.
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -a "$project/." "$copy/"
"$venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$dest" "$copy"
echo "$fingerprint" >"$dest/.fingerprint"
echo "task project: $(basename "$dest"/*.whl) from $project"
