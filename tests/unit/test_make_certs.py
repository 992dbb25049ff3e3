"""make-certs.sh never replaces a CA certificate it does not hold the key for.

A worker host (`make up ROLE=worker`) gets only `ca.crt` from the host that runs Redis.
Making a new CA over it, as the script once did on finding no `ca.key`, silently cuts
the workers off from that Redis. The real script runs here with openssl in a temporary
folder, and the Makefile's `certs` target is run the way `make up ROLE=worker` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "deploy" / "scripts" / "make-certs.sh"


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("openssl", "make"):
        if not shutil.which(tool):
            pytest.fail(f"this test runs make-certs.sh: install {tool}")


def make_certs(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_TLS_NAMES"}
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def host_a(tmp_path: Path) -> Path:
    """The certs/ of the host that runs Redis: a CA and Redis's certificate."""
    folder = tmp_path / "host-a"
    assert make_certs(folder).returncode == 0
    assert {"ca.crt", "ca.key", "redis.crt", "redis.key"} <= set(contents(folder))
    return folder


def copy_of(host_a: Path, tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "host-b"
    folder.mkdir(mode=0o700)
    for name in names:
        shutil.copy(host_a / name, folder / name)
    return folder


def test_the_host_that_runs_redis_keeps_its_ca(host_a: Path) -> None:
    before = contents(host_a)
    again = make_certs(host_a)
    assert again.returncode == 0, again.stderr
    assert contents(host_a) == before
    # A new name means a new server certificate, from the same CA.
    renamed = make_certs(host_a, "redis.example.net")
    assert renamed.returncode == 0, renamed.stderr
    after = contents(host_a)
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["redis.crt"] != before["redis.crt"]


def test_a_copied_ca_crt_is_never_replaced_where_a_certificate_must_be_signed(
    host_a: Path, tmp_path: Path
) -> None:
    host_b = copy_of(host_a, tmp_path, "ca.crt")
    done = make_certs(host_b)
    assert done.returncode == 2
    assert f"{host_b}/ca.key" in done.stderr  # names the missing file...
    assert "ROLE=worker" in done.stderr  # ...and says what to do
    assert contents(host_b) == {"ca.crt": (host_a / "ca.crt").read_bytes()}


def test_a_copied_ca_with_a_valid_server_certificate_is_kept_as_it_is(
    host_a: Path, tmp_path: Path
) -> None:
    host_b = copy_of(host_a, tmp_path, "ca.crt", "redis.crt", "redis.key")
    before = contents(host_b)
    done = make_certs(host_b)
    assert done.returncode == 0, done.stderr
    assert contents(host_b) == before


def test_a_ca_key_without_its_certificate_stops(host_a: Path, tmp_path: Path) -> None:
    host_b = copy_of(host_a, tmp_path, "ca.key")
    done = make_certs(host_b)
    assert done.returncode == 2
    assert f"{host_b}/ca.crt" in done.stderr
    assert contents(host_b) == {"ca.key": (host_a / "ca.key").read_bytes()}


def test_a_worker_host_needs_ca_crt_only_and_makes_nothing(host_a: Path, tmp_path: Path) -> None:
    host_b = copy_of(host_a, tmp_path, "ca.crt")
    done = make_certs("--client", host_b)
    assert done.returncode == 0, done.stderr
    assert contents(host_b) == {"ca.crt": (host_a / "ca.crt").read_bytes()}


def test_a_worker_host_without_ca_crt_is_told_to_copy_it(tmp_path: Path) -> None:
    done = make_certs("--client", tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path}/ca.crt is missing" in done.stderr
    assert "never its ca.key" in done.stderr
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    garbled = make_certs("--client", tmp_path)
    assert garbled.returncode == 2
    assert "not a PEM certificate" in garbled.stderr


def make_certs_target(certs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make certs` as `make up` runs it, on CONVEYOR_CERTS_DIR=certs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MAKEFLAGS", "ROLE", "REDIS_TLS_NAMES", "CERTS_DIR"}
    }
    return subprocess.run(
        ["make", "--no-print-directory", "certs", f"CONVEYOR_CERTS_DIR={certs}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_make_certs_with_role_worker_only_checks_the_copied_ca(
    host_a: Path, tmp_path: Path
) -> None:
    host_b = copy_of(host_a, tmp_path, "ca.crt")
    done = make_certs_target(host_b, "ROLE=worker")
    assert done.returncode == 0, done.stderr
    assert contents(host_b) == {"ca.crt": (host_a / "ca.crt").read_bytes()}
    (host_b / "ca.crt").unlink()
    missing = make_certs_target(host_b, "ROLE=worker")
    assert missing.returncode != 0
    assert f"{host_b}/ca.crt is missing" in missing.stderr
    assert list(host_b.iterdir()) == []
