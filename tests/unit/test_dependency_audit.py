"""The supply chain: every lock pins each package with its hashes, pip installs them with
--require-hashes, and the audit (`make audit`) covers every lock and fails on a known
vulnerability unless it is accepted with a reason."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("dependencies", ROOT / "deploy/audit/dependencies.py")
assert spec and spec.loader
dependencies = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dependencies)

LOCKS = [
    ROOT / "requirements.lock",
    ROOT / "requirements-dev.lock",
    ROOT / "bench/requirements.lock",
]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==\S+")


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_pin_carries_its_hashes(lock: Path) -> None:
    """Each `name==version` line continues with at least one --hash=sha256 line."""
    lines = lock.read_text().splitlines()
    unhashed = [
        line
        for line, following in zip(lines, [*lines[1:], ""], strict=True)
        if PIN.match(line) and not following.strip().startswith("--hash=sha256:")
    ]
    assert lines and not unhashed, unhashed


@pytest.mark.parametrize(
    ("path", "lock"),
    [
        ("services/Dockerfile", "requirements.lock"),
        ("bench/Dockerfile", "bench-requirements.lock"),
        ("Makefile", "requirements-dev.lock"),
        ("deploy/scripts/wheelhouse.sh", "--requirement"),
    ],
)
def test_pip_installs_the_locks_with_require_hashes(path: str, lock: str) -> None:
    """Every pip command that installs or downloads from a lock insists on its hashes."""
    text = (ROOT / path).read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines() if "pip" in line and lock in line]
    assert commands and all("--require-hashes" in line for line in commands), commands


def test_make_audit_reads_every_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [files] = re.findall(r"^LOCK_FILES = (.+)$", makefile, re.MULTILINE)
    assert sorted(files.split()) == sorted(str(p.relative_to(ROOT)) for p in LOCKS)
    assert "dependencies.py $(LOCK_FILES)" in makefile


def test_pins_reads_hashed_lines() -> None:
    lock = ROOT / "requirements.lock"
    versions = dependencies.pins(lock)
    assert versions["celery"] and "\\" not in versions["celery"]
    assert len(versions) == sum(1 for line in lock.read_text().splitlines() if PIN.match(line))


def fake_audit(findings: list[tuple[str, str, str]]) -> Any:
    def audit(lock: Path) -> tuple[list[tuple[str, str, str]], list[str], str]:
        return findings, [], f"{lock}: fake"

    return audit


def test_a_known_vulnerability_fails_the_audit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dependencies, "audit", fake_audit([("jinja2", "3.1.0", "GHSA-1")]))
    accepted = tmp_path / "accepted.txt"
    accepted.write_text("# none\n")
    assert dependencies.main(["requirements.lock", "--accepted", str(accepted)]) == 1
    assert "VULNERABLE jinja2 3.1.0: GHSA-1" in capsys.readouterr().out


def test_an_accepted_vulnerability_passes_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dependencies, "audit", fake_audit([("jinja2", "3.1.0", "GHSA-1")]))
    accepted = tmp_path / "accepted.txt"
    accepted.write_text(
        "GHSA-1 Jinja2 only the sandbox is affected; we never use it\nGHSA-9 x old\n"
    )
    assert dependencies.main(["requirements.lock", "--accepted", str(accepted)]) == 0
    out = capsys.readouterr().out
    assert "ACCEPTED jinja2 3.1.0: GHSA-1 (only the sandbox is affected; we never use it)" in out
    assert "accepted GHSA-9 for x matches nothing now" in out


def test_an_accepted_line_needs_a_reason(tmp_path: Path) -> None:
    accepted = tmp_path / "accepted.txt"
    accepted.write_text("GHSA-1 jinja2\n")
    with pytest.raises(SystemExit, match=r"accepted\.txt:1: want ADVISORY-ID PACKAGE REASON"):
        dependencies.accepted(accepted)


def test_the_accepted_list_parses() -> None:
    assert all(reason for reason in dependencies.accepted().values())
