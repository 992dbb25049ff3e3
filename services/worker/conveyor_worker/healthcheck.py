"""Container healthcheck: exit 0 when this worker's heartbeat file is fresh.

Run as `python -m conveyor_worker.healthcheck`; imports nothing heavy, so it is cheap.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MAX_AGE_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_MAX_AGE", "30"))
#: Where the worker's heartbeat bootstep touches its file (tmpfs in the container).
HEARTBEAT_FILE = Path(os.environ.get("WORKER_HEARTBEAT_FILE", "/tmp/conveyor-worker.heartbeat"))  # noqa: S108


def main() -> int:
    """Exit status for Docker: 0 healthy, 1 unhealthy."""
    path = HEARTBEAT_FILE
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat file at {path}", file=sys.stderr)
        return 1
    if age > MAX_AGE_SECONDS:
        print(f"heartbeat is {age:.0f}s old (limit {MAX_AGE_SECONDS:.0f}s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
