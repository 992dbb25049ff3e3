"""The example task project (examples/webhooks) passes its own tests, as a team runs them.

Its receiver listens on a loopback port; the tests need no Docker and no broker: a task
is a plain function until a worker registers it.
"""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "webhooks"


def test_the_webhook_example_passes_its_own_tests() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,  # its own pyproject.toml configures pytest
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "7 passed" in done.stdout, done.stdout[-2000:]
