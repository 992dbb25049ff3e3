#!/usr/bin/env bash
# Make sure the two base images the stack builds on exist locally.
#
# Normal mode: use (or pull) the public images named by PYTHON_BASE and REDIS_IMAGE.
# Air-gapped mode: when a public image cannot be pulled, build a stand-in from Debian
# packages (debootstrap + docker import), so the same Dockerfiles build with no registry.
#
# Writes the chosen image names as KEY=VALUE lines to the file given as $1; the
# Makefile includes that file so every later compose call uses the same bases.
set -euo pipefail

out_file=${1:?usage: build-bases.sh OUTPUT_ENV_FILE}
python_base=${PYTHON_BASE:-python:3.11-slim-bookworm}
redis_image=${REDIS_IMAGE:-redis:7-bookworm}
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
airgap_debian=conveyor-airgap/debian:bookworm
airgap_python=conveyor-airgap/python:3.11-bookworm
airgap_redis=conveyor-airgap/redis:7-bookworm
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '==> %s\n' "$*" >&2; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# True when the image is present or could be pulled now.
available() {
  have_image "$1" && return 0
  log "pulling $1"
  docker pull --quiet "$1" >/dev/null 2>&1
}

# A minimal Debian 12 root filesystem with Python 3.11, venv, CA certificates and tini.
build_debian_base() {
  have_image "$airgap_debian" && return 0
  command -v debootstrap >/dev/null || {
    log "debootstrap is missing: install it (apt-get install debootstrap) and run again"
    exit 1
  }
  [[ $(id -u) -eq 0 ]] || { log "debootstrap needs root to build the air-gapped base"; exit 1; }
  local rootfs
  rootfs=$(mktemp -d)
  log "building $airgap_debian from Debian packages (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
    bookworm "$rootfs" "$debian_mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$airgap_debian" >/dev/null
  rm -rf "$rootfs"
}

resolve_python() {
  if available "$python_base"; then
    echo "$python_base"; return
  fi
  log "cannot pull $python_base: no registry reachable, switching to air-gapped mode"
  build_debian_base
  docker tag "$airgap_debian" "$airgap_python"
  echo "$airgap_python"
}

resolve_redis() {
  if available "$redis_image"; then
    echo "$redis_image"; return
  fi
  log "cannot pull $redis_image: no registry reachable, switching to air-gapped mode"
  if ! have_image "$airgap_redis"; then
    build_debian_base
    log "building $airgap_redis (redis-server from Debian packages)"
    docker build --quiet --build-arg "BASE=$airgap_debian" --build-arg "DEBIAN_MIRROR=$debian_mirror" \
      -t "$airgap_redis" -f "$here/redis.Dockerfile" "$here" >/dev/null
  fi
  echo "$airgap_redis"
}

main() {
  local py redis
  py=$(resolve_python)
  redis=$(resolve_redis)
  mkdir -p "$(dirname "$out_file")"
  printf 'PYTHON_BASE=%s\nREDIS_IMAGE=%s\n' "$py" "$redis" >"$out_file"
  log "base images: python=$py redis=$redis"
}

main
