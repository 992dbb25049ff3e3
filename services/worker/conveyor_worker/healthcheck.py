"""Container healthcheck: exit 0 when this worker's heartbeat file is fresh.

Run as `python -m conveyor_worker.healthcheck`; imports nothing heavy, so it is cheap.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conveyor_core.heartbeat_check import check_heartbeat

MAX_AGE_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_MAX_AGE", "30"))
#: Where the worker's heartbeat bootstep touches its file (tmpfs in the container).
HEARTBEAT_FILE = Path(os.environ.get("WORKER_HEARTBEAT_FILE", "/tmp/conveyor-worker.heartbeat"))  # noqa: S108


def main() -> int:
    """Exit status for Docker: 0 healthy, 1 unhealthy."""
    return check_heartbeat(HEARTBEAT_FILE, MAX_AGE_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
