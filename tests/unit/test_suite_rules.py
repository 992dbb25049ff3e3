"""Rules the test suite keeps: a test cannot wait longer than pytest lets it run.

An inner timeout above pytest's global one is dead code: pytest-timeout ends the test
first, with a stack trace instead of the message the inner wait would have given.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.conftest import TIERS, tier_of
from tests.helpers import ROOT

#: `timeout=900`, `timeout: float = 900`, `wait_for(..., 900, ...)`, `stall=900`.
LITERAL_WAIT = re.compile(
    r"\b(?:timeout|stall)\s*(?::\s*\w+\s*)?=\s*(\d+(?:\.\d+)?)"
    r"|\bwait_for\([^()]*?,\s*(\d+(?:\.\d+)?)\s*,"
)


def pytest_timeout() -> float:
    """The global per-test timeout in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return float(config["tool"]["pytest"]["ini_options"]["timeout"])


def literal_waits(source: str) -> list[tuple[int, float]]:
    """(line, seconds) of every literal timeout in a test module's source."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        for match in LITERAL_WAIT.finditer(line):
            found.append((number, float(match.group(1) or match.group(2))))
    return found


def test_the_rule_sees_each_spelling() -> None:
    source = "run(x, timeout=900)\nwait_for(f, 700, 'x')\ndef f(timeout: float = 650): ...\n"
    assert literal_waits(source) == [(1, 900.0), (2, 700.0), (3, 650.0)]


def test_no_inner_timeout_reaches_pytests_own() -> None:
    limit = pytest_timeout()
    tests = ROOT / "tests"
    too_long = [
        f"{path.relative_to(ROOT)}:{line}: {seconds:g} s"
        for path in sorted(tests.rglob("*.py"))
        if path.resolve() != Path(__file__).resolve()  # its own examples
        for line, seconds in literal_waits(path.read_text())
        if seconds >= limit
    ]
    assert not too_long, f"inner timeouts at or above pytest's {limit:g} s: {too_long}"


def test_every_test_folder_is_a_tier() -> None:
    folders = {p.parent for p in (ROOT / "tests").rglob("test_*.py")}
    assert {tier_of(folder / "x.py") for folder in folders} <= set(TIERS)
    assert tier_of(Path(__file__)) == "unit"
