"""`make certs` (deploy/scripts/make-certs.sh): private keys only their owner can read.

It runs the script itself (bash and openssl, no Docker) into a temporary folder.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "deploy" / "scripts" / "make-certs.sh"
KEYS = ("ca.key", "redis.key")
CERTIFICATES = ("ca.crt", "redis.crt")


def make_certs(folder: Path, *names: str) -> str:
    """Run make-certs.sh into `folder` (with a permissive umask: the script must not rely
    on the caller's); its output."""
    done = subprocess.run(
        ["bash", "-c", 'umask 022; exec bash "$0" "$@"', str(SCRIPT), str(folder), *names],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
        timeout=60,
    )
    return done.stdout + done.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    make_certs(certs)
    assert mode(certs) == 0o700
    assert {name: oct(mode(certs / name)) for name in KEYS} == dict.fromkeys(KEYS, "0o600")
    # Certificates are public: every client gets the CA's.
    assert {name: oct(mode(certs / name)) for name in CERTIFICATES} == dict.fromkeys(
        CERTIFICATES, "0o644"
    )


def test_keys_left_readable_by_an_older_version_are_closed(tmp_path: Path) -> None:
    """A second run keeps the CA and a valid certificate, and still closes their keys."""
    certs = tmp_path / "certs"
    make_certs(certs)
    before = (certs / "redis.key").read_bytes()
    for name in KEYS:
        (certs / name).chmod(0o644)  # as make-certs.sh wrote redis.key before
    assert "is valid for" in make_certs(certs)
    assert (certs / "redis.key").read_bytes() == before  # not issued again
    assert {name: oct(mode(certs / name)) for name in KEYS} == dict.fromkeys(KEYS, "0o600")
