"""`make doctor` (deploy/scripts/doctor.sh) on a PATH with fake `docker`, `docker-compose`
and `uname` commands in front: each missing or too old thing is named and the exit code is
non-zero. The fakes answer only what the doctor asks; no Docker daemon is used.
tests/manifests/test_doctor.py checks that this machine passes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import ROOT

#: The system's folders, without the ones where a real docker-compose may live (pyenv).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: A docker CLI whose daemon answers as Engine 24.0.7 and whose compose plugin is missing.
DOCKER_WITHOUT_COMPOSE = """#!/bin/sh
case "$1" in
  version) echo "${FAKE_ENGINE:-24.0.7}" ;;
  info) exit 0 ;;
  *) echo "docker: '$1' is not a docker command." >&2; exit 1 ;;
esac
"""
NO_COMMAND = "#!/bin/sh\necho 'not here' >&2\nexit 127\n"


def fake(folder: Path, name: str, script: str) -> None:
    """Put an executable script NAME in FOLDER."""
    path = folder / name
    path.write_text(script)
    path.chmod(0o755)


def make(target: str, fakes: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`make TARGET` in the repository, with the fakes first on PATH."""
    # Nor the outer make's flags: `make test COMPOSE=...` would pass COMPOSE down.
    inherited = {"COMPOSE", "PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    environment = {k: v for k, v in os.environ.items() if k not in inherited}
    environment.update(env, PATH=f"{fakes}:{SYSTEM_PATH}")
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def missing(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines naming a problem."""
    return [line.strip() for line in done.stdout.splitlines() if "MISSING" in line]


def fakes_without_compose(tmp_path: Path) -> Path:
    """A folder where docker has no compose plugin and there is no docker-compose."""
    fake(tmp_path, "docker", DOCKER_WITHOUT_COMPOSE)
    fake(tmp_path, "docker-compose", NO_COMMAND)
    return tmp_path


def test_docker_without_compose_v2_is_named(tmp_path: Path) -> None:
    done = make("doctor", fakes_without_compose(tmp_path))
    assert done.returncode != 0
    assert any(line.startswith("MISSING  Compose v2") for line in missing(done)), done.stdout
    assert "missing or too old" in done.stderr


def test_compose_v1_is_named_as_such(tmp_path: Path) -> None:
    fake(tmp_path, "docker", DOCKER_WITHOUT_COMPOSE)
    fake(tmp_path, "docker-compose", "#!/bin/sh\necho 1.29.2\n")
    done = make("doctor", tmp_path)
    assert done.returncode != 0
    compose = [line for line in missing(done) if "Compose v2" in line]
    assert compose and "Compose v1 (1.29.2" in compose[0], done.stdout


def test_an_old_docker_engine_is_named(tmp_path: Path) -> None:
    done = make("doctor", fakes_without_compose(tmp_path), FAKE_ENGINE="19.03.8")
    assert done.returncode != 0
    assert "MISSING  Docker Engine 20.10 or newer: the daemon is 19.03.8" in missing(done)


def test_make_up_stops_at_the_doctor_on_anything_but_x86_64(tmp_path: Path) -> None:
    fake(fakes_without_compose(tmp_path), "uname", "#!/bin/sh\necho aarch64\n")
    done = make("up", tmp_path)
    assert done.returncode != 0
    problems = missing(done)
    assert problems[0].startswith("MISSING  CPU architecture aarch64"), done.stdout
    assert "x86_64 only" in problems[0]
    assert "doctor-up" in done.stderr  # make stopped there, before building anything
