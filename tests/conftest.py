"""Test tiers: every test is marked by the folder it lives in.

`pytestmark` in a conftest marks nothing outside that file, so the tier comes from the
path instead: `pytest -m unit` (pure Python, no Docker), `-m manifests` (renders the
compose and Kubernetes files: Docker's compose plugin, kustomize), `-m integration` (a
real Redis and real Celery workers) and `-m e2e` (the whole compose stack).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# The queues the services would read from their image: the repository's declarations,
# for the tests and the workers they start on this machine.
os.environ.setdefault("CONVEYOR_QUEUES_FILE", str(TESTS.parent / "queues.toml"))
TIERS = ("unit", "manifests", "integration", "e2e")


def tier_of(path: Path) -> str | None:
    """The tier of a test file: the first folder under tests/, if it is a tier."""
    try:
        folder = path.resolve().relative_to(TESTS.resolve()).parts[0]
    except (ValueError, IndexError):
        return None
    return folder if folder in TIERS else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each collected test with its tier."""
    for item in items:
        tier = tier_of(item.path)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
