#!/usr/bin/env bash
# Download every wheel pinned in the lock file into a folder the image build installs
# from (`pip install --no-index`). Runs on the host, which trusts the network's CA; the
# build containers do not, and need no network this way.
#
# Markers are dropped on purpose: the lock is universal, and a pin such as
# `async-timeout ; python_full_version < "3.11.3"` depends on the *image's* interpreter
# (Debian 12 has 3.11.2), so its wheel must be at hand whichever base is used.
set -euo pipefail

lock=${1:?usage: wheelhouse.sh LOCK_FILE DEST_DIR}
dest=${2:?usage: wheelhouse.sh LOCK_FILE DEST_DIR}
pins=$(mktemp)
trap 'rm -f "$pins"' EXIT

# The lock as it is but for the markers: its --hash lines stay, so pip checks every
# wheel it downloads against them (hash-checking mode).
sed -E '/^[A-Za-z0-9._-]+==/ s/[[:space:]]*;[^\\]*//' "$lock" >"$pins"
mkdir -p "$dest"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
  --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  --platform manylinux_2_36_x86_64 --platform manylinux_2_31_x86_64 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
  --dest "$dest" --requirement "$pins"
echo "wheelhouse: $(find "$dest" -name '*.whl' | wc -l) wheels in $dest"
